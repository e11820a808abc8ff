"""Torch implementations of the architecture's pieces, shared by the torch backend
(inference) and the torch module (training): the same arithmetic as the other backends
(:mod:`engine.backends.numpy_ops` is the NumPy counterpart).

Messages are laid out as rows grouped by destination (``pos``, the destination's row) with
``src`` their sources and ``eid`` their edge ids (-1 for the self message). Each aggregation
kind is one function of :data:`REDUCERS`.
"""
from __future__ import annotations

import torch

from ..model.registry import LAYER_NORM_EPS, aggregation

BIG = torch.iinfo(torch.int64).max


def first_layer(S, Q, E, We, src, dst, eid, act0: int):
    """``act((S[src] + Q[dst]) + E[eid] @ We)`` with zero edge features for self messages.

    Rows are gathered by ``index_select`` (whose gradient is an ``index_add``; plain
    indexing's is an accumulating ``index_put``, several times slower on the CPU); the self
    messages read an appended zero row of ``E``."""
    x = S.index_select(0, src) + (Q if Q.shape[0] == 1 else Q.index_select(0, dst))
    if E is not None and E.shape[1]:
        m = E.shape[0]
        rows = torch.where(eid >= 0, eid, torch.full_like(eid, m))
        Ex = torch.cat([E, E.new_zeros((1, E.shape[1]))]).index_select(0, rows)
        x = x + Ex @ We
    return torch.relu(x) if act0 == 1 else x


def dense_tail(x, layers):
    """``x = act(x @ W + b)`` for each :class:`~engine.model.plan.Dense`."""
    for layer in layers:
        x = x @ layer.weight + layer.bias
        if layer.act == 1:
            x = torch.relu(x)
    return x


def _scatter(values, pos, n_out: int, reduce: str, fill: float = 0.0):
    shape = (n_out,) + tuple(values.shape[1:])
    index = pos if values.dim() == 1 else pos[:, None].expand(-1, values.shape[1])
    return torch.full(shape, fill, dtype=values.dtype, device=values.device).scatter_reduce(
        0, index, values, reduce=reduce, include_self=fill != 0.0)


def _sum(seg, src, pos, n_out, counts, identity):
    return torch.zeros((n_out, seg.shape[1]), dtype=seg.dtype, device=seg.device).index_add(0, pos, seg), None


def _mean(seg, src, pos, n_out, counts, identity):
    red, _ = _sum(seg, src, pos, n_out, counts, identity)
    return red / counts.clamp(min=1)[:, None].to(seg.dtype), None


def _extremum(reduce: str):
    def fn(seg, src, pos, n_out, counts, identity):  # differentiable; empty rows give 0
        return _scatter(seg, pos, n_out, reduce), None
    return fn


def _arg(reduce: str):
    def fn(seg, src, pos, n_out, counts, identity):
        """The winner's channels (the gradient flows to the selected payload) and winner."""
        key = seg[:, 0].detach()
        valid = ~torch.isnan(key)
        best = _scatter(torch.where(valid, key, torch.full_like(key, identity)), pos, n_out, reduce, identity)
        tied = valid & (key == best[pos])
        win = _scatter(torch.where(tied, src, torch.full_like(src, BIG)), pos, n_out, "amin", BIG)
        at = torch.arange(seg.shape[0], device=seg.device)
        first = _scatter(torch.where(tied & (src == win[pos]), at, torch.full_like(at, BIG)), pos, n_out, "amin", BIG)
        ok = win != BIG
        picked = seg[first.clamp(max=max(seg.shape[0] - 1, 0))] if seg.shape[0] else seg.new_zeros((n_out, seg.shape[1]))
        return torch.where(ok[:, None], picked, torch.zeros_like(picked)), torch.where(ok, win, torch.full_like(win, -1))
    return fn


def _softmax(seg, src, pos, n_out, counts, identity):
    """Attention: the row's largest score, then the softmax-weighted values."""
    score = seg[:, 0]
    top = _scatter(score.detach(), pos, n_out, "amax", identity)
    w = torch.exp(score - top[pos])
    den = torch.zeros(n_out, dtype=seg.dtype, device=seg.device).index_add(0, pos, w)
    vals = torch.zeros((n_out, seg.shape[1] - 1), dtype=seg.dtype, device=seg.device).index_add(
        0, pos, w[:, None] * seg[:, 1:])
    empty = counts == 0
    top = torch.where(empty, torch.zeros_like(top), top)
    vals = vals / torch.where(empty, torch.ones_like(den), den)[:, None]
    return torch.cat([top[:, None], vals], dim=1), None


# aggregation name -> reduce(seg, src, pos, n_out, counts, identity) -> (aggregate, winners or None)
REDUCERS = {"sum": _sum, "mean": _mean, "max": _extremum("amax"), "min": _extremum("amin"),
            "argmax": _arg("amax"), "argmin": _arg("amin"), "softmax": _softmax}


def aggregate(x, src, pos, n_out: int, groups):
    """Reduce messages ``x`` (rows) into ``n_out`` rows per group of the ``(G, 3)`` table
    ``groups``; returns ``(out, winners)``. Empty rows give 0 and winner -1."""
    counts = torch.bincount(pos, minlength=n_out)
    cols, winners = [], []
    for code, lo, hi in groups:
        agg = aggregation(int(code))
        red, win = REDUCERS[agg.name](x[:, int(lo):int(hi)], src, pos, n_out, counts, agg.identity)
        cols.append(red)
        if agg.arg:
            winners.append(win)
    out = torch.cat(cols, dim=1) if cols else x.new_zeros((n_out, 0))
    wins = torch.stack(winners, dim=1) if winners else torch.zeros((n_out, 0), dtype=torch.int64, device=x.device)
    return out, wins


def node_mlp(mlp, z, agg):
    """A :class:`~engine.model.plan.NodeMLP`: ``act0(((z @ Wz) + (agg @ Wa)) + b0)``, the tail
    layers, then the optional layer norm (population variance, eps 1e-5, as the other
    backends)."""
    y = z @ mlp.Wz if mlp.Wa is None else (z @ mlp.Wz + agg @ mlp.Wa)
    y = y + mlp.b0
    if mlp.act0 == 1:
        y = torch.relu(y)
    y = dense_tail(y, mlp.tail)
    if mlp.ln_gamma is not None:
        mu = y.mean(dim=1, keepdim=True)
        var = ((y - mu) ** 2).mean(dim=1, keepdim=True)
        y = ((y - mu) / torch.sqrt(var + LAYER_NORM_EPS)) * mlp.ln_gamma + mlp.ln_beta
    return y
