"""Compile algorithms into weights of the architecture family.

The only place in the engine that maps an algorithm name to weights; the executor and the
kernels run the resulting :class:`~engine.Model` without knowing what it computes.
"""
from __future__ import annotations

from ..errors import EngineError
from .bellman_ford import compile_bellman_ford
from .bfs import compile_bfs
from .dfs import compile_dfs

COMPILERS = {"bfs": compile_bfs, "bellman_ford": compile_bellman_ford, "dfs": compile_dfs}


def compile(algo: str, dtype="float32"):
    """Return the compiled :class:`~engine.Model` for ``algo`` in ``dtype``.

    Parameters
    ----------
    algo : {"bfs", "bellman_ford", "dfs"}
    dtype : {"float32", "float64"}
    """
    if algo not in COMPILERS:
        raise EngineError(f"no compiler for {algo!r}; compilable algorithms: {sorted(COMPILERS)}")
    return COMPILERS[algo](dtype)


__all__ = ["COMPILERS", "compile"]
