"""The architecture family as a differentiable torch module.

``GNNModule(spec)`` holds one parameter per weight of the spec (same names, same shapes), so
a :class:`~engine.Model` loads into it (:meth:`GNNModule.from_model`) and a trained module
exports to a Model that every backend runs (:meth:`GNNModule.to_model`). The forward pass is
the executor's arithmetic in torch (:mod:`engine.backends.torch_ops`): a compiled model gives
the same states here as on the other backends, so it can be scored by a training loss or
fine-tuned, and learned and compiled weights can be compared parameter by parameter.
"""
from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from ..backends import torch_ops as ops
from ..backends.reference import _messages
from ..model import registry as R
from ..model.spec import Model, expected_shapes, feedback_layout, input_widths

TORCH_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def _key(name: str) -> str:
    return name.replace(".", "__")  # parameter names may not contain dots


class GraphBatch:
    """One graph (or a disjoint union of graphs) prepared for the module.

    Holds the node inputs ``x`` (built from the spec's ``node_inputs`` per graph), the edge
    inputs ``E`` (with zero columns for fed-back pointers), which graph each node belongs to,
    and the message index tensors with and without self-messages.
    """

    def __init__(self, graphs, sources, spec: dict, device="cpu"):
        from ..graph import Graph

        if isinstance(graphs, Graph):
            graphs, sources = [graphs], [sources]
        dtype = np.dtype(spec["dtype"])
        xs, src, dst, w, offset = [], [], [], [], 0
        self.offsets, sizes = [], []
        for g, s in zip(graphs, sources):
            cols = [R.NODE_FEATURES[f][0](g.num_nodes, s, dtype) for f in spec.get("node_inputs", [])]
            xs.append(np.hstack(cols) if cols else np.zeros((g.num_nodes, 0), dtype))
            src.append(g.indices.astype(np.int64) + offset)
            dst.append(g.edge_targets().astype(np.int64) + offset)
            w.append(g.edge_weights(dtype))
            self.offsets.append(offset)
            sizes.append(g.num_nodes)
            offset += g.num_nodes
        from ..graph import Graph as G

        self.graph = G.from_edges(np.concatenate(src), np.concatenate(dst), offset, np.concatenate(w),
                                  dtype=dtype.name)
        self.num_nodes = offset
        self.device = torch.device(device)
        t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(self.device)  # noqa: E731
        self.x = t(np.vstack(xs))
        ew = [self.graph.edge_weights(dtype)[:, None] for f in spec.get("edge_inputs", []) if f == "weight"]
        ew += [np.zeros((self.graph.num_edges, 1), dtype) for _, kind, _ in feedback_layout(spec) if kind == "pointer"]
        self.E = t(np.hstack(ew)) if ew else None
        self.fe_static = len(spec.get("edge_inputs", []))
        self.graph_index = t(np.repeat(np.arange(len(sizes)), sizes))
        self.num_graphs = len(sizes)
        self.edge_src = t(self.graph.indices.astype(np.int64))
        self.edge_dst = t(self.graph.edge_targets().astype(np.int64))
        self.index = {}
        for include_self in (False, True):
            s_, p_, e_, _ = _messages(self.graph, include_self, None)
            self.index[include_self] = (t(s_), t(p_), t(e_))


    def repeat(self, times: int) -> "GraphBatch":
        """``times`` disjoint copies of this batch (copy ``t`` holds nodes ``t * N ..``): the
        decoders of every step of a rollout then run as one call on stacked inputs."""
        rep = copy.copy(self)
        N, m = self.num_nodes, self.edge_src.shape[0]
        dev = self.device
        node_shift = (torch.arange(times, device=dev) * N)[:, None]
        edge_shift = (torch.arange(times, device=dev) * m)[:, None]
        rep.num_nodes = N * times
        rep.num_graphs = self.num_graphs * times
        rep.x = self.x.repeat(times, 1)
        rep.E = None if self.E is None else self.E.repeat(times, 1)
        rep.graph_index = (self.graph_index[None] + (torch.arange(times, device=dev) * self.num_graphs)[:, None]).reshape(-1)
        rep.edge_src = (self.edge_src[None] + node_shift).reshape(-1)
        rep.edge_dst = (self.edge_dst[None] + node_shift).reshape(-1)
        rep.index = {}
        for include_self, (src, pos, eid) in self.index.items():
            shifted = torch.where(eid[None] >= 0, eid[None] + edge_shift, eid[None].expand(times, -1))
            rep.index[include_self] = ((src[None] + node_shift).reshape(-1), (pos[None] + node_shift).reshape(-1),
                                       shifted.reshape(-1))
        rep.graph = None  # the union graph is not built for repeats
        return rep


class GNNModule(nn.Module):
    """Differentiable executor of one Model spec.

    Every weight of the spec is a parameter of the same name and shape, except where the
    spec's ``processor`` names a parametrisation (:mod:`engine.learn.gatv2`): then the
    parametrisation owns those weights and builds them from its own parameters, so training
    keeps the structure and :meth:`to_model` writes the built weights.
    """

    def __init__(self, spec: dict):
        super().__init__()
        from .gatv2 import parametrisation

        self.spec = copy.deepcopy(spec)
        dtype = TORCH_DTYPES[self.spec["dtype"]]
        self.fz, _ = input_widths(self.spec)  # width of z = [h, x, f]
        self.feedback = feedback_layout(self.spec)
        self.structure = parametrisation(self.spec, dtype)
        owned = self.structure.owned if self.structure is not None else set()
        self.params = nn.ParameterDict({
            _key(name): nn.Parameter(torch.zeros(shape, dtype=dtype))
            for name, shape in expected_shapes(spec).items() if name not in owned
        })

    # ------------------------------------------------------------------ Model <-> module
    @classmethod
    def from_model(cls, model: Model) -> "GNNModule":
        """Load a Model's weights (a parametrised processor checks the Model has its structure)."""
        module = cls(model.spec)
        with torch.no_grad():
            if module.structure is not None:
                module.structure.load(model.weights)
            for name, w in model.weights.items():
                if _key(name) in module.params:
                    module.params[_key(name)].copy_(torch.from_numpy(w))
        return module

    @classmethod
    def initialised(cls, spec: dict, seed: int = 0, scale: float = 1.0) -> "GNNModule":
        """A module with Glorot-style random weights (a parametrised processor takes its
        parameters from the corresponding random weights)."""
        from ..model.factory import random_weights

        weights = random_weights(spec, seed, scale)
        module = cls(spec)
        with torch.no_grad():
            if module.structure is not None:
                module.structure.load(weights, check=False)
            for name, w in weights.items():
                if _key(name) in module.params:
                    module.params[_key(name)].copy_(torch.from_numpy(w.astype(module.spec["dtype"])))
        return module

    def to_model(self) -> Model:
        with torch.no_grad():
            weights = {name: self.w(name).detach().cpu().numpy().copy() for name in expected_shapes(self.spec)}
        return Model(self.spec, weights)

    def w(self, name: str) -> torch.Tensor:
        if self.structure is not None and name in self.structure.owned:
            return self.structure.weight(name)
        return self.params[_key(name)]

    # ------------------------------------------------------------------ pieces
    def _tail(self, prefix, block):
        return [(self.w(f"{prefix}.{j}.weight"), self.w(f"{prefix}.{j}.bias"),
                 R.code(block["activations"][j], R.ACTIVATIONS, "activation"))
                for j in range(1, len(block["widths"]))]

    def _node_mlp(self, prefix, block):
        norm = (self.w(f"{prefix}.ln.weight"), self.w(f"{prefix}.ln.bias")) if block.get("layer_norm") else None
        return (self.w(f"{prefix}.node"), self.w(f"{prefix}.agg"), self.w(f"{prefix}.bias"),
                R.code(block["activations"][0], R.ACTIVATIONS, "activation"), self._tail(prefix, block), norm)

    def _edge_mlp(self, prefix, block, batch: GraphBatch, z, E, include_self: bool):
        src, pos, eid = batch.index[include_self]
        S = z @ self.w(f"{prefix}.src")
        Q = z @ self.w(f"{prefix}.dst") + self.w(f"{prefix}.bias")
        We = self.w(f"{prefix}.edge") if E is not None else None
        act0 = R.code(block["activations"][0], R.ACTIVATIONS, "activation")
        x = ops.first_layer(S, Q, E, We, src, pos, eid, act0)
        return ops.dense_tail(x, self._tail(prefix, block)), src, pos

    # ------------------------------------------------------------------ inputs
    def as_z(self, batch: GraphBatch, t: torch.Tensor) -> torch.Tensor:
        """``z = [h, x, f]`` from a state ``h`` (fed-back hints ``f`` zero) or ``z`` itself."""
        if t.shape[1] == self.fz:
            return t
        f = t.new_zeros((t.shape[0], self.fz - t.shape[1] - batch.x.shape[1]))
        return torch.cat([t, batch.x, f], dim=1)

    def initial_state(self, batch: GraphBatch) -> torch.Tensor:
        return batch.x @ self.w("init.weight") + self.w("init.bias")

    def step(self, batch: GraphBatch, h: torch.Tensor, f=None, E=None) -> torch.Tensor:
        """One processor step (all layers) from state ``h`` with fed-back hints ``f`` and edge
        inputs ``E`` (defaults: no hints fed back yet)."""
        E = batch.E if E is None else E
        for i, layer in enumerate(self.spec["layers"]):
            p = f"layers.{i}"
            z = self.as_z(batch, h) if f is None else torch.cat([h, batch.x, f], dim=1)
            groups, start = [], 0
            for g in layer["groups"]:
                groups.append((R.code(g["kind"], R.REDUCE_KINDS, "aggregation"), start, start + g["size"]))
                start += g["size"]
            msg, src, pos = self._edge_mlp(f"{p}.message", layer["message"], batch, z, E, layer["include_self"])
            agg, _ = ops.aggregate(msg, src, pos, batch.num_nodes, groups)
            new = ops.node_mlp(self._node_mlp(f"{p}.update", layer["update"]), z, agg)
            if layer.get("gate") is None:
                h = new
            else:
                g = torch.sigmoid(ops.node_mlp(self._node_mlp(f"{p}.gate", layer["gate"]), z, agg))
                h = g * new + (1 - g) * h
        return h

    # ------------------------------------------------------------------ decoders
    def pointer_scores(self, name: str, batch: GraphBatch, z: torch.Tensor, E=None):
        """Edge scores of pointer decoder ``name`` over in-neighbours and self:
        ``(scores, src, pos, eid)``, one score per candidate (for a softmax/cross-entropy
        loss). ``z`` may be a bare state ``h``."""
        dec = self.spec["decoders"][name]
        E = batch.E if E is None else E
        scores, src, pos = self._edge_mlp(f"decoders.{name}", dec, batch, self.as_z(batch, z), E, True)
        return scores[:, 0], src, pos, batch.index[True][2]

    def logits(self, name: str, batch: GraphBatch, z: torch.Tensor) -> torch.Tensor:
        """The linear decoder ``name`` (mask, scalar, categorical, mask_one) on ``z`` (or ``h``)."""
        return self.as_z(batch, z) @ self.w(f"decoders.{name}.weight") + self.w(f"decoders.{name}.bias")

    def decode(self, name: str, batch: GraphBatch, z: torch.Tensor, E=None) -> torch.Tensor:
        """Decoder ``name`` as the executor decodes it (pointers: argmax, lowest index on ties;
        mask_one: the top node of each graph). ``z`` may be a bare state ``h``."""
        dec = self.spec["decoders"][name]
        if dec["type"] == "pointer":
            scores, src, pos, _ = self.pointer_scores(name, batch, z, E)
            groups = [(R.REDUCE_KINDS.index("argmax"), 0, 1)]
            _, winners = ops.aggregate(scores[:, None], src, pos, batch.num_nodes, groups)
            return winners[:, 0]
        logits = self.logits(name, batch, z)
        dtype = logits.dtype
        if dec["type"] == "mask":
            return (logits[:, 0] > 0).to(dtype)
        if dec["type"] == "scalar":
            return logits[:, 0]
        if dec["type"] == "categorical":
            return torch.nn.functional.one_hot(logits.argmax(dim=1), logits.shape[1]).to(dtype)
        if dec["type"] == "mask_one":
            top = segment_argmax(logits[:, 0].detach(), batch.graph_index, batch.num_graphs)
            out = torch.zeros(batch.num_nodes, dtype=dtype, device=logits.device)
            out[top] = 1
            return out
        raise NotImplementedError(f"decoder type {dec['type']!r} over a batch")

    # ------------------------------------------------------------------ hint feedback
    def feed_back(self, batch: GraphBatch, z: torch.Tensor, E, hard: bool):
        """The fed-back hints decoded from ``z``: ``(f, E')``, the ``f`` columns of the next
        ``z`` and the edge inputs with the pointer columns. ``hard``: exactly the executor's
        values; otherwise their differentiable relaxations (mask: sigmoid, categorical and
        mask_one: softmax, pointer: softmax over the candidates), as CLRS trains."""
        cols, ecols = [], []
        for name, kind, width in self.feedback:
            if kind == "pointer":
                if hard:
                    ptr = self.decode(name, batch, z, E)
                    cols.append((ptr == torch.arange(batch.num_nodes, device=ptr.device)).to(z.dtype)[:, None])
                    ecols.append((ptr[batch.edge_dst] == batch.edge_src).to(z.dtype)[:, None])
                else:
                    scores, src, pos, eid = self.pointer_scores(name, batch, z, E)
                    prob = torch.exp(segment_log_softmax(scores, pos, batch.num_nodes))
                    self_prob = z.new_zeros(batch.num_nodes).index_add(0, pos[eid < 0], prob[eid < 0])
                    edge_prob = z.new_zeros(batch.edge_src.shape[0]).index_add(0, eid[eid >= 0], prob[eid >= 0])
                    cols.append(self_prob[:, None])
                    ecols.append(edge_prob[:, None])
                continue
            if hard:
                val = self.decode(name, batch, z, E)
                cols.append(val.reshape(batch.num_nodes, width).to(z.dtype))
                continue
            logits = self.logits(name, batch, z)
            if kind == "mask":
                cols.append(torch.sigmoid(logits))
            elif kind == "scalar":
                cols.append(logits)
            elif kind == "categorical":
                cols.append(torch.softmax(logits, dim=1))
            else:  # mask_one: a softmax over each graph's nodes
                cols.append(torch.exp(segment_log_softmax(logits[:, 0], batch.graph_index, batch.num_graphs))[:, None])
        f = torch.cat(cols, dim=1) if cols else z.new_zeros((batch.num_nodes, 0))
        if ecols:
            E = torch.cat([batch.E[:, :batch.fe_static]] + ecols, dim=1)
        return f, E

    def rollout(self, batch: GraphBatch, steps: int, hard: bool = True):
        """Run ``steps`` steps; returns ``(states, zs, Es)``: the states ``h_0 .. h_T`` and, for
        each ``t``, the decoder inputs ``z_t = [h_t, x, f_{t-1}]`` and edge inputs ``E_t``."""
        h = self.initial_state(batch)
        f = h.new_zeros((batch.num_nodes, self.fz - h.shape[1] - batch.x.shape[1]))
        E = batch.E
        states, zs, Es = [h], [], []
        feedback = bool(self.feedback)
        for t in range(steps + 1):
            z = torch.cat([h, batch.x, f], dim=1)
            zs.append(z)
            Es.append(E)
            if t == steps:
                break
            if feedback:
                f, E = self.feed_back(batch, z, E, hard)
            h = self.step(batch, h, f, E)
            states.append(h)
        return states, zs, Es

    def forward(self, batch: GraphBatch, steps: int):
        """Run ``steps`` steps from the initial state (hints fed back hard, as the executor
        does); returns the states ``(steps + 1, n, d)``."""
        return torch.stack(self.rollout(batch, steps, hard=True)[0])


def segment_log_softmax(scores, segment, count: int):
    """``log softmax`` of ``scores`` within each segment (``segment[i]`` in ``[0, count)``)."""
    top = torch.full((count,), float("-inf"), dtype=scores.dtype, device=scores.device).scatter_reduce(
        0, segment, scores.detach(), reduce="amax")
    shifted = scores - top[segment]
    denom = torch.zeros(count, dtype=scores.dtype, device=scores.device).index_add(0, segment, torch.exp(shifted))
    return shifted - torch.log(denom)[segment]


def segment_argmax(values, segment, count: int):
    """Index of the largest value in each segment (the lowest index on ties)."""
    top = torch.full((count,), float("-inf"), dtype=values.dtype, device=values.device).scatter_reduce(
        0, segment, values, reduce="amax")
    at = torch.arange(values.shape[0], device=values.device)
    big = torch.iinfo(torch.int64).max
    return torch.full((count,), big, dtype=torch.int64, device=values.device).scatter_reduce(
        0, segment, torch.where(values == top[segment], at, torch.full_like(at, big)), reduce="amin")
