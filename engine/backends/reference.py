"""The reference backend: NumPy, written for clarity; the oracle the others match.

It builds the full (m + n) x k message tensor, so it is meant for small and medium graphs;
a pass that would not fit in memory is refused before allocating. Each aggregation kind is
one function of :data:`REDUCERS`.
"""
from __future__ import annotations

import numpy as np

from .._memory import require
from ..model.registry import aggregation
from .base import Backend, EdgeInputs, check_edges
from .numpy_ops import activate


class Segments:
    """The messages of the rows that have any, as contiguous segments (one per row):
    ``seg`` holds the group's channels, ``src`` each message's source, ``dst`` its row,
    ``rows`` the rows with a message, ``starts`` and ``counts`` their segments."""

    def __init__(self, src, dst, n_out):
        self.src, self.dst = src, dst
        counts = np.bincount(dst, minlength=n_out)
        self.rows = np.flatnonzero(counts)
        self.counts = counts[self.rows]
        self.starts = np.concatenate([[0], np.cumsum(counts)])[self.rows]


def _sum(seg, s: Segments, out, winners, identity):
    out[s.rows] = np.add.reduceat(seg, s.starts, axis=0)


def _mean(seg, s, out, winners, identity):
    out[s.rows] = np.add.reduceat(seg, s.starts, axis=0) / s.counts[:, None].astype(seg.dtype)


def _extremum(ufunc):
    def reduce(seg, s, out, winners, identity):  # NaN-ignoring, like the kernels
        out[s.rows] = ufunc.reduceat(seg, s.starts, axis=0)
    return reduce


def _arg(ufunc):
    def reduce(seg, s, out, winners, identity):
        _arg_reduce(ufunc, seg, s, out, winners, identity)
    return reduce


def _arg_reduce(ufunc, seg, s, out, winners, identity):
    """The message with the best key (ties: lowest source, then the first such message)."""
    key = seg[:, 0]
    valid = ~np.isnan(key)
    best = np.full(out.shape[0], np.nan, dtype=seg.dtype)
    best[s.rows] = ufunc.reduceat(np.where(valid, key, identity), s.starts)
    tied = valid & (key == best[s.dst])
    big = np.iinfo(np.int64).max
    win = np.full(out.shape[0], big, dtype=np.int64)
    win[s.rows] = np.minimum.reduceat(np.where(tied, s.src, big), s.starts)
    has = win != big
    pos = np.where(tied & (s.src == win[s.dst]), np.arange(seg.shape[0]), big)
    first = np.full(out.shape[0], big, dtype=np.int64)
    first[s.rows] = np.minimum.reduceat(pos, s.starts)
    out[has] = seg[first[has]]
    winners[has] = win[has]


def _softmax(seg, s, out, winners, identity):
    """Two passes: the row's largest score, then the softmax-weighted values."""
    top = np.maximum.reduceat(seg[:, 0], s.starts)
    w = np.exp(seg[:, 0] - np.repeat(top, s.counts))
    den = np.add.reduceat(w, s.starts)
    out[s.rows, 0] = top
    out[s.rows, 1:] = np.add.reduceat(w[:, None] * seg[:, 1:], s.starts, axis=0) / den[:, None]


# aggregation name -> reduce(seg, segments, out, winners, identity): writes the rows with
# messages of `out` (the group's channels) and, for an arg kind, of `winners`
REDUCERS = {"sum": _sum, "mean": _mean, "max": _extremum(np.fmax), "min": _extremum(np.fmin),
            "argmax": _arg(np.fmax), "argmin": _arg(np.fmin), "softmax": _softmax}


class ReferenceBackend(Backend):
    name = "reference"

    def edge_pass(self, graph, edges: EdgeInputs, rows=None):
        check_edges(edges)
        S, Q = edges.S, edges.Q
        dtype = S.dtype
        width = max([S.shape[1]] + [layer.weight.shape[1] for layer in edges.tail])
        src, dst, eid, rows_ = graph.message_index(edges.include_self, rows)
        n = rows_.size  # output rows
        count = src.size
        require(3 * count * width * dtype.itemsize, "the reference backend's message tensor",
                "use a smaller graph or the native or numba backend")
        q = Q[np.zeros(count, np.int64)] if Q.shape[0] == 1 else Q[rows_[dst]]
        x = S[src] + q
        if edges.E is not None and edges.E.shape[1]:
            Ex = np.zeros((count, edges.E.shape[1]), dtype=dtype)
            real = eid >= 0
            Ex[real] = edges.E[eid[real]]
            x = x + Ex @ edges.We
        x = activate(x, edges.act0)
        for layer in edges.tail:
            x = activate(x @ layer.weight + layer.bias, layer.act)
        out = np.zeros((n, x.shape[1]), dtype=dtype)
        winners = np.full((n, edges.num_arg), -1, dtype=np.int32)
        if count == 0:
            return out, winners
        segments = Segments(src, dst, n)
        slot = 0
        for code, lo, hi in edges.groups:
            agg = aggregation(int(code))
            column = winners[:, slot] if agg.arg else None
            REDUCERS[agg.name](x[:, lo:hi], segments, out[:, lo:hi], column, agg.identity)
            slot += agg.arg
        return out, winners
