import os

import numpy as np
import pytest

from engine import Graph
from engine.backends import BACKENDS, available_backends


STRICT = os.environ.get("ENGINE_STRICT_BUILD") not in (None, "", "0")


def native_module():
    """engine._native; skip where it was not built, except in a strict build (CI), where its
    absence fails the test."""
    if STRICT:
        from engine import _native

        return _native
    return pytest.importorskip("engine._native")


@pytest.fixture(params=list(BACKENDS))
def backend(request):
    """Every backend; one that cannot load here is skipped, except native in a strict build."""
    if request.param == "native":
        native_module()
    if request.param not in available_backends():
        pytest.skip(f"backend {request.param} is not available")
    return request.param


def hand_graphs():
    """Hand-written graphs that pin CLRS semantics: (name, dense A)."""
    g = {}
    n = 6
    A = np.zeros((n, n))
    for i in range(n - 1):
        A[i, i + 1] = A[i + 1, i] = 1
    g["path"] = A
    A = np.zeros((n, n))
    A[0, 1:] = A[1:, 0] = 1
    g["star"] = A
    A = np.zeros((n, n))
    for i in range(n):
        A[i, (i + 1) % n] = 1
    g["directed_cycle"] = A
    A = np.zeros((n, n))
    A[0, 1] = A[1, 0] = A[3, 4] = A[4, 3] = 1
    g["disconnected"] = A
    A = np.eye(n)
    A[0, 2] = A[2, 0] = A[2, 5] = A[5, 2] = 1
    g["self_loops"] = A
    A = np.zeros((n, n))
    A[0, 3] = A[0, 4] = 1.0   # two routes of equal weight into 5: ties
    A[3, 5] = A[4, 5] = 1.0
    A[1, 5] = 2.0
    A[0, 1] = 0.0 + 0
    A[5, 2] = 0.5
    g["weighted_ties"] = A
    A = np.zeros((n, n))
    A[4, 1] = A[1, 0] = A[0, 2] = A[2, 3] = A[5, 3] = 1  # directed, high index first
    g["directed_dag"] = A
    A = np.zeros((n, n))
    A[0, 1], A[1, 2], A[0, 2], A[2, 3], A[3, 4], A[0, 4] = 2.0, -1.5, 1.0, 1.0, -0.25, 1.0
    g["negative_no_cycle"] = A
    A = np.zeros((1, 1))
    g["single"] = A
    return g


HAND = hand_graphs()


@pytest.fixture(params=sorted(HAND))
def hand_graph(request):
    A = HAND[request.param]
    return request.param, A, Graph.from_dense(A)
