"""Progress bars: ``tqdm`` (the ``progress`` extra) on stderr; without it, no bar."""
from __future__ import annotations

import sys


class _NoBar:
    n = 0

    def update(self, k=1):
        pass

    def set_postfix(self, *args, **kwargs):
        pass

    def close(self):
        pass


def bar(total, desc: str, unit: str, enabled: bool = True, initial: int = 0):
    """A ``tqdm`` bar (``total`` None: a counter), or an object that ignores the calls when
    disabled or when tqdm is not installed."""
    if not enabled:
        return _NoBar()
    try:
        from tqdm import tqdm
    except ImportError:
        return _NoBar()
    return tqdm(total=total, desc=desc, unit=unit, initial=initial, file=sys.stderr, dynamic_ncols=True,
                mininterval=0.5)


class StepProgress:
    """``progress(step)`` callback of :func:`engine.execute` driving a bar, shown on a terminal
    once a run passes a second (fast runs print nothing)."""

    def __init__(self, desc: str = "executing", enabled: bool | None = None):
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.bar = None
        self.desc = desc
        import time

        self._clock = time.perf_counter
        self.start = self._clock()

    def __call__(self, step: int) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            if self._clock() - self.start < 1.0:
                return
            self.bar = bar(None, self.desc, "step")
        self.bar.update(step - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
