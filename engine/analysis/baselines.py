"""Trivial pointer baselines: rules that run no algorithm, scored on the same graphs.

A node's candidates are its in-neighbours and itself (the sparse protocol's pointer decoder
chooses among them). A learned pointer accuracy means something only above the best of
these rules (``../shared/COMPARISON.md``, Behaviour).
"""
from __future__ import annotations

import numpy as np

RULES = ("self", "lowest candidate", "highest candidate", "highest in-neighbour below", "random candidate")


def _segment_reduce(ufunc, values: np.ndarray, indptr: np.ndarray, empty: np.ndarray) -> np.ndarray:
    """``ufunc.reduce`` over each CSR segment; ``empty`` where a segment has no entry."""
    out = empty.copy()
    nonempty = np.diff(indptr) > 0
    if values.size:
        out[nonempty] = ufunc.reduceat(values, indptr[:-1][nonempty])
    return out


def pointer_baselines(graph, target: np.ndarray) -> dict:
    """Accuracy of each rule of :data:`RULES` against the pointer ``target`` (``(n,)`` ids).

    * ``self``: every node points to itself;
    * ``lowest candidate`` / ``highest candidate``: the lowest / highest index among the
      node and its in-neighbours;
    * ``highest in-neighbour below``: the highest-index in-neighbour with a lower index than
      the node, else the node itself;
    * ``random candidate``: a uniform choice among the distinct candidates (its expected
      accuracy, computed exactly).
    """
    n = graph.num_nodes
    target = np.asarray(target, dtype=np.int64)
    ids = np.arange(n, dtype=np.int64)
    src = graph.indices.astype(np.int64)
    dst = graph.edge_targets().astype(np.int64)
    lowest = np.minimum(_segment_reduce(np.minimum, src, graph.indptr, ids), ids)
    highest = np.maximum(_segment_reduce(np.maximum, src, graph.indptr, ids), ids)
    below = np.where(src < dst, src, -1)
    below_max = _segment_reduce(np.maximum, below, graph.indptr, np.full(n, -1, dtype=np.int64))
    below_rule = np.where(below_max >= 0, below_max, ids)
    pairs = np.unique(np.concatenate([dst * n + src, ids * n + ids]))
    distinct = np.bincount(pairs // n, minlength=n)
    wanted = ids * n + target
    pos = np.minimum(np.searchsorted(pairs, wanted), pairs.size - 1)
    member = pairs[pos] == wanted
    return {"self": float(np.mean(target == ids)),
            "lowest candidate": float(np.mean(target == lowest)),
            "highest candidate": float(np.mean(target == highest)),
            "highest in-neighbour below": float(np.mean(target == below_rule)),
            "random candidate": float(np.mean(member / distinct))}
