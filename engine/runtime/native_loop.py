"""Steps run by the native backend's own loop (``run_steps``, csrc/engine/active.h), in
chunks between which the executor reports progress: the same decisions as
:class:`~engine.runtime.python_loop.ActiveStepper`, made in C++, with readout reductions
kept in 16-ary trees and max/min/arg aggregates kept incrementally.

:class:`NativeLoopArgs` is what the loop reads (``python/bindings.cpp`` takes it attribute by
attribute): the graph, one :class:`NativeLayer` per layer (its plan and the buffers the loop
keeps for it), the ring of state buffers and the layout of ``z``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._memory import require
from ..model import registry as R
from ..model.plan import LayerPlan
from .bound import BoundModel
from .python_loop import ActiveStepper


@dataclass
class NativeLayer:
    """One layer of the loop: its plan and the buffers the loop keeps for it. It also has the
    attributes of :class:`~engine.backends.base.EdgeInputs` (the loop's parts ``S``/``Q``,
    the edge inputs, the message's activation, tail and groups)."""

    plan: LayerPlan
    S: np.ndarray  # (n, k0): the per-node source parts, kept up to date
    Q: np.ndarray  # (n, k0), or the (1, k0) bias row when W_dst is None
    W_dst: np.ndarray | None  # None: the destination part is all zero
    E: np.ndarray | None  # (m, f_e) edge inputs
    We: np.ndarray | None
    last_g: np.ndarray  # (dg,): the graph state the layer saw at its previous application
    agg_store: np.ndarray | None = None  # (n, k): kept aggregates (incremental aggregation)
    winner_store: np.ndarray | None = None  # (n, arg groups)
    readout_cache: np.ndarray | None = None  # (n, r): every node's readout values
    readout_tree: np.ndarray | None = None  # (tree rows, r)

    @property
    def act0(self) -> int:
        return self.plan.message.act0

    @property
    def tail(self) -> tuple:
        return self.plan.message.tail

    @property
    def groups(self) -> np.ndarray:
        return self.plan.groups

    @property
    def include_self(self) -> bool:
        return self.plan.include_self


@dataclass
class NativeLoopArgs:
    """Everything ``run_steps`` reads besides the per-call arguments."""

    indptr: np.ndarray
    indices: np.ndarray
    out_indptr: np.ndarray
    out_targets: np.ndarray
    out_edge_ids: np.ndarray | None  # the row of E with each out-edge's features (None: no E)
    layers: list  # of NativeLayer
    ring: list  # one (n, f_z) buffer per layer (a single layer updates its buffer in place)
    buf_g: list  # per ring buffer, the graph state its address columns hold (NaN: none)
    d: int
    hx: int
    addr_col: int
    bcast_col: int
    pointers: list
    broadcast: list
    g: np.ndarray  # (dg,) the graph state, updated in place
    mode: int  # an EXECUTION_MODES code
    dense_nodes: float = ActiveStepper.DENSE_NODES
    dense_edges: float = ActiveStepper.DENSE_FRACTION


# incremental aggregation keeps every row's aggregate (n x width); a wider one is not kept
INCREMENTAL_MAX_WIDTH = 16


def aggregate_store(n: int, layer: LayerPlan, dtype):
    """The loop's store of a layer's aggregates and arg-group winners, or ``(None, None)``
    where they cannot be kept incrementally (a group of a kind that is not
    :attr:`~engine.model.registry.Aggregation.incremental`) or are too wide."""
    kinds = layer.aggregations
    width = layer.message.width
    if not all(k.incremental for k in kinds) or not 0 < width <= INCREMENTAL_MAX_WIDTH:
        return None, None
    num_arg = sum(k.arg for k in kinds)
    require(n * (width * np.dtype(dtype).itemsize + 4 * num_arg), "the native loop's aggregate store")
    winners = np.full((n, num_arg), -1, dtype=np.int32) if num_arg else None
    return np.zeros((n, width), dtype=dtype), winners


class NativeLoop:
    """Runs ``run``'s steps in the native backend's loop from state buffer ``z`` (and, for
    several layers, ``spare``) and graph state ``g``."""

    def __init__(self, run: BoundModel, mode: str, z, spare, g):
        self.run = run
        graph, lay = run.graph, run.layout
        n, dtype = graph.num_nodes, run.dtype
        L = len(run.plan.layers)
        ring = ([spare] + [run.new_buffer() for _ in range(L - 2)] if L > 1 else []) + [z]
        self.applications = 0
        self.changed = None
        self.node_updates = 0
        self.aggregates_reused = 0
        # the out-edges' ids only where edge features are read through them
        # out_edge_ids: the row of run.E holding each out-edge's features, only where edge
        # features are read. Where every edge's features equal its reverse's, the out-edge
        # u -> v at position e of a symmetric graph's CSR (its in-edge v -> u) has its own row e.
        if run.E is None:
            out_indptr, out_targets, out_edge_ids = (*graph.out_adjacency(), None)
        elif run.edge_features_symmetric:
            out_indptr, out_targets = graph.out_adjacency()
            out_edge_ids = np.arange(graph.num_edges, dtype=np.int64)
        else:
            out_indptr, out_targets, out_edge_ids = graph.out_csr()
        layers = []
        for plan in run.plan.layers:
            msg = plan.message
            k0 = msg.src.shape[1]
            dst_used = bool(np.any(msg.dst))
            stores = (None, None) if mode == "dense" else aggregate_store(n, plan, dtype)
            ly = NativeLayer(
                plan=plan, S=np.zeros((n, k0), dtype=dtype),
                Q=np.zeros((n, k0), dtype=dtype) if dst_used else msg.bias[None, :].copy(),
                W_dst=msg.dst if dst_used else None, E=run.E, We=msg.edge if run.E is not None else None,
                last_g=np.full(lay.dg, np.nan, dtype=dtype), agg_store=stores[0], winner_store=stores[1])
            if plan.readout is not None:
                r = len(plan.readout.codes)
                ly.readout_cache = np.zeros((n, r), dtype=dtype)
                ly.readout_tree = np.zeros((run.backend.readout_tree_rows(n), r), dtype=dtype)
            layers.append(ly)
        self.args = NativeLoopArgs(
            indptr=graph.indptr, indices=graph.indices, out_indptr=out_indptr, out_targets=out_targets,
            out_edge_ids=out_edge_ids, layers=layers, ring=ring,
            buf_g=[np.full(lay.dg, np.nan, dtype=dtype) for _ in range(L)], d=lay.d, hx=lay.hx,
            addr_col=lay.addr_col, bcast_col=lay.bcast_col, pointers=list(lay.pointers),
            broadcast=list(lay.broadcast), g=(g if g is not None else np.zeros(0)).astype(dtype).copy(),
            mode=R.EXECUTION_MODES.index(mode))

    def current(self):
        return self.args.ring[(self.applications - 1) % len(self.args.ring)]

    def steps(self, watch, graph_watch, count: int):
        """Run up to ``count`` steps; returns ``(z, g, steps_run, converged)``."""
        d = self.run.layout.d
        ran, converged, updates, self.applications, self.changed, reused = self.run.backend.run_steps(
            self.run.graph, self.args, watch=watch if watch is not None else np.zeros(d, np.uint8),
            graph_watch=[] if graph_watch is None else [int(c) for c in graph_watch], changed=self.changed,
            max_steps=int(count), until_fixed=watch is not None, applications=self.applications)
        self.node_updates += updates
        self.aggregates_reused += reused
        z = self.current()
        # the loop wrote address columns; let the bound model know which, before it decodes
        self.run.adopt_addresses(z, self.args.buf_g[(self.applications - 1) % len(self.args.ring)])
        return z, (self.args.g if self.run.layout.dg else None), ran, converged
