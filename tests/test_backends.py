"""Backends agree: bit for bit on min/max/arg aggregation and compiled models, to float32
rounding on sums; for any thread count. Hypothesis covers permutation equivariance and
empty neighbourhoods."""
import os

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import engine
from engine import Graph
from engine.algorithms import ALGORITHMS, compilable
from engine.backends import BACKENDS, available_backends, get_backend, load_backend
from engine.backends.base import EdgeInputs
from engine.backends.reference import ReferenceBackend
from engine.errors import BackendUnavailableError, EngineError
from engine.graph import generators
from engine.model.factory import mpnn_spec, random_model
from engine.model.plan import Dense
from engine.errors import ModelError
from engine.model.registry import (ACTIVATIONS, AGGREGATIONS, EXECUTION_MODES, READOUT_CHANNELS, REDUCE_KINDS,
                                   aggregation)

from conftest import STRICT, native_module


def test_native_is_built_when_strict():
    if STRICT:
        assert "native" in available_backends()
    else:
        pytest.skip("not a strict build (ENGINE_STRICT_BUILD unset): the native backend is optional here")


def test_registry_agrees_with_cpp():
    """Names, codes and properties of every kind: the C++ tables are the Python ones."""
    native = native_module()
    cpp = [tuple(row) for row in native.reduce_table()]
    py = [(a.name, a.code, a.arg, a.incremental, a.min_size) for a in AGGREGATIONS]
    assert cpp == py
    assert tuple(native.activation_names()) == ACTIVATIONS
    assert tuple(native.readout_names()) == READOUT_CHANNELS
    assert tuple(native.mode_names()) == EXECUTION_MODES


@pytest.mark.parametrize("code", [-1, len(AGGREGATIONS), 99])
def test_unknown_aggregation_codes_raise_on_every_backend(code, backend):
    g = generators.path(5)
    S = np.ones((5, 2), np.float32)
    edges = EdgeInputs(S, S, None, None, 0, (), np.array([[code, 0, 2]], np.int64), True)
    with pytest.raises((EngineError, ValueError), match="unknown aggregation"):
        load_backend(backend).edge_pass(g, edges)
    with pytest.raises(ModelError, match="unknown aggregation"):
        aggregation(code)


def test_backend_choice_and_errors(monkeypatch):
    assert get_backend("reference").name == "reference"
    monkeypatch.setenv("ENGINE_BACKEND", "reference")
    assert get_backend().name == "reference"
    with pytest.raises(EngineError, match="unknown backend 'gpu'"):
        get_backend("gpu")
    monkeypatch.setitem(BACKENDS, "broken", ("engine.backends.does_not_exist", "X"))
    with pytest.raises(BackendUnavailableError, match="cannot load"):
        load_backend("broken")


def _random_pass_inputs(graph, k0, fe, dtype, seed):
    rng = np.random.default_rng(seed)
    n, m = graph.num_nodes, graph.num_edges
    S = rng.normal(size=(n, k0)).astype(dtype)
    Q = rng.normal(size=(n, k0)).astype(dtype)
    E = rng.normal(size=(m, fe)).astype(dtype) if fe else None
    We = rng.normal(size=(fe, k0)).astype(dtype) if fe else None
    return S, Q, E, We


GROUP_SETS = [
    [("max", 0, 3), ("min", 3, 5), ("argmax", 5, 7), ("argmin", 7, 8)],
    [("sum", 0, 4), ("mean", 4, 8)],
    [("softmax", 0, 3), ("softmax", 3, 8)],  # two attention heads
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("groups", GROUP_SETS)
@pytest.mark.parametrize("depth", [0, 2])
@pytest.mark.parametrize("include_self", [True, False])
def test_edge_pass_parity(dtype, groups, depth, include_self, backend):
    g = generators.erdos_renyi(400, 3, directed=True, weighted=True, seed=1)
    # isolated nodes with no in-edges exercise empty rows
    g = Graph.from_edges(g.indices, g.edge_targets(), 420, g.weights)
    S, Q, E, We = _random_pass_inputs(g, 8, 1, dtype, 0)
    rng = np.random.default_rng(3)
    layers = [(rng.normal(size=(8, 8)).astype(dtype), rng.normal(size=8).astype(dtype), 1) for _ in range(depth)]
    codes = np.array([(REDUCE_KINDS.index(k), a, b) for k, a, b in groups], dtype=np.int64)
    edges = EdgeInputs(S, Q, E, We, 1, tuple(Dense(*layer) for layer in layers), codes, include_self)
    want, want_w = ReferenceBackend().edge_pass(g, edges)
    got, got_w = load_backend(backend).edge_pass(g, edges)
    if depth == 0:
        # identical messages: min/max/arg reductions are bit for bit
        exact = [c for k, a, b in groups if k in ("max", "min", "argmax", "argmin") for c in range(a, b)]
        np.testing.assert_array_equal(got[:, exact], want[:, exact])
    np.testing.assert_allclose(got, want, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-6)
    if depth == 0:
        np.testing.assert_array_equal(got_w, want_w)
    else:
        # With dense layers the reference multiplies with BLAS and the kernels in their own order,
        # so messages may differ in the last bit and a near-tie of two keys may resolve either
        # way: winners agree except at such ties (a threshold, not the bit-exact contract, which
        # holds for identical messages above and for compiled models).
        assert got_w.size == 0 or np.mean(got_w == want_w) > 0.99
    if not include_self:
        assert np.all(got[400:] == 0) and np.all(got_w[400:] == -1)


# Inputs with the cases the max/min/arg reductions must get right bit for bit: NaN (never
# wins, and a NaN accumulator takes the next message), infinities, zeros of both signs and
# many ties (the first extremal message in row order keeps its bits; an arg group's ties go
# to the lowest source). Small integers, so every sum is exact.
SPECIAL_POOL = [np.nan, -np.inf, np.inf, -0.0, 0.0, 0.0, 1.0, 1.0, 2.0, -1.0, -3.0, 4.0]


def _special(rng, shape, dtype):
    return rng.choice(np.array(SPECIAL_POOL), size=shape).astype(dtype)


def _special_graph(seed):
    """A directed ER graph of 60 nodes, mean degree 6, with 4 more nodes that have no in-edge."""
    g = generators.erdos_renyi(60, 6, directed=True, seed=seed)
    return Graph.from_edges(g.indices, g.edge_targets(), 64)


def _special_parts(rng, g, k0, fe, dtype, edge_weights, shared_q=False):
    """Edge pass inputs ``(S, Q, E, We)`` drawn from SPECIAL_POOL (``We`` from ``edge_weights``;
    no edge features when ``fe`` is 0), in this order from ``rng``."""
    n, m = g.num_nodes, g.num_edges
    S = _special(rng, (n, k0), dtype)
    Q = _special(rng, (1 if shared_q else n, k0), dtype)
    E = _special(rng, (m, fe), dtype) if fe else None
    We = rng.choice(np.array(edge_weights), size=(fe, k0)).astype(dtype) if fe else None
    return S, Q, E, We


def _kernel_semantics_pass(g, edges):
    """The edge pass as csrc/engine/message_passing.h documents it, one message at a time in
    row order (self first, then in-edges in CSR order): the first layer (S[u] + q) + the edge
    term (a sum from +0, inputs ascending), relu mapping -0 to +0 and keeping NaN, each dense
    layer a sum from +0 over inputs ascending; Extremum and ArgExtremum folds (reduce.h). The
    NumPy reference reduces with ufunc reductions, which return either zero on a tie of +0
    and -0, so it is no oracle for signed zeros."""
    S, Q, E, We = edges.S, edges.Q, edges.E, edges.We
    dt = S.dtype.type
    relu = lambda x: np.where(dt(0) > x, dt(0), x) + dt(0)  # noqa: E731

    def message(u, v, e):
        x = S[u] + Q[0 if Q.shape[0] == 1 else v]
        if e >= 0 and E is not None and E.shape[1]:
            t = np.zeros(S.shape[1], dtype=S.dtype)
            for j in range(E.shape[1]):
                t = t + E[e, j] * We[j]
            x = x + t
        x = relu(x) if edges.act0 == 1 else x
        for layer in edges.tail:
            y = np.zeros(layer.weight.shape[1], dtype=S.dtype)
            for i in range(x.shape[0]):
                y = y + x[i] * layer.weight[i]
            y = y + layer.bias
            x = relu(y) if layer.act == 1 else y
        return x

    n = g.num_nodes
    out = np.zeros((n, edges.width), dtype=S.dtype)
    winners = np.full((n, edges.num_arg), -1, dtype=np.int32)
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf, 0 * inf: NaN by design
        for v in range(n):
            _kernel_semantics_row(v, g, edges, message, out, winners)
    return out, winners


def _kernel_semantics_row(v, g, edges, message, out, winners):
    """Row v of _kernel_semantics_pass: its messages in row order, each group folded."""
    msgs = [(v, -1)] if edges.include_self else []
    msgs += [(int(g.indices[e]), e) for e in range(g.indptr[v], g.indptr[v + 1])]
    if not msgs:
        return
    ms = [(u, message(u, v, e)) for u, e in msgs]
    slot = 0
    for code, lo, hi in edges.groups:
        kind = REDUCE_KINDS[int(code)]
        if kind in ("max", "min"):
            acc = ms[0][1][lo:hi].copy()
            for _, x in ms[1:]:
                better = x[lo:hi] > acc if kind == "max" else x[lo:hi] < acc
                acc = np.where(better | np.isnan(acc), x[lo:hi], acc)
            out[v, lo:hi] = acc
            continue
        best, acc = -1, None
        for u, x in ms:
            key = x[lo]
            if np.isnan(key):
                continue
            if (best < 0 or (key > acc[0] if kind == "argmax" else key < acc[0])
                    or (key == acc[0] and u < best)):
                best, acc = u, x[lo:hi].copy()
        if best >= 0:
            out[v, lo:hi] = acc
        winners[v, slot] = best
        slot += 1


def _assert_same_bits(got, want):
    """Equal values, NaN at the same places, and zeros with the same signs."""
    np.testing.assert_array_equal(got, want)
    assert np.array_equal(np.signbit(got) & ~np.isnan(got), np.signbit(want) & ~np.isnan(want)), \
        "zeros of different signs"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k0", [1, 2, 3, 4, 5, 8])
@pytest.mark.parametrize("fe", [0, 2])
@pytest.mark.parametrize("act0", [0, 1])
@pytest.mark.parametrize("shared_q", [False, True])
@pytest.mark.parametrize("name", ["native", "numba"])
def test_first_layer_extremum_messages_keep_their_bits(dtype, k0, fe, act0, shared_q, name):
    """Messages that are the first layer alone, reduced by max/min groups and at most one
    argmax/argmin group (the shape of compiled BFS and Bellman-Ford layers, which the native
    kernel reduces in a fused loop), on inputs full of NaN, infinities, signed zeros and ties:
    the kernels give the documented bits."""
    if name not in available_backends():
        pytest.skip(f"{name} not available")
    g = _special_graph(5)
    rng = np.random.default_rng(k0 * 7 + fe)
    S, Q, E, We = _special_parts(rng, g, k0, fe, dtype, [0.0, 1.0, -1.0, 2.0], shared_q)
    for trial in range(3):  # groups of 1-2 channels, kinds drawn; at most one arg group
        groups, c, arg_used = [], 0, False
        while c < k0:
            size = int(rng.integers(1, 3)) if k0 - c > 1 else 1
            kinds = ["max", "min"] + (["argmax", "argmin"] if not arg_used else [])
            kind = kinds[int(rng.integers(len(kinds)))]
            arg_used = arg_used or kind.startswith("arg")
            groups.append((REDUCE_KINDS.index(kind), c, c + size))
            c += size
        codes = np.array(groups, dtype=np.int64)
        for include_self in (True, False):
            edges = EdgeInputs(S, Q, E, We, act0, (), codes, include_self)
            want, want_w = _kernel_semantics_pass(g, edges)
            got, got_w = load_backend(name).edge_pass(g, edges)
            _assert_same_bits(got, want)
            np.testing.assert_array_equal(got_w, want_w)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k0", [1, 2, 3, 4, 8])
@pytest.mark.parametrize("fe", [0, 1])
@pytest.mark.parametrize("kind", ["argmax", "argmin"])
@pytest.mark.parametrize("name", ["native", "numba"])
def test_edge_score_winners_keep_their_bits(dtype, k0, fe, kind, name):
    """Edge scores (a relu first layer, then one dense layer to one channel) reduced by one
    argmax/argmin group, as pointer decoders are (the native kernel's fused score loop): the
    winners and winning scores, with NaN, infinite and tied scores."""
    if name not in available_backends():
        pytest.skip(f"{name} not available")
    g = _special_graph(6)
    rng = np.random.default_rng(k0 * 11 + fe)
    S, Q, E, We = _special_parts(rng, g, k0, fe, dtype, [0.0, 1.0, -1.0])
    W1 = rng.choice([0.0, 1.0, -1.0, 2.0], size=(k0, 1)).astype(dtype)
    codes = np.array([(REDUCE_KINDS.index(kind), 0, 1)], dtype=np.int64)
    for act1, bias in ((0, 0.0), (1, -1.0)):
        tail = (Dense(W1, np.array([bias], dtype=dtype), act1),)
        for include_self in (True, False):
            edges = EdgeInputs(S, Q, E, We, 1, tail, codes, include_self)
            want, want_w = _kernel_semantics_pass(g, edges)
            got, got_w = load_backend(name).edge_pass(g, edges)
            np.testing.assert_array_equal(got_w, want_w)
            _assert_same_bits(got, want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k0", [16, 24])
@pytest.mark.parametrize("fe", [0, 2])
@pytest.mark.parametrize("name", ["native", "numba"])
def test_wide_messages_keep_their_bits(dtype, k0, fe, name):
    """Messages of learned widths (k0 >= 16: the native kernel's ISA-dispatched first layer,
    dense layer and bias/activation loops) with max, min and argmax groups, on inputs with NaN,
    infinities, signed zeros and ties: the kernels give the documented bits. No weight is 0,
    so no weight row is skipped (a skipped row adds no 0 * inf)."""
    if name not in available_backends():
        pytest.skip(f"{name} not available")
    g = _special_graph(7)
    rng = np.random.default_rng(k0 * 13 + fe)
    weights = np.array([-2.0, -1.0, -0.5, 0.5, 1.0, 2.0])
    S, Q, E, We = _special_parts(rng, g, k0, fe, dtype, weights)
    out = 18
    codes = np.array([(REDUCE_KINDS.index("argmax"), 0, 3), (REDUCE_KINDS.index("max"), 3, 10),
                      (REDUCE_KINDS.index("min"), 10, out)], dtype=np.int64)
    for act0, act1 in ((1, 1), (1, 0), (0, 1)):
        tail = (Dense(rng.choice(weights, size=(k0, out)).astype(dtype), _special(rng, out, dtype), act1),)
        for include_self in (True, False):
            edges = EdgeInputs(S, Q, E, We, act0, tail, codes, include_self)
            want, want_w = _kernel_semantics_pass(g, edges)
            got, got_w = load_backend(name).edge_pass(g, edges)
            _assert_same_bits(got, want)
            np.testing.assert_array_equal(got_w, want_w)


@pytest.mark.parametrize("name", ["native", "numba"])
def test_thread_count_does_not_change_results(name):
    if name not in available_backends():
        pytest.skip(f"{name} not available")
    be = load_backend(name)
    g = generators.erdos_renyi(5000, 8, weighted=True, seed=2)
    model = random_model(mpnn_spec(16, groups=(("sum", 8), ("max", None)), gated=True), seed=1)
    results = []
    for threads in (1, 2):
        res = engine.execute(model, g, 0, backend=name, steps=3, threads=threads, hidden=True)
        results.append(res.hidden)
    be.set_threads(os.cpu_count())
    np.testing.assert_array_equal(results[0], results[1])


@pytest.mark.parametrize("kind", ["max", "min", "sum", "mean", "softmax"])
def test_random_models_agree_across_backends(kind, backend):
    g = generators.erdos_renyi(300, 4, weighted=True, seed=4)
    model = random_model(mpnn_spec(8, groups=((kind, None),), gated=True, layers=2), seed=2, scale=0.5)
    want = engine.execute(model, g, 3, backend="reference", steps=4, hidden=True, trace=True)
    got = engine.execute(model, g, 3, backend=backend, steps=4, hidden=True, trace=True)
    for step, (a, b) in enumerate(zip(got.hidden, want.hidden)):
        # relative to the magnitude of the states at that step (float32 rounding)
        assert np.abs(a - b).max() <= 1e-5 * max(1.0, np.abs(b).max()), f"step {step}"
    # random float weights: a pointer score may tie to rounding, so an argmax may go either way
    # (the threshold is for these near-ties; compiled models are compared bit for bit)
    assert np.mean(got.outputs["ptr"] == want.outputs["ptr"]) > 0.99


@st.composite
def small_graphs(draw):
    n = draw(st.integers(1, 12))
    m = draw(st.integers(0, 30))
    src = draw(st.lists(st.integers(0, n - 1), min_size=m, max_size=m))
    dst = draw(st.lists(st.integers(0, n - 1), min_size=m, max_size=m))
    w = draw(st.lists(st.sampled_from([0.25, 0.5, 1.0, 2.0]), min_size=m, max_size=m))
    return Graph.from_edges(src, dst, n, w)


@settings(max_examples=40, deadline=None)
@given(graph=small_graphs(), seed=st.integers(0, 10**6), kind=st.sampled_from(["max", "min", "mean"]),
       include_self=st.booleans())
def test_permutation_equivariance(graph, seed, kind, include_self):
    """Relabelling nodes permutes the states of a model that reads no node ids."""
    n = graph.num_nodes
    spec = mpnn_spec(6, node_inputs=("source",), groups=((kind, None),), include_self=include_self, pointer=False)
    model = random_model(spec, seed=seed % 1000)
    perm = np.random.default_rng(seed).permutation(n)
    pg = Graph.from_edges(perm[graph.indices], perm[graph.edge_targets()], n, graph.weights)
    for be in available_backends():
        a = engine.execute(model, graph, 0, backend=be, steps=3, hidden=True).hidden
        b = engine.execute(model, pg, int(perm[0]), backend=be, steps=3, hidden=True).hidden
        np.testing.assert_allclose(b[:, perm], a, rtol=1e-5, atol=1e-6)
        if kind != "mean":
            np.testing.assert_array_equal(b[:, perm], a)


@settings(max_examples=40, deadline=None)
@given(graph=small_graphs(), seed=st.integers(0, 1000))
def test_empty_neighbourhoods_and_parity(graph, seed):
    """Without self-messages a node with no in-edge aggregates to 0 on every backend; whole
    random models agree to float32 rounding (the update MLP's sums may be ordered differently)."""
    spec = mpnn_spec(4, groups=(("max", 2), ("min", None)), include_self=False, message_depth=1)
    model = random_model(spec, seed=seed)
    assert len(available_backends()) >= 2  # the reference and at least numba (a dependency)
    res = {be: engine.execute(model, graph, 0, backend=be, steps=2, hidden=True) for be in available_backends()}
    base = res["reference"]
    for be, r in res.items():
        np.testing.assert_allclose(r.hidden, base.hidden, rtol=1e-5, atol=1e-6)
    lonely = np.flatnonzero(graph.in_degree() == 0)
    S = np.full((graph.num_nodes, 2), 3.0, np.float32)
    for be in available_backends():
        out, _ = load_backend(be).edge_pass(graph, EdgeInputs(S, S, None, None, 0, (), np.array([[2, 0, 2]]), False))
        assert np.all(out[lonely] == 0) and np.all(out[graph.in_degree() > 0] == 6.0)


def test_compiled_models_bitwise_across_backends():
    backends = available_backends()
    assert {"reference", "numba"} <= set(backends)  # numba is a dependency: always two to compare
    for algo in compilable():
        model = engine.compile(algo)
        g = generators.erdos_renyi(800 if algo == "dfs" else 3000, 5, weighted=model.spec["edge_inputs"] != [],
                                   directed=ALGORITHMS[algo].directed, seed=9)
        source = 0 if ALGORITHMS[algo].has_source else None
        states = {be: engine.execute(model, g, source, backend=be, hidden=True).hidden for be in backends}
        for be, s in states.items():
            np.testing.assert_array_equal(s, states["reference"], err_msg=be)


def test_import_engine_loads_neither_torch_nor_numba():
    import subprocess
    import sys

    code = "import sys, engine; print('torch' in sys.modules, 'numba' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_missing_native_backend_warns_and_falls_back(monkeypatch):
    import engine.backends as B

    monkeypatch.setitem(B.BACKENDS, "native", ("engine.backends.does_not_exist", "X"))
    monkeypatch.setattr(B, "_loaded", {})
    monkeypatch.setattr(B, "_warned", set())
    monkeypatch.delenv("ENGINE_BACKEND", raising=False)
    with pytest.warns(RuntimeWarning, match="falling back"):
        assert get_backend().name == "numba"


def test_torch_backend_device_choice(monkeypatch):
    pytest.importorskip("torch")
    from engine.backends.torch_backend import TorchBackend

    monkeypatch.setenv("ENGINE_TORCH_DEVICE", "cpu")
    be = TorchBackend()
    assert str(be.device) == "cpu"
    g = generators.erdos_renyi(200, 3, weighted=True, seed=0)
    model = random_model(mpnn_spec(8, groups=(("sum", 4), ("argmin", None)), gated=True), seed=3, scale=0.5)
    a = engine.execute(model, g, 0, backend="reference", steps=3, hidden=True)
    b = engine.execute(model, g, 0, backend="torch", steps=3, hidden=True)
    for x, y in zip(a.hidden, b.hidden):
        assert np.abs(x - y).max() <= 1e-5 * max(1.0, np.abs(x).max())


def test_native_kernel_rejects_malformed_arrays_instead_of_crashing():
    native = pytest.importorskip("engine._native")
    indptr = np.array([0, 1, 2], np.int64)
    S = np.ones((2, 1), np.float32)
    groups = np.array([[2, 0, 1]], np.int64)

    def edges(S=S, groups=groups):
        return EdgeInputs(S, np.ones((2, 1), np.float32), None, None, 0, (), groups, True)

    with pytest.raises(ValueError, match="out of range"):
        native.edge_pass(indptr, np.array([0, 7], np.int32), edges())
    with pytest.raises(ValueError, match="dtype"):
        native.edge_pass(indptr, np.array([0, 1], np.int64), edges())
    with pytest.raises(ValueError, match="groups must tile"):
        native.edge_pass(indptr, np.array([0, 1], np.int32), edges(groups=np.array([[2, 0, 0]], np.int64)))
    with pytest.raises(ValueError, match="wrong size"):
        native.edge_pass(indptr, np.array([0, 1], np.int32), edges(S=np.ones((3, 1), np.float32)))
    with pytest.raises(ValueError, match="unknown aggregation code 9"):
        native.edge_pass(indptr, np.array([0, 1], np.int32), edges(groups=np.array([[9, 0, 1]], np.int64)))
    with pytest.raises(ValueError, match="attribute 'S'"):
        native.edge_pass(indptr, np.array([0, 1], np.int32), object())


def test_validated_graphs_are_frozen():
    g = generators.path(4)
    with pytest.raises(ValueError, match="read-only"):
        g.indices[0] = 3


def test_device_argument():
    g = generators.path(10)
    model = engine.compile("bfs")
    with pytest.raises(EngineError, match="needs backend='torch'"):
        engine.execute(model, g, 0, backend="native", device="cuda")
    if "torch" not in available_backends():
        pytest.skip("torch not installed")
    res = engine.execute(model, g, 0, backend="torch", device="cpu")
    assert res.outputs["pi"].tolist() == engine.reference("bfs", g, 0).outputs["pi"].tolist()
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(EngineError, match="no CUDA device"):
            engine.execute(model, g, 0, backend="torch", device="cuda")


def _ascending_product(A, W):
    """A @ W summed input by input, ascending, from +0, all-zero rows of W skipped (the
    documented order of every backend's own product), for any width."""
    y = np.zeros((A.shape[0], W.shape[1]), dtype=A.dtype)
    for j in np.flatnonzero(np.any(W != 0, axis=1)):
        y += A[:, j:j + 1] * W[j]
    return y


@pytest.mark.parametrize("name", ["native", "numba"])
@settings(max_examples=40, deadline=None)
@given(rows=st.integers(0, 40), inp=st.integers(1, 30), out=st.integers(1, 40), seed=st.integers(0, 10**6),
       dtype=st.sampled_from(["float32", "float64"]))
def test_backend_projection_sums_inputs_in_order(name, rows, inp, out, seed, dtype):
    """A backend's own A @ W (the per-node parts, the executor's products) gives the ascending
    sums bit for bit, which for small weights are NumPy's small_matmul's, zero rows of W
    included, in both precisions."""
    if name not in available_backends():
        pytest.skip(f"{name} backend not available")
    from engine.backends.numpy_ops import small_matmul as _mm

    rng = np.random.default_rng(seed)
    A = rng.normal(size=(rows, inp)).astype(dtype)
    A[rng.random(A.shape) < 0.2] = 0.0
    W = rng.normal(size=(inp, out)).astype(dtype)
    W[rng.random(inp) < 0.3] = 0.0  # whole zero rows are skipped
    got = load_backend(name).project(A, W, np.empty((rows, out), dtype=dtype))
    np.testing.assert_array_equal(got, _mm(A, W))
    np.testing.assert_array_equal(got, _ascending_product(A, W))


@pytest.mark.parametrize("name", ["native", "numba"])
def test_wide_projection_rows_do_not_depend_on_the_call(name):
    """Learned widths (131 x 128 weights, past small_matmul's BLAS cut-off): each row's bits
    are the ascending sums, whichever rows share the call, on both backends' own loops."""
    if name not in available_backends():
        pytest.skip(f"{name} backend not available")
    rng = np.random.default_rng(7)
    A = rng.normal(size=(3000, 131)).astype(np.float32)
    W = rng.normal(size=(131, 128)).astype(np.float32)
    W[[3, 70]] = 0.0
    backend = load_backend(name)
    whole = backend.project(A, W, np.empty((3000, 128), np.float32))
    np.testing.assert_array_equal(whole, _ascending_product(A, W))
    for rows in (slice(5, 6), slice(100, 117), slice(2990, 3000)):
        part = backend.project(np.ascontiguousarray(A[rows]), W, np.empty((A[rows].shape[0], 128), np.float32))
        np.testing.assert_array_equal(part, whole[rows])


# the native binding raises ValueError, numba's wrapper EngineError (both name what is wrong)
PROJECT_ERRORS = {
    "native": (ValueError, ("W has wrong size", "out has wrong size", "dtype", "dtype")),
    "numba": (EngineError, ("project needs", "project needs", "C-contiguous float32", "one dtype")),
}


@pytest.mark.parametrize("name", sorted(PROJECT_ERRORS))
def test_projection_rejects_bad_shapes_and_dtypes(name):
    if name not in available_backends():
        pytest.skip(f"{name} backend not available")
    backend = load_backend(name)
    error, messages = PROJECT_ERRORS[name]
    A = np.ones((3, 4), np.float32)
    bad_calls = [(np.ones((5, 2), np.float32), np.empty((3, 2), np.float32)),   # W's rows are not A's columns
                 (np.ones((4, 2), np.float32), np.empty((2, 2), np.float32)),   # out has the wrong rows
                 (np.ones((4, 2), np.float32), np.empty((3, 2), np.float64)),   # out of another dtype
                 (np.ones((4, 2), np.float64), np.empty((3, 2), np.float32))]   # W of another dtype
    for (W, out), message in zip(bad_calls, messages):
        with pytest.raises(error, match=message):
            backend.project(A, W, out)
