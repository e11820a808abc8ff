"""The signature every backend implements.

Two entry points, both over a CSR-by-destination graph:

``edge_pass(graph, edges: EdgeInputs, rows=None)``
    The fused sparse pass (messages + aggregation). Per edge ``u -> v``:
    ``pre = (S[u] + Q[v]) + E[e] @ We``, then ``act0``, then the dense ``tail`` layers; the
    virtual self-edge has zero edge features. Messages of a row are reduced group by group
    (:class:`~engine.model.registry.Aggregation`) in a fixed order: self first (if included),
    then in-edges in CSR order. ``argmax``/``argmin`` keep the winner's group channels, ties to
    the lowest source index; NaN keys never win; max/min ignore NaN like ``numpy.fmax``; a row
    with no message gets 0 (winner -1). ``rows`` restricts the pass to those destinations
    (outputs follow ``rows``). Returns ``(out, winners)``.

``layer(graph, edges, z, d, update, gate, out, watch=None, changed=None, rows=None, compare_out=False)``
    A whole processor layer. ``z`` (n, f_z) holds the layer's inputs (``h`` its first ``d``
    columns). ``edge_pass(edges)``, then per node ``new = node_mlp(update, z_v, agg_v)`` and,
    if ``gate`` is given, ``g = sigmoid(node_mlp(gate, z_v, agg_v))``,
    ``h'_v = g * new + (1 - g) * h_v``, written to ``out[v, :d]`` (``out`` shaped like ``z``,
    never ``z`` itself). ``update`` and ``gate`` are :class:`~engine.model.plan.NodeMLP`.
    ``watch`` (uint8, d) marks the channels whose change is counted; ``changed`` (uint8, n)
    receives, per computed row, whether any state channel changed, measured against the
    row's input state or, with ``compare_out``, against what ``out`` held before (the layer's
    previous output). Returns the number of computed rows that changed a watched channel. The
    default runs the edge pass and then the node MLPs in NumPy, their products by the backend's
    own row loop where it has one (:meth:`Backend.product`); the native backend fuses
    everything per row.

An unknown aggregation code is refused (:func:`check_edges`) before anything is computed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import EngineError
from ..model.registry import aggregation
from .numpy_ops import node_mlp, sigmoid


@dataclass(frozen=True)
class EdgeInputs:
    """What the fused sparse pass reads (see the module docstring).

    ``S`` (n, k0) and ``Q`` (n, k0), or (1, k0) shared by every row, are the per-node parts of
    the first message layer (``Q`` holds its bias); ``E`` (m, f_e) the edge inputs and ``We``
    (f_e, k0) their first-layer weights (both None without edge inputs); ``act0`` the first
    layer's activation code; ``tail`` the dense layers (:class:`~engine.model.plan.Dense`);
    ``groups`` the int64 (G, 3) table ``(aggregation code, start, stop)`` tiling the channels.
    """

    S: Any
    Q: Any
    E: Any
    We: Any
    act0: int
    tail: tuple
    groups: np.ndarray
    include_self: bool

    @property
    def width(self) -> int:
        return int((self.tail[-1].weight if self.tail else self.S).shape[1])

    @property
    def num_arg(self) -> int:
        """Number of arg groups (one winner column each)."""
        return sum(aggregation(int(c)).arg for c in self.groups[:, 0])


def check_inputs(graph, edges: EdgeInputs, rows=None) -> None:
    """What a backend without checks of its own (Numba: no bounds checks) must refuse before
    it reads: an untrusted CSR (:meth:`~engine.Graph.trusted`), parts, edge inputs or rows of
    the wrong shape, rows out of range, and bad group tables (:func:`check_edges`)."""
    check_edges(edges)
    n, m = graph.num_nodes, graph.num_edges
    if not graph.trusted():
        graph.validate()
    k0 = edges.S.shape[1] if getattr(edges.S, "ndim", 0) == 2 else -1
    if getattr(edges.S, "ndim", 0) != 2 or edges.S.shape[0] != n:
        raise EngineError(f"S must be an (n={n}, k0) array, got shape {getattr(edges.S, 'shape', None)}")
    if getattr(edges.Q, "ndim", 0) != 2 or edges.Q.shape[0] not in (n, 1) or edges.Q.shape[1] != k0:
        raise EngineError(f"Q must be ({n} or 1, {k0}), got shape {getattr(edges.Q, 'shape', None)}")
    if edges.E is not None and edges.E.shape[1]:
        if edges.E.shape[0] != m or edges.We is None or edges.We.shape != (edges.E.shape[1], k0):
            raise EngineError(f"E must be ({m}, f_e) with We (f_e, {k0}); got {edges.E.shape} and "
                              f"{getattr(edges.We, 'shape', None)}")
    width = k0
    for layer in edges.tail:
        if layer.weight.shape[0] != width or layer.bias.shape != (layer.weight.shape[1],):
            raise EngineError(f"a message layer of shape {layer.weight.shape} does not follow width {width}")
        width = layer.weight.shape[1]
    if rows is not None:
        rows = np.asarray(rows)
        if rows.size and (rows.min() < 0 or rows.max() >= n):
            raise EngineError(f"rows must be node ids in [0, {n})")


def check_edges(edges: EdgeInputs) -> None:
    """Refuse group tables a backend cannot reduce: unknown codes, gaps, overlaps."""
    groups = np.asarray(edges.groups)
    if groups.ndim != 2 or groups.shape[1] != 3:
        raise EngineError(f"groups must be a (G, 3) table of (code, start, stop), got shape {groups.shape}")
    start = 0
    for code, lo, hi in groups:
        agg = aggregation(int(code))
        if lo != start or hi - lo < agg.min_size:
            raise EngineError(f"groups must tile the message channels in order with at least the kind's "
                              f"channels each; got ({agg.name}, {lo}, {hi}) after channel {start}")
        start = hi
    if start != edges.width:
        raise EngineError(f"groups cover {start} channels but the message has {edges.width}")


class Backend:
    """Base class: a name, a thread setting, :meth:`edge_pass` and :meth:`layer`."""

    name = "base"
    has_step_loop = False  # True: run_steps() runs many steps natively

    def edge_pass(self, graph, edges: EdgeInputs, rows=None):  # pragma: no cover
        raise NotImplementedError

    def layer(self, graph, edges: EdgeInputs, z, d, update, gate, out, watch=None, changed=None, rows=None,
              compare_out=False):
        agg, _ = self.edge_pass(graph, edges, rows=rows)
        zr = z if rows is None else z[rows]
        new = node_mlp(update, zr, agg, mm=self.product)
        if gate is not None:
            g = sigmoid(node_mlp(gate, zr, agg, mm=self.product))
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

    def product(self, A, W, out=None, fallback=np.matmul):
        """``A @ W`` (into ``out`` if given) by the backend's own row loop, ``project``, where
        it has one and ``A`` and ``W`` share a dtype: summed input by input, so a row's bits do
        not depend on the rows that share the call. Otherwise ``fallback(A, W, out=out)``
        (NumPy's BLAS for :meth:`layer`'s node MLPs; the executor passes
        :func:`~engine.backends.numpy_ops.small_matmul`)."""
        project = getattr(self, "project", None)
        if project is None or A.dtype != W.dtype:
            return fallback(A, W, out=out)
        if out is None:
            out = np.empty((A.shape[0], W.shape[1]), dtype=A.dtype)
        return project(np.ascontiguousarray(A), np.ascontiguousarray(W), out)

    def set_threads(self, n: int) -> None:
        """Use ``n`` worker threads (a positive integer; see :func:`engine.backends.get_backend`)."""

    def threads(self) -> int:
        return 1

    def __repr__(self) -> str:
        return f"<backend {self.name} threads={self.threads()}>"
