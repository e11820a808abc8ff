"""Bellman-Ford with CLRS semantics, computed sparsely.

CLRS ``bellman_ford(A, s)``: synchronous (Jacobi) rounds from the previous distances.
Before each round the hint ``(pi_h, d, msk)`` is recorded. In a round, every reached ``u``
(in ascending order) relaxes each edge ``u -> v``: ``v`` takes ``d_prev[u] + w`` if it is
not yet reached or the value is strictly smaller than its current one, so among equal
candidates the lowest ``u`` wins and a tie with the old distance keeps the old pointer.
The loop stops after the first round in which ``d`` does not change (``msk`` alone changing
does not count, as in CLRS).

Sparse form: a candidate ``d[u] + w`` can only beat ``d[v]`` if ``d[u]`` changed or ``u``
was newly reached in the previous round (otherwise the same candidate was already applied),
so a round relaxes the out-edges of those nodes only. Arithmetic is in the graph's weight
dtype (``d[u] + w`` rounded once), so a compiled model computing the same sum is compared
bit for bit. A negative cycle reachable from the source makes distances fall forever; after
``n`` changing rounds the reference raises :class:`~engine.errors.NegativeCycleError`.
"""
from __future__ import annotations

import numpy as np

from ..errors import NegativeCycleError
from .._jit import jit
from .result import HintRecorder, ReferenceResult, one_hot


def _bf_round(changed, out_indptr, out_targets, w_out, d, msk, pi, touched_flag):
    """Relax the out-edges of ``changed`` (ascending). Returns ``(next_changed, d_changed)``.

    ``touched_flag`` is an all-False work array of length n, restored on return.
    """
    bound = 0
    for u in changed:
        bound += out_indptr[u + 1] - out_indptr[u]
    touched = np.empty(bound, dtype=np.int64)
    old_d = np.empty(bound, dtype=d.dtype)
    old_msk = np.empty(bound, dtype=np.bool_)
    d_prev = np.empty(changed.shape[0], dtype=d.dtype)
    for i in range(changed.shape[0]):
        d_prev[i] = d[changed[i]]
    count = 0
    for i in range(changed.shape[0]):
        u = changed[i]
        du = d_prev[i]
        for k in range(out_indptr[u], out_indptr[u + 1]):
            v = out_targets[k]
            cand = du + w_out[k]
            if not touched_flag[v]:
                touched_flag[v] = True
                touched[count] = v
                old_d[count] = d[v]
                old_msk[count] = msk[v]
                count += 1
            if not msk[v] or cand < d[v]:
                d[v] = cand
                pi[v] = u
            msk[v] = True
    d_changed = False
    keep = np.zeros(count, dtype=np.bool_)
    for j in range(count):
        v = touched[j]
        touched_flag[v] = False
        if d[v] != old_d[j]:
            d_changed = True
            keep[j] = True
        elif not old_msk[j]:
            keep[j] = True
    return np.sort(touched[:count][keep]), d_changed


def bellman_ford(graph, source: int = 0, *, trace=True) -> ReferenceResult:
    n = graph.num_nodes
    dtype = graph.dtype
    out_indptr, out_targets, out_edge = graph.out_csr()
    w_out = graph.edge_weights()[out_edge]
    step = jit(_bf_round)
    d = np.zeros(n, dtype=dtype)
    msk = np.zeros(n, dtype=np.bool_)
    pi = np.arange(n, dtype=np.int32)
    msk[source] = True
    changed = np.array([source], dtype=np.int64)
    touched_flag = np.zeros(n, dtype=np.bool_)
    recorder = HintRecorder(trace)
    steps = 0
    while True:
        steps += 1
        if steps > n + 1:
            raise NegativeCycleError(
                f"Bellman-Ford from source {source}: distances still fall after {n} rounds; "
                "a negative-weight cycle is reachable from the source"
            )
        recorder.add(pi_h=pi, d=d, msk=msk.astype(dtype))
        changed, d_changed = step(changed, out_indptr, out_targets, w_out, d, msk, pi, touched_flag)
        if not d_changed:
            break
    return ReferenceResult(
        algorithm="bellman_ford",
        outputs={"pi": pi},
        hints=recorder.stacked(),
        steps=steps,
        inputs={"pos": (np.arange(n) / n).astype(dtype), "s": one_hot(source, n, dtype)},
        final={"d": d, "msk": msk.astype(dtype)},
    )
