"""engine.reference against dense CLRS-semantics oracles, scipy, and hand-written cases."""
import numpy as np
import pytest
import scipy.sparse.csgraph as csgraph

import engine
from engine import Graph, NegativeCycleError, EngineError
from engine.algorithms import ALGORITHMS
from engine.algorithms.samplers import sample
from engine.graph import generators

from oracles import DENSE


def _check_against_dense(algo, A, graph, source, dtype=np.float32):
    res = engine.reference(algo, graph, source, trace=True)
    pi, hints = DENSE[algo](A, source, dtype=dtype)
    np.testing.assert_array_equal(res.outputs[ALGORITHMS[algo].primary_output], pi)
    assert res.steps == len(next(iter(hints.values())))
    assert set(res.hints) == set(hints)
    for name, expected in hints.items():
        got = res.hints[name]
        assert got.shape == np.asarray(expected).shape, name
        np.testing.assert_array_equal(got, np.asarray(expected).astype(got.dtype), err_msg=name)
    return res


@pytest.mark.parametrize("algo", sorted(ALGORITHMS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_random_clrs_samples_match_dense_oracle(algo, dtype):
    rng = np.random.RandomState(1234)
    for n in [1, 2, 4, 5, 7, 11, 13, 16, 20]:
        for _ in range(6):
            A, graph, source = sample(algo, n, rng, p=(0.1, 0.3, 0.5, 0.9), dtype=dtype)
            _check_against_dense(algo, A, graph, source, dtype)


@pytest.mark.parametrize("algo", sorted(ALGORITHMS))
def test_hand_written_graphs(algo, hand_graph):
    name, A, graph = hand_graph
    sources = range(A.shape[0]) if ALGORITHMS[algo].has_source else [None]
    for s in sources:
        _check_against_dense(algo, A, graph, s)


def test_directed_random_graphs_all_algorithms():
    rng = np.random.RandomState(7)
    for n in [3, 8, 15]:
        for _ in range(5):
            A = rng.binomial(1, 0.3, size=(n, n)) * rng.uniform(0.1, 1.0, size=(n, n))
            g = Graph.from_dense(A)
            for algo in ("bfs", "bellman_ford"):
                _check_against_dense(algo, A, g, int(rng.randint(n)))
            _check_against_dense("dfs", A, g, None)


def test_bellman_ford_ties_keep_first_pointer():
    # 0 -> 1 (1.0), 0 -> 2 (0.5), 2 -> 1 (0.5): both routes give d[1] = 1.0; CLRS keeps pi[1] = 0.
    A = np.zeros((3, 3))
    A[0, 1], A[0, 2], A[2, 1] = 1.0, 0.5, 0.5
    res = engine.reference("bellman_ford", Graph.from_dense(A), 0)
    assert res.outputs["pi"].tolist() == [0, 0, 0]
    assert res.final["d"].tolist() == [0.0, 1.0, 0.5]


def test_bfs_lowest_index_parent_and_steps():
    # 0 -> {3, 1}, 1 -> 2, 3 -> 2: node 2 is reached from both 1 and 3, lowest wins
    A = np.zeros((4, 4))
    A[0, 3] = A[0, 1] = A[1, 2] = A[3, 2] = 1
    res = engine.reference("bfs", Graph.from_dense(A), 0)
    assert res.outputs["pi"].tolist() == [0, 0, 1, 0]
    assert res.steps == 3  # eccentricity 2, plus the round that changes nothing


def test_dfs_has_3n_steps_and_v_hint_rests_at_last_node():
    A = np.zeros((3, 3))
    A[0, 1] = 1
    res = engine.reference("dfs", Graph.from_dense(A))
    assert res.steps == 9
    # after node 1 finds no white out-neighbour the scan variable is n - 1
    finish_1 = 4
    assert res.hints["f"][finish_1][1] > 0 and res.hints["v"][finish_1].argmax() == 2


def test_negative_cycle_is_an_error_not_a_hang():
    A = np.zeros((3, 3))
    A[0, 1], A[1, 2], A[2, 1] = 1.0, -2.0, 1.0
    with pytest.raises(NegativeCycleError, match="negative-weight cycle"):
        engine.reference("bellman_ford", Graph.from_dense(A), 0)
    # an unreachable negative cycle is fine
    B = np.zeros((4, 4))
    B[1, 2], B[2, 1], B[0, 3] = -1.0, -1.0, 1.0
    res = engine.reference("bellman_ford", Graph.from_dense(B), 0)
    assert res.outputs["pi"].tolist() == [0, 1, 2, 0]


def test_bad_arguments_are_clear_errors():
    g = generators.path(5)
    with pytest.raises(EngineError, match="unknown algorithm"):
        engine.reference("dijkstra", g)
    with pytest.raises(EngineError, match=r"source must be a node id in \[0, 5\)"):
        engine.reference("bfs", g, 5)
    with pytest.raises(EngineError, match="takes no source"):
        engine.reference("dfs", g, 0)
    with pytest.raises(EngineError, match="trace must be"):
        engine.reference("bfs", g, 0, trace="yes")


def _bfs_levels_scipy(graph, source):
    dist = csgraph.shortest_path(graph.to_scipy(), unweighted=True, indices=source)
    return dist


@pytest.mark.parametrize("seed", range(4))
def test_bfs_against_scipy_on_sparse_random_graphs(seed):
    g = generators.erdos_renyi(2000, 3.0, directed=bool(seed % 2), seed=seed)
    res = engine.reference("bfs", g, 5, trace=True)
    dist = _bfs_levels_scipy(g, 5)
    reach = np.isfinite(dist)
    np.testing.assert_array_equal(res.final["reach"].astype(bool), reach)
    assert res.steps == int(dist[reach].max()) + 1
    # level of each node = first hint in which it is reached
    first = np.argmax(res.hints["reach_h"] > 0, axis=0)
    np.testing.assert_array_equal(first[reach], dist[reach].astype(int))
    # every pointer is a real edge from the previous level, and the lowest such
    pi = res.outputs["pi"]
    A = g.to_scipy().tocsc()
    for v in np.flatnonzero(reach)[:300]:
        if v == 5:
            assert pi[v] == 5
            continue
        preds = A.indices[A.indptr[v]:A.indptr[v + 1]]
        level_preds = preds[dist[preds] == dist[v] - 1]
        assert pi[v] == level_preds.min()


@pytest.mark.parametrize("seed", range(4))
def test_bellman_ford_distances_against_scipy(seed):
    g = generators.erdos_renyi(1500, 4.0, directed=bool(seed % 2), weighted=True, seed=seed, dtype="float64")
    res = engine.reference("bellman_ford", g, 3, trace=False)
    dist = csgraph.dijkstra(g.to_scipy(), indices=3)
    reach = np.isfinite(dist)
    np.testing.assert_array_equal(res.final["msk"].astype(bool), reach)
    np.testing.assert_allclose(res.final["d"][reach], dist[reach], rtol=1e-12)
    # pointers form shortest-path trees: d[v] == d[pi[v]] + w(pi[v], v)
    A = g.to_scipy()
    pi = res.outputs["pi"]
    v = np.flatnonzero(reach & (np.arange(g.num_nodes) != 3))
    np.testing.assert_allclose(res.final["d"][v], res.final["d"][pi[v]] + A[pi[v], v], rtol=1e-12)


def test_bellman_ford_negative_weights_against_scipy():
    rng = np.random.default_rng(3)
    n = 300
    # DAG with negative weights: no cycles
    src = rng.integers(0, n, 3000)
    dst = rng.integers(0, n, 3000)
    keep = src < dst
    w = rng.uniform(-1.0, 1.0, keep.sum())
    g = Graph.from_edges(src[keep], dst[keep], n, w, dtype="float64", duplicates="min")
    res = engine.reference("bellman_ford", g, 0, trace=False)
    dist = csgraph.bellman_ford(g.to_scipy(), indices=0)
    reach = np.isfinite(dist)
    np.testing.assert_allclose(res.final["d"][reach], dist[reach], rtol=1e-9, atol=1e-12)


def test_dfs_preorder_against_scipy_on_trees():
    g = generators.random_tree(500, seed=1)
    res = engine.reference("dfs", g, trace=False)
    order = np.argsort(res.final["d"])
    expected = csgraph.depth_first_order(g.to_scipy(), 0, return_predecessors=False)
    # scipy visits neighbours in CSR order (ascending), as CLRS does: same preorder
    np.testing.assert_array_equal(order, expected)


def test_trace_auto_switches_off_for_large_graphs():
    assert engine.reference("bfs", generators.path(200_000), 0).hints is None
    assert engine.reference("dfs", generators.path(20_000)).hints is None
    assert engine.reference("bfs", generators.path(50), 0).hints is not None


@pytest.mark.slow
def test_million_node_references_against_scipy():
    g = generators.erdos_renyi(10**6, 10.0, weighted=True, seed=0, dtype="float64")
    res = engine.reference("bfs", g, 0)  # its speed is timed by asv (bench_reference.References)
    order = csgraph.breadth_first_order(g.to_scipy(), 0, return_predecessors=False)
    assert int(res.final["reach"].sum()) == order.size
    res = engine.reference("bellman_ford", g, 0)
    dist = csgraph.dijkstra(g.to_scipy(), indices=0)
    reach = np.isfinite(dist)
    np.testing.assert_allclose(res.final["d"][reach], dist[reach], rtol=1e-12)
    gd = generators.erdos_renyi(10**6, 10.0, directed=True, seed=1)
    res = engine.reference("dfs", gd)
    assert res.hints is None and res.steps == 3 * 10**6
    assert np.all(res.final["color"] == 2)
