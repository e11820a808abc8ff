"""CLRS's samplers for small graphs (the training and test distributions).

These reproduce the distributions of CLRS's ``BfsSampler``, ``BellmanFordSampler`` and
``DfsSampler``: Erdős–Rényi adjacency drawn as ``binomial(1, p)`` per ordered pair
(self-loops kept), undirected as ``A * A.T``; Bellman-Ford weights
``sqrt(w * w.T + 1e-3)`` with ``w ~ U(low, high)``; DFS graphs directed. With the same
``numpy.random.RandomState`` the draws are made in CLRS's order (``p``, the graph, the
source).
"""
from __future__ import annotations

import numpy as np

from ..errors import EngineError
from ..graph import Graph
from .registry import algorithm

CLRS_TRAIN_P = tuple(round(0.1 * k, 1) for k in range(1, 10))


def clrs_er_matrix(rng: np.random.RandomState, n: int, p: float, *, directed: bool, weighted: bool,
                   low: float = 0.0, high: float = 1.0) -> np.ndarray:
    """Dense ER adjacency matrix as CLRS draws it."""
    mat = rng.binomial(1, p, size=(n, n))
    if not directed:
        mat *= np.transpose(mat)
    if weighted:
        weights = rng.uniform(low=low, high=high, size=(n, n))
        if not directed:
            weights *= np.transpose(weights)
            weights = np.sqrt(weights + 1e-3)
        mat = mat.astype(float) * weights
    return mat


def sample(algo: str, n: int, rng: np.random.RandomState, p=(0.5,), *, dtype=None):
    """Draw one CLRS instance of ``algo`` (directed, weighted and with a source as its
    registry entry says): ``(A, graph, source)``; ``source`` is None without one."""
    info = algorithm(algo)
    prob = rng.choice(p)
    A = clrs_er_matrix(rng, n, prob, directed=info.directed, weighted=info.weighted)
    source = int(rng.choice(n)) if info.has_source else None
    return A, Graph.from_dense(A, dtype=dtype, meta={"family": "clrs_er", "p": float(prob)}), source


# CLRS-30's splits (clrs/_src/samplers.py, CLRS30): graphs, nodes, sampler seed; graphs are
# drawn with the samplers' default p = 0.5, in order from one RandomState(seed)
CLRS_SPLITS = {"train": (1000, 16, 1), "val": (32, 16, 2), "test": (32, 64, 3)}
CLRS_SPLIT_P = (0.5,)


def clrs_split(algo: str, split: str = "test", *, dtype=None):
    """CLRS-30's ``split`` of ``algo``: ``[(A, graph, source), ...]`` as CLRS's dataset
    builder samples it (for the test split: 32 graphs of 64 nodes, ``p = 0.5``, seed 3)."""
    if split not in CLRS_SPLITS:
        raise EngineError(f"unknown CLRS split {split!r}; allowed: {list(CLRS_SPLITS)}")
    count, n, seed = CLRS_SPLITS[split]
    rng = np.random.RandomState(seed)
    return [sample(algo, n, rng, p=CLRS_SPLIT_P, dtype=dtype) for _ in range(count)]
