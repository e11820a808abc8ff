"""The result of a reference run: CLRS-named outputs and per-step hints."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class ReferenceResult:
    """Outputs and (optionally) hints of a reference algorithm run.

    Attributes
    ----------
    algorithm : str
    outputs : dict of name -> ndarray
        CLRS outputs, e.g. ``pi`` (int32 node pointers).
    hints : dict of name -> ndarray or None
        Per-step hints, leading axis ``T`` (= :attr:`steps`), CLRS layouts: node masks and
        scalars ``(T, n)``, pointers ``(T, n)`` int32, categoricals ``(T, n, k)`` one-hot,
        graph scalars ``(T,)``. ``None`` when the run was made without a trace.
    steps : int
        Number of hint steps ``T``, as CLRS counts them.
    inputs : dict
        CLRS inputs other than the graph (``pos``, ``s``).
    final : dict
        Final per-node state (e.g. BFS ``reach``, Bellman-Ford ``d`` and ``msk``).
    """

    algorithm: str
    outputs: dict
    hints: dict | None
    steps: int
    inputs: dict = field(default_factory=dict)
    final: dict = field(default_factory=dict)


def one_hot(index: int, n: int, dtype) -> np.ndarray:
    out = np.zeros(n, dtype=dtype)
    out[index] = 1
    return out


class HintRecorder:
    """Collects per-step hint snapshots within a memory budget.

    ``mode=True`` records every step and raises :class:`~engine.errors.MemoryBudgetError`
    when the trace would outgrow available memory; ``mode="auto"`` records while the trace
    stays under ``auto_bytes`` and otherwise drops it (outputs only); ``mode=False``
    records nothing.
    """

    def __init__(self, mode, auto_bytes: int = 256 * 2**20):
        self.mode = mode
        self.auto_bytes = auto_bytes
        self.rows: dict | None = {} if mode else None
        self.nbytes = 0

    def add(self, **arrays) -> None:
        if self.rows is None:
            return
        step_bytes = sum(a.nbytes for a in arrays.values())
        self.nbytes += step_bytes
        if self.mode == "auto" and self.nbytes > self.auto_bytes:
            self.rows = None
            return
        if self.mode is True and (len(next(iter(self.rows.values()), ())) & 63) == 0:
            from .._memory import require

            require(self.nbytes + 64 * step_bytes, "the hint trace", "pass trace=False (outputs only)")
        for name, a in arrays.items():
            self.rows.setdefault(name, []).append(a.copy())

    def stacked(self) -> dict | None:
        if not self.rows:
            return None
        return {name: np.stack(rows) for name, rows in self.rows.items()}
