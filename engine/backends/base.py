"""The one signature every backend implements.

A backend computes the fused sparse pass of a processor layer (or pointer decoder) over a
CSR-by-destination graph::

    out, winners = backend.edge_pass(graph, S, Q, E, We, first_act, layers, groups, include_self)

* ``S``, ``Q``: (n, k0) per-node parts of the first message layer (``Q`` holds the bias);
  per edge ``u -> v``: ``pre = (S[u] + Q[v]) + E[e] @ We``; the virtual self-edge has zero
  edge features. ``E`` is (m, f_e) or None.
* ``first_act``: activation code after the first layer; ``layers``: list of
  ``(W, b, act_code)`` dense layers applied per edge, ``y = act(x @ W + b)``.
* ``groups``: int64 array (G, 3) of ``(reduce_code, start, stop)`` tiling the channels.
* Messages of a row are reduced in a fixed order: self first (if included), then in-edges
  in CSR order. ``argmax``/``argmin`` keep the winner's group channels, ties to the lowest
  source index; NaN keys never win. max/min ignore NaN like ``numpy.fmax``. Nodes with no
  message get 0 (and winner -1).

Returns ``out`` (n, k_out) and ``winners`` (n, number of arg groups) int32.
"""
from __future__ import annotations

import numpy as np

from ..model.registry import ARG_REDUCE_KINDS, REDUCE_KINDS

ARG_CODES = tuple(REDUCE_KINDS.index(k) for k in ARG_REDUCE_KINDS)


class Backend:
    """Base class: a name, a thread setting and :meth:`edge_pass`."""

    name = "base"

    def edge_pass(self, graph, S, Q, E, We, first_act, layers, groups, include_self):  # pragma: no cover
        raise NotImplementedError

    def set_threads(self, n: int | None) -> None:
        """Set the worker thread count (None leaves the default)."""

    def threads(self) -> int:
        return 1

    def __repr__(self) -> str:
        return f"<backend {self.name} threads={self.threads()}>"


def count_arg_groups(groups: np.ndarray) -> int:
    return int(np.isin(groups[:, 0], ARG_CODES).sum())
