"""Breadth-first search with CLRS semantics, computed sparsely.

CLRS ``bfs(A, s)``: synchronous rounds from the source. Before each round the hint
``(reach_h, pi_h)`` is recorded; in a round every node with a reached in-neighbour becomes
reached, and a node whose pointer is still its own index (and is not the source) points to
its lowest-index reached in-neighbour. The loop stops after the first round that reaches
nothing new, so ``T = eccentricity(s) + 1`` hints. ``pi[s] = s``; unreached nodes keep
``pi[v] = v``. Every stored edge is followed (CLRS's unweighted BFS inputs are 0/1).

Sparse form: a node first reached in round ``t`` has only in-neighbours reached in round
``t - 1`` (otherwise it would have been reached earlier), so a round pushes along the
out-edges of the last frontier, in ascending source order, and the first source to reach
a node is its lowest-index reached in-neighbour: O(n + m) in total.
"""
from __future__ import annotations

import numpy as np

from .._jit import jit
from .result import HintRecorder, ReferenceResult, one_hot


def _bfs_round(frontier, out_indptr, out_targets, reach, pi):
    """Advance one round from ``frontier`` (ascending); return the new frontier, ascending."""
    bound = 0
    for u in frontier:
        bound += out_indptr[u + 1] - out_indptr[u]
    fresh = np.empty(bound, dtype=np.int64)
    count = 0
    for u in frontier:
        for k in range(out_indptr[u], out_indptr[u + 1]):
            v = out_targets[k]
            if not reach[v]:
                reach[v] = True
                pi[v] = u
                fresh[count] = v
                count += 1
    return np.sort(fresh[:count])


def bfs(graph, source: int = 0, *, trace=True) -> ReferenceResult:
    n = graph.num_nodes
    dtype = graph.dtype
    out_indptr, out_targets = graph.out_adjacency()
    step = jit(_bfs_round)
    reach = np.zeros(n, dtype=np.bool_)
    pi = np.arange(n, dtype=np.int32)
    reach[source] = True
    frontier = np.array([source], dtype=np.int64)
    recorder = HintRecorder(trace)
    steps = 0
    while True:
        steps += 1
        recorder.add(reach_h=reach.astype(dtype), pi_h=pi)
        frontier = step(frontier, out_indptr, out_targets, reach, pi)
        if frontier.shape[0] == 0:
            break
    return ReferenceResult(
        algorithm="bfs",
        outputs={"pi": pi},
        hints=recorder.stacked(),
        steps=steps,
        inputs={"pos": (np.arange(n) / n).astype(dtype), "s": one_hot(source, n, dtype)},
        final={"reach": reach.astype(dtype)},
    )
