"""Refuse allocations that cannot fit, before making them."""
from __future__ import annotations

import os

from .errors import EngineError, MemoryBudgetError


def proc_kib(path: str, key: str) -> int | None:
    """A ``key: N kB`` field of a /proc file, in bytes; None where /proc has no such field."""
    try:
        with open(path) as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def available_bytes() -> int:
    """Memory the process may still use: MemAvailable from /proc/meminfo, else a large value."""
    avail = proc_kib("/proc/meminfo", "MemAvailable")
    return avail if avail is not None else 1 << 62


def peak_rss_bytes() -> int:
    """Peak resident memory of this process: VmHWM (reset at exec, unlike ru_maxrss, which a
    process started by a large parent inherits), else ru_maxrss."""
    hwm = proc_kib("/proc/self/status", "VmHWM")
    if hwm is not None:
        return hwm
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def memory_limit() -> int | None:
    """``ENGINE_MEMORY_LIMIT`` in bytes (``2e9`` or ``2000000000``), or None when unset."""
    text = os.environ.get("ENGINE_MEMORY_LIMIT", "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value == value or value <= 0 or value == float("inf"):
        raise EngineError(f"ENGINE_MEMORY_LIMIT must be a positive number of bytes (e.g. 2e9), got {text!r}")
    return int(value)


ALWAYS_FITS = 1 << 20  # bytes: a request this small is never refused for want of memory


def require(nbytes: int, what: str, hint: str = "use a smaller graph") -> None:
    """Raise :class:`MemoryBudgetError` if ``nbytes`` exceeds 90% of available memory.

    ``ENGINE_MEMORY_LIMIT`` (bytes) caps the budget further, e.g. for tests. Requests under
    :data:`ALWAYS_FITS` within the cap are granted without reading /proc (small graphs ask
    thousands of times a second while training).
    """
    cap = memory_limit()
    if nbytes <= ALWAYS_FITS and (cap is None or nbytes <= cap):
        return
    budget = int(available_bytes() * 0.9)
    if cap is not None:
        budget = min(budget, cap)
    if nbytes > budget:
        raise MemoryBudgetError(
            f"{what} needs {nbytes / 2**30:.2f} GiB but only {budget / 2**30:.2f} GiB is available; {hint}"
        )
