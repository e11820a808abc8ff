"""The architecture's dense arithmetic in NumPy, shared by the reference backend, the default
:meth:`Backend.layer` and the executor's Python loops (:mod:`engine.backends.torch_ops` is
the torch counterpart).

Two ways to multiply: :func:`node_mlp` uses BLAS (learned models), :func:`small_matmul` sums
input by input, ascending, skipping all-zero weight rows: the order of the native kernels'
small products, so that compiled models get the same bits on every backend.
"""
from __future__ import annotations

import numpy as np

from ..model.registry import LAYER_NORM_EPS, READOUT_ARG_KINDS, READOUT_CHANNELS

SMALL_WEIGHTS = 4096  # weight matrices up to this size multiply without BLAS (small_matmul)


def activate(x: np.ndarray, act: int) -> np.ndarray:
    """Activation by code (0 identity, 1 relu; relu keeps NaN), in place."""
    return np.maximum(x, 0, out=x) if act == 1 else x


def sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-x))


def layer_norm(y: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """Per row: ``((y - mean) / sqrt(var + eps)) * gamma + beta`` (population variance)."""
    mu = y.mean(axis=1, keepdims=True)
    var = ((y - mu) ** 2).mean(axis=1, keepdims=True)
    return ((y - mu) / np.sqrt(var + y.dtype.type(LAYER_NORM_EPS))) * gamma + beta


def node_mlp(mlp, z: np.ndarray, agg: np.ndarray | None, mm=np.matmul) -> np.ndarray:
    """A :class:`~engine.model.plan.NodeMLP` on per-row inputs, its products by ``mm``
    (BLAS by default; a backend's own row loop where it has one)."""
    # overflow to +-inf is allowed: compiled gates saturate a sigmoid with it
    with np.errstate(over="ignore"):
        pre = mm(z, mlp.Wz) if mlp.Wa is None else mm(z, mlp.Wz) + mm(agg, mlp.Wa)
        y = activate(pre + mlp.b0, mlp.act0)
        for layer in mlp.tail:
            y = activate(mm(y, layer.weight) + layer.bias, layer.act)
    if mlp.ln_gamma is not None:
        y = layer_norm(y, mlp.ln_gamma, mlp.ln_beta)
    return y


def small_matmul(A: np.ndarray, W: np.ndarray, out=None) -> np.ndarray:
    """``A @ W``. Small weight matrices (compiled models) are summed input by input, ascending,
    from zero, with all-zero rows of ``W`` skipped: the sums of the native loop's per-node parts
    and of the native backend's ``project``, so every backend gets the same bits. (It also keeps
    BLAS out: its worker threads keep spinning after a call and steal the kernels' cores.)"""
    if W.size > SMALL_WEIGHTS:
        return np.matmul(A, W, out=out)
    y = np.zeros((A.shape[0], W.shape[1]), dtype=np.result_type(A, W))
    for j in np.flatnonzero(np.any(W != 0, axis=1)):
        y += A[:, j:j + 1] * W[j]
    if out is None:
        return y
    out[...] = y
    return out


def small_mlp(mlp, z: np.ndarray, agg=None, mm=small_matmul) -> np.ndarray:
    """A readout or graph :class:`~engine.model.plan.NodeMLP` on the rows of ``z`` and ``agg``,
    its products summed by ``mm`` (:func:`small_matmul`'s order, the native loop's):
    ``act0((z @ Wz + agg @ Wa) + b0)``, then each tail layer. Without ``agg`` (a readout) its
    term is left out: the sums start from +0 and never are -0, so adding the zero term would
    not change a bit."""
    with np.errstate(over="ignore", invalid="ignore"):
        pre = mm(z, mlp.Wz) if agg is None else mm(z, mlp.Wz) + mm(agg, mlp.Wa)
        y = activate(pre + mlp.b0, mlp.act0)
        for layer in mlp.tail:
            y = activate(mm(y, layer.weight) + layer.bias, layer.act)
    return y


def reduce_readout_channels(r: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Reduce readout values ``r`` (n x c) over the nodes, channel by channel.

    ``codes[j]`` indexes :data:`~engine.model.registry.READOUT_CHANNELS`: ``min``/``max``
    reduce channel ``j`` alone, NaN-ignoring (``numpy.fmin``/``fmax``); ``argmin``/``argmax``
    make ``j`` the key of a group that runs over the following ``payload`` channels, all taken
    from the node with the smallest/largest key (lowest index on ties; NaN keys never win;
    node 0 if every key is NaN).
    """
    out = np.empty(r.shape[1], dtype=r.dtype)
    payload = READOUT_CHANNELS.index("payload")
    c = 0
    while c < len(codes):
        kind = READOUT_CHANNELS[codes[c]]
        if kind not in READOUT_ARG_KINDS:
            out[c] = (np.fmax if kind == "max" else np.fmin).reduce(r[:, c])
            c += 1
            continue
        stop = c + 1
        while stop < len(codes) and codes[stop] == payload:
            stop += 1
        key = r[:, c]
        valid = ~np.isnan(key)
        best = 0
        if valid.any():
            target = key[valid].max() if kind == "argmax" else key[valid].min()
            best = int(np.flatnonzero(valid & (key == target))[0])
        out[c:stop] = r[best, c:stop]
        c = stop
    return out
