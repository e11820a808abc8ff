"""The step loop: run any Model (compiled or learned) on a graph with any backend.

Per step, each processor layer does: per-node parts of the first message layer (dense,
NumPy), the fused sparse pass of the backend (message MLP + aggregation per group), then
the update MLP and the optional gate (dense, NumPy). Hints are decoded from the state
before each step (CLRS's hint ``t`` is the state before step ``t``); outputs from the final
state. The executor never looks at which algorithm a model computes.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from ._memory import require
from .backends import get_backend
from .backends.base import activate as _activate_code
from .backends.base import sigmoid as _sigmoid
from .errors import EngineError, ModelError
from .model import registry as R
from .model.spec import Model, feedback_layout


@dataclass
class ExecutionResult:
    """What :func:`execute` returns.

    Attributes
    ----------
    outputs : dict of name -> ndarray
        Decoded outputs (CLRS names), e.g. ``pi`` as int32 pointers.
    hints : dict of name -> ndarray or None
        Per-step decoded hints, ``(T, n)`` etc. as :func:`engine.reference` lays them out,
        when ``trace=True``.
    hidden : ndarray or None
        ``(T + 1, n, d)`` states ``h_0 .. h_T`` when ``hidden=True``.
    steps : int
        Processor steps run (``T``).
    converged : bool
        Whether the termination rule was met (False if ``max_steps`` cut the run short).
    backend : str
    threads : int
    mode : str
        ``dense``, ``active`` or ``auto`` (as run).
    node_updates : int
        Node states computed over all steps (``n * steps`` when dense).
    aggregates_reused : int
        Of those, the ones whose aggregate the native loop updated from the changed messages
        instead of reducing the node's in-edges again (incremental aggregation of max, min,
        argmax and argmin groups).
    seconds : float
        Wall time of the step loop.
    """

    outputs: dict
    hints: dict | None
    steps: int
    converged: bool
    backend: str
    threads: int
    hidden: np.ndarray | None = None
    mode: str = "dense"
    node_updates: int = 0
    aggregates_reused: int = 0
    seconds: float = 0.0
    final_state: np.ndarray | None = field(default=None, repr=False)
    final_graph: np.ndarray | None = field(default=None, repr=False)


SMALL_WEIGHTS = 4096  # weight matrices up to this size multiply without BLAS


def _mm(A: np.ndarray, W: np.ndarray, out=None) -> np.ndarray:
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


def _small_mlp(mlp, z: np.ndarray, agg=None) -> np.ndarray:
    """A readout or graph MLP ``(Wz, Wa, b0, act0, tail)`` on the rows of ``z`` and ``agg``, its
    products summed as :func:`_mm` sums them (the native loop's order, so both get the same
    bits): ``act0((z @ Wz + agg @ Wa) + b0)``, then each tail layer. Without ``agg`` (a
    readout) its term is left out: ``_mm``'s sums start from +0 and never are -0, so adding
    the zero term would not change a bit."""
    Wz, Wa, b0, act0, tail = mlp[:5]
    with np.errstate(over="ignore", invalid="ignore"):
        pre = _mm(z, Wz) if agg is None else _mm(z, Wz) + _mm(agg, Wa)
        y = _activate_code(pre + b0, act0)
        for W, b, act in tail:
            y = _activate_code(_mm(y, W) + b, act)
    return y


def reduce_readout_channels(r: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Reduce readout values ``r`` (n x c) over the nodes, channel by channel.

    ``codes[j]`` indexes :data:`registry.READOUT_CHANNELS`: ``min``/``max`` reduce channel
    ``j`` alone, NaN-ignoring (``numpy.fmin``/``fmax``); ``argmin``/``argmax`` make ``j`` the
    key of a group that runs over the following ``payload`` channels, all taken from the node
    with the smallest/largest key (lowest index on ties; NaN keys never win; node 0 if every
    key is NaN).
    """
    out = np.empty(r.shape[1], dtype=r.dtype)
    payload = R.READOUT_CHANNELS.index("payload")
    c = 0
    while c < len(codes):
        kind = R.READOUT_CHANNELS[codes[c]]
        if kind in ("min", "max"):
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


class _Runner:
    """Binds a model to a graph: inputs built once, weight blocks gathered once."""

    def __init__(self, model: Model, graph, source, backend):
        self.model = model
        self.spec = model.spec
        self.graph = graph
        self.backend = backend
        self.dtype = model.dtype
        self.W = model.weights
        n = graph.num_nodes
        cols = [R.NODE_FEATURES[name][0](n, source, self.dtype) for name in self.spec.get("node_inputs", [])]
        self.x = np.hstack(cols) if cols else np.zeros((n, 0), self.dtype)
        # fed-back hints: node columns f after x, one edge column per pointer after the edge inputs
        self.feedback = feedback_layout(self.spec)
        ecols = [graph.edge_weights(self.dtype)[:, None] for name in self.spec.get("edge_inputs", [])
                 if name == "weight"]
        ecols += [np.zeros((graph.num_edges, 1), self.dtype) for _, kind, _ in self.feedback if kind == "pointer"]
        self.E = np.ascontiguousarray(np.hstack(ecols)) if ecols else None
        self.fe_static = len(self.spec.get("edge_inputs", []))
        self.edge_dst = graph.edge_targets() if self.feedback else None
        # graph-level state and how nodes see it (z = [h, x, f, addresses, broadcast])
        d = model.hidden
        self.dg = self.spec.get("graph_hidden", 0)
        self.pointers = list(self.spec.get("graph_pointers", []))
        self.broadcast = list(self.spec.get("graph_broadcast", []))
        self.fb_col = d + self.x.shape[1]
        self.addr_col = self.fb_col + sum(w for _, _, w in self.feedback)
        self.bcast_col = self.addr_col + len(self.pointers)
        self.fz = self.bcast_col + len(self.broadcast)
        self._addressed: dict = {}  # id(buffer) -> nodes whose address/broadcast columns are set
        self.layers = [self._layer_blocks(i) for i in range(len(self.spec["layers"]))]
        self.pointer_blocks = {name: self._sparse_mlp(f"decoders.{name}", dec)
                               for name, dec in self.spec.get("decoders", {}).items() if dec["type"] == "pointer"}

    def mm(self, A: np.ndarray, W: np.ndarray, out=None) -> np.ndarray:
        """``A @ W`` as :func:`_mm` computes it, by the backend's own loop where it has one."""
        project = getattr(self.backend, "project", None)
        if (project is None or W.size > SMALL_WEIGHTS or A.dtype != W.dtype or not A.flags.c_contiguous
                or not W.flags.c_contiguous):
            return _mm(A, W, out=out)
        if out is None:
            out = np.empty((A.shape[0], W.shape[1]), dtype=A.dtype)
        return project(A, W, out)

    # ------------------------------------------------------------ weight blocks
    def _tail(self, prefix: str, block: dict) -> list:
        return [(self.W[f"{prefix}.{j}.weight"], self.W[f"{prefix}.{j}.bias"],
                 R.code(block["activations"][j], R.ACTIVATIONS, "activation"))
                for j in range(1, len(block["widths"]))]

    def _node_mlp(self, prefix: str, block: dict) -> tuple:
        norm = (self.W[f"{prefix}.ln.weight"], self.W[f"{prefix}.ln.bias"]) if block.get("layer_norm") else None
        return (self.W[f"{prefix}.node"], self.W[f"{prefix}.agg"], self.W[f"{prefix}.bias"],
                R.code(block["activations"][0], R.ACTIVATIONS, "activation"), self._tail(prefix, block), norm)

    def _sparse_mlp(self, prefix: str, block: dict) -> dict:
        W_dst = self.W[f"{prefix}.dst"]
        return {
            "W_src": self.W[f"{prefix}.src"],
            # a destination part that is all zero leaves one shared row: the bias
            "W_dst": W_dst if np.any(W_dst) else None,
            "bias": self.W[f"{prefix}.bias"],
            "We": self.W[f"{prefix}.edge"] if self.E is not None else None,
            "first_act": R.code(block["activations"][0], R.ACTIVATIONS, "activation"),
            "layers": self._tail(prefix, block),
        }

    def _layer_blocks(self, i: int) -> dict:
        spec = self.spec["layers"][i]
        p = f"layers.{i}"
        groups, start = [], 0
        for g in spec["groups"]:
            groups.append((R.code(g["kind"], R.REDUCE_KINDS, "aggregation"), start, start + g["size"]))
            start += g["size"]
        gate = spec.get("gate")
        blocks = {"message": self._sparse_mlp(f"{p}.message", spec["message"]),
                  "groups": np.array(groups, dtype=np.int64), "include_self": spec["include_self"],
                  "update": self._node_mlp(f"{p}.update", spec["update"]),
                  "gate": None if gate is None else self._node_mlp(f"{p}.gate", gate),
                  "readout": None, "graph_update": None, "graph_gate": None}
        if spec.get("readout") is not None:
            ro = spec["readout"]
            codes = []  # per channel (R.READOUT_CHANNELS): an arg group is its key, then payload
            for g in ro["groups"]:
                codes += [R.code(g["kind"], R.READOUT_KINDS, "readout reduction")]
                follow = "payload" if g["kind"] in R.ARG_REDUCE_KINDS else g["kind"]
                codes += [R.READOUT_CHANNELS.index(follow)] * (g["size"] - 1)
            blocks["readout"] = (self.W[f"{p}.readout.node"], self.W[f"{p}.readout.bias"],
                                 R.code(ro["activations"][0], R.ACTIVATIONS, "activation"),
                                 self._tail(f"{p}.readout", ro), np.array(codes, dtype=np.uint8))
        for key in ("graph_update", "graph_gate"):
            if spec.get(key) is not None:
                blocks[key] = (self.W[f"{p}.{key}.graph"], self.W[f"{p}.{key}.readout"], self.W[f"{p}.{key}.bias"],
                               R.code(spec[key]["activations"][0], R.ACTIVATIONS, "activation"),
                               self._tail(f"{p}.{key}", spec[key]))
        return blocks

    # ------------------------------------------------------------ graph state
    def initial_graph(self):
        return self.W["graph_init.bias"].copy() if self.dg else None

    def address(self, z: np.ndarray, g) -> set:
        """Write the address and broadcast columns of buffer ``z`` for graph state ``g``;
        returns the nodes whose columns changed (addressed before or now)."""
        if not self.pointers:
            return set()
        n = self.graph.num_nodes
        prev = self._addressed.get(id(z), [])
        if prev:
            z[prev, self.addr_col:self.fz] = 0
        nodes = []
        for k, c in enumerate(self.pointers):
            val = g[c]
            if np.isfinite(val) and val == np.floor(val) and 0 <= val < n:
                v = int(val)
                z[v, self.addr_col + k] = 1
                nodes.append(v)
        if self.broadcast:
            for v in set(nodes):
                z[v, self.bcast_col:self.fz] = g[self.broadcast]
        self._addressed[id(z)] = nodes
        return set(prev) | set(nodes)

    def adopt_addresses(self, z: np.ndarray, g_used) -> None:
        """Record which nodes' address columns buffer ``z`` holds (set for ``g_used`` by a
        backend's own loop), so that :meth:`address` can clear them."""
        n = self.graph.num_nodes
        nodes = []
        for c in self.pointers:
            val = g_used[c]
            if np.isfinite(val) and val == np.floor(val) and 0 <= val < n:
                nodes.append(int(val))
        self._addressed[id(z)] = nodes

    def readout_values(self, blocks: dict, z_out: np.ndarray, rows=slice(None)) -> np.ndarray:
        """The readout MLP on ``[h', x]`` of the given rows of buffer ``z_out``."""
        W, b, act, tail, _ = blocks["readout"]
        return _small_mlp((W, None, b, act, tail), z_out[rows, :self.fb_col]).astype(self.dtype, copy=False)

    def reduce_readouts(self, blocks: dict, r: np.ndarray) -> np.ndarray:
        """Readouts reduced over all nodes (see :func:`reduce_readout_channels`)."""
        return reduce_readout_channels(r, blocks["readout"][4]).astype(self.dtype)

    def graph_step(self, blocks: dict, z_out: np.ndarray, g):
        """Readouts of the new node states (over all nodes), then the graph update."""
        return self.graph_step_from(blocks, g, self.reduce_readouts(blocks, self.readout_values(blocks, z_out)))

    def graph_step_from(self, blocks: dict, g, red):
        """The graph update from reduced readouts ``red``."""
        if blocks["graph_update"] is None:
            return g
        g2, red2 = g[None, :], np.asarray(red)[None, :]
        new = _small_mlp(blocks["graph_update"], g2, red2)[0]
        if blocks["graph_gate"] is None:
            return new.astype(self.dtype)
        gate = _sigmoid(_small_mlp(blocks["graph_gate"], g2, red2)[0])
        return (gate * new + (1 - gate) * g).astype(self.dtype)

    # ------------------------------------------------------------ evaluation
    def new_buffer(self) -> np.ndarray:
        """An (n, f_z) buffer ``z = [h, x, addresses, broadcast]`` with the inputs filled in."""
        d = self.model.hidden
        z = np.zeros((self.graph.num_nodes, self.fz), dtype=self.dtype)
        z[:, d:self.fb_col] = self.x
        return z

    def feed_back(self, z: np.ndarray, others=(), g=None, decoded=None) -> None:
        """Decode the fed-back hints from ``z`` and write them into the ``f`` columns of ``z``
        and of the ``others`` buffers and into the pointer edge columns (``decoded``: values
        already decoded from this ``z``, by name)."""
        col, ecol = self.fb_col, self.fe_static
        values = {}
        for name, kind, width in self.feedback:
            val = decoded[name] if decoded is not None and name in decoded else self.decode(name, z, g)
            values[name] = val
        for name, kind, width in self.feedback:  # written after decoding: decoders read f_{t-1}
            val = values[name]
            if kind == "pointer":
                self.E[:, ecol] = val[self.edge_dst] == self.graph.indices
                ecol += 1
                val = val == np.arange(val.shape[0])
            for buf in (z, *others):
                buf[:, col:col + width] = val.reshape(buf.shape[0], width)
            col += width

    def edge_args(self, blocks: dict, z: np.ndarray, groups: np.ndarray, include_self: bool) -> dict:
        # S and Q live in buffers kept with the weight blocks: fresh (n, k) arrays every step
        # would cost page faults (zeroed pages) comparable to the sparse pass itself.
        if "S_buf" not in blocks:
            k0 = blocks["W_src"].shape[1]
            blocks["S_buf"] = np.empty((z.shape[0], k0), dtype=self.dtype)
            blocks["Q_buf"] = np.empty((z.shape[0], k0), dtype=self.dtype) if blocks["W_dst"] is not None else None
        S = self.mm(z, blocks["W_src"], out=blocks["S_buf"])
        if blocks["W_dst"] is None:
            Q = np.ascontiguousarray(blocks["bias"][None, :])
        else:
            Q = self.mm(z, blocks["W_dst"], out=blocks["Q_buf"])
            Q += blocks["bias"]
        return self.edge_args_from(blocks, S, Q, groups, include_self)

    def step(self, z: np.ndarray, spare: np.ndarray, watch: np.ndarray | None, g=None,
             graph_watch=None):
        """One processor step from buffer ``z`` using ``spare``; returns
        ``(z', spare', changed, g')`` where ``changed`` counts nodes whose watched channels
        changed, plus one if a watched graph channel changed (None if not tracked)."""
        d = self.model.hidden
        start = z
        keep_start = len(self.layers) > 1 and watch is not None
        if keep_start:
            start = z[:, :d].copy()
        g_start = g
        changed = None
        for blocks in self.layers:
            if self.dg:
                self.address(z, g)
            edges = self.edge_args(blocks["message"], z, blocks["groups"], blocks["include_self"])
            changed = self.backend.layer(self.graph, edges, z, d, blocks["update"], blocks["gate"], spare,
                                         watch=None if keep_start else watch)
            if blocks["readout"] is not None:
                g = self.graph_step(blocks, spare, g)
            z, spare = spare, z
        if keep_start:
            w = watch.astype(bool)
            changed = int(np.any(z[:, :d][:, w] != start[:, w], axis=1).sum())
        if graph_watch is not None and watch is not None and graph_watch.size:
            changed += int(np.any(g[graph_watch] != g_start[graph_watch]))
        return z, spare, changed, g

    def edge_args_from(self, blocks: dict, S, Q, groups: np.ndarray, include_self: bool) -> dict:
        return {"S": S, "Q": Q, "E": self.E, "We": blocks["We"], "first_act": blocks["first_act"],
                "layers": blocks["layers"], "groups": groups, "include_self": include_self}

    def decode(self, name: str, z: np.ndarray, g=None) -> np.ndarray:
        dec = self.spec["decoders"][name]
        p = f"decoders.{name}"
        kind = dec["type"]
        if kind == "graph_scalar":
            return (g @ self.W[f"{p}.weight"] + self.W[f"{p}.bias"])[0].astype(self.dtype)
        if self.dg:
            self.address(z, g)
        if kind == "pointer":
            groups = np.array([(R.REDUCE_KINDS.index("argmax"), 0, 1)], dtype=np.int64)
            edges = self.edge_args(self.pointer_blocks[name], z, groups, True)
            _, winners = self.backend.edge_pass(self.graph, **edges)
            ptr = winners[:, 0]
            if np.any(ptr < 0):
                raise EngineError(f"pointer decoder {name!r} produced no winner (NaN scores)")
            return ptr
        logits = self.mm(z, self.W[f"{p}.weight"]) + self.W[f"{p}.bias"]
        if kind == "mask":
            return (logits[:, 0] > 0).astype(self.dtype)
        if kind == "scalar":
            return logits[:, 0].copy()
        if kind == "categorical":
            return np.eye(logits.shape[1], dtype=self.dtype)[np.argmax(logits, axis=1)]
        out = np.zeros(logits.shape[0], dtype=self.dtype)  # mask_one: one node per graph
        out[np.argmax(logits[:, 0])] = 1
        return out


class _ActiveStepper:
    """Active execution: recompute only the rows whose inputs changed.

    A node's next state is a deterministic function of its own state and inputs, of its
    in-neighbours' states and edge inputs, and of the graph state where it addresses the node.
    So when an application of layer ``i`` sees the set ``D`` of nodes whose input rows changed
    since the previous application of layer ``i`` (their state, or their address and broadcast
    features), only ``D`` and the out-neighbours of ``D`` can change; every other row keeps
    the output it had then. The stepper keeps one output buffer per layer (two for a one-layer
    model, kept in sync at the changed rows), the per-node parts of each layer's first message
    layer (``S``, ``Q``) and each layer's readout values, all updated at changed rows only.
    Results are identical to dense execution (tests hold them bit for bit).

    ``policy="auto"`` runs a dense application instead when more than ``DENSE_NODES`` of the
    nodes changed or the active rows carry more than ``DENSE_FRACTION`` of the edges. Graph
    readouts are reduced over all nodes here (O(n) per layer with a readout); the native step
    loop maintains them incrementally.
    """

    DENSE_FRACTION = 0.3  # of the edges: above it a dense application is cheaper
    DENSE_NODES = 0.1  # of the nodes changed: above it the active rows are nearly all rows

    def __init__(self, run: "_Runner", policy: str):
        self.run = run
        self.policy = policy
        g = run.graph
        self.n, self.m = g.num_nodes, g.num_edges
        self.L = len(run.layers)
        self.ring_size = max(self.L, 2)
        self.ring = None
        self.k = 0  # layer applications done
        self.changed = None  # rows changed by the last application (None: all)
        self.flags = np.zeros(self.n, dtype=np.uint8)
        self.out_indptr, self.out_targets, _ = g.out_csr()
        self.in_degree = g.in_degree()
        self.S = [None] * self.L
        self.Q = [None] * self.L
        self.readouts = [None] * self.L
        self.last_addr = [None] * self.L
        self.active_rows = 0

    def _rows(self, delta):
        if delta is None:
            return None
        if self.policy == "auto" and delta.size > self.DENSE_NODES * self.n:
            return None
        starts = self.out_indptr[delta]
        counts = self.out_indptr[delta + 1] - starts
        total = int(counts.sum())
        if self.policy == "auto" and total > self.DENSE_FRACTION * self.m:
            return None
        pos = np.repeat(starts - np.cumsum(counts) + counts, counts) + np.arange(total, dtype=np.int64)
        targets = self.out_targets[pos]
        if total > self.n // 64:  # many candidates: mark them and scan (O(n) bytes, no sort)
            mark = np.zeros(self.n, dtype=np.bool_)
            mark[delta] = True
            mark[targets] = True
            rows = np.flatnonzero(mark)
        else:
            rows = np.unique(np.concatenate([delta, targets.astype(np.int64)]))
        if self.policy == "auto" and int(self.in_degree[rows].sum()) > self.DENSE_FRACTION * self.m:
            return None
        return rows

    def _address_delta(self, i, g):
        """Nodes whose address/broadcast features for layer ``i`` changed since its last use."""
        run = self.run
        if not run.dg or not run.pointers:
            return None
        nodes = set()
        for c in run.pointers:
            val = g[c]
            if np.isfinite(val) and val == np.floor(val) and 0 <= val < self.n:
                nodes.add(int(val))
        key = (frozenset(nodes), g[run.broadcast].tobytes())
        prev = self.last_addr[i]
        self.last_addr[i] = key
        if prev is None or prev == key:
            return None if prev is not None else set()
        return set(prev[0]) | nodes

    def _parts(self, i, inp, delta, full):
        msg = self.run.layers[i]["message"]
        if full or self.S[i] is None:
            self.S[i] = np.ascontiguousarray(_mm(inp, msg["W_src"]))
            self.Q[i] = (np.ascontiguousarray(msg["bias"][None, :]) if msg["W_dst"] is None
                         else np.ascontiguousarray(_mm(inp, msg["W_dst"]) + msg["bias"]))
        elif delta.size:
            self.S[i][delta] = _mm(inp[delta], msg["W_src"])
            if msg["W_dst"] is not None:
                self.Q[i][delta] = _mm(inp[delta], msg["W_dst"]) + msg["bias"]

    def _readout(self, i, blocks, out, changed, full):
        run = self.run
        if full or self.readouts[i] is None:
            self.readouts[i] = run.readout_values(blocks, out).copy()
        elif changed.size:
            self.readouts[i][changed] = run.readout_values(blocks, out, changed)
        return run.reduce_readouts(blocks, self.readouts[i])

    def step(self, z, spare, watch, g=None, graph_watch=None):
        run, d = self.run, self.run.model.hidden
        if self.ring is None:
            self.ring = [spare] + [run.new_buffer() for _ in range(self.ring_size - 2)] + [z]
        first_step = self.k < self.L
        start = z[:, :d].copy() if first_step else None
        g_start = g
        count = 0
        for i, blocks in enumerate(run.layers):
            R = self.ring_size
            inp, out = self.ring[(self.k - 1) % R], self.ring[self.k % R]
            adelta = self._address_delta(i, g)
            if run.dg:
                run.address(inp, g)
            if self.changed is None or self.k < self.L:
                delta = None
            else:
                delta = self.changed if not adelta else np.union1d(self.changed, np.fromiter(adelta, np.int64))
            rows = self._rows(delta)
            if rows is not None and self.L == 1 and self.changed.size:
                out[self.changed, :d] = inp[self.changed, :d]  # out == inp outside the rows written
            self._parts(i, inp, delta, full=delta is None or delta.size > self.n // 64)
            edges = run.edge_args_from(blocks["message"], self.S[i], self.Q[i], blocks["groups"],
                                       blocks["include_self"])
            compare_out = not (self.k < self.L) and (self.L > 1 or rows is not None)
            count = run.backend.layer(run.graph, edges, inp, d, blocks["update"], blocks["gate"], out,
                                      watch=watch, changed=self.flags, rows=rows, compare_out=compare_out)
            if rows is None:
                self.changed = np.flatnonzero(self.flags) if not first_step else np.arange(self.n)
                self.active_rows += self.n
            else:
                self.changed = rows[self.flags[rows] != 0]
                self.active_rows += rows.size
            if blocks["readout"] is not None:
                red = self._readout(i, blocks, out, self.changed, full=rows is None)
                g = run.graph_step_from(blocks, g, red)
            self.k += 1
        z = self.ring[(self.k - 1) % self.ring_size]
        if first_step and watch is not None:
            w = watch.astype(bool)
            count = int(np.any(z[:, :d][:, w] != start[:, w], axis=1).sum())
        if graph_watch is not None and watch is not None and graph_watch.size:
            count += int(np.any(g[graph_watch] != g_start[graph_watch]))
        return z, None, count, g


class _NativeLoop:
    """Steps run by the backend's own loop (``run_steps``, csrc/engine/active.h), in chunks
    between which the executor reports progress. The same decisions as
    :class:`_ActiveStepper`, made in C++, with readout reductions kept in 16-ary trees."""

    POLICY = {"dense": 0, "active": 1, "auto": 2}

    def __init__(self, run: "_Runner", mode: str, z, spare, g):
        self.run = run
        graph = run.graph
        n, dtype = graph.num_nodes, run.dtype
        # one buffer per layer (a single layer updates its buffer in place; see LoopArgs::ring)
        L = len(run.layers)
        self.ring = ([spare] + [run.new_buffer() for _ in range(L - 2)] if L > 1 else []) + [z]
        self.buf_g = [np.full(run.dg, np.nan, dtype=dtype) for _ in range(L)]
        self.g = (g if g is not None else np.zeros(0)).astype(dtype).copy()
        self.applications = 0
        self.changed = None
        self.node_updates = 0
        self.aggregates_reused = 0
        out_indptr, out_targets, out_edge_ids = graph.out_csr()
        has_edges = run.E is not None and run.E.shape[1] > 0
        layers = []
        for b in run.layers:
            msg = b["message"]
            k0 = msg["W_src"].shape[1]
            ld = dict(
                S=np.zeros((n, k0), dtype=dtype),
                Q=np.zeros((n, k0), dtype=dtype) if msg["W_dst"] is not None else msg["bias"][None, :].copy(),
                E=run.E if has_edges else None, We=msg["We"] if has_edges else None,
                first_act=msg["first_act"], layers=list(msg["layers"]), groups=b["groups"],
                include_self=b["include_self"], W_src=msg["W_src"], W_dst=msg["W_dst"], bias=msg["bias"],
                update=tuple(b["update"]), gate=None if b["gate"] is None else tuple(b["gate"]),
                readout=None, graph_update=None, graph_gate=None,
                last_g=np.full(run.dg, np.nan, dtype=dtype))
            stores = (None, None) if mode == "dense" else self._aggregate_store(n, b, dtype)
            ld["agg_store"], ld["winner_store"] = stores
            if b["readout"] is not None:
                W, bias, act, tail, codes = b["readout"]
                r = len(codes)
                ld["readout"] = (W, np.zeros((0, W.shape[1]), dtype=dtype), bias, act, list(tail), codes)
                ld["readout_cache"] = np.zeros((n, r), dtype=dtype)
                ld["readout_tree"] = np.zeros((run.backend.readout_tree_rows(n), r), dtype=dtype)
                for key in ("graph_update", "graph_gate"):
                    if b[key] is not None:
                        Wg, Wr, b0, a0, t = b[key]
                        ld[key] = (Wg, Wr, b0, a0, list(t))
            layers.append(ld)
        self.kwargs = dict(
            indptr=graph.indptr, indices=graph.indices, out_indptr=out_indptr, out_targets=out_targets,
            out_edge_ids=out_edge_ids,
            layers=layers, ring=self.ring, buf_g=self.buf_g, d=run.model.hidden, hx=run.fb_col,
            addr_col=run.addr_col, bcast_col=run.bcast_col, pointers=list(run.pointers),
            broadcast=list(run.broadcast), g=self.g, policy=self.POLICY[mode],
            dense_nodes=_ActiveStepper.DENSE_NODES, dense_edges=_ActiveStepper.DENSE_FRACTION)

    # incremental aggregation keeps every row's aggregate (n x width); a wider one is not kept
    INCREMENTAL_MAX_WIDTH = 16

    def _aggregate_store(self, n: int, blocks: dict, dtype):
        """The loop's store of a layer's aggregates and arg-group winners, or ``(None, None)``
        where they cannot be kept incrementally (a sum, mean or softmax group) or are too wide."""
        kinds = [R.REDUCE_KINDS[int(code)] for code, _, _ in blocks["groups"]]
        width = int(blocks["groups"][-1][2]) if len(blocks["groups"]) else 0
        if not set(kinds) <= {"max", "min", *R.ARG_REDUCE_KINDS} or not 0 < width <= self.INCREMENTAL_MAX_WIDTH:
            return None, None
        num_arg = sum(k in R.ARG_REDUCE_KINDS for k in kinds)
        require(n * (width * np.dtype(dtype).itemsize + 4 * num_arg), "the native loop's aggregate store")
        winners = np.full((n, num_arg), -1, dtype=np.int32) if num_arg else None
        return np.zeros((n, width), dtype=dtype), winners

    def current(self):
        return self.ring[(self.applications - 1) % len(self.ring)]

    def steps(self, watch, graph_watch, count: int):
        """Run up to ``count`` steps; returns ``(z, g, steps_run, converged)``."""
        d = self.run.model.hidden
        kw = dict(self.kwargs, changed=self.changed, max_steps=int(count), until_fixed=watch is not None,
                  watch=watch if watch is not None else np.zeros(d, np.uint8),
                  graph_watch=[] if graph_watch is None else [int(c) for c in graph_watch],
                  applications=self.applications)
        ran, converged, updates, self.applications, self.changed, reused = self.run.backend.run_steps(
            self.run.graph, **kw)
        self.node_updates += updates
        self.aggregates_reused += reused
        z = self.current()
        # the loop wrote address columns; let the runner know which, before it decodes
        self.run.adopt_addresses(z, self.buf_g[(self.applications - 1) % len(self.ring)])
        return z, (self.g if self.run.dg else None), ran, converged


MODES = ("dense", "active", "auto")


def check_domain(model: Model, graph) -> None:
    """Refuse graphs outside the model's declared exact domain."""
    dom = model.spec.get("exact_domain") or {}
    n = graph.num_nodes
    if "max_nodes" in dom and n > dom["max_nodes"]:
        raise EngineError(f"model {model.name!r} is exact for at most {dom['max_nodes']} nodes in "
                          f"{model.spec['dtype']}; this graph has {n} (compile with dtype='float64')")
    if graph.weights is not None and graph.num_edges:
        w = np.abs(graph.weights)
        if "max_abs_weight" in dom and w.max() > dom["max_abs_weight"]:
            raise EngineError(f"model {model.name!r} is exact for |weight| <= {dom['max_abs_weight']:g}; "
                              f"this graph has {w.max():g}")
        nz = w[w > 0]
        if "min_abs_nonzero_weight" in dom and nz.size and nz.min() < dom["min_abs_nonzero_weight"]:
            raise EngineError(f"model {model.name!r} is exact for nonzero |weight| >= "
                              f"{dom['min_abs_nonzero_weight']:g}; this graph has {nz.min():g}")


def execute(model: Model, graph, source: int | None = None, *, backend: str | None = None,
            trace: bool = False, steps: int | None = None, max_steps: int | None = None,
            hidden: bool = False, threads: int | None = None, mode: str = "auto",
            progress=None, device: str | None = None) -> ExecutionResult:
    """Run ``model`` on ``graph``.

    Parameters
    ----------
    model : Model
    graph : Graph
    source : int, optional
        Source node, required when the model reads the ``source`` input.
    backend : {"native", "numba", "reference"}, optional
        Default: ``$ENGINE_BACKEND``, else the first that loads.
    trace : bool
        Decode every hint the model declares at every step.
    steps : int, optional
        Run exactly this many steps (CLRS's oracle trace length) instead of the model's
        termination rule.
    max_steps : int, optional
        Safety bound for fixed-point termination (default ``4 n + 16``).
    hidden : bool
        Keep every hidden state.
    threads : int, optional
        Worker threads of the backend.
    mode : {"auto", "dense", "active"}
        ``dense`` recomputes every node every step; ``active`` only the nodes whose own state
        or an in-neighbour's state changed in the previous step (identical results, see
        :class:`_ActiveStepper`); ``auto`` (default) steps actively while few nodes change and
        densely otherwise.
    progress : callable, optional
        Called as ``progress(step)`` after each step.
    device : str, optional
        For ``backend="torch"``: ``"cpu"``, ``"cuda"``, ``"cuda:1"``... (default
        ``$ENGINE_TORCH_DEVICE``, else CUDA when available). Other backends run on the CPU.
    """
    if not isinstance(model, Model):
        raise ModelError(f"expected an engine.Model, got {type(model).__name__}")
    n = graph.num_nodes
    if n == 0:
        raise EngineError("the graph has no nodes")
    needs_source = any(R.NODE_FEATURES[f][1] for f in model.spec.get("node_inputs", []))
    if needs_source:
        source = 0 if source is None else source
        if not isinstance(source, (int, np.integer)) or not 0 <= source < n:
            raise EngineError(f"source must be a node id in [0, {n}), got {source!r}")
    if mode not in MODES:
        raise EngineError(f"mode must be one of {list(MODES)}, got {mode!r}")
    check_domain(model, graph)
    be = get_backend(backend, threads)
    if device is not None:
        if not hasattr(be, "on"):
            raise EngineError(f"device={device!r} needs backend='torch'; the {be.name} backend runs on the CPU")
        be = be.on(device)
    run = _Runner(model, graph, source, be)
    if run.feedback and mode == "active":
        raise EngineError(f"model {model.name!r} feeds decoded hints back (spec.feedback), so its inputs "
                          f"change at every node every step; run it with mode='dense' or 'auto'")
    if run.feedback:
        mode = "dense"  # auto: every input column changes every step, nothing to skip
    stepper = _ActiveStepper(run, mode) if mode != "dense" else None
    # the backend's own step loop, when it has one and nothing is needed between steps
    use_native_loop = be.has_step_loop and not trace and not hidden and not run.feedback
    term = model.spec["termination"]
    if steps is None and term["rule"] == "steps":
        raise EngineError(f"model {model.name!r} runs a given number of steps; pass steps=")
    if steps is not None and (not isinstance(steps, (int, np.integer)) or steps < 0):
        raise EngineError(f"steps must be a non-negative integer, got {steps!r}")
    limit = steps if steps is not None else (max_steps if max_steps is not None else 4 * n + 16)
    d = model.hidden
    if hidden:
        require((limit + 1) * n * d * model.dtype.itemsize, "keeping every hidden state",
                "pass hidden=False, or steps=/max_steps= to bound the run")
    watch = graph_watch = None
    if steps is None:
        watch = np.zeros(d, dtype=np.uint8)
        watch[term["channels"]] = 1
        graph_watch = np.array(term.get("graph_channels", []), dtype=np.int64)
    g = run.initial_graph()
    t0 = time.perf_counter()
    z = run.new_buffer()
    # the native loop runs a single layer in place; every other loop needs a second buffer
    spare = run.new_buffer() if not (use_native_loop and len(run.layers) == 1) else None
    z[:, :d] = run.mm(run.x, model.weights["init.weight"]) + model.weights["init.bias"]
    native_loop = _NativeLoop(run, mode, z, spare, g) if use_native_loop else None
    states = [z[:, :d].copy()] if hidden else None
    hint_rows = {name: [] for name in model.spec.get("hints", {})} if trace else None
    converged = steps is not None
    t = 0
    chunk = 16
    while native_loop is not None and t < limit:
        z, g, ran, done = native_loop.steps(watch, graph_watch, min(chunk, limit - t))
        t += ran
        chunk = min(chunk * 2, 1 << 16)
        if progress is not None:
            progress(t)
        if watch is not None and done:
            converged = True
            break
    while native_loop is None and t < limit:
        decoded = {}
        if trace:
            for clrs_name, dec in model.spec["hints"].items():
                decoded[dec] = run.decode(dec, z, g)
                hint_rows[clrs_name].append(decoded[dec])
        if run.feedback:
            run.feed_back(z, (spare,), g, decoded)
        if stepper is None:
            z, spare, changed, g = run.step(z, spare, watch, g, graph_watch)
        else:
            z, spare, changed, g = stepper.step(z, spare, watch, g, graph_watch)
        t += 1
        if hidden:
            states.append(z[:, :d].copy())
        if progress is not None:
            progress(t)
        if watch is not None and changed == 0:
            converged = True
            break
    if not converged:
        warnings.warn(f"{model.name}: stopped after max_steps={limit} without reaching a fixed point",
                      RuntimeWarning, stacklevel=2)
    outputs = {name: run.decode(dec, z, g) for name, dec in model.spec.get("outputs", {}).items()}
    hints = {k: np.stack(v) if v else np.zeros((0, n)) for k, v in hint_rows.items()} if trace else None
    final_graph = None if g is None else g.copy()
    return ExecutionResult(outputs=outputs, hints=hints, steps=t, converged=converged, backend=be.name,
                           threads=be.threads(), hidden=np.stack(states) if hidden else None, mode=mode,
                           node_updates=(native_loop.node_updates if native_loop else
                                         stepper.active_rows if stepper else n * t * len(run.layers)),
                           aggregates_reused=native_loop.aggregates_reused if native_loop else 0,
                           seconds=time.perf_counter() - t0, final_state=z[:, :d].copy(), final_graph=final_graph)
