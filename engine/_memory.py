"""Refuse allocations that cannot fit, before making them."""
from __future__ import annotations

import os

from .errors import MemoryBudgetError


def available_bytes() -> int:
    """Memory the process may still use: MemAvailable from /proc/meminfo, else a large value."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 1 << 62


def require(nbytes: int, what: str, hint: str = "use a smaller graph") -> None:
    """Raise :class:`MemoryBudgetError` if ``nbytes`` exceeds 90% of available memory.

    ``ENGINE_MEMORY_LIMIT`` (bytes) caps the budget further, e.g. for tests.
    """
    budget = int(available_bytes() * 0.9)
    cap = os.environ.get("ENGINE_MEMORY_LIMIT")
    if cap:
        budget = min(budget, int(float(cap)))
    if nbytes > budget:
        raise MemoryBudgetError(
            f"{what} needs {nbytes / 2**30:.2f} GiB but only {budget / 2**30:.2f} GiB is available; {hint}"
        )
