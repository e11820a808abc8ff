"""A model's plan bound to one graph and one backend: inputs, buffers, graph state, decoders.

:class:`BoundModel` builds the node and edge inputs once, lays out buffers
``z = [h, x, f, a, b]`` (:class:`~engine.model.spec.Layout`), writes the address and broadcast
features of a graph state into them, feeds decoded hints back, computes per-node message
parts, runs readouts and graph updates, and decodes. The step loops
(:mod:`engine.runtime.python_loop`, :mod:`engine.runtime.native_loop`) drive it.
"""
from __future__ import annotations

import numpy as np

from ..backends.base import EdgeInputs
from ..backends.numpy_ops import reduce_readout_channels, sigmoid, small_matmul, small_mlp
from ..errors import EngineError
from ..model import registry as R
from ..model.plan import EdgeMLP, LayerPlan, ModelPlan
from .columns import set_columns

POINTER_GROUPS = np.array([(R.aggregation("argmax").code, 0, 1)], dtype=np.int64)  # a pointer: argmax of its score


class BoundModel:
    """``plan`` bound to ``graph`` (and ``source``) on ``backend``: ``graph`` is the message
    graph (:func:`engine.model.message_graph.message_graph`) and ``static_edges`` its static
    edge inputs.

    A disjoint union of graphs (:func:`engine.execute_batch`) is bound with its node inputs
    ``x`` (each graph's own, stacked) and ``node_start``, where each graph's nodes begin: a
    ``mask_one`` decoder then picks one node per graph. A model with a graph state is bound
    to one graph only."""

    def __init__(self, plan: ModelPlan, graph, source, backend, static_edges: np.ndarray, x=None,
                 node_start=None):
        self.plan = plan
        self.layout = lay = plan.layout
        self.graph = graph
        self.backend = backend
        self.dtype = plan.dtype
        n = graph.num_nodes
        self.x = R.node_inputs(lay.node_inputs, n, source, self.dtype) if x is None else x
        self.node_start = np.zeros(1, np.int64) if node_start is None else np.asarray(node_start, np.int64)
        # edge inputs: the static ones, then one column per fed-back pointer
        ecols = [static_edges] if static_edges.shape[1] else []
        pointer_cols = [np.zeros((graph.num_edges, 1), self.dtype) for s in lay.feedback if s.kind == "pointer"]
        self.E = np.ascontiguousarray(np.hstack(ecols + pointer_cols)) if ecols or pointer_cols else None
        # every edge's features equal its reverse's: static inputs of a symmetric message graph
        # (elementwise in its weights); a fed-back pointer column is not (u's parent is not v's)
        self.edge_features_symmetric = bool(getattr(graph, "symmetric", False)) and not pointer_cols
        self.edge_dst = graph.edge_targets() if lay.feedback else None
        self._addressed: dict = {}  # id(buffer) -> nodes whose address/broadcast columns are set
        self._parts: dict = {}  # id(EdgeMLP) -> reused S and Q buffers

    # ------------------------------------------------------------ arithmetic
    def mm(self, A: np.ndarray, W: np.ndarray, out=None) -> np.ndarray:
        """``A @ W`` by the backend's own loop where it has one (native and numba:
        :func:`small_matmul`'s sums, for wide learned weights too), else by
        :func:`small_matmul` (BLAS for wide weights); see :meth:`Backend.product`."""
        return self.backend.product(A, W, out=out, fallback=small_matmul)

    def edges(self, mlp: EdgeMLP, S, Q, groups: np.ndarray, include_self: bool) -> EdgeInputs:
        """The edge pass's inputs for message (or score) MLP ``mlp`` with parts ``S``, ``Q``."""
        return EdgeInputs(S, Q, self.E, mlp.edge if self.E is not None else None, mlp.act0, mlp.tail, groups,
                          include_self)

    def parts(self, mlp: EdgeMLP, z: np.ndarray, groups: np.ndarray, include_self: bool) -> EdgeInputs:
        """Per-node parts ``S = z @ src`` and ``Q = z @ dst + bias`` (one shared bias row when the
        destination part is all zero), as edge pass inputs."""
        # S and Q live in buffers kept per MLP: fresh (n, k) arrays every step would cost page
        # faults (zeroed pages) comparable to the sparse pass itself.
        key = id(mlp)
        if key not in self._parts:
            k0 = mlp.src.shape[1]
            dst_used = bool(np.any(mlp.dst))
            self._parts[key] = (np.empty((z.shape[0], k0), dtype=self.dtype),
                                np.empty((z.shape[0], k0), dtype=self.dtype) if dst_used else None)
        S_buf, Q_buf = self._parts[key]
        S = self.mm(z, mlp.src, out=S_buf)
        if Q_buf is None:
            Q = np.ascontiguousarray(mlp.bias[None, :])
        else:
            Q = self.mm(z, mlp.dst, out=Q_buf)
            Q += mlp.bias
        return self.edges(mlp, S, Q, groups, include_self)

    # ------------------------------------------------------------ buffers
    def new_buffer(self) -> np.ndarray:
        """An (n, f_z) buffer ``z = [h, x, f, a, b]`` with the node inputs filled in."""
        lay = self.layout
        z = np.zeros((self.graph.num_nodes, lay.fz), dtype=self.dtype)
        set_columns(z, lay.d, self.x)
        return z

    def initial_state(self) -> np.ndarray:
        h = self.mm(self.x, self.plan.init_weight)
        h += self.plan.init_bias
        return h

    def initial_graph(self):
        return self.plan.graph_init.copy() if self.layout.dg else None

    # ------------------------------------------------------------ graph state
    def addressed_nodes(self, g) -> list:
        """The node each pointer channel of graph state ``g`` holds (channels holding no node id
        skipped), in pointer order."""
        n = self.graph.num_nodes
        nodes = []
        for c in self.layout.pointers:
            val = g[c]
            if np.isfinite(val) and val == np.floor(val) and 0 <= val < n:
                nodes.append(int(val))
        return nodes

    def address(self, z: np.ndarray, g) -> set:
        """Write the address and broadcast columns of buffer ``z`` for graph state ``g``;
        returns the nodes whose columns changed (addressed before or now)."""
        lay = self.layout
        if not lay.pointers:
            return set()
        prev = self._addressed.get(id(z), [])
        if prev:
            z[prev, lay.addr_col:lay.fz] = 0
        nodes = []
        for k, c in enumerate(lay.pointers):
            val = g[c]
            if np.isfinite(val) and val == np.floor(val) and 0 <= val < self.graph.num_nodes:
                z[int(val), lay.addr_col + k] = 1
                nodes.append(int(val))
        if lay.broadcast:
            for v in set(nodes):
                z[v, lay.bcast_col:lay.fz] = g[list(lay.broadcast)]
        self._addressed[id(z)] = nodes
        return set(prev) | set(nodes)

    def adopt_addresses(self, z: np.ndarray, g_used) -> None:
        """Record which nodes' address columns buffer ``z`` holds (set for ``g_used`` by a
        backend's own loop), so that :meth:`address` can clear them."""
        self._addressed[id(z)] = self.addressed_nodes(g_used)

    def readout_values(self, layer: LayerPlan, z_out: np.ndarray, rows=slice(None)) -> np.ndarray:
        """The readout MLP on ``[h', x]`` of the given rows of buffer ``z_out``."""
        return small_mlp(layer.readout.mlp, z_out[rows, :self.layout.hx], mm=self.mm).astype(self.dtype, copy=False)

    def reduce_readouts(self, layer: LayerPlan, r: np.ndarray) -> np.ndarray:
        """Readouts reduced over all nodes (see :func:`reduce_readout_channels`)."""
        return reduce_readout_channels(r, layer.readout.codes).astype(self.dtype)

    def graph_step(self, layer: LayerPlan, z_out: np.ndarray, g):
        """Readouts of the new node states (over all nodes), then the graph update."""
        return self.graph_step_from(layer, g, self.reduce_readouts(layer, self.readout_values(layer, z_out)))

    def graph_step_from(self, layer: LayerPlan, g, red):
        """The graph update from reduced readouts ``red``."""
        if layer.graph_update is None:
            return g
        g2, red2 = g[None, :], np.asarray(red)[None, :]
        new = small_mlp(layer.graph_update, g2, red2, mm=self.mm)[0]
        if layer.graph_gate is None:
            return new.astype(self.dtype)
        gate = sigmoid(small_mlp(layer.graph_gate, g2, red2, mm=self.mm)[0])
        return (gate * new + (1 - gate) * g).astype(self.dtype)

    # ------------------------------------------------------------ decoders and feedback
    def decode(self, name: str, z: np.ndarray, g=None) -> np.ndarray:
        """Decoder ``name`` on buffer ``z`` (and graph state ``g``)."""
        dec = self.plan.decoders[name]
        if dec.kind == "graph_scalar":
            return (g @ dec.weight + dec.bias)[0].astype(self.dtype)
        if self.layout.dg:
            self.address(z, g)
        if dec.kind == "pointer":
            _, winners = self.backend.edge_pass(self.graph, self.parts(dec.score, z, POINTER_GROUPS, self.layout.pointer_self))
            ptr = winners[:, 0]
            if np.any(ptr < 0):
                raise EngineError(f"pointer decoder {name!r} produced no winner (NaN scores)")
            return ptr
        logits = self.mm(z, dec.weight) + dec.bias
        if dec.kind == "mask":
            return (logits[:, 0] > 0).astype(self.dtype)
        if dec.kind == "scalar":
            return logits[:, 0].copy()
        if dec.kind == "categorical":
            return np.eye(logits.shape[1], dtype=self.dtype)[np.argmax(logits, axis=1)]
        out = np.zeros(logits.shape[0], dtype=self.dtype)  # mask_one: one node per graph
        out[segment_argmax(logits[:, 0], self.node_start)] = 1
        return out

    def feed_back(self, z: np.ndarray, others=(), g=None, decoded=None) -> None:
        """Decode the fed-back hints from ``z`` and write them into the ``f`` columns of ``z``
        and of the ``others`` buffers and into the pointer edge columns (``decoded``: values
        already decoded from this ``z``, by name)."""
        slots = self.layout.feedback
        values = {s.decoder: decoded[s.decoder] if decoded is not None and s.decoder in decoded
                  else self.decode(s.decoder, z, g) for s in slots}
        for s in slots:  # written after decoding: decoders read f_{t-1}
            val = values[s.decoder]
            if s.kind == "pointer":
                self.E[:, s.edge_col] = val[self.edge_dst] == self.graph.indices
                val = val == np.arange(val.shape[0])
            for buf in (z, *others):
                buf[:, s.col:s.col + s.width] = val.reshape(buf.shape[0], s.width)


def segment_argmax(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """For each segment ``values[starts[i]:starts[i + 1]]`` (the last to the end), the
    position of its first maximum, as :func:`numpy.argmax` picks it (a NaN counts as the
    maximum); ``starts`` ascending, beginning at 0, every segment non-empty."""
    if starts.size == 1:
        return np.array([np.argmax(values)])
    seg = np.repeat(np.arange(starts.size), np.diff(np.append(starts, values.size)))
    nan = np.isnan(values)
    # NaN first, then the largest value, then the lowest position: argmax's order
    key = np.where(nan, -np.inf, -values)
    order = np.lexsort((np.arange(values.size), key, ~nan, seg))
    first = np.flatnonzero(np.r_[True, seg[order][1:] != seg[order][:-1]])
    return order[first]
