"""Reference algorithms with CLRS semantics (the ground truth) and CLRS samplers.

The registry :data:`ALGORITHMS` (:mod:`.registry`) is the one list of algorithms in the
project; the command lines, the samplers, training, evaluation and the compiler read it.
"""
from __future__ import annotations

from .._memory import require
from ..errors import EngineError
from .registry import ALGORITHMS, Algorithm, Probe, algorithm, compilable
from .result import ReferenceResult

TRACE_AUTO_BYTES = 256 * 2**20


def reference(algo: str, graph, source: int | None = None, *, trace="auto", dtype=None) -> ReferenceResult:
    """Run a reference algorithm with CLRS semantics.

    Parameters
    ----------
    algo : {"bfs", "bellman_ford", "dfs"}
    graph : Graph
    source : int, optional
        Start node for BFS and Bellman-Ford (default 0); must be None for DFS, whose roots
        are taken in index order.
    trace : bool or "auto"
        Record every per-step hint. ``"auto"`` records while the trace fits in 256 MiB
        (small graphs get hints, million-node graphs outputs only); ``True`` records all
        and refuses, before allocating, a trace that cannot fit in memory.
    dtype : {"float32", "float64"}, optional
        Arithmetic dtype; default the graph's weight dtype (float32 when unweighted).

    Returns
    -------
    ReferenceResult
        ``outputs["pi"]``, ``hints`` (CLRS names and layouts) and ``steps``.
    """
    info = algorithm(algo)
    if dtype is not None:
        graph = graph.with_dtype(dtype)
    n = graph.num_nodes
    if n == 0:
        raise EngineError("the graph has no nodes; references need at least one")
    if info.has_source:
        source = graph.check_node(0 if source is None else source)
    elif source is not None:
        raise EngineError(f"{algo} takes no source (roots are taken in index order); pass source=None")
    if trace not in (True, False, "auto"):
        raise EngineError(f"trace must be True, False or 'auto', got {trace!r}")
    if info.steps_known:
        # the trace length is known up front: decide (and check memory) before running
        trace_bytes = info.bytes_per_hint_node * n * info.steps_known(n)
        if trace == "auto":
            trace = trace_bytes <= TRACE_AUTO_BYTES
        elif trace:
            require(trace_bytes, f"a {algo} trace of {n} nodes", "pass trace=False (outputs only)")
    kwargs = {"trace": trace}
    if info.has_source:
        return info.run(graph, source, **kwargs)
    return info.run(graph, **kwargs)


__all__ = ["ALGORITHMS", "Algorithm", "Probe", "ReferenceResult", "algorithm", "compilable", "reference"]
