"""The controls of the comparison (DESIGN.md section 6): ``dfs_light``, DFS with hints reduced
to ``pi_h`` and ``color``, as an algorithm of its own: reference, sampler, compiled model,
learned spec and training."""
import numpy as np
import pytest

import engine
from engine import Graph
from engine.algorithms.samplers import clrs_split, sample
from engine.algorithms.specs import learned_spec
from engine.graph import generators
from test_compiled import assert_same_as_reference
from conftest import HAND


def test_dfs_light_reference_is_dfs_with_two_hints():
    g = generators.erdos_renyi(60, 2.0, directed=True, self_loops=True, seed=4)
    full, light = engine.reference("dfs", g, trace=True), engine.reference("dfs_light", g, trace=True)
    assert sorted(light.hints) == ["color", "pi_h"] and light.steps == full.steps == 3 * 60
    for name in light.hints:
        np.testing.assert_array_equal(light.hints[name], full.hints[name])
    np.testing.assert_array_equal(light.outputs["pi"], full.outputs["pi"])
    # CLRS's DFS distribution: the same graphs as DFS for the same seed
    a, b = clrs_split("dfs", "test")[0][0], clrs_split("dfs_light", "test")[0][0]
    np.testing.assert_array_equal(a, b)
    with pytest.raises(engine.EngineError, match="takes no source"):
        engine.reference("dfs_light", g, 0)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_compiled_dfs_light_equals_the_reference(dtype, backend):
    model = engine.compile("dfs_light", dtype)
    assert sorted(model.spec["hints"]) == ["color", "pi_h"]
    assert set(model.spec["decoders"]) == set(model.spec["hints"].values()) | set(model.spec["outputs"].values())
    rng = np.random.RandomState(5)
    for n in [4, 7, 16]:
        _, g, _ = sample("dfs_light", n, rng, p=(0.1, 0.5, 0.9), dtype=dtype)
        assert_same_as_reference("dfs_light", model, g, None, backend)
    for A in HAND.values():
        assert_same_as_reference("dfs_light", model, Graph.from_dense(A).with_dtype(dtype), None, backend)
    g = generators.erdos_renyi(200, 2.5, directed=True, seed=1, dtype=dtype)
    assert_same_as_reference("dfs_light", model, g, None, backend)


def test_dfs_light_learned_spec_and_training(tmp_path):
    pytest.importorskip("torch")
    from engine.train import main

    spec = learned_spec("dfs_light", "mpnn", 16)
    assert sorted(spec["hints"]) == ["color", "pi_h"] and sorted(spec["feedback"]) == ["hint_color", "hint_pi_h"]
    out = tmp_path / "run"
    assert main(["--algo", "dfs_light", "--hidden", "16", "--steps", "3", "--batch", "4", "--out", str(out)]) == 0
    model = engine.Model.load(out / "best.npz")
    assert model.spec["description"]["algorithm"] == "dfs_light"
    g = generators.erdos_renyi(50, 2.0, directed=True, seed=0)
    res = engine.execute(model, g, steps=engine.reference("dfs_light", g).steps)
    assert res.outputs["pi"].shape == (50,)


def test_bfs_seq_reference_is_bfs_made_sequential():
    g = generators.erdos_renyi(80, 3.0, self_loops=True, seed=2)
    seq, par = engine.reference("bfs_seq", g, 5, trace=True), engine.reference("bfs", g, 5, trace=True)
    np.testing.assert_array_equal(seq.outputs["pi"], par.outputs["pi"])
    reached = par.hints["reach_h"][-1].astype(bool)
    out_indptr, out_targets, _ = g.out_csr()
    distinct = sum(np.unique(out_targets[out_indptr[u]:out_indptr[u + 1]]).size for u in np.flatnonzero(reached))
    assert seq.steps == reached.sum() + distinct + 1  # one pop per reached node, one relaxation per out-edge
    # every BFS hint state appears in the sequential trace, in order
    rows = [next(t for t in range(seq.steps) if np.array_equal(seq.hints["reach_h"][t], r))
            for r in par.hints["reach_h"]]
    assert rows == sorted(rows)
    assert np.all(seq.hints["u"].sum(axis=1) == 1) and np.all(seq.hints["v"].sum(axis=1) == 1)


def test_compiled_bfs_seq_equals_the_reference(backend):
    model = engine.compile("bfs_seq")
    rng = np.random.RandomState(6)
    for n in [1, 4, 9, 16]:
        _, g, s = sample("bfs_seq", n, rng, p=(0.1, 0.5, 0.9))
        assert_same_as_reference("bfs_seq", model, g, s, backend)
    for A in HAND.values():
        assert_same_as_reference("bfs_seq", model, Graph.from_dense(A), 0, backend)
    g = generators.erdos_renyi(300, 3.0, seed=3)
    assert_same_as_reference("bfs_seq", model, g, 7, backend)


def test_bfs_seq_learned_spec_and_training(tmp_path):
    pytest.importorskip("torch")
    from engine.train import main

    spec = learned_spec("bfs_seq", "mpnn", 16)
    assert sorted(spec["hints"]) == ["pi_h", "reach_h", "u", "v"]
    out = tmp_path / "run"
    assert main(["--algo", "bfs_seq", "--hidden", "16", "--steps", "3", "--batch", "4", "--out", str(out)]) == 0
    model = engine.Model.load(out / "best.npz")
    g = generators.erdos_renyi(40, 2.0, seed=0)
    res = engine.execute(model, g, 0, steps=engine.reference("bfs_seq", g, 0).steps)
    assert res.outputs["pi"].shape == (40,)


def test_step_bound_is_the_models_and_is_validated():
    from engine.model.spec import step_bound

    model = engine.compile("bfs_seq")
    assert step_bound(model.spec, 10, 30) == 41  # n + m + 1: one pop per node, one relaxation per edge
    assert step_bound(engine.compile("bfs").spec, 10, 30) == 56  # the default, 4 n + 16
    for bad in ({"per_node": 1}, {"per_node": -1, "per_edge": 1, "constant": 1},
                {"per_node": 1.5, "per_edge": 1, "constant": 1}):
        spec = {**model.spec, "termination": {**model.spec["termination"], "max_steps": bad}}
        with pytest.raises(engine.EngineError, match="termination.max_steps"):
            engine.Model(spec, model.weights)
