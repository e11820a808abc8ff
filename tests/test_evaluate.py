"""Size-generalisation evaluation: tidy rows, CSV/JSON/SVG files, compiled models exact."""
import json

import numpy as np
import pytest

import engine

from engine.analysis.generalization import evaluate, load_models
from engine.errors import EngineError
from engine.evaluate import main
from engine.model.factory import mpnn_spec, random_model


def test_compiled_models_are_exact_at_every_size():
    rows = evaluate(["compiled:bfs", "compiled:bellman_ford", "compiled:dfs"], [16, 300], seeds=[0, 1],
                    degree=4)
    assert len(rows) == 12
    for r in rows:
        assert r["exact_match"] and r["pointer_accuracy"] == 1.0
        assert r["first_divergence_step"] == -1
        assert all(v == 1.0 for k, v in r.items() if k.startswith("hint_"))


def test_cli_writes_tidy_files(tmp_path):
    out = tmp_path / "eval"
    assert main(["compiled:bfs", "--sizes", "16,1e3", "--seeds", "0,1", "--degree", "4", "--out", str(out)]) == 0
    rows = json.loads((out / "results.json").read_text())
    assert {r["n"] for r in rows} == {16, 1000} and len(rows) == 4
    assert (out / "results.csv").read_text().startswith("model,algorithm,family")
    svg = (out / "accuracy.svg").read_text()
    assert "<svg" in svg and "compiled:bfs" in svg  # matplotlib, text kept as text
    assert (out / "accuracy.png").read_bytes().startswith(b"\x89PNG")
    assert len((out / "results.jsonl").read_text().splitlines()) == 4
    assert main(["compiled:bfs", "--sizes", "ten", "--out", str(out)]) == 2


def test_a_model_must_name_its_algorithm(tmp_path):
    model = random_model(mpnn_spec(4), seed=0)
    model.save(tmp_path / "m.npz")
    with pytest.raises(EngineError, match="which algorithm"):
        load_models([str(tmp_path / "m.npz")])


def test_untrained_learned_model_is_measured_not_exact(tmp_path):
    pytest.importorskip("torch")
    from engine.algorithms.specs import learned_spec
    from engine.model.factory import random_weights
    from engine import Model

    spec = learned_spec("bfs", hidden=8)
    Model(spec, random_weights(spec, 0)).save(tmp_path / "l.npz")
    rows = evaluate([str(tmp_path / "l.npz")], [64], seeds=[0], degree=4)
    g = engine.generate("er", 64, degree=4, seed=0)
    ref = engine.reference("bfs", g, 0)
    res = engine.execute(Model.load(tmp_path / "l.npz"), g, 0, steps=ref.steps)
    assert rows[0]["pointer_accuracy"] == np.mean(res.outputs["pi"] == ref.outputs["pi"]) < 1.0
    assert not rows[0]["exact_match"]
    assert np.isfinite(rows[0]["hint_reach_h_accuracy"])
    from engine.analysis.baselines import pointer_baselines

    rules = pointer_baselines(g, ref.outputs["pi"])
    assert rows[0]["best_trivial_accuracy"] == max(rules.values())
    assert rows[0]["best_trivial_rule"] in rules


def test_clrs_test_distribution_and_seed_ranges(tmp_path):
    from engine.evaluate import parse_seeds

    assert parse_seeds("0-3,7") == [0, 1, 2, 3, 7]
    rows = evaluate(["compiled:bfs"], [64], family="clrs", seeds=[0, 1, 2])
    assert len(rows) == 3 and all(r["exact_match"] for r in rows)
    assert len({r["m"] for r in rows}) > 1  # p is drawn per graph
    assert main(["compiled:dfs", "--graph", "clrs", "--sizes", "16", "--seeds", "0-1", "--out", str(tmp_path)]) == 0


def test_a_model_trained_on_the_given_hint_0_gets_it(tmp_path):
    """A model of CLRS's protocol (trained on the ground-truth hint 0) is evaluated with the
    reference's hint 0 fed into its first step where the reference keeps a trace, and decodes
    hint 0 itself beyond the trace limit; each row says which."""
    from engine.algorithms.specs import learned_spec
    from engine.model.factory import random_weights
    from engine import Model

    spec = learned_spec("bfs", hidden=8)
    spec["description"]["protocol"] = {"name": "clrs", "hint0": "ground_truth", "eval_feedback": "soft"}
    Model(spec, random_weights(spec, 1)).save(tmp_path / "c.npz")
    model = Model.load(tmp_path / "c.npz")
    g = engine.generate("er", 64, degree=4, seed=0)
    ref = engine.reference("bfs", g, 0, trace=True)
    first = {name: ref.hints[name][0] for name in ("reach_h", "pi_h")}
    given = engine.execute(model, g, 0, steps=ref.steps, first_hints=first)
    decoded = engine.execute(model, g, 0, steps=ref.steps)
    rows = evaluate([str(tmp_path / "c.npz")], [64], seeds=[0], degree=4)
    assert rows[0]["hint0"] == "given"
    assert rows[0]["pointer_accuracy"] == np.mean(given.outputs["pi"] == ref.outputs["pi"])
    rows = evaluate([str(tmp_path / "c.npz")], [64], seeds=[0], degree=4, trace_limit=10)
    assert rows[0]["hint0"] == "decoded"
    assert rows[0]["pointer_accuracy"] == np.mean(decoded.outputs["pi"] == ref.outputs["pi"])
