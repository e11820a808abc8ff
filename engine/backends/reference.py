"""The reference backend: NumPy, written for clarity; the oracle the others match.

It builds the full (m + n) x k message tensor, so it is meant for small and medium graphs;
a pass that would not fit in memory is refused before allocating.
"""
from __future__ import annotations

import numpy as np

from .._memory import require
from ..model.registry import REDUCE_KINDS
from .base import Backend, count_arg_groups


def _rows_with_self(graph, include_self: bool):
    """Source, destination and edge id of every message, sorted by destination with the
    self message first in each row (edge id -1 for the self message)."""
    n, m = graph.num_nodes, graph.num_edges
    src = graph.indices.astype(np.int64)
    dst = graph.edge_targets().astype(np.int64)
    eid = np.arange(m, dtype=np.int64)
    if include_self:
        me = np.arange(n, dtype=np.int64)
        src, dst, eid = np.concatenate([me, src]), np.concatenate([me, dst]), np.concatenate([-np.ones(n, np.int64), eid])
        order = np.argsort(dst, kind="stable")
        src, dst, eid = src[order], dst[order], eid[order]
    return src, dst, eid


def activate(x: np.ndarray, act: int) -> np.ndarray:
    return np.maximum(x, 0, out=x) if act == 1 else x


class ReferenceBackend(Backend):
    name = "reference"

    def edge_pass(self, graph, S, Q, E, We, first_act, layers, groups, include_self):
        n = graph.num_nodes
        dtype = S.dtype
        width = max([S.shape[1]] + [W.shape[1] for W, _, _ in layers])
        count = graph.num_edges + (n if include_self else 0)
        require(3 * count * width * dtype.itemsize, "the reference backend's message tensor")
        src, dst, eid = _rows_with_self(graph, include_self)
        x = S[src] + Q[dst]
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
