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
