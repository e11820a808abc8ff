"""The reference backend: NumPy, written for clarity; the oracle the others match.

It builds the full (m + n) x k message tensor, so it is meant for small and medium graphs;
a pass that would not fit in memory is refused before allocating.
"""
from __future__ import annotations

import numpy as np

from .._memory import require
from ..model.registry import REDUCE_KINDS
from .base import Backend, activate, count_arg_groups


def _messages(graph, include_self: bool, rows):
    """Source, row position and edge id of every message, grouped by destination row in
    ``rows`` order with the self message first (edge id -1 for the self message)."""
    n = graph.num_nodes
    rows = np.arange(n, dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
    starts, stops = graph.indptr[rows], graph.indptr[rows + 1]
    counts = stops - starts + (1 if include_self else 0)
    total = int(counts.sum())
    pos = np.repeat(np.arange(rows.size, dtype=np.int64), counts)
    offset = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
    if include_self:
        offset -= 1  # offset -1 is the self message
    eid = np.repeat(starts, counts) + offset
    is_self = offset < 0
    eid[is_self] = -1
    src = np.where(is_self, rows[pos], graph.indices[np.maximum(eid, 0)] if graph.num_edges else 0).astype(np.int64)
    return src, pos, eid, rows


class ReferenceBackend(Backend):
    name = "reference"

    def edge_pass(self, graph, S, Q, E, We, first_act, layers, groups, include_self, rows=None):
        dtype = S.dtype
        width = max([S.shape[1]] + [W.shape[1] for W, _, _ in layers])
        src, dst, eid, rows_ = _messages(graph, include_self, rows)
        n = rows_.size  # output rows
        count = src.size
        require(3 * count * width * dtype.itemsize, "the reference backend's message tensor",
                "use a smaller graph or the native or numba backend")
        q = Q[np.zeros(count, np.int64)] if Q.shape[0] == 1 else Q[rows_[dst]]
        x = S[src] + q
        if E is not None and E.shape[1]:
            Ex = np.zeros((count, E.shape[1]), dtype=dtype)
            real = eid >= 0
            Ex[real] = E[eid[real]]
            x = x + Ex @ We
        x = activate(x, first_act)
        for W, b, act in layers:
            x = activate(x @ W + b, act)
        k_out = x.shape[1]
        out = np.zeros((n, k_out), dtype=dtype)
        winners = np.full((n, count_arg_groups(groups)), -1, dtype=np.int32)
        if count == 0:
            return out, winners
        counts = np.bincount(dst, minlength=n)
        rows = np.flatnonzero(counts)
        starts = np.concatenate([[0], np.cumsum(counts)])[rows]
        slot = 0
        for code, lo, hi in groups:
            kind = REDUCE_KINDS[code]
            seg = x[:, lo:hi]
            if kind in ("sum", "mean"):
                red = np.add.reduceat(seg, starts, axis=0)
                if kind == "mean":
                    red = red / counts[rows][:, None].astype(dtype)
                out[rows, lo:hi] = red
            elif kind in ("max", "min"):
                ufunc = np.fmax if kind == "max" else np.fmin
                out[rows, lo:hi] = ufunc.reduceat(seg, starts, axis=0)
            elif kind == "softmax":  # two passes: the row's largest score, then weights
                top = np.maximum.reduceat(seg[:, 0], starts)
                w = np.exp(seg[:, 0] - np.repeat(top, counts[rows]))
                den = np.add.reduceat(w, starts)
                out[rows, lo] = top
                out[rows, lo + 1:hi] = np.add.reduceat(w[:, None] * seg[:, 1:], starts, axis=0) / den[:, None]
            else:
                key = seg[:, 0]
                valid = ~np.isnan(key)
                fill = -np.inf if kind == "argmax" else np.inf
                ufunc = np.fmax if kind == "argmax" else np.fmin
                best = np.full(n, np.nan, dtype=dtype)
                best[rows] = ufunc.reduceat(np.where(valid, key, fill), starts)
                tied = valid & (key == best[dst])
                big = np.iinfo(np.int64).max
                win = np.full(n, big, dtype=np.int64)
                win[rows] = np.minimum.reduceat(np.where(tied, src, big), starts)
                has = win != big
                pos = np.where(tied & (src == win[dst]), np.arange(count), big)
                first = np.full(n, big, dtype=np.int64)
                first[rows] = np.minimum.reduceat(pos, starts)
                out[has, lo:hi] = seg[first[has]]
                winners[has, slot] = win[has]
                slot += 1
        return out, winners
