"""Depth-first search with CLRS semantics, in O(n + m).

CLRS ``dfs(A)``: roots in index order. A root records a hint with ``u = v = s_last = s``.
Then, repeatedly, with ``u`` the top of the stack:

1. if ``u`` has no discovery time: ``time += 0.01``, ``d[u] = time``, ``u`` turns gray; hint;
2. scan ``v = 0 .. n-1`` for the lowest out-neighbour of ``u`` that is white; if found, it
   turns gray, ``pi[v] = u``, ``s_prev[v] = s_last``, ``s_last = v``; hint. (If none is
   found the scan variable ``v`` is left at ``n - 1``, and the ``v`` hint shows it.)
3. if nothing was pushed: ``u`` turns black, ``time += 0.01``, ``f[u] = time``; hint; then
   the root ends the tree, otherwise pop: ``s_prev[s_last] = s_last``, ``s_last`` = the node
   below;
4. ``u = s_last``.

Each node contributes a discovery, a finish and (unless a root) a push hint, and each root a
start hint: exactly ``3n`` hints. Colours only darken, so the scan of step 2 resumes where
it last stopped (a cursor per node): O(n + m) overall. Times accumulate in the graph's dtype
(float64 reproduces CLRS's Python floats exactly).

The core loop is plain Python over NumPy arrays, compiled by :mod:`._jit` when Numba is
installed, which makes a million-node run take about a second.
"""
from __future__ import annotations

import numpy as np

from .._jit import jit
from .result import ReferenceResult

ROOT, DISCOVER, PUSH, FINISH = 0, 1, 2, 3


def _dfs_core(n, out_indptr, out_targets, tick, pi, color, d, f, s_prev, regs, times, trace,
              pi_h, color_h, d_h, f_h, s_prev_h):
    """Run CLRS DFS as a state machine with one hint per event.

    Fills the outputs, the per-step registers ``regs`` (T x 5: s, u, v, s_last, event), the
    clock ``times`` and, when ``trace``, the full per-step hint arrays. Returns T.
    """
    cursor = out_indptr[:-1].copy()
    clock = np.zeros(1, dtype=d.dtype)
    t = 0
    for s in range(n):
        if color[s] != 0:
            continue
        s_last = s
        u = s
        v = s
        event = ROOT
        while True:
            regs[t, 0] = s
            regs[t, 1] = u
            regs[t, 2] = v
            regs[t, 3] = s_last
            regs[t, 4] = event
            times[t] = clock[0]
            if trace:
                pi_h[t, :] = pi
                color_h[t, :] = color
                d_h[t, :] = d
                f_h[t, :] = f
                s_prev_h[t, :] = s_prev
            t += 1
            if event == FINISH:
                if s_prev[u] == u:
                    break  # the root is finished: the tree is done
                below = s_prev[s_last]
                s_prev[s_last] = s_last
                s_last = below
            if event == FINISH or event == PUSH:
                u = s_last
            if color[u] == 0 or d[u] == 0.0:
                clock[0] += tick[0]
                d[u] = clock[0]
                color[u] = 1
                event = DISCOVER
                continue
            c = cursor[u]
            end = out_indptr[u + 1]
            while c < end and color[out_targets[c]] != 0:
                c += 1
            cursor[u] = c
            if c < end:
                v = out_targets[c]
                pi[v] = u
                color[v] = 1
                s_prev[v] = s_last
                s_last = v
                event = PUSH
            else:
                v = n - 1
                color[u] = 2
                clock[0] += tick[0]
                f[u] = clock[0]
                event = FINISH
    return t


def dfs(graph, source=None, *, trace: bool = True) -> ReferenceResult:
    n = graph.num_nodes
    dtype = graph.dtype
    out_indptr, out_targets = graph.out_adjacency()
    pi = np.arange(n, dtype=np.int32)
    color = np.zeros(n, dtype=np.int8)
    d = np.zeros(n, dtype=dtype)
    f = np.zeros(n, dtype=dtype)
    s_prev = np.arange(n, dtype=np.int32)
    T = 3 * n
    regs = np.zeros((T, 5), dtype=np.int32)
    shape = (T, n) if trace else (0, 0)
    pi_h = np.zeros(shape, np.int32)
    color_h = np.zeros(shape, np.int8)
    d_h = np.zeros(shape, dtype)
    f_h = np.zeros(shape, dtype)
    s_prev_h = np.zeros(shape, np.int32)
    tick = np.array([0.01], dtype=dtype)
    core = jit(_dfs_core)
    times = np.zeros(T, dtype=dtype)
    steps = core(n, out_indptr, out_targets.astype(np.int32), tick, pi, color, d, f, s_prev, regs, times,
                 trace, pi_h, color_h, d_h, f_h, s_prev_h)
    assert steps == T, f"DFS produced {steps} hints, expected 3n = {T}"
    hints = None
    if trace:
        rows = np.arange(T)

        def mask(col):
            m = np.zeros((T, n), dtype=dtype)
            m[rows, regs[:, col]] = 1
            return m

        hints = {
            "pi_h": pi_h,
            "color": np.eye(3, dtype=dtype)[color_h],
            "d": d_h,
            "f": f_h,
            "s_prev": s_prev_h,
            "s": mask(0),
            "u": mask(1),
            "v": mask(2),
            "s_last": mask(3),
            "time": times,
        }
    return ReferenceResult(
        algorithm="dfs",
        outputs={"pi": pi},
        hints=hints,
        steps=T,
        inputs={"pos": (np.arange(n) / n).astype(dtype)},
        final={"d": d, "f": f, "color": color.astype(np.int32), "s_prev": s_prev},
    )


LIGHT_HINTS = ("pi_h", "color")


def dfs_light(graph, source=None, *, trace: bool = True) -> ReferenceResult:
    """DFS with reduced hints (the control ``dfs_light``): the same 3n steps and output as
    :func:`dfs`, hints ``pi_h`` and ``color`` only, so hint richness can be told apart from
    the sequential trace."""
    full = dfs(graph, source, trace=trace)
    hints = None if full.hints is None else {name: full.hints[name] for name in LIGHT_HINTS}
    return ReferenceResult(algorithm="dfs_light", outputs=full.outputs, hints=hints, steps=full.steps,
                           inputs=full.inputs, final=full.final)
