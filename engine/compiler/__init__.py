"""Compile algorithms into weights of the architecture family.

The only place in the engine that maps an algorithm to weights; the executor and the
kernels run the resulting :class:`~engine.Model` without knowing what it computes. Each
algorithm's registry entry (:mod:`engine.algorithms.registry`) names its compilers.
"""
from __future__ import annotations

from ..algorithms.registry import algorithm


def compile(algo: str, dtype="float32"):
    """Return the compiled :class:`~engine.Model` for ``algo`` in ``dtype``.

    Parameters
    ----------
    algo : str
        An algorithm with a compiler (:func:`engine.algorithms.compilable`).
    dtype : {"float32", "float64"}
    """
    return algorithm(algo).compiler("compact")(dtype)


__all__ = ["compile"]
