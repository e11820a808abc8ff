"""Shared setup for the asv suites: graphs are built once per process and cached.

``ENGINE_BENCH_LARGE=1`` adds the million-node cases (1e5 otherwise).
"""
import functools
import os

import numpy as np

SMALL = 10**5
LARGE = 10**6
SIZES = [SMALL, LARGE] if os.environ.get("ENGINE_BENCH_LARGE") else [SMALL]


@functools.lru_cache(maxsize=None)
def er_graph(n, degree=10, weighted=True, directed=False, seed=0):
    from engine.graph import generators

    g = generators.erdos_renyi(n, degree, weighted=weighted, directed=directed, seed=seed)
    g.out_csr()
    return g


@functools.lru_cache(maxsize=None)
def grid_graph(side):
    from engine.graph import generators

    g = generators.grid(side, side, weighted=True, seed=0)
    g.out_csr()
    return g


def backends():
    from engine.backends import available_backends

    return [b for b in available_backends() if b != "reference"]


def pass_inputs(graph, width, kind, dtype=np.float32, seed=0):
    """Random per-node parts and a one-group reduction of ``width`` channels (EdgeInputs)."""
    from engine.backends.base import EdgeInputs
    from engine.model.registry import aggregation

    rng = np.random.default_rng(seed)
    n = graph.num_nodes
    S = rng.random((n, width), dtype=np.float64).astype(dtype)
    Q = np.zeros((1, width), dtype=dtype)
    groups = np.array([[aggregation(kind).code, 0, width]], dtype=np.int64)
    return EdgeInputs(S=S, Q=Q, E=None, We=None, act0=0, tail=(), groups=groups, include_self=True)
