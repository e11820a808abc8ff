"""Compile plain-Python scalar loops (references, graph utilities) with Numba when installed.

The loops are plain Python over NumPy arrays, readable and runnable as they are; Numba (a
dependency, imported only here and only on first use) makes them fast enough for
million-node graphs. ``ENGINE_REFERENCE_JIT=0`` runs them uncompiled.
"""
from __future__ import annotations

import os

_cache: dict = {}


def jit(func):
    """Return ``func`` compiled with ``numba.njit`` (cached), or ``func`` itself."""
    if func in _cache:
        return _cache[func]
    compiled = func
    if os.environ.get("ENGINE_REFERENCE_JIT", "1") != "0":
        try:
            import numba
        except ImportError:
            pass
        else:
            compiled = numba.njit(cache=True, nogil=True)(func)
    _cache[func] = compiled
    return compiled
