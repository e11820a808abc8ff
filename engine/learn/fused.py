"""Native fused kernels as torch autograd functions, for training on the CPU.

A pointer decoder's edge score ``w . relu((S[src] + Q[pos]) + E[eid] @ We) + b`` is, in
torch ops, a (messages x d) intermediate that forward and backward pass over about a dozen
times; with every pair of nodes a candidate and every fed-back pointer hint decoded at every
step, it dominates a training step of the fully connected protocol. The native kernel
(``csrc/engine/edge_score.h``) computes the scores and their gradients message by message
without it; GATv2's softmax aggregation likewise (``csrc/engine/attention.h``). The MPNN
processor's max aggregation of linear messages keeps torch's forward and takes its backward
from ``csrc/engine/extremum_grad.h``, which visits only the messages that attain a row's
maximum instead of multiplying the whole (messages x d) gradient. The numbers are the torch
ops' up to rounding (fixed summation orders of their own).

They run only where gradients are recorded, on CPU float32/float64 tensors, with the
extension built (:func:`available`); otherwise the callers use the torch ops, so inference
in the module stays a pure-torch reference (the executor's parity checks, batch evaluation
against the native executor).
"""
from __future__ import annotations

import numpy as np
import torch

from ..backends import torch_ops as ops
from ..model.registry import aggregation

try:
    from .. import _native
except ImportError:  # pragma: no cover - depends on the build
    _native = None

_DTYPES = (torch.float32, torch.float64)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().contiguous().numpy()


class _EdgeScore(torch.autograd.Function):
    @staticmethod
    def forward(ctx, S, Q, E, We, w, bias, src, pos, eid, heads, slope):
        ctx.save_for_backward(S, Q, E, We, w, bias, src, pos, eid)  # torch checks they are not changed in place
        ctx.heads, ctx.slope, ctx.threads = heads, slope, torch.get_num_threads()
        out = _native.edge_score_forward(*(_np(t) for t in (S, Q, E, We, w, bias, src, pos, eid)), heads, slope,
                                         threads=ctx.threads)
        return torch.from_numpy(out)

    @staticmethod
    def backward(ctx, g):
        saved = ctx.saved_tensors
        dS, dQ, dWe, dEx, dw, dbias = _native.edge_score_backward(*(_np(t) for t in saved), ctx.heads, ctx.slope,
                                                                  g=_np(g), threads=ctx.threads)
        dE = None
        if ctx.needs_input_grad[2]:  # dEx is 0 on the rows of messages without edge inputs (eid -1)
            E, eid = saved[2], saved[8]
            dE = E.new_zeros(E.shape)
            if E.shape[0]:
                dE.index_add_(0, eid.clamp(min=0), torch.from_numpy(dEx))
        return (torch.from_numpy(dS), torch.from_numpy(dQ), dE, torch.from_numpy(dWe), torch.from_numpy(dw),
                torch.from_numpy(dbias), None, None, None, None, None)


def available(*tensors) -> bool:
    """Whether the native kernels take these tensors: when gradients are recorded (training;
    inference stays in torch ops, so the module remains a pure-torch reference for parity
    and benchmarks), the extension is built and each is a CPU float32/float64 tensor (or
    None)."""
    return _native is not None and torch.is_grad_enabled() and all(
        t is None or (t.device.type == "cpu" and t.dtype in _DTYPES) for t in tensors)


def head_scores(S, Q, E, We, w, bias, src, pos, eid, heads: int = 1, slope: float = 0.0) -> torch.Tensor:
    """The fused kernel (the caller checked :func:`available`): ``(messages, heads)`` scores
    ``sum over head h's channels of w * act((S[src] + Q[pos]) + E[eid] @ We) + bias[h]``,
    ``act`` the leaky ReLU of ``slope`` (0: ReLU, 1: identity); ``eid`` -1 reads zero edge
    inputs; ``E`` None: no edge inputs."""
    if E is None or not E.shape[1]:
        E = S.new_zeros((0, 0))
        We = S.new_zeros((0, S.shape[1]))
    return _EdgeScore.apply(S, Q, E, We, w, bias, src, pos, eid, int(heads), float(slope))


def edge_scores(mlp, S, Q, E, src, pos, eid) -> torch.Tensor:
    """The output of edge MLP ``mlp`` (an :class:`~engine.model.plan.EdgeMLP`) from its
    per-node parts ``S = z @ src`` and ``Q = z @ dst + bias``: the fused kernel for a
    one-column linear score over a ReLU or linear first layer (a pointer decoder's score)
    where :func:`available`, else :func:`~engine.backends.torch_ops.first_layer` and the
    tail."""
    We = mlp.edge if E is not None else None
    last = mlp.tail[0] if len(mlp.tail) == 1 else None
    if last is None or last.act != 0 or last.weight.shape[1] != 1 or mlp.act0 not in (0, 1) \
            or not available(S, Q, E, We, last.weight):
        return ops.dense_tail(ops.first_layer(S, Q, E, We, src, pos, eid, mlp.act0), mlp.tail)
    return head_scores(S, Q, E, We, last.weight[:, 0], last.bias, src, pos, eid, 1, 0.0 if mlp.act0 == 1 else 1.0)


class _AttentionAggregate(torch.autograd.Function):
    @staticmethod
    def forward(ctx, scores, V, src, pos, n_out, heads):
        ctx.n_out, ctx.heads, ctx.threads = n_out, heads, torch.get_num_threads()
        out = torch.from_numpy(_native.attention_forward(_np(scores), _np(V), _np(src), _np(pos), n_out, heads,
                                                         threads=ctx.threads))
        ctx.save_for_backward(scores, V, src, pos, out)
        return out

    @staticmethod
    def backward(ctx, g):
        scores, V, src, pos, out = ctx.saved_tensors
        dscores, dV = _native.attention_backward(_np(scores), _np(V), _np(src), _np(pos), ctx.n_out, ctx.heads,
                                                 _np(out), _np(g), threads=ctx.threads)
        return torch.from_numpy(dscores), torch.from_numpy(dV), None, None, None, None


def attention_aggregate(scores, V, src, pos, n_out: int, heads: int) -> torch.Tensor:
    """The fused kernel (the caller checked :func:`available`): per destination row (``pos``,
    non-decreasing) and head, ``[max score, softmax-weighted sum of V[src]]`` (the
    ``softmax`` aggregation of messages ``[score_h, V[src]_h]`` per head), ``(n_out, heads +
    d)``; the maximum carries no gradient (it only shifts the softmax)."""
    return _AttentionAggregate.apply(scores, V, src, pos, int(n_out), int(heads))


class _ExtremumOfLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, H, W, b, src, pos, n_out, groups):
        M = H @ W + b  # as ops.dense_tail computes it: the same forward values
        agg, _ = ops.aggregate(M, src, pos, n_out, groups)
        ctx.threads = torch.get_num_threads()
        ctx.save_for_backward(H, W, M, agg, pos)
        return agg

    @staticmethod
    def backward(ctx, g):
        H, W, M, agg, pos = ctx.saved_tensors
        dH, dW, db = _native.extremum_linear_backward(_np(H), _np(W), _np(M), _np(agg), _np(pos), _np(g),
                                                      threads=ctx.threads)
        return torch.from_numpy(dH), torch.from_numpy(dW), torch.from_numpy(db), None, None, None, None


_EXTREMA = {"max", "min"}


def message_aggregate(mlp, S, Q, E, src, pos, eid, n_out: int, groups) -> torch.Tensor:
    """Messages of edge MLP ``mlp`` from its per-node parts, aggregated into ``n_out`` rows
    per group of ``groups`` (:func:`~engine.backends.torch_ops.aggregate`, winners dropped).

    Where the last layer is linear, every group a max or min and :func:`available`, the
    aggregation and that layer run as one autograd function whose backward visits only the
    messages that attain each row's extremum (``extremum_linear_backward``): torch's forward,
    the gradients up to rounding. Ties split a row's gradient evenly among the tied messages
    (torch's ``scatter_reduce`` also counts its zero fill when the extremum is exactly 0, and
    gives the messages less there)."""
    We = mlp.edge if E is not None else None
    H = ops.first_layer(S, Q, E, We, src, pos, eid, mlp.act0)
    last = mlp.tail[-1] if mlp.tail else None
    if last is None or last.act != 0 or not available(H, last.weight, last.bias) \
            or not all(aggregation(int(code)).name in _EXTREMA for code, _, _ in groups):
        agg, _ = ops.aggregate(ops.dense_tail(H, mlp.tail), src, pos, n_out, groups)
        return agg
    H = ops.dense_tail(H, mlp.tail[:-1])
    return _ExtremumOfLinear.apply(H, last.weight, last.bias, src, pos, int(n_out), groups)
