"""Compile algorithms into weights of the architecture family.

The only place in the engine that maps an algorithm to weights; the executor and the
kernels run the resulting :class:`~engine.Model` without knowing what it computes. Each
algorithm's registry entry (:mod:`engine.algorithms.registry`) names its compilers.
"""
from __future__ import annotations

from ..algorithms.registry import algorithm


def compile(algo: str, dtype="float32", *, processor: str | None = None, hidden: int = 128,
            hint_mode: str = "encoded_decoded", heads: int | None = None, message_graph: str = "input"):
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
    message_graph : {"input", "complete"}
        The learned spec's message graph (with ``processor`` only): the input's edges, or every
        pair of nodes (CLRS's fully connected processor; DFS's MPNN construction lives there).
    """
    from ..errors import EngineError
    from ..model.registry import MESSAGE_GRAPHS, PROCESSOR_KINDS

    info = algorithm(algo)
    if message_graph not in MESSAGE_GRAPHS:
        raise EngineError(f"unknown message graph {message_graph!r}; allowed: {list(MESSAGE_GRAPHS)}")
    if processor is None:
        if message_graph != "input":
            raise EngineError("message_graph= is for a learned processor's spec (processor='mpnn' or 'gatv2')")
        return info.compiler("compact")(dtype)
    extra = {}
    if heads is not None:
        if processor not in PROCESSOR_KINDS or processor == "mpnn":
            raise EngineError(f"heads= is for attention processors (gatv2), not {processor!r}")
        extra["heads"] = heads
    # a construction over every pair of nodes is its own compiler: "<processor>@complete"
    form = processor if message_graph == "input" else f"{processor}@{message_graph}"
    return info.compiler(form, hint_mode)(dtype, hidden=hidden, hint_mode=hint_mode, **extra)


__all__ = ["compile"]
