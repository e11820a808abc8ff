"""Compile algorithms into weights of the architecture family.

The only place in the engine that maps an algorithm to weights; the executor and the
kernels run the resulting :class:`~engine.Model` without knowing what it computes. Each
algorithm's registry entry (:mod:`engine.algorithms.registry`) names its compilers.
"""
from __future__ import annotations

from ..algorithms.registry import algorithm


def compile(algo: str, dtype="float32", *, processor: str | None = None, hidden: int = 128,
            hint_mode: str = "encoded_decoded", heads: int | None = None):
    """Return the compiled :class:`~engine.Model` for ``algo``.

    Parameters
    ----------
    algo : str
        An algorithm with a compiler (:func:`engine.algorithms.compilable`).
    dtype : {"float32", "float64"}
    processor : {None, "mpnn", ...}, optional
        None: the compact construction (the smallest exact spec, the fast path at 10^6
        nodes). A learned processor: a Model whose spec is exactly the learned spec of
        ``(algo, processor, hidden, hint_mode)`` (same weight names and shapes, decoders and
        feedback), its weights set analytically (unused units zero): the point in the learned
        parameter space that comparisons measure against.
    hidden, hint_mode
        The learned spec's width and CLRS hint mode (with ``processor`` only).
    heads : int, optional
        Attention heads, for an attention processor (``gatv2``; default 1).
    """
    from ..errors import EngineError
    from ..model.registry import PROCESSOR_KINDS

    info = algorithm(algo)
    if processor is None:
        return info.compiler("compact")(dtype)
    extra = {}
    if heads is not None:
        if processor not in PROCESSOR_KINDS or processor == "mpnn":
            raise EngineError(f"heads= is for attention processors (gatv2), not {processor!r}")
        extra["heads"] = heads
    return info.compiler(processor, hint_mode)(dtype, hidden=hidden, hint_mode=hint_mode, **extra)


__all__ = ["compile"]
