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
from ..model.spec import Model, expected_shapes

TORCH_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def _key(name: str) -> str:
    return name.replace(".", "__")  # parameter names may not contain dots


class GraphBatch:
    """One graph (or a disjoint union of graphs) prepared for the module.

    Holds the node inputs ``x`` (built from the spec's ``node_inputs`` per graph), the edge
    inputs, and the message index tensors with and without self-messages.
    """

    def __init__(self, graphs, sources, spec: dict, device="cpu"):
        from ..graph import Graph

        if isinstance(graphs, Graph):
            graphs, sources = [graphs], [sources]
        dtype = np.dtype(spec["dtype"])
        xs, src, dst, w, offset = [], [], [], [], 0
        self.offsets = []
        for g, s in zip(graphs, sources):
            cols = [R.NODE_FEATURES[f][0](g.num_nodes, s, dtype) for f in spec.get("node_inputs", [])]
            xs.append(np.hstack(cols) if cols else np.zeros((g.num_nodes, 0), dtype))
            src.append(g.indices.astype(np.int64) + offset)
            dst.append(g.edge_targets().astype(np.int64) + offset)
            w.append(g.edge_weights(dtype))
            self.offsets.append(offset)
            offset += g.num_nodes
        from ..graph import Graph as G

        self.graph = G.from_edges(np.concatenate(src), np.concatenate(dst), offset, np.concatenate(w),
                                  dtype=dtype.name)
        self.num_nodes = offset
        self.device = torch.device(device)
        t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(self.device)  # noqa: E731
        self.x = t(np.vstack(xs))
        ew = [self.graph.edge_weights(dtype)[:, None] for f in spec.get("edge_inputs", []) if f == "weight"]
        self.E = t(np.hstack(ew)) if ew else None
        self.index = {}
        for include_self in (False, True):
            s_, p_, e_, _ = _messages(self.graph, include_self, None)
            self.index[include_self] = (t(s_), t(p_), t(e_))


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
        return (self.w(f"{prefix}.node"), self.w(f"{prefix}.agg"), self.w(f"{prefix}.bias"),
                R.code(block["activations"][0], R.ACTIVATIONS, "activation"), self._tail(prefix, block))

    def _edge_mlp(self, prefix, block, batch: GraphBatch, z, include_self: bool):
        src, pos, eid = batch.index[include_self]
        S = z @ self.w(f"{prefix}.src")
        Q = z @ self.w(f"{prefix}.dst") + self.w(f"{prefix}.bias")
        We = self.w(f"{prefix}.edge") if batch.E is not None else None
        act0 = R.code(block["activations"][0], R.ACTIVATIONS, "activation")
        x = ops.first_layer(S, Q, batch.E, We, src, pos, eid, act0)
        return ops.dense_tail(x, self._tail(prefix, block)), src, pos

    def initial_state(self, batch: GraphBatch) -> torch.Tensor:
        return batch.x @ self.w("init.weight") + self.w("init.bias")

    def step(self, batch: GraphBatch, h: torch.Tensor) -> torch.Tensor:
        """One processor step (all layers)."""
        for i, layer in enumerate(self.spec["layers"]):
            p = f"layers.{i}"
            z = torch.cat([h, batch.x], dim=1)
            groups, start = [], 0
            for g in layer["groups"]:
                groups.append((R.code(g["kind"], R.REDUCE_KINDS, "aggregation"), start, start + g["size"]))
                start += g["size"]
            msg, src, pos = self._edge_mlp(f"{p}.message", layer["message"], batch, z, layer["include_self"])
            agg, _ = ops.aggregate(msg, src, pos, batch.num_nodes, groups)
            new = ops.node_mlp(self._node_mlp(f"{p}.update", layer["update"]), z, agg)
            if layer.get("gate") is None:
                h = new
            else:
                g = torch.sigmoid(ops.node_mlp(self._node_mlp(f"{p}.gate", layer["gate"]), z, agg))
                h = g * new + (1 - g) * h
        return h

    def pointer_scores(self, name: str, batch: GraphBatch, h: torch.Tensor):
        """Edge scores of pointer decoder ``name`` over in-neighbours and self:
        ``(scores, src, pos)``, one score per candidate (for a softmax/cross-entropy loss)."""
        dec = self.spec["decoders"][name]
        z = torch.cat([h, batch.x], dim=1)
        scores, src, pos = self._edge_mlp(f"decoders.{name}", dec, batch, z, True)
        return scores[:, 0], src, pos

    def decode(self, name: str, batch: GraphBatch, h: torch.Tensor) -> torch.Tensor:
        """Decoder ``name`` as the executor decodes it (pointers: argmax, lowest index on ties)."""
        dec = self.spec["decoders"][name]
        if dec["type"] == "pointer":
            scores, src, pos = self.pointer_scores(name, batch, h)
            groups = [(R.REDUCE_KINDS.index("argmax"), 0, 1)]
            _, winners = ops.aggregate(scores[:, None], src, pos, batch.num_nodes, groups)
            return winners[:, 0]
        z = torch.cat([h, batch.x], dim=1)
        logits = z @ self.w(f"decoders.{name}.weight") + self.w(f"decoders.{name}.bias")
        if dec["type"] == "mask":
            return (logits[:, 0] > 0).to(h.dtype)
        if dec["type"] == "scalar":
            return logits[:, 0]
        if dec["type"] == "categorical":
            return torch.nn.functional.one_hot(logits.argmax(dim=1), logits.shape[1]).to(h.dtype)
        raise NotImplementedError(f"decoder type {dec['type']!r} over a batch")

    def forward(self, batch: GraphBatch, steps: int):
        """Run ``steps`` steps from the initial state; returns the states ``(steps + 1, n, d)``."""
        h = self.initial_state(batch)
        states = [h]
        for _ in range(steps):
            h = self.step(batch, h)
            states.append(h)
        return torch.stack(states)
