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
from ..model.registry import REDUCE_KINDS
from .base import Backend, count_arg_groups
from .reference import _messages

_BIG = torch.iinfo(torch.int64).max


class TorchBackend(Backend):
    name = "torch"

    def __init__(self, device: str | None = None):
        if device is None:
            device = os.environ.get("ENGINE_TORCH_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")
        self.device = torch.device(device)
        self._graphs: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def to(self, device) -> "TorchBackend":
        """Use ``device`` from now on (``"cpu"``, ``"cuda"``, ``"cuda:1"``...)."""
        self.device = torch.device(device)
        self._graphs = weakref.WeakKeyDictionary()
        return self

    def _index(self, graph, include_self: bool):
        """Device tensors (src, row, eid) of every message of every row, cached per graph."""
        per_graph = self._graphs.setdefault(graph, {})
        if include_self not in per_graph:
            src, pos, eid, _ = _messages(graph, include_self, None)
            t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(self.device)  # noqa: E731
            per_graph[include_self] = (t(src), t(pos), t(eid))
        return per_graph[include_self]

    def edge_pass(self, graph, S, Q, E, We, first_act, layers, groups, include_self, rows=None):
        dev = self.device
        if rows is None:
            src, pos, eid = self._index(graph, include_self)
            n_out = graph.num_nodes
            rows_t = None
        else:
            s_, p_, e_, _ = _messages(graph, include_self, rows)
            src, pos, eid = (torch.from_numpy(a).to(dev) for a in (s_, p_, e_))
            n_out = len(rows)
            rows_t = torch.from_numpy(np.asarray(rows, dtype=np.int64)).to(dev)
        count = src.shape[0]
        width = max([S.shape[1]] + [W.shape[1] for W, _, _ in layers])
        require(3 * count * width * S.dtype.itemsize, "the torch backend's message tensor",
                "use a smaller graph or the native backend")
        St = torch.from_numpy(S).to(dev)
        Qt = torch.from_numpy(np.ascontiguousarray(Q)).to(dev)
        if Qt.shape[0] == 1:
            x = St[src] + Qt
        else:
            dst_nodes = pos if rows_t is None else rows_t[pos]
            x = St[src] + Qt[dst_nodes]
        if E is not None and E.shape[1]:
            Et = torch.from_numpy(E).to(dev)
            real = eid >= 0
            Ex = torch.zeros((count, E.shape[1]), dtype=St.dtype, device=dev)
            Ex[real] = Et[eid[real]]
            x = x + Ex @ torch.from_numpy(We).to(dev)
        if first_act == 1:
            x = torch.relu(x)
        for W, b, act in layers:
            x = x @ torch.from_numpy(W).to(dev) + torch.from_numpy(b).to(dev)
            if act == 1:
                x = torch.relu(x)
        k_out = x.shape[1]
        out = torch.zeros((n_out, k_out), dtype=St.dtype, device=dev)
        winners = torch.full((n_out, count_arg_groups(groups)), -1, dtype=torch.int64, device=dev)
        counts = torch.bincount(pos, minlength=n_out)
        has = counts > 0
        slot = 0
        for code, lo, hi in groups:
            kind = REDUCE_KINDS[code]
            seg = x[:, lo:hi]
            idx = pos[:, None].expand(-1, hi - lo)
            if kind in ("sum", "mean"):
                red = torch.zeros((n_out, hi - lo), dtype=St.dtype, device=dev).index_add_(0, pos, seg)
                if kind == "mean":
                    red[has] = red[has] / counts[has, None].to(St.dtype)
                out[:, lo:hi] = red
            elif kind in ("max", "min"):
                red = torch.zeros((n_out, hi - lo), dtype=St.dtype, device=dev)
                red.scatter_reduce_(0, idx, seg, reduce="amax" if kind == "max" else "amin", include_self=False)
                out[:, lo:hi] = red
            else:
                key = seg[:, 0]
                valid = ~torch.isnan(key)
                fill = float("-inf") if kind == "argmax" else float("inf")
                best = torch.full((n_out,), fill, dtype=St.dtype, device=dev)
                best.scatter_reduce_(0, pos, torch.where(valid, key, torch.full_like(key, fill)),
                                     reduce="amax" if kind == "argmax" else "amin", include_self=True)
                tied = valid & (key == best[pos])
                win = torch.full((n_out,), _BIG, dtype=torch.int64, device=dev)
                win.scatter_reduce_(0, pos, torch.where(tied, src, torch.full_like(src, _BIG)), reduce="amin")
                at = torch.arange(count, device=dev)
                first = torch.full((n_out,), _BIG, dtype=torch.int64, device=dev)
                first.scatter_reduce_(0, pos, torch.where(tied & (src == win[pos]), at, torch.full_like(at, _BIG)),
                                      reduce="amin")
                ok = win != _BIG
                out[ok, lo:hi] = seg[first[ok]]
                winners[ok, slot] = win[ok]
                slot += 1
        return out.cpu().numpy(), winners.to(torch.int32).cpu().numpy()

    def set_threads(self, n):
        if n:
            torch.set_num_threads(int(n))

    def threads(self) -> int:
        return torch.get_num_threads()
