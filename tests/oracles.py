"""Dense, loop-by-loop transcriptions of CLRS's bfs, bellman_ford and dfs semantics.

Written from the algorithm descriptions (the docstrings of engine/algorithms/bfs.py,
bellman_ford.py and dfs.py), O(n^2) per round; they are the oracle the sparse references
are checked against on small graphs. DENSE is keyed by the registry's names: an algorithm
without an oracle here fails test_reference.py.
"""
import numpy as np


def dense_bfs(A, s, dtype=np.float64):  # unweighted: dtype unused
    n = A.shape[0]
    reach = np.zeros(n)
    pi = np.arange(n)
    reach[s] = 1
    reach_h, pi_h = [], []
    while True:
        prev = reach.copy()
        reach_h.append(prev.copy())
        pi_h.append(pi.copy())
        for i in range(n):
            for j in range(n):
                if A[i, j] != 0 and prev[i] == 1:
                    if pi[j] == j and j != s:
                        pi[j] = i
                    reach[j] = 1
        if np.array_equal(reach, prev):
            break
    return pi, {"reach_h": np.array(reach_h), "pi_h": np.array(pi_h)}


def dense_bellman_ford(A, s, dtype=np.float64):
    n = A.shape[0]
    A = A.astype(dtype)
    d = np.zeros(n, dtype=dtype)
    pi = np.arange(n)
    msk = np.zeros(n)
    msk[s] = 1
    hints = {"pi_h": [], "d": [], "msk": []}
    while True:
        prev_d, prev_msk = d.copy(), msk.copy()
        hints["pi_h"].append(pi.copy())
        hints["d"].append(prev_d.copy())
        hints["msk"].append(prev_msk.copy())
        for u in range(n):
            for v in range(n):
                if prev_msk[u] == 1 and A[u, v] != 0:
                    cand = dtype(prev_d[u] + A[u, v])
                    if msk[v] == 0 or cand < d[v]:
                        d[v] = cand
                        pi[v] = u
                    msk[v] = 1
        if np.array_equal(d, prev_d):
            break
    return pi, {k: np.array(v) for k, v in hints.items()}


def dense_dfs(A, s=None, dtype=np.float64):  # roots in index order: no source
    n = A.shape[0]
    color = np.zeros(n, dtype=int)
    pi = np.arange(n)
    d = np.zeros(n, dtype=dtype)
    f = np.zeros(n, dtype=dtype)
    s_prev = np.arange(n)
    time = dtype(0)
    tick = dtype(0.01)
    H = {k: [] for k in ("pi_h", "color", "d", "f", "s_prev", "s", "u", "v", "s_last", "time")}

    def snap(s, u, v, s_last):
        H["pi_h"].append(pi.copy()); H["color"].append(np.eye(3)[color]); H["d"].append(d.copy())
        H["f"].append(f.copy()); H["s_prev"].append(s_prev.copy())
        for key, node in (("s", s), ("u", u), ("v", v), ("s_last", s_last)):
            H[key].append(np.eye(n)[node])
        H["time"].append(time)

    for s in range(n):
        if color[s] != 0:
            continue
        s_last = u = v = s
        snap(s, u, v, s_last)
        while True:
            if color[u] == 0 or d[u] == 0.0:
                time = dtype(time + tick)
                d[u] = time
                color[u] = 1
                snap(s, u, v, s_last)
            for v in range(n):
                if A[u, v] != 0 and color[v] == 0:
                    pi[v] = u
                    color[v] = 1
                    s_prev[v] = s_last
                    s_last = v
                    snap(s, u, v, s_last)
                    break
            if s_last == u:
                color[u] = 2
                time = dtype(time + tick)
                f[u] = time
                snap(s, u, v, s_last)
                if s_prev[u] == u:
                    break
                below = s_prev[s_last]
                s_prev[s_last] = s_last
                s_last = below
            u = s_last
    return pi, {k: np.array(v) for k, v in H.items()}


def dense_dfs_light(A, source=None, dtype=np.float32):
    """The control dfs_light: the DFS oracle's output with hints pi_h and color only."""
    pi, hints = dense_dfs(A, source, dtype=dtype)
    return pi, {name: hints[name] for name in ("pi_h", "color")}


def dense_bfs_seq(A, s, dtype=np.float32):
    """The control bfs_seq: a queue ordered by (level, index); popping a node and relaxing each
    of its out-neighbours (j ascending, A[u, j] != 0) are one hint step each, plus a final one."""
    n = A.shape[0]
    reach = np.zeros(n)
    pi = np.arange(n)
    level = np.full(n, -1)
    reach[s], level[s] = 1, 0
    done = np.zeros(n, dtype=bool)
    u = v = s
    H = {"reach_h": [], "pi_h": [], "u": [], "v": []}

    def snap():
        H["reach_h"].append(reach.copy())
        H["pi_h"].append(pi.copy())
        H["u"].append(np.eye(n)[u])
        H["v"].append(np.eye(n)[v])

    while True:
        queue = [(level[x], x) for x in range(n) if reach[x] and not done[x]]
        if not queue:
            break
        snap()
        _, u = min(queue)
        done[u] = True
        v = u
        for j in range(n):
            if A[u, j] != 0:
                snap()
                v = j
                if not reach[j]:
                    reach[j], pi[j], level[j] = 1, u, level[u] + 1
    snap()
    return pi, {k: np.array(val) for k, val in H.items()}


DENSE = {"bfs": dense_bfs, "bfs_seq": dense_bfs_seq, "bellman_ford": dense_bellman_ford, "dfs": dense_dfs, "dfs_light": dense_dfs_light}
