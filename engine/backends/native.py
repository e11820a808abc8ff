"""The native backend: the C++ kernel of csrc/engine/message_passing.h via engine._native.

OpenMP threads; the GIL is released while the kernel runs.
"""
from __future__ import annotations

import numpy as np

from .base import Backend

try:
    from .. import _native
except ImportError as exc:  # pragma: no cover - depends on the build
    _native = None
    IMPORT_ERROR = exc
else:
    IMPORT_ERROR = None


def _untrusted(graph) -> bool:
    """Whether the kernel must check the CSR itself: engine.Graph validated and froze it."""
    return graph.indptr.flags.writeable or graph.indices.flags.writeable


class NativeBackend(Backend):
    name = "native"

    def __init__(self):
        if _native is None:
            raise ImportError(f"engine._native is not built ({IMPORT_ERROR})")

    def edge_pass(self, graph, S, Q, E, We, first_act, layers, groups, include_self, rows=None):
        if E is not None and E.shape[1] == 0:
            E = We = None
        return _native.edge_pass(graph.indptr, graph.indices, S, Q, E, We, int(first_act), list(layers),
                                 np.ascontiguousarray(groups, dtype=np.int64), bool(include_self), rows,
                                 check_edges=_untrusted(graph))

    def layer(self, graph, edges: dict, z, d, update, gate, out, watch=None, changed=None, rows=None,
              compare_out=False):
        e = dict(edges)
        if e["E"] is not None and e["E"].shape[1] == 0:
            e["E"] = e["We"] = None
        return _native.layer_pass(graph.indptr, graph.indices, e["S"], e["Q"], e["E"], e["We"], int(e["first_act"]),
                                  list(e["layers"]), np.ascontiguousarray(e["groups"], dtype=np.int64),
                                  bool(e["include_self"]), rows, z, int(d), tuple(update),
                                  None if gate is None else tuple(gate), out, watch, changed, bool(compare_out),
                                  _untrusted(graph))

    def project(self, A, W, out):
        """``out[:] = A @ W`` for small weight matrices, in C++ threads: the sums of
        ``engine.execute._mm`` (inputs ascending, all-zero rows of ``W`` skipped), bit for bit."""
        _native.project(A, W, out)
        return out

    def set_threads(self, n):
        if n:
            _native.set_num_threads(int(n))

    def threads(self) -> int:
        return _native.get_num_threads()

    # The whole step loop of a one-layer model in C++ (see csrc/engine/active.h).
    has_step_loop = True

    def readout_tree_rows(self, n: int) -> int:
        """Rows of the loop's readout tree over ``n`` nodes (its ``readout_tree`` argument is
        that many rows by the readout width)."""
        return int(_native.readout_tree_rows(int(n)))

    def run_steps(self, graph, **kwargs):
        return _native.run_steps(dict(kwargs, check_edges=_untrusted(graph)))
