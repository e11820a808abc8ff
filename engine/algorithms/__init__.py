"""Reference algorithms with CLRS semantics (the ground truth) and CLRS samplers.

The registry :data:`ALGORITHMS` is the one list of algorithms in the project; the CLI
choices and the compiler read it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._memory import require
from ..errors import EngineError
from .bellman_ford import bellman_ford
from .bfs import bfs
from .dfs import dfs
from .result import ReferenceResult


@dataclass(frozen=True)
class AlgorithmInfo:
    """What the rest of the engine needs to know about a reference algorithm."""

    name: str
    run: object
    has_source: bool
    weighted: bool
    directed_default: bool
    hints: dict  # name -> CLRS type (mask, pointer, scalar, categorical, mask_one, graph_scalar)
    outputs: dict
    bytes_per_hint_node: int  # trace memory per step per node, float32
    steps_known: object = None  # n -> number of hint steps, when fixed by n alone


ALGORITHMS = {
    "bfs": AlgorithmInfo("bfs", bfs, True, False, False,
                         {"reach_h": "mask", "pi_h": "pointer"}, {"pi": "pointer"}, 8),
    "bellman_ford": AlgorithmInfo("bellman_ford", bellman_ford, True, True, False,
                                  {"pi_h": "pointer", "d": "scalar", "msk": "mask"}, {"pi": "pointer"}, 12),
    "dfs": AlgorithmInfo("dfs", dfs, False, False, True,
                         {"pi_h": "pointer", "color": "categorical", "d": "scalar", "f": "scalar",
                          "s_prev": "pointer", "s": "mask_one", "u": "mask_one", "v": "mask_one",
                          "s_last": "mask_one", "time": "graph_scalar"}, {"pi": "pointer"}, 64,
                         steps_known=lambda n: 3 * n),
}

TRACE_AUTO_BYTES = 256 * 2**20


def algorithm_info(name: str) -> AlgorithmInfo:
    if name not in ALGORITHMS:
        raise EngineError(f"unknown algorithm {name!r}; allowed: {sorted(ALGORITHMS)}")
    return ALGORITHMS[name]


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
    info = algorithm_info(algo)
    if dtype is not None:
        graph = graph.with_dtype(dtype)
    n = graph.num_nodes
    if n == 0:
        raise EngineError("the graph has no nodes; references need at least one")
    if info.has_source:
        source = 0 if source is None else source
        if not isinstance(source, (int, np.integer)) or not 0 <= source < n:
            raise EngineError(f"source must be a node id in [0, {n}), got {source!r}")
        source = int(source)
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


__all__ = ["ALGORITHMS", "AlgorithmInfo", "ReferenceResult", "algorithm_info", "reference",
           "bfs", "bellman_ford", "dfs"]
