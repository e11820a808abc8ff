"""Parameter alignment (engine.analysis.alignment): the symmetries it removes leave the function
unchanged, and a compiled model hidden behind a random permutation and random scales is found
again at distance zero with no barrier on the path."""
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import engine  # noqa: E402
from engine.analysis import alignment as al  # noqa: E402
from engine.errors import EngineError  # noqa: E402
from engine.learn.module import GNNModule, GraphBatch  # noqa: E402
from engine.algorithms.specs import learned_spec  # noqa: E402
from engine.graph import generators  # noqa: E402
from engine.model.factory import random_model as model_with_random_weights  # noqa: E402
from engine.model.spec import Model  # noqa: E402


def _disguised(model: Model, seed: int) -> Model:
    """``model`` with every unit set permuted and every unit scaled by a random positive factor."""
    rng = np.random.default_rng(seed)
    sets = al.unit_sets(model.spec)
    moved = al.permute(model, {us.name: rng.permutation(us.size) for us in sets})
    weights = {k: v.astype(np.float64) for k, v in moved.weights.items()}
    for us in sets:
        al.rescale(weights, us, rng.uniform(0.25, 4.0, us.size))
    return Model(model.spec, {k: v.astype(model.dtype) for k, v in weights.items()})


def _outputs(model: Model) -> np.ndarray:
    graphs = [generators.erdos_renyi(12, 0.3, seed=s) for s in range(3)]
    batch = GraphBatch(graphs, [0, 0, 0], model.spec)
    module = GNNModule.from_model(model)
    with torch.no_grad():
        ro = module.rollout(batch, 4)
        scores = module.pointer_scores("output_pi", batch, ro.zs[-1], ro.Es[-1])[0]
        reach = module.logits("hint_reach_h", batch, ro.zs[-1])
        return np.concatenate([scores.double().numpy(), reach.double().numpy().ravel()])


@pytest.fixture(scope="module")
def random_model():
    spec = learned_spec("bfs", "mpnn", 16)
    return GNNModule.initialised(spec, seed=3).to_model()


def test_symmetries_leave_the_function_unchanged(random_model):
    before = _outputs(random_model)
    disguised = _disguised(random_model, 0)
    assert not np.allclose(al.flat(disguised), al.flat(random_model))
    np.testing.assert_allclose(_outputs(disguised), before, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(_outputs(al.balance(random_model)), before, rtol=1e-4, atol=1e-4)


def test_balance_is_canonical(random_model):
    a = al.balance(random_model)
    weights = {k: v.astype(np.float64) for k, v in a.weights.items()}
    for us in al.unit_sets(a.spec):
        in2 = sum((al._units(weights[b.name], b, us.size) ** 2).sum(axis=1) for b in us.outputs)
        out2 = sum((al._units(weights[b.name], b, us.size) ** 2).sum(axis=1) for b in us.inputs)
        np.testing.assert_allclose(in2, out2, rtol=1e-4)
    # rescaling first changes nothing once balanced
    rng = np.random.default_rng(1)
    scaled = {k: v.astype(np.float64) for k, v in random_model.weights.items()}
    for us in al.unit_sets(random_model.spec):
        al.rescale(scaled, us, rng.uniform(0.25, 4.0, us.size))
    b = al.balance(Model(random_model.spec, {k: v.astype(np.float32) for k, v in scaled.items()}))
    np.testing.assert_allclose(al.flat(b), al.flat(a), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("hidden", [16, 128])
def test_compiled_model_found_behind_its_symmetries(hidden):
    compiled = engine.compile("bfs", processor="mpnn", hidden=hidden)
    disguised = _disguised(compiled, hidden)
    report = al.parameter_report(disguised, compiled, "bfs", graphs=8, points=3, batches=1)
    norm = float(np.linalg.norm(al.flat(al.balance(compiled))))
    assert report["distance_before_alignment"] > 0.1 * norm  # the disguise moved it far
    assert report["distance"] < 1e-6 * norm
    assert all(c > 1 - 1e-9 for c in report["matched_cosine"].values())
    assert report["barrier"] <= 1e-20 and max(report["path_loss"]) < 1e-20


def test_a_different_model_stays_at_a_distance(random_model):
    compiled = engine.compile("bfs", processor="mpnn", hidden=16)
    report = al.parameter_report(random_model, compiled, "bfs", graphs=8, points=3, batches=1)
    assert report["distance"] > 0.1 * float(np.linalg.norm(al.flat(al.balance(compiled))))
    assert report["path_loss"][0] > 1.0 and report["path_loss"][-1] < 1e-20


def test_unsupported_specs_are_refused():
    with pytest.raises(EngineError, match="max aggregation|one-layer|pointer decoder|expects"):
        al.unit_sets(learned_spec("bfs", "gatv2", 16))
    with pytest.raises(EngineError, match="one-layer"):
        al.unit_sets(learned_spec("bfs", "mpnn", 16, gated=True))
    with pytest.raises(EngineError, match="share"):
        al.align(engine.compile("bfs", processor="mpnn", hidden=16),
                 engine.compile("bfs", processor="mpnn", hidden=32), {}, 1)


def test_cli_writes_the_report(tmp_path):
    compiled = engine.compile("bfs", processor="mpnn", hidden=16)
    path = tmp_path / "disguised.npz"
    _disguised(compiled, 5).save(path)
    out = tmp_path / "report.json"
    assert al.main([str(path), "--algo", "bfs", "--graphs", "4", "--points", "3", "--out", str(out)]) == 0
    (report,) = json.loads(out.read_text())
    assert report["file"] == str(path) and report["distance"] < 1e-4
    assert al.main([str(path), "--algo", "bfs", "--out", str(tmp_path / "missing" / "r.json")]) == 2


def test_a_model_without_a_compiled_counterpart_is_refused_with_the_reason():
    compiled = engine.compile("bfs", processor="mpnn", hidden=16)
    assert al.compiled_counterpart(compiled, "bfs").spec == compiled.spec
    clrs = model_with_random_weights(learned_spec("bfs", "mpnn", 16, layer_norm=True, message_graph="complete"))
    with pytest.raises(EngineError, match="every pair of nodes.*layer-normalises"):
        al.compiled_counterpart(clrs, "bfs")
    gated = model_with_random_weights(learned_spec("bfs", "mpnn", 16, gated=True))
    with pytest.raises(EngineError, match="differs in layers"):
        al.compiled_counterpart(gated, "bfs")
