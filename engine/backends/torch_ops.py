"""Torch implementations of the architecture's sparse pieces, shared by the torch backend
(inference) and the torch module (training): the same arithmetic as the other backends.

Messages are laid out as rows grouped by destination (``pos``, the destination's row) with
``src`` their sources and ``eid`` their edge ids (-1 for the self message).
"""
from __future__ import annotations

import torch

from ..model.registry import LAYER_NORM_EPS, REDUCE_KINDS

BIG = torch.iinfo(torch.int64).max


def first_layer(S, Q, E, We, src, dst, eid, first_act: int):
    """``act((S[src] + Q[dst]) + E[eid] @ We)`` with zero edge features for self messages."""
    x = S[src] + (Q if Q.shape[0] == 1 else Q[dst])
    if E is not None and E.shape[1]:
        real = eid >= 0
        Ex = torch.zeros((src.shape[0], E.shape[1]), dtype=S.dtype, device=S.device)
        Ex[real] = E[eid[real]]
        x = x + Ex @ We
    return torch.relu(x) if first_act == 1 else x


def dense_tail(x, layers):
    """``x = act(x @ W + b)`` for each ``(W, b, act)``."""
    for W, b, act in layers:
        x = x @ W + b
        if act == 1:
            x = torch.relu(x)
    return x


def aggregate(x, src, pos, n_out: int, groups):
    """Reduce messages ``x`` (rows) into ``n_out`` rows per group; returns ``(out, winners)``.

    sum/mean/max/min are differentiable; argmax/argmin select the winner's channels (the
    gradient flows to the selected payload). Empty rows give 0 and winner -1.
    """
    dev, dtype = x.device, x.dtype
    count = x.shape[0]
    counts = torch.bincount(pos, minlength=n_out)
    cols, winners = [], []
    for code, lo, hi in groups:
        kind = REDUCE_KINDS[int(code)]
        seg = x[:, lo:hi]
        if kind in ("sum", "mean"):
            red = torch.zeros((n_out, hi - lo), dtype=dtype, device=dev).index_add(0, pos, seg)
            if kind == "mean":
                red = red / counts.clamp(min=1)[:, None].to(dtype)
            cols.append(red)
        elif kind in ("max", "min"):
            red = torch.zeros((n_out, hi - lo), dtype=dtype, device=dev).scatter_reduce(
                0, pos[:, None].expand(-1, hi - lo), seg, reduce="amax" if kind == "max" else "amin",
                include_self=False)
            cols.append(red)
        elif kind == "softmax":  # attention: the row's largest score, softmax-weighted values
            score = seg[:, 0]
            top = torch.full((n_out,), float("-inf"), dtype=dtype, device=dev).scatter_reduce(
                0, pos, score.detach(), reduce="amax")
            w = torch.exp(score - top[pos])
            den = torch.zeros(n_out, dtype=dtype, device=dev).index_add(0, pos, w)
            vals = torch.zeros((n_out, hi - lo - 1), dtype=dtype, device=dev).index_add(0, pos, w[:, None] * seg[:, 1:])
            empty = counts == 0
            top = torch.where(empty, torch.zeros_like(top), top)
            vals = vals / torch.where(empty, torch.ones_like(den), den)[:, None]
            cols.append(torch.cat([top[:, None], vals], dim=1))
        else:
            key = seg[:, 0].detach()
            valid = ~torch.isnan(key)
            fill = float("-inf") if kind == "argmax" else float("inf")
            best = torch.full((n_out,), fill, dtype=dtype, device=dev).scatter_reduce(
                0, pos, torch.where(valid, key, torch.full_like(key, fill)),
                reduce="amax" if kind == "argmax" else "amin", include_self=True)
            tied = valid & (key == best[pos])
            win = torch.full((n_out,), BIG, dtype=torch.int64, device=dev).scatter_reduce(
                0, pos, torch.where(tied, src, torch.full_like(src, BIG)), reduce="amin")
            at = torch.arange(count, device=dev)
            first = torch.full((n_out,), BIG, dtype=torch.int64, device=dev).scatter_reduce(
                0, pos, torch.where(tied & (src == win[pos]), at, torch.full_like(at, BIG)), reduce="amin")
            ok = win != BIG
            picked = seg[first.clamp(max=max(count - 1, 0))] if count else seg.new_zeros((n_out, hi - lo))
            cols.append(torch.where(ok[:, None], picked, torch.zeros_like(picked)))
            winners.append(torch.where(ok, win, torch.full_like(win, -1)))
    out = torch.cat(cols, dim=1) if cols else x.new_zeros((n_out, 0))
    wins = torch.stack(winners, dim=1) if winners else torch.zeros((n_out, 0), dtype=torch.int64, device=dev)
    return out, wins


def node_mlp(mlp, z, agg):
    """``act0(((z @ Wz) + (agg @ Wa)) + b0)``, the tail layers, then the optional layer norm
    ``(gamma, beta)`` (population variance, eps 1e-5, as the other backends)."""
    Wz, Wa, b0, act0, tail, *norm = mlp
    y = (z @ Wz + agg @ Wa) + b0
    if act0 == 1:
        y = torch.relu(y)
    y = dense_tail(y, tail)
    if norm and norm[0] is not None:
        gamma, beta = norm[0]
        mu = y.mean(dim=1, keepdim=True)
        var = ((y - mu) ** 2).mean(dim=1, keepdim=True)
        y = ((y - mu) / torch.sqrt(var + LAYER_NORM_EPS)) * gamma + beta
    return y
