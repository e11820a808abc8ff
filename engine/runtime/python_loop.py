"""The step loops driven from Python (every backend; the native backend's own loop is
:mod:`engine.runtime.native_loop`): a dense step, and an active stepper that recomputes
only the rows whose inputs changed.

Both return ``(z', spare', changed, g')`` per step, where ``changed`` counts the nodes whose
watched channels changed, plus one if a watched graph channel changed.
"""
from __future__ import annotations

import numpy as np

from .bound import BoundModel


def dense_step(run: BoundModel, z: np.ndarray, spare: np.ndarray, watch: np.ndarray | None, g=None,
               graph_watch=None):
    """One processor step over every row, from buffer ``z`` using ``spare``."""
    d = run.layout.d
    start = z
    keep_start = len(run.plan.layers) > 1 and watch is not None
    if keep_start:
        start = z[:, :d].copy()
    g_start = g
    changed = None
    for layer in run.plan.layers:
        if run.layout.dg:
            run.address(z, g)
        edges = run.parts(layer.message, z, layer.groups, layer.include_self)
        changed = run.backend.layer(run.graph, edges, z, d, layer.update, layer.gate, spare,
                                    watch=None if keep_start else watch)
        if layer.readout is not None:
            g = run.graph_step(layer, spare, g)
        z, spare = spare, z
    if keep_start:
        w = watch.astype(bool)
        changed = int(np.any(z[:, :d][:, w] != start[:, w], axis=1).sum())
    if graph_watch is not None and watch is not None and graph_watch.size:
        changed += int(np.any(g[graph_watch] != g_start[graph_watch]))
    return z, spare, changed, g


class ActiveStepper:
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

    def __init__(self, run: BoundModel, policy: str):
        self.run = run
        self.policy = policy
        g = run.graph
        self.n, self.m = g.num_nodes, g.num_edges
        self.L = len(run.plan.layers)
        self.ring_size = max(self.L, 2)
        self.ring = None
        self.k = 0  # layer applications done
        self.changed = None  # rows changed by the last application (None: all)
        self.flags = np.zeros(self.n, dtype=np.uint8)
        self.out_indptr, self.out_targets = g.out_adjacency()
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
        if not run.layout.dg or not run.layout.pointers:
            return None
        nodes = set(run.addressed_nodes(g))
        key = (frozenset(nodes), g[list(run.layout.broadcast)].tobytes())
        prev = self.last_addr[i]
        self.last_addr[i] = key
        if prev is None or prev == key:
            return None if prev is not None else set()
        return set(prev[0]) | nodes

    def _parts(self, i, inp, delta, full):
        # the bound model's products (the backend's own row loop where it has one): a row's
        # parts are the same bits whether all rows or only the changed ones are computed
        msg, mm = self.run.plan.layers[i].message, self.run.mm
        dst_used = bool(np.any(msg.dst))
        if full or self.S[i] is None:
            self.S[i] = np.ascontiguousarray(mm(inp, msg.src))
            self.Q[i] = (np.ascontiguousarray(mm(inp, msg.dst) + msg.bias) if dst_used
                         else np.ascontiguousarray(msg.bias[None, :]))
        elif delta.size:
            changed = inp[delta]
            self.S[i][delta] = mm(changed, msg.src)
            if dst_used:
                self.Q[i][delta] = mm(changed, msg.dst) + msg.bias

    def _readout(self, i, layer, out, changed, full):
        run = self.run
        if full or self.readouts[i] is None:
            self.readouts[i] = run.readout_values(layer, out).copy()
        elif changed.size:
            self.readouts[i][changed] = run.readout_values(layer, out, changed)
        return run.reduce_readouts(layer, self.readouts[i])

    def step(self, z, spare, watch, g=None, graph_watch=None):
        run, d = self.run, self.run.layout.d
        if self.ring is None:
            self.ring = [spare] + [run.new_buffer() for _ in range(self.ring_size - 2)] + [z]
        first_step = self.k < self.L
        start = z[:, :d].copy() if first_step else None
        g_start = g
        count = 0
        for i, layer in enumerate(run.plan.layers):
            R = self.ring_size
            inp, out = self.ring[(self.k - 1) % R], self.ring[self.k % R]
            adelta = self._address_delta(i, g)
            if run.layout.dg:
                run.address(inp, g)
            if self.changed is None or self.k < self.L:
                delta = None
            else:
                delta = self.changed if not adelta else np.union1d(self.changed, np.fromiter(adelta, np.int64))
            rows = self._rows(delta)
            if rows is not None and self.L == 1 and self.changed.size:
                out[self.changed, :d] = inp[self.changed, :d]  # out == inp outside the rows written
            self._parts(i, inp, delta, full=delta is None or delta.size > self.n // 64)
            edges = run.edges(layer.message, self.S[i], self.Q[i], layer.groups, layer.include_self)
            compare_out = not (self.k < self.L) and (self.L > 1 or rows is not None)
            count = run.backend.layer(run.graph, edges, inp, d, layer.update, layer.gate, out,
                                      watch=watch, changed=self.flags, rows=rows, compare_out=compare_out)
            if rows is None:
                self.changed = np.flatnonzero(self.flags) if not first_step else np.arange(self.n)
                self.active_rows += self.n
            else:
                self.changed = rows[self.flags[rows] != 0]
                self.active_rows += rows.size
            if layer.readout is not None:
                red = self._readout(i, layer, out, self.changed, full=rows is None)
                g = run.graph_step_from(layer, g, red)
            self.k += 1
        z = self.ring[(self.k - 1) % self.ring_size]
        if first_step and watch is not None:
            w = watch.astype(bool)
            count = int(np.any(z[:, :d][:, w] != start[:, w], axis=1).sum())
        if graph_watch is not None and watch is not None and graph_watch.size:
            count += int(np.any(g[graph_watch] != g_start[graph_watch]))
        return z, None, count, g
