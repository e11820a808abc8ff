"""Bellman-Ford accuracy by the gap between competing paths (engine.analysis.path_gap)."""
import numpy as np

import engine
from engine.analysis.path_gap import GAP_EDGES, accuracy_by_gap, node_gaps
from engine.graph import generators


def test_gaps_count_each_in_neighbour_once_at_its_best_edge():
    # 0 -> 1 (1.0); 0 -> 2 (3.0 and, parallel, 5.0); 1 -> 2 (1.5); 3 is unreachable with no in-edge
    g = engine.Graph.from_edges([0, 0, 1, 0], [1, 2, 2, 2], 4, np.array([1.0, 3.0, 1.5, 5.0], dtype=np.float32))
    d = engine.reference("bellman_ford", g, 0).final["d"]
    gaps = node_gaps(g, d)
    assert np.isnan(gaps[0]) and np.isnan(gaps[3]) and gaps[1] == np.inf
    assert gaps[2] == 0.5  # via 1: 1 + 1.5 = 2.5, via 0: min(3, 5) = 3


def test_accuracy_by_gap_buckets_every_scored_node_once():
    g = generators.erdos_renyi(300, 5, weighted=True, seed=3)
    ref = engine.reference("bellman_ford", g, 0, trace=False)
    exact = engine.execute(engine.compile("bellman_ford", processor="mpnn"), g, 0, steps=ref.steps).outputs["pi"]
    rows = accuracy_by_gap([g], [0], [exact], [ref])
    assert len(rows) == len(GAP_EDGES)  # the finite buckets, [1, inf) and the single-candidate nodes
    scored = (np.asarray(ref.final["msk"], bool) & ~np.isnan(node_gaps(g, ref.final["d"])))
    scored[0] = False
    assert sum(r["nodes"] for r in rows) == scored.sum()
    assert all(r["accuracy"] == 1.0 for r in rows if r["nodes"])  # the compiled model is exact
    assert any(r["nodes"] for r in rows if r["high"] <= 0.01)  # close competitors exist on this graph
    # a model that gets every node with a gap below 0.01 wrong and the rest right
    gaps = node_gaps(g, ref.final["d"])
    wrong = np.where((gaps < 0.01) & scored, (ref.outputs["pi"] + 1) % 300, ref.outputs["pi"])
    for r in accuracy_by_gap([g], [0], [wrong], [ref]):
        if r["nodes"]:
            assert r["accuracy"] == (0.0 if r["high"] <= 0.01 else 1.0), r
