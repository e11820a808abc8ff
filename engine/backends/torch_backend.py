"""The torch backend: the sparse pass with torch ops, on the CPU or a CUDA device.

Messages are built for every edge (plus self-edges) as a tensor and reduced with
``scatter_reduce``/``index_add``; the graph's index tensors are moved to the device once per
graph and cached. The device is ``$ENGINE_TORCH_DEVICE`` if set, else CUDA when available,
else the CPU; :meth:`TorchBackend.to` changes it. Same semantics as the other backends
(base.py), except that max/min propagate NaN (torch's ``amax``/``amin``) and that sums on
CUDA are accumulated in an unspecified order.

torch is imported when this module is, which happens only when the backend is chosen.
"""
from __future__ import annotations

import os
import weakref

import numpy as np
import torch

from .._memory import require
from ..errors import EngineError
from . import torch_ops as ops
from .base import Backend, EdgeInputs, check_edges


def torch_device(device) -> "torch.device":
    """``device`` as a torch device this machine has; :class:`EngineError` naming what is wrong
    (``$ENGINE_TORCH_DEVICE`` included) otherwise."""
    try:
        target = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise EngineError(f"invalid torch device {device!r} (ENGINE_TORCH_DEVICE or device=): {exc}") from None
    if target.type == "cuda":
        if not torch.cuda.is_available():
            raise EngineError(f"device {device!r}: this torch build or machine has no CUDA device")
        if target.index is not None and target.index >= torch.cuda.device_count():
            raise EngineError(f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA devices")
    elif target.type != "cpu":
        raise EngineError(f"device {device!r}: the torch backend runs on 'cpu' or 'cuda[:index]'")
    return target


class TorchBackend(Backend):
    name = "torch"

    def __init__(self, device: str | None = None):
        if device is None:
            device = os.environ.get("ENGINE_TORCH_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")
        self.device = torch_device(device)
        self._graphs: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def on(self, device) -> "TorchBackend":
        """A torch backend on ``device`` (this one if it is already there)."""
        target = torch_device(device)
        return self if target == self.device else TorchBackend(str(target))

    def to(self, device) -> "TorchBackend":
        """Use ``device`` from now on (``"cpu"``, ``"cuda"``, ``"cuda:1"``...)."""
        self.device = torch_device(device)
        self._graphs = weakref.WeakKeyDictionary()
        return self

    def _index(self, graph, include_self: bool):
        """Device tensors (src, row, eid) of every message of every row, cached per graph."""
        per_graph = self._graphs.setdefault(graph, {})
        if include_self not in per_graph:
            src, pos, eid, _ = graph.message_index(include_self)
            t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(self.device)  # noqa: E731
            per_graph[include_self] = (t(src), t(pos), t(eid))
        return per_graph[include_self]

    def edge_pass(self, graph, edges: EdgeInputs, rows=None):
        check_edges(edges)
        dev = self.device
        S, Q, E = edges.S, edges.Q, edges.E
        if rows is None:
            src, pos, eid = self._index(graph, edges.include_self)
            n_out = graph.num_nodes
            rows_t = None
        else:
            s_, p_, e_, _ = graph.message_index(edges.include_self, rows)
            src, pos, eid = (torch.from_numpy(a).to(dev) for a in (s_, p_, e_))
            n_out = len(rows)
            rows_t = torch.from_numpy(np.asarray(rows, dtype=np.int64)).to(dev)
        count = src.shape[0]
        width = max([S.shape[1]] + [layer.weight.shape[1] for layer in edges.tail])
        require(3 * count * width * S.dtype.itemsize, "the torch backend's message tensor",
                "use a smaller graph or the native backend")
        t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(dev)  # noqa: E731
        dst_nodes = pos if rows_t is None else rows_t[pos]
        E_t = t(E) if E is not None and E.shape[1] else None
        x = ops.first_layer(t(S), t(Q), E_t, t(edges.We) if E_t is not None else None, src, dst_nodes, eid,
                            edges.act0)
        x = ops.dense_tail(x, [type(layer)(t(layer.weight), t(layer.bias), layer.act) for layer in edges.tail])
        out, winners = ops.aggregate(x, src, pos, n_out, edges.groups)
        return out.cpu().numpy(), winners.to(torch.int32).cpu().numpy()

    def set_threads(self, n):
        if n:
            torch.set_num_threads(int(n))

    def threads(self) -> int:
        return torch.get_num_threads()
