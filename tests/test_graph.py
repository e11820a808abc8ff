"""Graph construction, validation, loaders and generators."""
import numpy as np
import pytest
import scipy.sparse as sp

from engine import Graph, GraphError
from engine.graph import generate, generators, load, load_edge_list, load_matrix_market


def test_from_edges_builds_sorted_csr_by_destination():
    g = Graph.from_edges([2, 0, 1, 0], [1, 1, 0, 2], 3, [0.5, 1.5, 2.0, 3.0])
    assert g.indptr.tolist() == [0, 1, 3, 4]
    assert g.indices.tolist() == [1, 0, 2, 0]
    assert g.weights.tolist() == [2.0, 1.5, 0.5, 3.0]
    assert g.indptr.dtype == np.int64 and g.indices.dtype == np.int32 and g.weights.dtype == np.float32


def test_from_dense_reads_nonzeros_as_clrs_does():
    A = np.array([[0, 2.0, 0], [0, 0, -1.0], [1.0, 0, 1.0]])
    g = Graph.from_dense(A)
    src, dst = g.indices, g.edge_targets()
    got = {(int(u), int(v)): float(w) for u, v, w in zip(src, dst, g.weights)}
    assert got == {(0, 1): 2.0, (1, 2): -1.0, (2, 0): 1.0, (2, 2): 1.0}
    assert g.directed
    np.testing.assert_array_equal(g.to_scipy().toarray(), A)


def test_float64_on_request():
    g = Graph.from_edges([0], [1], 2, [0.1], dtype="float64")
    assert g.weights.dtype == np.float64 and g.weights[0] == 0.1
    assert g.with_dtype("float32").weights.dtype == np.float32


@pytest.mark.parametrize("kwargs, match", [
    (dict(src=[0, 3], dst=[1, 1], num_nodes=3), r"src contains node id 3, outside \[0, 3\)"),
    (dict(src=[0, -1], dst=[1, 1], num_nodes=3), "src contains node id -1"),
    (dict(src=[0, 1], dst=[1], num_nodes=3), "same length"),
    (dict(src=[0], dst=[1], num_nodes=3, weights=[np.nan]), "finite"),
    (dict(src=[0], dst=[1], num_nodes=3, weights=[np.inf]), "finite"),
    (dict(src=[0], dst=[1], num_nodes=3, weights=[1.0, 2.0]), "one entry per edge"),
    (dict(src=[0.5], dst=[1], num_nodes=3), "integer node ids"),
    (dict(src=[0], dst=[1], num_nodes=-1), "num_nodes"),
    (dict(src=[0], dst=[1], num_nodes=3, dtype="float16"), "not supported"),
    (dict(src=[0], dst=[1], num_nodes=3, duplicates="merge"), "duplicates="),
])
def test_validation_errors_name_the_problem(kwargs, match):
    with pytest.raises(GraphError, match=match):
        Graph.from_edges(**kwargs)


def test_weight_overflowing_float32_is_rejected():
    with pytest.raises(GraphError, match="finite"):
        Graph.from_edges([0], [1], 2, [1e300])


def test_too_many_nodes_rejected():
    with pytest.raises(GraphError, match="num_nodes"):
        Graph.from_edges([0], [1], 2**31)


def test_duplicates_policies():
    src, dst, w = [0, 0, 1], [1, 1, 0], [3.0, 1.0, 2.0]
    assert Graph.from_edges(src, dst, 2, w).num_edges == 3
    assert Graph.from_edges(src, dst, 2, w, duplicates="min").weights.tolist() == [2.0, 1.0]
    assert Graph.from_edges(src, dst, 2, w, duplicates="sum").weights.tolist() == [2.0, 4.0]
    assert Graph.from_edges(src, dst, 2, w, duplicates="first").weights.tolist() == [2.0, 3.0]
    with pytest.raises(GraphError, match="duplicate edge 0 -> 1"):
        Graph.from_edges(src, dst, 2, w, duplicates="error")


def test_direct_construction_is_validated():
    with pytest.raises(GraphError, match="indptr"):
        Graph(2, np.array([0, 2, 1], np.int64), np.array([0], np.int32))
    with pytest.raises(GraphError, match="int32"):
        Graph(2, np.array([0, 1, 1], np.int64), np.array([0], np.int64))


def test_scipy_roundtrip_and_explicit_zeros_dropped():
    A = sp.random(50, 50, density=0.1, random_state=0, format="csr")
    A.data[:3] = 0.0
    g = Graph.from_scipy(A)
    B = A.copy()
    B.eliminate_zeros()
    assert g.num_edges == B.nnz
    np.testing.assert_allclose(g.to_scipy().toarray(), B.toarray().astype(np.float32))


def test_networkx_undirected_gives_both_directions():
    nx = pytest.importorskip("networkx")
    G = nx.Graph()
    G.add_edge("a", "b", weight=2.0)
    G.add_edge("b", "c", weight=3.0)
    g = Graph.from_networkx(G)
    assert g.num_nodes == 3 and g.num_edges == 4 and not g.directed
    assert sorted(g.weights.tolist()) == [2.0, 2.0, 3.0, 3.0]


def test_edge_list_and_matrix_market_files(tmp_path):
    p = tmp_path / "g.txt"
    p.write_text("# comment\n1 2 0.5\n2 3 1.5\n3 1 2.0\n")
    g = load_edge_list(p, base=1)
    assert g.num_nodes == 3 and g.num_edges == 3
    gu = load(p, base=1, directed=False)
    assert gu.num_edges == 6
    bad = tmp_path / "bad.txt"
    bad.write_text("0 x\n")
    with pytest.raises(GraphError, match="edge list"):
        load_edge_list(bad)
    with pytest.raises(GraphError, match="does not exist"):
        load_edge_list(tmp_path / "missing.txt")
    import scipy.io
    A = sp.random(20, 20, density=0.2, random_state=1, format="coo")
    scipy.io.mmwrite(tmp_path / "m.mtx", A)
    g = load_matrix_market(tmp_path / "m.mtx")
    np.testing.assert_allclose(g.to_scipy().toarray(), A.toarray().astype(np.float32))
    (tmp_path / "junk.mtx").write_text("not a matrix\n")
    with pytest.raises(GraphError, match="Matrix Market"):
        load(tmp_path / "junk.mtx")


def test_out_csr_is_the_transpose():
    g = generators.erdos_renyi(300, 4, directed=True, weighted=True, seed=3)
    indptr, targets, eid = g.out_csr()
    src = np.repeat(np.arange(300), np.diff(indptr))
    np.testing.assert_array_equal(g.indices[eid], src)
    np.testing.assert_array_equal(g.edge_targets()[eid], targets)
    for u in range(300):
        assert np.all(np.diff(targets[indptr[u]:indptr[u + 1]]) > 0)


@pytest.mark.parametrize("family", ["er", "grid", "path", "tree", "ws", "ba", "delaunay"])
def test_symmetric_graphs_are_their_own_csr_by_source(family):
    """An undirected family's graph is marked symmetric and its out-adjacency is its own
    arrays, equal to the transpose; the mark is not trusted once the arrays can change."""
    from engine.graph.csr import _transpose

    g = generate(family, 300, weighted=True, seed=2)
    assert g.symmetric
    indptr, targets = g.out_adjacency()
    assert indptr is g.indptr and targets is g.indices  # nothing built
    want = _transpose(g.num_nodes, g.indptr, g.indices)
    np.testing.assert_array_equal(indptr, want[0])
    np.testing.assert_array_equal(targets, want[1])
    assert g.with_dtype("float64").symmetric
    g.weights.flags.writeable = True
    assert not g.symmetric


def test_graphs_not_built_symmetric_are_transposed():
    """Directed families and user arrays (even undirected in name, even symmetric in fact) are
    not marked: their out-adjacency is the transpose, built once with or without edge ids."""
    gd = generators.erdos_renyi(300, 4, directed=True, seed=3)
    src, dst = np.array([0, 1, 1, 2]), np.array([1, 0, 2, 1])
    gu = Graph.from_edges(src, dst, 3, directed=False)
    for g in (gd, gu):
        assert not g.symmetric
        adjacency = g.out_adjacency()
        assert adjacency[1] is not g.indices
        full = g.out_csr()
        for a, b in zip(adjacency, full):
            np.testing.assert_array_equal(a, b)
        assert g.out_adjacency()[1] is full[1]  # the full transpose serves both afterwards


def test_bound_edge_features_are_symmetric_only_without_pointer_feedback():
    """The native loop reads a symmetric graph's out-edge features from the edge's own row
    only when every column is a static input (a fed-back pointer is directional)."""
    import engine
    from engine.algorithms.specs import learned_spec
    from engine.backends import get_backend
    from engine.model.factory import random_model
    from engine.model.message_graph import message_graph
    from engine.model.plan import build_plan
    from engine.runtime.bound import BoundModel

    def bound(model, graph):
        messages, static_edges = message_graph(model.spec, graph, model.dtype)
        plan = build_plan(model.spec, model.weights.__getitem__)
        return BoundModel(plan, messages, 0, get_backend("reference"), static_edges)

    g = generate("er", 200, weighted=True, seed=1)
    gd = generate("er", 200, weighted=True, directed=True, seed=1)
    compiled = engine.compile("bellman_ford")
    assert bound(compiled, g).E is not None and bound(compiled, g).edge_features_symmetric
    assert not bound(compiled, gd).edge_features_symmetric
    learned = random_model(learned_spec("bellman_ford", "mpnn", 8))  # pi_h fed back
    assert not bound(learned, g).edge_features_symmetric


@pytest.mark.parametrize("family", ["er", "grid", "path", "tree", "ws", "ba", "delaunay"])
def test_generators_are_seeded_simple_and_symmetric(family):
    g1 = generate(family, 400, weighted=True, seed=5)
    g2 = generate(family, 400, weighted=True, seed=5)
    np.testing.assert_array_equal(g1.indices, g2.indices)
    np.testing.assert_array_equal(g1.weights, g2.weights)
    assert g1.num_nodes == 400
    A = g1.to_scipy()
    assert (A != A.T).nnz == 0, "undirected families store both directions with equal weights"
    assert A.diagonal().sum() == 0
    keys = g1.edge_targets().astype(np.int64) * 400 + g1.indices
    assert np.all(np.diff(keys) > 0), "sorted, no duplicate edges"
    assert np.all(g1.weights > 0) and np.all(g1.weights <= 1)


def test_generator_shapes():
    assert generators.erdos_renyi(1000, 10, seed=0).num_edges == pytest.approx(10_000, rel=0.01)
    assert generators.erdos_renyi(1000, 10, directed=True, seed=0).num_edges == pytest.approx(10_000, rel=0.01)
    assert generators.grid(10, 20).num_edges == 2 * (9 * 20 + 10 * 19)
    assert generators.path(10).num_edges == 18
    assert generators.random_tree(100).num_edges == 198
    assert generators.path(5, directed=True).indices.tolist() == [0, 1, 2, 3]
    with pytest.raises(GraphError, match="unknown graph family"):
        generate("hypercube", 10)
    with pytest.raises(GraphError, match="degree"):
        generators.erdos_renyi(10, -1)
    with pytest.raises(GraphError, match="number of nodes"):
        generators.path(0)


@pytest.mark.slow
def test_million_node_generation_has_the_requested_degree():
    """The size the benchmarks use (its speed is timed by asv: bench_reference.Generators)."""
    g = generators.erdos_renyi(10**6, 10.0, weighted=True, seed=0)
    assert g.num_edges == pytest.approx(10**7, rel=0.001)
    assert np.all(np.diff(g.indptr) >= 0) and g.indices.min() >= 0 and g.indices.max() < 10**6


def test_native_transpose_in_blocks_equals_the_counting_sort():
    """Large enough (>= 2**16 edges) for the native transpose to split the destinations into
    blocks across threads; the out-CSR is the one-pass counting sort's, also with empty
    rows, self-loops and parallel edges."""
    import numba

    from engine.graph.csr import _transpose
    from conftest import native_module

    rng = np.random.default_rng(5)
    src = np.concatenate([rng.integers(0, 30_000, 200_000), np.full(5000, 7)])  # one heavy source
    dst = np.concatenate([rng.integers(0, 25_000, 200_000), rng.integers(0, 30_000, 5000)])  # 25k.. 30k: few in-edges
    g = Graph.from_edges(src, dst, 30_000)
    want = numba.njit(_transpose)(g.num_nodes, g.indptr, g.indices)
    got = native_module().transpose(g.indptr, g.indices)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)
    indptr, targets, none = native_module().transpose(g.indptr, g.indices, False)  # without edge ids
    assert none is None
    np.testing.assert_array_equal(indptr, want[0])
    np.testing.assert_array_equal(targets, want[1])


def test_transpose_implementations_agree():
    """The plain-Python counting sort, its Numba compilation and the C++ one give the same
    out-CSR (each run explicitly, whatever the JIT setting)."""
    import numba

    from engine.graph.csr import _transpose
    from conftest import native_module

    g = generators.erdos_renyi(2000, 5, directed=True, seed=8)
    want = _transpose(g.num_nodes, g.indptr, g.indices)
    assert not hasattr(_transpose, "py_func")  # the plain function, not a compiled one
    got = {"numba": numba.njit(_transpose)(g.num_nodes, g.indptr, g.indices),
           "native": native_module().transpose(g.indptr, g.indices), "out_csr": g.out_csr()}
    for name, arrays in got.items():
        for a, b in zip(arrays, want):
            np.testing.assert_array_equal(a, b, err_msg=name)


@pytest.mark.parametrize("algo", ["bfs", "bellman_ford"])
def test_symmetric_shortcut_runs_as_the_transposed_graph(algo):
    """The same edges, marked symmetric (out-adjacency = the graph's arrays, edge features
    read from each edge's own row) or not (the transpose and its edge ids), give the same
    run on every execution mode, equal to the reference."""
    import engine

    g = generate("ws", 3000, weighted=True, seed=4)
    plain = Graph.from_edges(g.indices, g.edge_targets(), g.num_nodes, g.weights)
    assert g.symmetric and not plain.symmetric
    model = engine.compile(algo)
    want = engine.reference(algo, g, 5, trace=False)
    for mode in ("auto", "active", "dense"):
        a = engine.execute(model, g, 5, mode=mode)
        b = engine.execute(model, plain, 5, mode=mode)
        assert a.steps == b.steps == want.steps
        for name, value in want.outputs.items():
            np.testing.assert_array_equal(a.outputs[name], value)
            np.testing.assert_array_equal(b.outputs[name], value)
