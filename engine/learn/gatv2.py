"""GATv2 as a parametrisation of the architecture family.

A GATv2 layer (Brody et al., as CLRS's ``gatv2`` processor uses it) computes, for every
message ``u -> v`` and head ``h``,

    score_h(u, v) = a_h . leaky_relu(z_u A_src + z_v A_dst + e_uv A_edge + b_att)  (head h's slice)
    value(u)      = z_u V + b_val
    h'_v          = relu(z_v W_skip + b + sum_u softmax_u(score_h) * value_h(u))

The family has exactly this shape once the message MLP carries both signs: its first layer
(by parts, relu) produces ``[P, -P, U, -U]`` with ``P`` the attention pre-activations and
``U`` the values, and its second (linear) layer forms ``score_h = a_h . relu(P) - slope *
a_h . relu(-P)`` (= ``a_h . leaky_relu(P)``) and ``value = relu(U) - relu(-U)`` (= ``U``,
exactly). Each head is one ``softmax`` group ``[score_h, value_h]``; the update's aggregate
weight is the fixed selection of the value channels, so the update is ``skip + sum``.

The spec says so with ``"processor": {"kind": "gatv2", "heads": H, "negative_slope": s}``.
:class:`GATv2Weights` owns the layer weights it determines and builds them from GATv2's own
parameters, so training keeps the structure and an exported Model is GATv2 exactly; the
executor and every backend run it like any other Model.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..backends import torch_ops as ops
from ..errors import ModelError
from ..model.registry import PROCESSOR_KINDS
from ..model.factory import gatv2_columns, gatv2_layer
from ..model.spec import layout
from . import fused


class GATv2Weights(nn.Module):
    """GATv2's parameters for every layer of a spec, and the family weights built from them."""

    def __init__(self, spec: dict, dtype):
        super().__init__()
        proc = spec["processor"]
        self.heads = int(proc.get("heads", 1))
        self.slope = float(proc.get("negative_slope", 0.2))
        d = spec["hidden"]
        self.d = d
        if spec.get("graph_hidden", 0):
            raise ModelError("a GATv2 processor has no graph state")
        fz, fe = layout(spec).fz, layout(spec).fe
        self.layers = len(spec["layers"])
        for i, layer in enumerate(spec["layers"]):
            want = gatv2_layer(d, self.heads, layer.get("include_self", True))
            update = {k: v for k, v in layer.get("update", {}).items() if k != "layer_norm"}  # optional
            if layer.get("message") != want["message"] or layer.get("groups") != want["groups"] \
                    or update != want["update"] or layer.get("gate"):
                raise ModelError(f"layers.{i} does not have the shape of a GATv2 layer with {self.heads} heads")
        score_col, value_col = gatv2_columns(d, self.heads)
        width = self.heads + d
        sel = torch.zeros((d, width), dtype=dtype)
        sel[torch.arange(d), torch.from_numpy(score_col)] = 1
        vals = torch.zeros((2 * d, width), dtype=dtype)
        vals[torch.arange(d), torch.from_numpy(value_col)] = 1
        vals[d + torch.arange(d), torch.from_numpy(value_col)] = -1
        agg = torch.zeros((width, d), dtype=dtype)
        agg[torch.from_numpy(value_col), torch.arange(d)] = 1
        self.register_buffer("score_select", sel)
        self.register_buffer("value_rows", vals)
        self.register_buffer("agg_select", agg)
        self.value_col = value_col
        self.score_col = score_col
        shapes = {"att_src": (fz, d), "att_dst": (fz, d), "att_edge": (fe, d), "att_bias": (d,),
                  "att_heads": (d,), "val_src": (fz, d), "val_bias": (d,)}
        self.p = nn.ParameterDict({f"l{i}_{k}": nn.Parameter(torch.zeros(s, dtype=dtype))
                                   for i in range(self.layers) for k, s in shapes.items()})
        self.owned = {f"layers.{i}.{part}" for i in range(self.layers)
                      for part in ("message.src", "message.dst", "message.edge", "message.bias",
                                   "message.1.weight", "message.1.bias", "update.agg")}

    def weight(self, name: str) -> torch.Tensor:
        """The family weight ``name`` built from the GATv2 parameters."""
        _, i, part = name.split(".", 2)
        p = lambda k: self.p[f"l{i}_{k}"]  # noqa: E731
        d = self.d
        if part in ("message.src", "message.dst", "message.edge"):
            att = p({"message.src": "att_src", "message.dst": "att_dst", "message.edge": "att_edge"}[part])
            val = p("val_src") if part == "message.src" else torch.zeros((att.shape[0], d), dtype=att.dtype,
                                                                          device=att.device)
            return torch.cat([att, -att, val, -val], dim=1)
        if part == "message.bias":
            return torch.cat([p("att_bias"), -p("att_bias"), p("val_bias"), -p("val_bias")])
        if part == "message.1.weight":
            a = p("att_heads")[:, None] * self.score_select
            return torch.cat([a, (-self.slope) * a, self.value_rows], dim=0)
        if part == "message.1.bias":
            return torch.zeros(self.heads + d, dtype=self.score_select.dtype, device=self.score_select.device)
        if part == "update.agg":
            return self.agg_select
        raise KeyError(name)

    def _scores(self, i: int, z: torch.Tensor, E, src, pos, eid) -> torch.Tensor:
        """Layer ``i``'s attention scores per message and head, ``a_h . leaky_relu(P)``."""
        p = lambda k: self.p[f"l{i}_{k}"]  # noqa: E731
        d, heads = self.d, self.heads
        S = z @ p("att_src")
        Q = z @ p("att_dst") + p("att_bias")
        We, a = (p("att_edge") if E is not None else None), p("att_heads")
        if fused.available(S, Q, E, We, a):
            return fused.head_scores(S, Q, E, We, a, a.new_zeros(heads), src, pos, eid, heads, self.slope)
        P = ops.first_layer(S, Q, E, We, src, pos, eid, act0=0)
        return ((torch.relu(P) * a).view(-1, heads, d // heads).sum(-1)
                + (torch.relu(-P) * ((-self.slope) * a)).view(-1, heads, d // heads).sum(-1))

    def messages(self, i: int, z: torch.Tensor, E, src, pos, eid) -> torch.Tensor:
        """Layer ``i``'s messages in the family's layout (per head ``[score_h, value_h]``),
        computed as GATv2 computes them: the attention pre-activation per edge, its two
        signed parts weighted by ``a_h`` and ``-slope a_h``, and each value once per node,
        then gathered. The family's second layer would multiply every edge's ``[P, -P, U,
        -U]`` by a ``4d x (heads + d)`` matrix whose value rows are ``+-1`` selections; the
        numbers are the same (each value is its only nonzero term), the work per edge is
        ``O(d)`` instead of ``O(d^2)``."""
        p = lambda k: self.p[f"l{i}_{k}"]  # noqa: E731
        d, heads = self.d, self.heads
        scores = self._scores(i, z, E, src, pos, eid)
        values = (z @ p("val_src") + p("val_bias")).index_select(0, src)
        return torch.cat([scores[:, :, None], values.view(-1, heads, d // heads)], dim=2).reshape(-1, heads + d)

    def aggregate(self, i: int, z: torch.Tensor, E, src, pos, eid, n_out: int, groups) -> torch.Tensor:
        """Layer ``i``'s aggregate (``n_out`` rows, the family's per-head ``[max score,
        softmax-weighted values]``): the fused native kernel on the CPU (no per-message
        values), else :meth:`messages` reduced by ``groups``."""
        p = lambda k: self.p[f"l{i}_{k}"]  # noqa: E731
        V = z @ p("val_src") + p("val_bias")
        scores = self._scores(i, z, E, src, pos, eid)
        if fused.available(scores, V):
            return fused.attention_aggregate(scores, V, src, pos, n_out, self.heads)
        d, heads = self.d, self.heads
        msg = torch.cat([scores[:, :, None], V.index_select(0, src).view(-1, heads, d // heads)],
                        dim=2).reshape(-1, heads + d)
        return ops.aggregate(msg, src, pos, n_out, groups)[0]

    def load(self, weights: dict, check: bool = True) -> None:
        """Take the GATv2 parameters from family weights; with ``check``, the weights must be
        exactly the ones these parameters build (else :class:`ModelError`)."""
        d = self.d
        rows = np.arange(d)
        with torch.no_grad():
            for i in range(self.layers):
                pre = f"layers.{i}.message"
                t = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=self.agg_select.numpy().dtype))  # noqa: E731
                self.p[f"l{i}_att_src"].copy_(t(weights[f"{pre}.src"][:, :d]))
                self.p[f"l{i}_att_dst"].copy_(t(weights[f"{pre}.dst"][:, :d]))
                self.p[f"l{i}_att_edge"].copy_(t(weights[f"{pre}.edge"][:, :d]))
                self.p[f"l{i}_att_bias"].copy_(t(weights[f"{pre}.bias"][:d]))
                self.p[f"l{i}_att_heads"].copy_(t(weights[f"{pre}.1.weight"][rows, self.score_col]))
                self.p[f"l{i}_val_src"].copy_(t(weights[f"{pre}.src"][:, 2 * d:3 * d]))
                self.p[f"l{i}_val_bias"].copy_(t(weights[f"{pre}.bias"][2 * d:3 * d]))
            if check:
                for name in sorted(self.owned):
                    if not np.array_equal(self.weight(name).cpu().numpy(), weights[name]):
                        raise ModelError(f"weight {name!r} does not have the GATv2 structure the spec declares")


def parametrisation(spec: dict, dtype):
    """The parametrisation a spec's ``processor`` asks for (None: every weight is free)."""
    proc = spec.get("processor")
    if proc is None or proc.get("kind", "mpnn") == "mpnn":
        return None
    if proc["kind"] == "gatv2":
        return GATv2Weights(spec, dtype)
    raise ModelError(f"unknown processor kind {proc['kind']!r}; allowed: {list(PROCESSOR_KINDS)}")
