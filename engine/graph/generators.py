"""Seeded, vectorised generators of sparse graph families that scale to millions of nodes.

Every generator returns a :class:`~engine.graph.Graph` in O(n + m) memory, built from
sorted edge keys (no per-edge Python loop). Undirected families store both directions.
``weighted=True`` attaches weights in ``(0, 1]`` drawn from a hash of the (unordered, for
undirected graphs) endpoint pair and the seed, so undirected weights are symmetric.

The CLRS dense samplers for small graphs live in :mod:`engine.algorithms.samplers`.
"""
from __future__ import annotations

import numpy as np

from ..errors import GraphError
from .csr import Graph, _weight_dtype


def _check_n(n, minimum=1) -> int:
    if isinstance(n, float) and n.is_integer():
        n = int(n)
    if not isinstance(n, (int, np.integer)) or n < minimum:
        raise GraphError(f"number of nodes must be an integer >= {minimum}, got {n!r}")
    if n > 2**31 - 1:
        raise GraphError(f"at most {2**31 - 1} nodes are supported, got {n}")
    return int(n)


def _check_seed(seed) -> int:
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise GraphError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def _rng(seed) -> np.random.Generator:
    return np.random.default_rng(_check_seed(seed))


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """Vectorised splitmix64 finaliser on uint64 (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def pair_weights(src: np.ndarray, dst: np.ndarray, n: int, seed: int, symmetric: bool, dtype=None) -> np.ndarray:
    """Deterministic weights in ``(0, 1]`` (multiples of 2**-24) from the endpoints and seed."""
    a = src.astype(np.uint64)
    b = dst.astype(np.uint64)
    if symmetric:
        a, b = np.minimum(a, b), np.maximum(a, b)
    with np.errstate(over="ignore"):
        key = a * np.uint64(n) + b
        h = _splitmix64(key ^ _splitmix64(np.uint64(seed & 0xFFFFFFFFFFFFFFFF)))
    return (((h >> np.uint64(40)).astype(np.float64) + 1.0) / 2.0**24).astype(_weight_dtype(dtype))


def _finish(keys: np.ndarray, n: int, *, directed: bool, weighted: bool, seed: int, dtype, meta: dict) -> Graph:
    """Sort, de-duplicate and wrap keys ``dst * n + src`` as a Graph."""
    seed = _check_seed(seed)
    keys.sort()
    if keys.size > 1:
        keep = np.empty(keys.size, dtype=bool)
        keep[0] = True
        np.not_equal(keys[1:], keys[:-1], out=keep[1:])
        if not keep.all():
            keys = keys[keep]
    w = None
    if weighted:
        dst = keys // n
        w = pair_weights(keys - dst * n, dst, n, seed, symmetric=not directed, dtype=dtype)
    meta = dict(meta, seed=seed, weighted=weighted)
    # an undirected family's keys hold every pair both ways and pair_weights gives both one weight
    return Graph._from_sorted_keys(keys, n, w, directed=directed, meta=meta, symmetric=not directed)


def _both_directions(u: np.ndarray, v: np.ndarray, n: int) -> np.ndarray:
    u = u.astype(np.int64, copy=False)
    v = v.astype(np.int64, copy=False)
    return np.concatenate([v * n + u, u * n + v])


def erdos_renyi(n, degree: float = 10.0, *, directed: bool = False, self_loops: bool = False,
                weighted: bool = False, seed: int = 0, dtype=None) -> Graph:
    """Sparse Erdős–Rényi graph with a given mean (out-)degree.

    Draws ``round(n * degree)`` directed edges (``n * degree / 2`` undirected pairs, stored
    both ways) uniformly at random and drops repeats, the G(n, M) model; the mean degree is
    ``degree`` up to the rare repeats.
    """
    n = _check_n(n)
    if not np.isfinite(degree) or degree < 0 or degree > n:
        raise GraphError(f"degree must lie in [0, n={n}], got {degree!r}")
    rng = _rng(seed)
    count = int(round(n * degree if directed else n * degree / 2))
    u = rng.integers(0, n, size=count, dtype=np.int64)
    v = rng.integers(0, n, size=count, dtype=np.int64)
    if not self_loops:
        ok = u != v
        u, v = u[ok], v[ok]
    keys = v * n + u if directed else _both_directions(u, v, n)
    return _finish(keys, n, directed=directed, weighted=weighted, seed=seed, dtype=dtype,
                   meta={"family": "er", "degree": degree})


def grid(rows, cols=None, *, weighted: bool = False, seed: int = 0, dtype=None) -> Graph:
    """2-D 4-neighbour grid, both directions; node ``r * cols + c``."""
    rows = _check_n(rows)
    cols = rows if cols is None else _check_n(cols)
    n = rows * cols
    idx = np.arange(n, dtype=np.int64).reshape(rows, cols)
    u = np.concatenate([idx[:, :-1].ravel(), idx[:-1, :].ravel()])
    v = np.concatenate([idx[:, 1:].ravel(), idx[1:, :].ravel()])
    return _finish(_both_directions(u, v, n), n, directed=False, weighted=weighted, seed=seed, dtype=dtype,
                   meta={"family": "grid", "rows": rows, "cols": cols})


def square_grid(n, **kw) -> Graph:
    """The most square grid with exactly ``n`` nodes (``rows * cols == n``)."""
    n = _check_n(n)
    rows = int(np.sqrt(n))
    while n % rows:
        rows -= 1
    return grid(rows, n // rows, **kw)


def path(n, *, directed: bool = False, weighted: bool = False, seed: int = 0, dtype=None) -> Graph:
    """Path ``0 - 1 - ... - n-1`` (``i -> i+1`` only when directed)."""
    n = _check_n(n)
    u = np.arange(n - 1, dtype=np.int64)
    keys = (u + 1) * n + u if directed else _both_directions(u, u + 1, n)
    return _finish(keys, n, directed=directed, weighted=weighted, seed=seed, dtype=dtype, meta={"family": "path"})


def random_tree(n, *, weighted: bool = False, seed: int = 0, dtype=None) -> Graph:
    """Random recursive tree: node ``i >= 1`` joins a uniform earlier node; undirected."""
    n = _check_n(n)
    rng = _rng(seed)
    child = np.arange(1, n, dtype=np.int64)
    parent = (rng.random(n - 1) * child).astype(np.int64)
    return _finish(_both_directions(parent, child, n), n, directed=False, weighted=weighted, seed=seed,
                   dtype=dtype, meta={"family": "tree"})


def watts_strogatz(n, k: int = 10, p: float = 0.1, *, weighted: bool = False, seed: int = 0,
                   dtype=None) -> Graph:
    """Watts–Strogatz small world: ring lattice with ``k`` neighbours, each edge's far end
    rewired with probability ``p`` to a uniform node (self-loops and repeats dropped)."""
    n = _check_n(n)
    if k % 2 or k < 2 or k >= n:
        raise GraphError(f"k must be an even integer in [2, n), got {k!r}")
    if not 0.0 <= p <= 1.0:
        raise GraphError(f"p must lie in [0, 1], got {p!r}")
    rng = _rng(seed)
    u = np.repeat(np.arange(n, dtype=np.int64), k // 2)
    v = (u + np.tile(np.arange(1, k // 2 + 1, dtype=np.int64), n)) % n
    rewire = rng.random(u.size) < p
    v[rewire] = rng.integers(0, n, size=int(rewire.sum()), dtype=np.int64)
    ok = u != v
    return _finish(_both_directions(u[ok], v[ok], n), n, directed=False, weighted=weighted, seed=seed,
                   dtype=dtype, meta={"family": "ws", "k": k, "p": p})


def barabasi_albert(n, m: int = 5, *, weighted: bool = False, seed: int = 0, dtype=None) -> Graph:
    """Barabási–Albert preferential attachment (Batagelj–Brandes), vectorised.

    Node ``v`` adds ``m`` edges to endpoints of uniformly chosen earlier edge slots; the
    sequential dependence is resolved by pointer jumping. Self-loops and repeats dropped.
    """
    n = _check_n(n)
    if not isinstance(m, (int, np.integer)) or m < 1:
        raise GraphError(f"m must be a positive integer, got {m!r}")
    rng = _rng(seed)
    slots = 2 * n * m
    odd = np.arange(1, slots, 2, dtype=np.int64)
    # slot k (odd) copies slot r in [0, k-1]; even slot 2j holds node j // m
    target = (rng.random(odd.size) * odd).astype(np.int64)
    jump = target.copy()
    pending = np.flatnonzero(jump & 1)
    while pending.size:
        jump[pending] = target[jump[pending] >> 1]
        pending = pending[(jump[pending] & 1).astype(bool)]
    u = odd // 2 // m
    v = (jump // 2) // m
    ok = u != v
    return _finish(_both_directions(u[ok], v[ok], n), n, directed=False, weighted=weighted, seed=seed,
                   dtype=dtype, meta={"family": "ba", "m": m})


def delaunay(n, *, weighted: bool = False, seed: int = 0, dtype=None) -> Graph:
    """Delaunay triangulation of ``n`` uniform points in the unit square; undirected."""
    from scipy.spatial import Delaunay

    n = _check_n(n, minimum=3)
    pts = _rng(seed).random((n, 2))
    tri = Delaunay(pts).simplices.astype(np.int64)
    u = np.concatenate([tri[:, 0], tri[:, 1], tri[:, 2]])
    v = np.concatenate([tri[:, 1], tri[:, 2], tri[:, 0]])
    return _finish(_both_directions(u, v, n), n, directed=False, weighted=weighted, seed=seed, dtype=dtype,
                   meta={"family": "delaunay"})


FAMILIES = {
    "er": erdos_renyi,
    "grid": square_grid,
    "path": path,
    "tree": random_tree,
    "ws": watts_strogatz,
    "ba": barabasi_albert,
    "delaunay": delaunay,
}


def generate(family: str, n, *, degree: float = 10.0, directed: bool = False, weighted: bool = False,
             seed: int = 0, dtype=None) -> Graph:
    """Generate a graph of a named family (the CLI's ``--graph``).

    ``degree`` sets the mean degree of ``er``, the lattice degree of ``ws`` and twice the
    attachment count of ``ba``; ``directed`` applies to ``er`` and ``path``.
    """
    if family not in FAMILIES:
        raise GraphError(f"unknown graph family {family!r}; allowed: {sorted(FAMILIES)}")
    _check_seed(seed)
    if not np.isfinite(degree) or degree < 0:
        raise GraphError(f"degree must be a finite non-negative number, got {degree!r}")
    kw = dict(weighted=weighted, seed=seed, dtype=dtype)
    if family == "er":
        return erdos_renyi(n, degree, directed=directed, **kw)
    if family == "path":
        return path(n, directed=directed, **kw)
    if family == "ws":
        k = max(2, int(round(degree / 2)) * 2)
        return watts_strogatz(n, k, **kw)
    if family == "ba":
        return barabasi_albert(n, max(1, int(round(degree / 2))), **kw)
    return FAMILIES[family](n, **kw)
