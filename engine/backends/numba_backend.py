"""The Numba backend: the fused pass compiled by Numba, parallel over destination blocks.

Same evaluation order as the C++ kernel (csrc/engine/message_passing.h): per row, self
message first, then in-edges in CSR order; per message, ``(S[u] + Q[v]) + sum_j e_j We[j]``
then the dense layers ``(sum_i x_i W[i, o]) + b[o]``. Numba is imported when this module
is, which happens only when the backend is first chosen.
"""
from __future__ import annotations

import numba
import numpy as np
from numba import prange

from ..errors import EngineError
from ..model.registry import aggregation
from .base import Backend, EdgeInputs, check_inputs

# aggregation codes (engine.model.registry), compile-time constants of the kernel; check_edges
# refuses any other code before the kernel runs
SUM, MEAN, MAX, MIN, ARGMAX, ARGMIN, SOFTMAX = (aggregation(k).code for k in
                                                ("sum", "mean", "max", "min", "argmax", "argmin", "softmax"))
BLOCK = 256


@numba.njit(inline="always")
def _act(x, act, zero):
    """relu when act == 1 (NaN propagates, as in NumPy and C++), else identity."""
    if act == 1 and not (x > zero or x != x):
        return zero
    return x


@numba.njit(parallel=True, cache=True, nogil=True, fastmath=False)
def _edge_pass(indptr, indices, S, Q, E, We, first_act, Wflat, Bflat, meta, groups, include_self, rows, out,
               winners):
    n = rows.shape[0]
    q_shared = Q.shape[0] == 1
    k0 = S.shape[1]
    fe = E.shape[1]
    k_out = out.shape[1]
    n_layers = meta.shape[0]
    width = k0
    for li in range(n_layers):
        if meta[li, 1] > width:
            width = meta[li, 1]
    n_groups = groups.shape[0]
    n_blocks = (n + BLOCK - 1) // BLOCK
    zero = np.zeros(1, dtype=S.dtype)[0]
    for blk in prange(n_blocks):
        xa = np.empty(width, dtype=S.dtype)
        xb = np.empty(width, dtype=S.dtype)
        acc = np.zeros(k_out, dtype=S.dtype)
        best = np.empty(k_out, dtype=np.int64)
        den = np.zeros(k_out, dtype=S.dtype)
        for i in range(blk * BLOCK, min(n, (blk + 1) * BLOCK)):
            v = rows[i]
            qv = 0 if q_shared else v
            for g in range(n_groups):
                best[groups[g, 1]] = -1
            count = 0
            first_edge = indptr[v] - (1 if include_self else 0)
            for e in range(first_edge, indptr[v + 1]):
                self_msg = e < indptr[v]
                u = v if self_msg else indices[e]
                # first layer, by parts
                for c in range(k0):
                    xa[c] = S[u, c] + Q[qv, c]
                if fe > 0 and not self_msg:
                    for c in range(k0):
                        t = zero
                        for j in range(fe):
                            t += E[e, j] * We[j, c]
                        xa[c] = xa[c] + t
                if first_act != 0:
                    for c in range(k0):
                        xa[c] = _act(xa[c], first_act, zero)
                cur_is_a = True
                w_in = k0
                for li in range(n_layers):
                    w_out = meta[li, 1]
                    woff = meta[li, 2]
                    boff = meta[li, 3]
                    act = meta[li, 4]
                    src_buf = xa if cur_is_a else xb
                    dst_buf = xb if cur_is_a else xa
                    for o in range(w_out):
                        dst_buf[o] = zero
                    for j in range(w_in):
                        xj = src_buf[j]
                        base = woff + j * w_out
                        for o in range(w_out):
                            dst_buf[o] += xj * Wflat[base + o]
                    for o in range(w_out):
                        dst_buf[o] = _act(dst_buf[o] + Bflat[boff + o], act, zero)
                    cur_is_a = not cur_is_a
                    w_in = w_out
                m = xa if cur_is_a else xb
                # reduce
                for g in range(n_groups):
                    kind = groups[g, 0]
                    lo = groups[g, 1]
                    hi = groups[g, 2]
                    if kind == SUM or kind == MEAN:
                        for c in range(lo, hi):
                            acc[c] = m[c] if count == 0 else acc[c] + m[c]
                    elif kind == MAX:
                        for c in range(lo, hi):
                            if count == 0 or m[c] > acc[c] or acc[c] != acc[c]:
                                acc[c] = m[c]
                    elif kind == MIN:
                        for c in range(lo, hi):
                            if count == 0 or m[c] < acc[c] or acc[c] != acc[c]:
                                acc[c] = m[c]
                    elif kind == SOFTMAX:  # online softmax, as in the C++ kernel
                        score = m[lo]
                        if count == 0:
                            den[lo] = 1
                            for c in range(lo, hi):
                                acc[c] = m[c]
                        elif score > acc[lo]:
                            r = np.exp(acc[lo] - score)
                            den[lo] = den[lo] * r + 1
                            for c in range(lo + 1, hi):
                                acc[c] = acc[c] * r + m[c]
                            acc[lo] = score
                        else:
                            w = np.exp(score - acc[lo])
                            den[lo] = den[lo] + w
                            for c in range(lo + 1, hi):
                                acc[c] = acc[c] + w * m[c]
                    else:
                        key = m[lo]
                        if key != key:
                            continue
                        cur = acc[lo]
                        b = best[lo]
                        better = b < 0
                        if not better:
                            if kind == ARGMAX:
                                better = key > cur
                            else:
                                better = key < cur
                            if not better and key == cur and u < b:
                                better = True
                        if better:
                            best[lo] = u
                            for c in range(lo, hi):
                                acc[c] = m[c]
                count += 1
            slot = 0
            for g in range(n_groups):
                kind = groups[g, 0]
                lo = groups[g, 1]
                hi = groups[g, 2]
                is_arg = kind == ARGMAX or kind == ARGMIN
                empty = count == 0 or (is_arg and best[lo] < 0)
                for c in range(lo, hi):
                    if empty:
                        out[i, c] = zero
                    elif kind == MEAN:
                        out[i, c] = acc[c] / count
                    elif kind == SOFTMAX and c > lo:
                        out[i, c] = acc[c] / den[lo]
                    else:
                        out[i, c] = acc[c]
                if is_arg:
                    winners[i, slot] = -1 if empty else best[lo]
                    slot += 1


PROJECT_ROWS = 4  # rows a block of _project shares each weight row with (1.3-1.4x one row)


@numba.njit(parallel=True, cache=True, nogil=True, fastmath=False)
def _project(A, W, nz, Y):
    """``Y = A @ W`` by rows: ``Y[r, o] = sum_i A[r, i] * W[i, o]`` over the nonzero rows
    ``nz`` of ``W``, ascending, from +0, unfused (the native ``project``'s sums). Blocks of
    ``PROJECT_ROWS`` rows read each weight row once; a row's sums are its own."""
    rows = A.shape[0]
    out = W.shape[1]
    blocks = (rows + PROJECT_ROWS - 1) // PROJECT_ROWS
    for b in prange(blocks):
        r0 = b * PROJECT_ROWS
        count = min(rows, r0 + PROJECT_ROWS) - r0
        acc = np.zeros((PROJECT_ROWS, out), dtype=Y.dtype)
        for k in range(nz.shape[0]):
            i = nz[k]
            w = W[i]
            for r in range(count):
                xi = A[r0 + r, i]
                a = acc[r]
                for o in range(out):
                    a[o] += xi * w[o]
        for r in range(count):
            for o in range(out):
                Y[r0 + r, o] = acc[r, o]


def pack_layers(layers, dtype):
    """Flatten the dense layers (:class:`~engine.model.plan.Dense`) into (Wflat, Bflat,
    meta[in, out, woff, boff, act])."""
    meta = np.zeros((len(layers), 5), dtype=np.int64)
    ws, bs = [], []
    woff = boff = 0
    for i, layer in enumerate(layers):
        W, b = layer.weight, layer.bias
        meta[i] = (W.shape[0], W.shape[1], woff, boff, layer.act)
        ws.append(W.ravel())
        bs.append(b.ravel())
        woff += W.size
        boff += b.size
    Wflat = np.concatenate(ws).astype(dtype) if ws else np.zeros(1, dtype)
    Bflat = np.concatenate(bs).astype(dtype) if bs else np.zeros(1, dtype)
    return Wflat, Bflat, meta


class NumbaBackend(Backend):
    name = "numba"

    def edge_pass(self, graph, edges: EdgeInputs, rows=None):
        check_inputs(graph, edges, rows)
        rows = np.arange(graph.num_nodes, dtype=np.int64) if rows is None else np.ascontiguousarray(rows, np.int64)
        S, E, We = edges.S, edges.E, edges.We
        n = rows.shape[0]
        dtype = S.dtype
        if E is None or E.shape[1] == 0:
            E = np.zeros((graph.num_edges, 0), dtype=dtype)
            We = np.zeros((0, S.shape[1]), dtype=dtype)
        Wflat, Bflat, meta = pack_layers(edges.tail, dtype)
        out = np.empty((n, edges.width), dtype=dtype)
        winners = np.empty((n, edges.num_arg), dtype=np.int32)
        _edge_pass(graph.indptr, graph.indices, S, edges.Q, E, We, int(edges.act0), Wflat, Bflat, meta,
                   np.ascontiguousarray(edges.groups, dtype=np.int64), bool(edges.include_self), rows, out, winners)
        return out, winners

    def project(self, A, W, out):
        """``out[:] = A @ W`` in Numba's threads, a row at a time: summed input by input,
        ascending, from +0, with all-zero rows of ``W`` skipped and no fused multiply-add,
        so a row's bits never depend on the other rows of the call (BLAS's may), and they are
        :func:`engine.backends.numpy_ops.small_matmul`'s and the native ``project``'s."""
        A, W = np.ascontiguousarray(A), np.ascontiguousarray(W)
        if W.dtype != A.dtype:
            raise EngineError(f"project needs A and W of one dtype, got {A.dtype} and {W.dtype}")
        if A.ndim != 2 or W.ndim != 2 or A.shape[1] != W.shape[0] or out.shape != (A.shape[0], W.shape[1]):
            raise EngineError(f"project needs A (r, k), W (k, c) and out (r, c); got {A.shape}, {W.shape}, "
                              f"{out.shape}")
        if out.dtype != A.dtype or not out.flags.c_contiguous:
            raise EngineError(f"project's out must be C-contiguous {A.dtype}, got {out.dtype}")
        nz = np.flatnonzero(np.any(W != 0, axis=1)).astype(np.int64)
        _project(A, W, nz, out)
        return out

    def set_threads(self, n):
        if n:
            numba.set_num_threads(min(int(n), numba.config.NUMBA_NUM_THREADS))

    def threads(self) -> int:
        return numba.get_num_threads()
