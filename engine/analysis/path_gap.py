"""Bellman-Ford pointer accuracy against the gap between competing paths.

A node's output pointer is the in-neighbour ``u`` minimising ``d_u + w_uv`` (CLRS's
Bellman-Ford, lowest index on ties). Its *gap* is how far the runner-up is behind:
``second smallest - smallest`` of ``d_u + w_uv`` over its in-neighbours (final distances of
the reference, in the graph's dtype), infinite with a single candidate. An exact executor is
right at every gap; a model whose state holds distances only approximately (a learned one,
or any GATv2, in which an edge weight reaches a state only through attention coefficients:
``docs/compiled_in_learned.md``) must fail where the gap falls below its error. Accuracy by
gap bucket is that curve, measured.
"""
from __future__ import annotations

import numpy as np

# bucket edges of the gap; accuracy_by_gap adds one more row for nodes with a single in-neighbour
GAP_EDGES = (0.0, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, np.inf)


def node_gaps(graph, distances: np.ndarray) -> np.ndarray:
    """Per node, the gap between the best and second-best ``d_u + w_uv`` over its distinct
    in-neighbours ``u`` (parallel edges count once, at their best weight): ``inf`` with one
    in-neighbour, NaN with none. Differences in float64 of the graph-dtype sums."""
    n = graph.num_nodes
    src = graph.indices.astype(np.int64)
    dst = graph.edge_targets().astype(np.int64)
    value = (distances[src] + graph.edge_weights(distances.dtype)).astype(np.float64)
    order = np.lexsort((value, src, dst))  # by destination, then source, then value
    dst, src, value = dst[order], src[order], value[order]
    first_of_pair = np.ones(dst.size, dtype=bool)
    first_of_pair[1:] = (dst[1:] != dst[:-1]) | (src[1:] != src[:-1])
    dst, value = dst[first_of_pair], value[first_of_pair]  # each in-neighbour once, at its best
    order = np.lexsort((value, dst))
    dst, value = dst[order], value[order]
    count = np.bincount(dst, minlength=n)
    first = np.searchsorted(dst, np.arange(n))
    gaps = np.full(n, np.nan)
    two = count >= 2
    gaps[two] = value[first[two] + 1] - value[first[two]]
    gaps[count == 1] = np.inf
    return gaps


def accuracy_by_gap(graphs, sources, predictions, references, edges=GAP_EDGES) -> list:
    """Pointer accuracy of ``predictions`` (one array per graph) by gap bucket, over the nodes
    the reference reached other than the source. Rows ``{"low", "high", "nodes",
    "accuracy"}``, ``accuracy`` None for an empty bucket; the last bucket is the nodes with a
    single in-neighbour (``low = high = inf``)."""
    gaps, right = [], []
    for g, s, pred, ref in zip(graphs, sources, predictions, references):
        if ref.algorithm != "bellman_ford":
            raise ValueError(f"accuracy_by_gap scores Bellman-Ford references, got {ref.algorithm!r}")
        gap = node_gaps(g, np.asarray(ref.final["d"]))
        reached = np.asarray(ref.final["msk"], dtype=bool)
        keep = reached & ~np.isnan(gap)
        keep[s] = False
        gaps.append(gap[keep])
        right.append((np.asarray(pred) == ref.outputs["pi"])[keep])
    gap, ok = np.concatenate(gaps), np.concatenate(right)
    rows = []
    finite = np.isfinite(gap)
    for low, high in zip(edges[:-2], edges[1:-1]):
        sel = finite & (gap >= low) & (gap < high)
        rows.append({"low": float(low), "high": float(high), "nodes": int(sel.sum()),
                     "accuracy": float(ok[sel].mean()) if sel.any() else None})
    top = finite & (gap >= edges[-2])
    rows.append({"low": float(edges[-2]), "high": float("inf"), "nodes": int(top.sum()),
                 "accuracy": float(ok[top].mean()) if top.any() else None})
    single = ~finite
    rows.append({"low": float("inf"), "high": float("inf"), "nodes": int(single.sum()),
                 "accuracy": float(ok[single].mean()) if single.any() else None})
    return rows
