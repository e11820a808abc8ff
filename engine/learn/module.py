"""The architecture family as a differentiable torch module.

``GNNModule(spec)`` holds one parameter per weight of the spec (same names, same shapes), so
a :class:`~engine.Model` loads into it (:meth:`GNNModule.from_model`) and a trained module
exports to a Model that every backend runs (:meth:`GNNModule.to_model`). The forward pass
reads the same typed plan as the executor (:func:`engine.model.plan.build_plan`, over the
module's parameters) and computes with the torch counterparts of the executor's arithmetic
(:mod:`engine.backends.torch_ops`): messages, aggregation, update and gate, hint feedback,
the graph state with its readouts, graph update, pointer addresses and broadcast features,
and every decoder. A compiled model gives the executor's states here bit for bit, so it can
be scored by a training loss or fine-tuned, and learned and compiled weights can be compared
parameter by parameter.
"""
from __future__ import annotations

import copy
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from ..backends import torch_ops as ops
from ..errors import EngineError
from ..model import registry as R
from ..model.message_graph import message_graph
from ..model.plan import ModelPlan, build_plan
from ..model.spec import Model, expected_shapes, layout
from . import fused

TORCH_DTYPES = {"float32": torch.float32, "float64": torch.float64}
POINTER_GROUPS = [(R.aggregation("argmax").code, 0, 1)]  # a pointer decoder: the argmax of its score


def _key(name: str) -> str:
    return name.replace(".", "__")  # parameter names may not contain dots


class GraphBatch:
    """One graph (or a disjoint union of graphs) prepared for the module.

    Holds the node inputs ``x`` (built from the spec's ``node_inputs`` per graph), the edge
    inputs ``E`` (with zero columns for fed-back pointers), which graph each node belongs to
    and where each graph's nodes start (graph-state pointers hold ids within their graph),
    and the message index tensors with and without self-messages.
    """

    def __init__(self, graphs, sources, spec: dict, device="cpu", pos=None):
        from ..graph import Graph

        if isinstance(graphs, Graph):
            graphs, sources = [graphs], [sources]
            pos = None if pos is None else [pos]
        dtype = np.dtype(spec["dtype"])
        lay = layout(spec)
        xs, src, dst, static, offset = [], [], [], [], 0
        self.offsets, sizes = [], []
        for i, (g, s) in enumerate(zip(graphs, sources)):
            x = R.node_inputs(lay.node_inputs, g.num_nodes, s, dtype)
            if pos is not None and "pos" in lay.node_inputs:  # CLRS's random_pos: given values per node
                x[:, lay.node_inputs.index("pos")] = pos[i]
            xs.append(x)
            messages, cols = message_graph(spec, g, dtype)
            src.append(messages.indices.astype(np.int64) + offset)
            dst.append(messages.edge_targets().astype(np.int64) + offset)
            static.append(cols)
            self.offsets.append(offset)
            sizes.append(g.num_nodes)
            offset += g.num_nodes
        # the union of the message graphs: each is in CSR order and their node ranges follow
        # one another, so the union is already in CSR order and the static columns align
        self.graph = Graph.from_edges(np.concatenate(src), np.concatenate(dst), offset, dtype=dtype.name)
        static = np.vstack(static)
        self.num_nodes = offset
        self.device = torch.device(device)
        t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(self.device)  # noqa: E731
        self.x = t(np.vstack(xs))
        ew = [static] if static.shape[1] else []
        ew += [np.zeros((self.graph.num_edges, 1), dtype) for s in lay.feedback if s.kind == "pointer"]
        self.E = t(np.hstack(ew)) if ew else None
        self.fe_static = lay.fe_static
        self.graph_index = t(np.repeat(np.arange(len(sizes)), sizes))
        self.num_graphs = len(sizes)
        self.node_start = t(np.array(self.offsets, dtype=np.int64))
        self.sizes = t(np.array(sizes, dtype=np.int64))
        self.edge_src = t(self.graph.indices.astype(np.int64))
        self.edge_dst = t(self.graph.edge_targets().astype(np.int64))
        self.index = {}
        for include_self in (False, True):
            s_, p_, e_, _ = self.graph.message_index(include_self)
            self.index[include_self] = (t(s_), t(p_), t(e_))

    def prefix(self, graphs: int) -> "GraphBatch":
        """The batch of its first ``graphs`` graphs, as views (no copies): their nodes, edges
        and messages are prefixes of this batch's, since each is grouped by graph in order."""
        if graphs == self.num_graphs:
            return self
        cache = self.__dict__.setdefault("_prefixes", {})
        if graphs not in cache:
            sub = copy.copy(self)
            sub.__dict__["_prefixes"] = {}
            nodes = int(self.offsets[graphs]) if graphs < len(self.offsets) else self.num_nodes
            edges = int(torch.searchsorted(self.edge_dst, torch.tensor(nodes, device=self.device)))
            sub.num_nodes, sub.num_graphs, sub.offsets = nodes, graphs, self.offsets[:graphs]
            sub.x, sub.graph_index = self.x[:nodes], self.graph_index[:nodes]
            sub.node_start, sub.sizes = self.node_start[:graphs], self.sizes[:graphs]
            sub.E = None if self.E is None else self.E[:edges]
            sub.edge_src, sub.edge_dst = self.edge_src[:edges], self.edge_dst[:edges]
            sub.index = {}
            for include_self, (src, pos, eid) in self.index.items():
                rows = int(torch.searchsorted(pos, torch.tensor(nodes, device=self.device)))
                sub.index[include_self] = (src[:rows], pos[:rows], eid[:rows])
            sub.graph = None
            cache[graphs] = sub
        return cache[graphs]

    def repeat(self, times: int) -> "GraphBatch":
        """``times`` disjoint copies of this batch (copy ``t`` holds nodes ``t * N ..``): the
        decoders of every step of a rollout then run as one call on stacked inputs."""
        rep = copy.copy(self)
        rep.__dict__["_prefixes"] = {}
        N, m = self.num_nodes, self.edge_src.shape[0]
        dev = self.device
        node_shift = (torch.arange(times, device=dev) * N)[:, None]
        edge_shift = (torch.arange(times, device=dev) * m)[:, None]
        rep.num_nodes = N * times
        rep.num_graphs = self.num_graphs * times
        rep.x = self.x.repeat(times, 1)
        rep.E = None if self.E is None else self.E.repeat(times, 1)
        rep.graph_index = (self.graph_index[None] + (torch.arange(times, device=dev) * self.num_graphs)[:, None]).reshape(-1)
        rep.node_start = (self.node_start[None] + node_shift).reshape(-1)
        rep.sizes = self.sizes.repeat(times)
        rep.edge_src = (self.edge_src[None] + node_shift).reshape(-1)
        rep.edge_dst = (self.edge_dst[None] + node_shift).reshape(-1)
        rep.index = {}
        for include_self, (src, pos, eid) in self.index.items():
            shifted = torch.where(eid[None] >= 0, eid[None] + edge_shift, eid[None].expand(times, -1))
            rep.index[include_self] = ((src[None] + node_shift).reshape(-1), (pos[None] + node_shift).reshape(-1),
                                       shifted.reshape(-1))
        rep.graph = None  # the union graph is not built for repeats
        return rep


class Rollout(NamedTuple):
    """A rollout of ``T`` steps: the states ``h_0 .. h_T``, and for each ``t`` the decoders'
    inputs ``z_t = [h_t, x, f_{t-1}, a(g_t), b(g_t)]``, edge inputs ``E_t`` and graph state
    ``g_t`` (None without one)."""

    states: list
    zs: list
    Es: list
    gs: list


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
        self.shapes = expected_shapes(self.spec)  # validates the spec
        self.layout = layout(self.spec)
        self.fz = self.layout.fz
        self.structure = parametrisation(self.spec, dtype)
        owned = self.structure.owned if self.structure is not None else set()
        self.params = nn.ParameterDict({
            _key(name): nn.Parameter(torch.zeros(shape, dtype=dtype))
            for name, shape in self.shapes.items() if name not in owned
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
            weights = {name: self.w(name).detach().cpu().numpy().copy() for name in self.shapes}
        return Model(self.spec, weights)

    def w(self, name: str) -> torch.Tensor:
        if self.structure is not None and name in self.structure.owned:
            return self.structure.weight(name)
        return self.params[_key(name)]

    def plan(self) -> ModelPlan:
        """The model's typed blocks over the current parameters (built per call: cheap)."""
        return build_plan(self.spec, self.w)

    # ------------------------------------------------------------------ inputs
    def z_of(self, batch: GraphBatch, h: torch.Tensor, f=None, g=None) -> torch.Tensor:
        """``z = [h, x, f, a, b]``: the state, the node inputs, the fed-back hints (zero when
        ``f`` is None), and the address and broadcast features of graph state ``g``."""
        lay = self.layout
        if f is None:
            f = h.new_zeros((h.shape[0], lay.addr_col - lay.hx))
        parts = [h, batch.x, f]
        if lay.pointers:
            parts += list(self._addresses(batch, g, h))
        return torch.cat(parts, dim=1)

    def as_z(self, batch: GraphBatch, t: torch.Tensor, g=None) -> torch.Tensor:
        """``t`` itself when it is a whole ``z``, else the ``z`` of state ``t`` (no hints fed
        back, addresses of ``g``)."""
        return t if t.shape[1] == self.fz else self.z_of(batch, t, None, g)

    def _addresses(self, batch: GraphBatch, g, like: torch.Tensor):
        """Address features ``a`` (n x pointers) and broadcast features ``b`` (n x broadcast)
        of graph state ``g`` (num_graphs x dg): a pointer channel holding a node id of its
        graph marks that node, and every marked node sees the broadcast channels."""
        lay = self.layout
        n = batch.num_nodes
        a = like.new_zeros((n, len(lay.pointers)))
        b = like.new_zeros((n, len(lay.broadcast)))
        if g is None:
            return a, b
        marked_nodes, marked_graphs = [], []
        for k, c in enumerate(lay.pointers):
            val = g[:, c].detach()
            ok = torch.isfinite(val) & (val == torch.floor(val)) & (val >= 0) & (val < batch.sizes.to(val.dtype))
            graphs = torch.nonzero(ok).flatten()
            nodes = batch.node_start[graphs] + val[graphs].long()
            a[nodes, k] = 1
            marked_nodes.append(nodes)
            marked_graphs.append(graphs)
        if lay.broadcast:
            nodes, graphs = torch.cat(marked_nodes), torch.cat(marked_graphs)
            b = b.index_put((nodes,), g[graphs][:, list(lay.broadcast)])
        return a, b

    def initial_state(self, batch: GraphBatch) -> torch.Tensor:
        return batch.x @ self.w("init.weight") + self.w("init.bias")

    def initial_graph(self, batch: GraphBatch):
        """The initial graph state of every graph (num_graphs x dg), or None."""
        if not self.layout.dg:
            return None
        return self.w("graph_init.bias")[None, :].expand(batch.num_graphs, -1)

    # ------------------------------------------------------------------ one step
    def step(self, batch: GraphBatch, h: torch.Tensor, f=None, E=None, g=None, plan: ModelPlan | None = None):
        """One processor step (all layers) from state ``h`` with fed-back hints ``f``, edge
        inputs ``E`` and graph state ``g`` (defaults: none fed back yet, the batch's edge
        inputs, the initial graph state); returns ``(h', g')``."""
        plan = plan or self.plan()
        E = batch.E if E is None else E
        if g is None:
            g = self.initial_graph(batch)
        for i, layer in enumerate(plan.layers):
            z = self.z_of(batch, h, f, g)
            src, pos, eid = batch.index[layer.include_self]
            if self.structure is not None:  # a parametrised processor aggregates its messages its own way
                agg = self.structure.aggregate(i, z, E, src, pos, eid, batch.num_nodes, layer.groups)
            else:
                mlp = layer.message
                agg = fused.message_aggregate(mlp, z @ mlp.src, z @ mlp.dst + mlp.bias, E, src, pos, eid,
                                              batch.num_nodes, layer.groups)
            new = ops.node_mlp(layer.update, z, agg)
            if layer.gate is None:
                h = new
            else:
                gate = torch.sigmoid(ops.node_mlp(layer.gate, z, agg))
                h = gate * new + (1 - gate) * h
            if layer.readout is not None:
                g = self._graph_step(layer, batch, h, g)
        return h, g

    def _edge_mlp(self, mlp, z, E, src, pos, eid):
        S = z @ mlp.src
        Q = z @ mlp.dst + mlp.bias
        return fused.edge_scores(mlp, S, Q, E, src, pos, eid)

    def _graph_step(self, layer, batch: GraphBatch, h, g):
        """Readouts of the new states, reduced per graph, then the graph update and gate."""
        r = ops.node_mlp(layer.readout.mlp, torch.cat([h, batch.x], dim=1), None)
        red = reduce_readouts(r, layer.readout.codes, batch)
        if layer.graph_update is None:
            return g
        new = ops.node_mlp(layer.graph_update, g, red)
        if layer.graph_gate is None:
            return new
        gate = torch.sigmoid(ops.node_mlp(layer.graph_gate, g, red))
        return gate * new + (1 - gate) * g

    # ------------------------------------------------------------------ decoders
    def pointer_scores(self, name: str, batch: GraphBatch, z: torch.Tensor, E=None, plan=None):
        """Edge scores of pointer decoder ``name`` over in-neighbours and self:
        ``(scores, src, pos, eid)``, one score per candidate (for a softmax/cross-entropy
        loss). ``z`` may be a bare state ``h``."""
        plan = plan or self.plan()
        E = batch.E if E is None else E
        src, pos, eid = batch.index[self.layout.pointer_self]
        scores = self._edge_mlp(plan.decoders[name].score, self.as_z(batch, z), E, src, pos, eid)
        return scores[:, 0], src, pos, eid

    def logits(self, name: str, batch: GraphBatch, z: torch.Tensor, plan=None) -> torch.Tensor:
        """The linear decoder ``name`` (mask, scalar, categorical, mask_one) on ``z`` (or ``h``)."""
        dec = (plan or self.plan()).decoders[name]
        return self.as_z(batch, z) @ dec.weight + dec.bias

    def decode(self, name: str, batch: GraphBatch, z: torch.Tensor, E=None, g=None, plan=None) -> torch.Tensor:
        """Decoder ``name`` as the executor decodes it (pointers: argmax, lowest index on ties;
        mask_one: the top node of each graph; graph_scalar: one value per graph, from ``g``).
        ``z`` may be a bare state ``h`` (then the addresses of ``g`` fill it in)."""
        plan = plan or self.plan()
        dec = plan.decoders[name]
        if dec.kind == "graph_scalar":
            return (g @ dec.weight + dec.bias)[:, 0]
        z = self.as_z(batch, z, g)
        if dec.kind == "pointer":
            scores, src, pos, _ = self.pointer_scores(name, batch, z, E, plan)
            _, winners = ops.aggregate(scores[:, None], src, pos, batch.num_nodes, POINTER_GROUPS)
            return winners[:, 0]
        logits = self.logits(name, batch, z, plan)
        dtype = logits.dtype
        if dec.kind == "mask":
            return (logits[:, 0] > 0).to(dtype)
        if dec.kind == "scalar":
            return logits[:, 0]
        if dec.kind == "categorical":
            return torch.nn.functional.one_hot(logits.argmax(dim=1), logits.shape[1]).to(dtype)
        if dec.kind == "mask_one":
            top = segment_argmax(logits[:, 0].detach(), batch.graph_index, batch.num_graphs)
            out = torch.zeros(batch.num_nodes, dtype=dtype, device=logits.device)
            out[top] = 1
            return out
        raise AssertionError(f"decoder type {dec.kind!r}")  # the spec's validation lists every type

    # ------------------------------------------------------------------ hint feedback
    def feed_back(self, batch: GraphBatch, z: torch.Tensor, E, hard: bool, plan=None, raw: dict | None = None):
        """The fed-back hints decoded from ``z``: ``(f, E')``, the ``f`` columns of the next
        ``z`` and the edge inputs with the pointer columns. ``hard``: exactly the executor's
        values; otherwise their differentiable relaxations (mask: sigmoid, categorical and
        mask_one: softmax, pointer: softmax over the candidates), as CLRS trains; then
        ``raw`` (a dict) receives each decoder's scores or logits, for the loss to reuse."""
        plan = plan or self.plan()
        if hard:
            return self.encode_feedback(batch, {s.decoder: self.decode(s.decoder, batch, z, E, plan=plan)
                                                for s in self.layout.feedback}, z.dtype)
        cols, ecols = [], []
        for slot in self.layout.feedback:
            name, kind, width = slot.decoder, slot.kind, slot.width
            if kind == "pointer":
                scores, src, pos, eid = self.pointer_scores(name, batch, z, E, plan)
                if raw is not None:
                    raw[name] = scores
                prob = torch.exp(segment_log_softmax(scores, pos, batch.num_nodes))
                # the self column: the virtual self candidate's probability, or the self
                # pair's on a complete message graph (where the node itself is an edge)
                own = eid < 0 if self.layout.pointer_self else src == pos
                self_prob = z.new_zeros(batch.num_nodes).index_add(0, pos[own], prob[own])
                edge_prob = z.new_zeros(batch.edge_src.shape[0]).index_add(0, eid[eid >= 0], prob[eid >= 0])
                cols.append(self_prob[:, None])
                ecols.append(edge_prob[:, None])
                continue
            logits = self.logits(name, batch, z, plan)
            if raw is not None:
                raw[name] = logits
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

    def encode_feedback(self, batch: GraphBatch, values: dict, dtype=None):
        """``(f, E')`` of given hint values, as :meth:`feed_back` writes decoded ones when
        ``hard``: ``values`` maps each fed-back decoder to its value per node of the batch
        (a pointer: node ids of the batch; categorical: one-hot rows)."""
        dtype = dtype or TORCH_DTYPES[self.spec["dtype"]]
        cols, ecols = [], []
        for slot in self.layout.feedback:
            val = torch.as_tensor(values[slot.decoder], device=batch.device)
            if slot.kind == "pointer":
                cols.append((val == torch.arange(batch.num_nodes, device=val.device)).to(dtype)[:, None])
                ecols.append((val[batch.edge_dst] == batch.edge_src).to(dtype)[:, None])
            else:
                cols.append(val.reshape(batch.num_nodes, slot.width).to(dtype))
        f = torch.cat(cols, dim=1) if cols else torch.zeros((batch.num_nodes, 0), dtype=dtype, device=batch.device)
        E = batch.E
        if ecols:
            E = torch.cat([batch.E[:, :batch.fe_static]] + ecols, dim=1)
        return f, E

    # ------------------------------------------------------------------ rollouts
    def rollout(self, batch: GraphBatch, steps: int, hard: bool = True, first=None,
                decoded: list | None = None, graph_steps=None) -> Rollout:
        """Run ``steps`` steps from the initial state, hints fed back ``hard`` (as the
        executor does) or soft (CLRS's training); see :class:`Rollout`. ``first``: the
        ``(f, E)`` fed into the first step (CLRS feeds the ground-truth hint 0,
        :meth:`encode_feedback`) instead of the hints decoded from the initial state.
        ``decoded`` (soft feedback): a list that receives, for each ``t < steps``, the
        fed-back decoders' scores or logits on ``z_t`` (``{}`` where hint 0 was given).

        ``graph_steps``: each graph's own step count, non-increasing along the batch; then
        step ``t`` runs only the graphs with more than ``t`` steps (a prefix of the batch),
        and the others keep their last state, inputs and graph state (a graph's states up to
        its own step count are those of the full rollout; its ``decoded`` rows after it are 0).
        """
        plan = self.plan()
        h = self.initial_state(batch)
        g = self.initial_graph(batch)
        f = h.new_zeros((batch.num_nodes, self.layout.addr_col - self.layout.hx))
        E = batch.E
        active = _active_counts(graph_steps, steps, batch.num_graphs)
        out = Rollout([h], [], [], [])
        for t in range(steps + 1):
            z = self.z_of(batch, h, f, g)
            out.zs.append(z)
            out.Es.append(E)
            out.gs.append(g)
            if t == steps:
                break
            sub = batch.prefix(active[t])
            n, m = sub.num_nodes, sub.edge_src.shape[0]
            raw = {} if decoded is not None and not hard else None
            if self.layout.feedback and t == 0 and first is not None:
                f, E = first
            elif self.layout.feedback:
                f_sub, E_sub = self.feed_back(sub, z[:n], None if E is None else E[:m], hard, plan, raw)
                f, E = _keep_rest(f_sub, f), _keep_rest(E_sub, E)
            if decoded is not None:
                decoded.append({name: _pad_rows(r, (batch.index[self.layout.pointer_self][0].shape[0]
                                                    if r.dim() == 1 else batch.num_nodes))
                                for name, r in (raw or {}).items()})
            h_sub, g_sub = self.step(sub, h[:n], f[:n], None if E is None else E[:m],
                                     None if g is None else g[:sub.num_graphs], plan)
            h = _keep_rest(h_sub, h)
            g = None if g is None else _keep_rest(g_sub, g)
            out.states.append(h)
        return out

    def forward(self, batch: GraphBatch, steps: int):
        """Run ``steps`` steps from the initial state (hints fed back hard, as the executor
        does); returns the states ``(steps + 1, n, d)``."""
        return torch.stack(self.rollout(batch, steps, hard=True).states)


def _active_counts(graph_steps, steps: int, graphs: int) -> list:
    """For each step ``t < steps``, how many leading graphs still run (all without ``graph_steps``)."""
    if graph_steps is None:
        return [graphs] * steps
    gs = np.asarray(graph_steps)
    if gs.shape != (graphs,) or np.any(np.diff(gs) > 0):
        raise EngineError(f"graph_steps must give each of the batch's {graphs} graphs its step count, "
                          f"non-increasing along the batch; got {gs.tolist()}")
    return [max(int(np.sum(gs > t)), 1) for t in range(steps)]


def _keep_rest(head: torch.Tensor, whole: torch.Tensor) -> torch.Tensor:
    """``head`` over the first rows of ``whole``, the rest of ``whole`` unchanged."""
    if head.shape[0] == whole.shape[0]:
        return head
    return torch.cat([head, whole[head.shape[0]:]])


def _pad_rows(head: torch.Tensor, rows: int) -> torch.Tensor:
    """``head`` padded with zero rows to ``rows`` rows."""
    if head.shape[0] == rows:
        return head
    return torch.cat([head, head.new_zeros((rows - head.shape[0],) + tuple(head.shape[1:]))])


def reduce_readouts(r: torch.Tensor, codes: np.ndarray, batch: GraphBatch) -> torch.Tensor:
    """Readout values ``r`` (n x c) reduced over each graph's nodes (num_graphs x c), as
    :func:`engine.backends.numpy_ops.reduce_readout_channels` reduces one graph: min/max per
    channel ignoring NaN, argmin/argmax groups taking the payload of the best key's node
    (lowest index on ties, NaN keys never win, the graph's first node if all are)."""
    G = batch.num_graphs
    seg = batch.graph_index
    out = []
    payload = R.READOUT_CHANNELS.index("payload")
    c = 0
    while c < len(codes):
        kind = R.READOUT_CHANNELS[int(codes[c])]
        stop = c + 1
        if kind in R.READOUT_ARG_KINDS:
            while stop < len(codes) and codes[stop] == payload:
                stop += 1
            key = r[:, c].detach()
            valid = ~torch.isnan(key)
            worst = float("-inf") if kind == "argmax" else float("inf")
            reduce = "amax" if kind == "argmax" else "amin"
            best = torch.full((G,), worst, dtype=r.dtype, device=r.device).scatter_reduce(
                0, seg, torch.where(valid, key, torch.full_like(key, worst)), reduce=reduce)
            hit = valid & (key == best[seg])
            at = torch.arange(r.shape[0], device=r.device)
            big = torch.iinfo(torch.int64).max
            first = torch.full((G,), big, dtype=torch.int64, device=r.device).scatter_reduce(
                0, seg, torch.where(hit, at, torch.full_like(at, big)), reduce="amin")
            first = torch.where(first == big, batch.node_start, first)
            out.append(r[first, c:stop])
        else:  # a run of channels of one kind at once
            while stop < len(codes) and codes[stop] == codes[c]:
                stop += 1
            x = r[:, c:stop]
            nan = torch.isnan(x)
            index = seg[:, None].expand(-1, stop - c)
            worst = float("-inf") if kind == "max" else float("inf")
            red = torch.full((G, stop - c), worst, dtype=r.dtype, device=r.device).scatter_reduce(
                0, index, torch.where(nan, torch.full_like(x, worst), x), reduce="amax" if kind == "max" else "amin")
            all_nan = torch.zeros((G, stop - c), dtype=torch.int64, device=r.device).scatter_reduce(
                0, index, (~nan).long(), reduce="amax") == 0
            out.append(torch.where(all_nan, torch.full_like(red, float("nan")), red))
        c = stop
    return torch.cat(out, dim=1)


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
