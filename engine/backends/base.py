"""The signature every backend implements.

Two entry points, both over a CSR-by-destination graph:

``edge_pass(graph, S, Q, E, We, first_act, layers, groups, include_self, rows=None)``
    The fused sparse pass (messages + aggregation). ``S`` (n, k0) and ``Q`` (n, k0) or
    (1, k0) are the per-node parts of the first message layer (``Q`` holds the bias); per
    edge ``u -> v``: ``pre = (S[u] + Q[v]) + E[e] @ We``; the virtual self-edge has zero edge
    features. ``first_act`` is an activation code; ``layers`` a list of ``(W, b, act_code)``
    dense layers ``y = act(x @ W + b)`` applied per message; ``groups`` an int64 (G, 3) array
    of ``(reduce_code, start, stop)`` tiling the channels. Messages of a row are reduced in a
    fixed order: self first (if included), then in-edges in CSR order. ``argmax``/``argmin``
    keep the winner's group channels, ties to the lowest source index; NaN keys never win;
    max/min ignore NaN like ``numpy.fmax``; a row with no message gets 0 (winner -1).
    ``rows`` restricts the pass to those destinations (outputs follow ``rows``).
    Returns ``(out, winners)``.

``layer(graph, edges, z, d, update, gate, out, watch=None, changed=None, rows=None, compare_out=False)``
    A whole processor layer. ``z`` (n, f_z) holds ``[h, x]`` (``h`` its first ``d``
    columns). ``edge_pass(**edges)``, then per node ``new = node_mlp(update, z_v, agg_v)``
    and, if ``gate`` is given, ``g = sigmoid(node_mlp(gate, z_v, agg_v))``,
    ``h'_v = g * new + (1 - g) * h_v``, written to ``out[v, :d]`` (``out`` shaped like
    ``z``, never ``z`` itself). A node MLP is ``(Wz, Wa, b0, act0, tail)``:
    ``act0(((z @ Wz) + (agg @ Wa)) + b0)`` then the ``tail`` dense layers. ``watch`` (uint8,
    d) marks the channels whose change is counted; ``changed`` (uint8, n) receives, per
    computed row, whether any state channel changed, measured against the row's input state
    or, with ``compare_out``, against what ``out`` held before (the layer's previous output).
    Returns the number of computed rows that changed a watched channel. The default
    runs the edge pass and then NumPy; the native backend fuses everything per row.
"""
from __future__ import annotations

import numpy as np

from ..model.registry import ARG_REDUCE_KINDS, LAYER_NORM_EPS, REDUCE_KINDS

ARG_CODES = tuple(REDUCE_KINDS.index(k) for k in ARG_REDUCE_KINDS)


def activate(x: np.ndarray, act: int) -> np.ndarray:
    """Activation by code (0 identity, 1 relu; relu keeps NaN)."""
    return np.maximum(x, 0, out=x) if act == 1 else x


def sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-x))


def layer_norm(y: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """Per row: ``((y - mean) / sqrt(var + eps)) * gamma + beta`` (population variance)."""
    mu = y.mean(axis=1, keepdims=True)
    var = ((y - mu) ** 2).mean(axis=1, keepdims=True)
    return ((y - mu) / np.sqrt(var + y.dtype.type(LAYER_NORM_EPS))) * gamma + beta


def node_mlp(mlp, z: np.ndarray, agg: np.ndarray) -> np.ndarray:
    """Evaluate ``(Wz, Wa, b0, act0, tail[, norm])`` on per-node inputs (NumPy, BLAS);
    ``norm`` is None or ``(gamma, beta)`` of a layer norm of the result."""
    Wz, Wa, b0, act0, tail, *norm = mlp
    # overflow to +-inf is allowed: compiled gates saturate a sigmoid with it
    with np.errstate(over="ignore"):
        y = activate((z @ Wz + agg @ Wa) + b0, act0)
        for W, b, act in tail:
            y = activate(y @ W + b, act)
    if norm and norm[0] is not None:
        y = layer_norm(y, *norm[0])
    return y


class Backend:
    """Base class: a name, a thread setting, :meth:`edge_pass` and :meth:`layer`."""

    name = "base"
    has_step_loop = False  # True: run_steps() runs many steps of a one-layer model natively

    def edge_pass(self, graph, S, Q, E, We, first_act, layers, groups, include_self, rows=None):  # pragma: no cover
        raise NotImplementedError

    def layer(self, graph, edges: dict, z, d, update, gate, out, watch=None, changed=None, rows=None,
              compare_out=False):
        agg, _ = self.edge_pass(graph, rows=rows, **edges)
        zr = z if rows is None else z[rows]
        new = node_mlp(update, zr, agg)
        if gate is not None:
            g = sigmoid(node_mlp(gate, zr, agg))
            new = g * new + (1 - g) * zr[:, :d]
        new = new.astype(z.dtype, copy=False)
        target = slice(None) if rows is None else rows
        differs = ~(new == (out[target, :d] if compare_out else zr[:, :d]))
        out[target, :d] = new
        if changed is not None:
            changed[target] = differs.any(axis=1)
        if watch is None:
            return 0
        return int(differs[:, watch.astype(bool)].any(axis=1).sum())

    def set_threads(self, n: int | None) -> None:
        """Set the worker thread count (None leaves the default)."""

    def threads(self) -> int:
        return 1

    def __repr__(self) -> str:
        return f"<backend {self.name} threads={self.threads()}>"


def count_arg_groups(groups: np.ndarray) -> int:
    return int(np.isin(groups[:, 0], ARG_CODES).sum())
