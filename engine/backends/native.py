"""The native backend: the C++ kernels of csrc/engine/ via engine._native.

OpenMP threads; the GIL is released while the kernels run. The bindings read the typed
blocks (:class:`~engine.backends.base.EdgeInputs`, :mod:`engine.model.plan`) attribute by
attribute.
"""
from __future__ import annotations

from .base import Backend, EdgeInputs, check_edges

try:
    from .. import _native
except ImportError as exc:  # pragma: no cover - depends on the build
    _native = None
    IMPORT_ERROR = exc
else:
    IMPORT_ERROR = None


def _untrusted(graph) -> bool:
    """Whether the kernel must check the CSR itself: an engine.Graph validated its own frozen
    copies; anything else (a graph-like object, arrays made writeable again) is checked."""
    from ..graph import Graph

    return not isinstance(graph, Graph) or not graph.trusted()


class NativeBackend(Backend):
    name = "native"

    def __init__(self):
        if _native is None:
            raise ImportError(f"engine._native is not built ({IMPORT_ERROR})")

    def edge_pass(self, graph, edges: EdgeInputs, rows=None):
        check_edges(edges)
        return _native.edge_pass(graph.indptr, graph.indices, edges, rows, check_edges=_untrusted(graph))

    def layer(self, graph, edges: EdgeInputs, z, d, update, gate, out, watch=None, changed=None, rows=None,
              compare_out=False):
        check_edges(edges)
        return _native.layer_pass(graph.indptr, graph.indices, edges, rows, z, int(d), update, gate, out, watch,
                                  changed, bool(compare_out), _untrusted(graph))

    def project(self, A, W, out):
        """``out[:] = A @ W`` in C++ threads, summed input by input, ascending, with all-zero
        rows of ``W`` skipped: the sums of the native loop's per-node parts, and for small
        weight matrices those of :func:`engine.backends.numpy_ops.small_matmul`, bit for bit
        (wide ones in blocks of rows, unfused, where NumPy would call BLAS)."""
        _native.project(A, W, out)
        return out

    def set_threads(self, n):
        _native.set_num_threads(int(n))

    def threads(self) -> int:
        return _native.get_num_threads()

    # The whole step loop of a model in C++ (see csrc/engine/active.h).
    has_step_loop = True

    def readout_tree_rows(self, n: int) -> int:
        """Rows of the loop's readout tree over ``n`` nodes (its ``readout_tree`` buffer is
        that many rows by the readout width)."""
        return int(_native.readout_tree_rows(int(n)))

    def run_steps(self, graph, args, **call):
        """Run the native step loop over ``args`` (:class:`~engine.runtime.native_loop.NativeLoopArgs`)."""
        return _native.run_steps(args, check_edges=_untrusted(graph), **call)
