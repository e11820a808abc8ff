"""The torch module: Model <-> module both ways, same states as the executor, gradients flow."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import engine  # noqa: E402
import engine.backends  # noqa: E402
from engine.graph import generators  # noqa: E402
from engine.learn import GNNModule, GraphBatch  # noqa: E402
from engine.model.factory import mpnn_spec, random_model  # noqa: E402


@pytest.mark.parametrize("algo", ["bfs", "bellman_ford"])
def test_compiled_model_in_the_module_matches_the_executor(algo):
    model = engine.compile(algo)
    g = generators.erdos_renyi(400, 4, weighted=True, seed=2)
    res = engine.execute(model, g, 3, backend="reference", hidden=True)
    module = GNNModule.from_model(model)
    batch = GraphBatch(g, 3, model.spec)
    with torch.no_grad():
        states = module(batch, res.steps).numpy()
        pi = module.decode("pi", batch, torch.from_numpy(states[-1])).numpy()
    np.testing.assert_array_equal(states, res.hidden)
    np.testing.assert_array_equal(pi, res.outputs["pi"])


def test_batches_are_disjoint_unions():
    model = engine.compile("bfs")
    graphs = [generators.path(7), generators.grid(3, 4), generators.erdos_renyi(20, 3, seed=1)]
    sources = [0, 5, 2]
    module = GNNModule.from_model(model)
    batch = GraphBatch(graphs, sources, model.spec)
    with torch.no_grad():
        h = module(batch, 12)[-1]
        pi = module.decode("pi", batch, h).numpy()
    for g, s, off in zip(graphs, sources, batch.offsets):
        want = engine.reference("bfs", g, s).outputs["pi"]
        np.testing.assert_array_equal(pi[off:off + g.num_nodes] - off, want)


def test_export_roundtrip_and_backend_parity():
    model = random_model(mpnn_spec(8, groups=(("max", 4), ("mean", None)), gated=True), seed=5, scale=0.5)
    module = GNNModule.from_model(model)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.01)
    exported = module.to_model()
    assert set(exported.weights) == set(model.weights)
    g = generators.erdos_renyi(300, 4, weighted=True, seed=0)
    with torch.no_grad():
        states = module(GraphBatch(g, 0, exported.spec), 3).numpy()
    for be in engine.backends.available_backends():
        res = engine.execute(exported, g, 0, backend=be, steps=3, hidden=True)
        for a, b in zip(res.hidden, states):
            assert np.abs(a - b).max() <= 1e-5 * max(1.0, np.abs(b).max()), be


def test_gradients_flow_to_every_processor_weight():
    spec = mpnn_spec(8, groups=(("max", None),), gated=True)
    module = GNNModule.from_model(random_model(spec, seed=0, scale=0.5))
    g = generators.erdos_renyi(50, 4, weighted=True, seed=3)
    batch = GraphBatch(g, 0, spec)
    h = module(batch, 2)[-1]
    scores, src, pos, _ = module.pointer_scores("ptr", batch, h)
    loss = (h ** 2).mean() + scores.square().mean()
    loss.backward()
    for name, p in module.params.items():
        if name.startswith("layers") or name.startswith("init") or name.startswith("decoders__ptr"):
            assert p.grad is not None and torch.isfinite(p.grad).all(), name


@pytest.mark.parametrize("processor", ["mpnn", "gatv2"])
def test_layer_norm_update_on_every_backend(processor):
    """CLRS's optional layer norm of the processor output: the module, every backend and the
    formula agree."""
    from engine.learn.specs import learned_spec

    spec = learned_spec("bfs", processor, 16, layer_norm=True, hint_mode="decoded_only")
    module = GNNModule.initialised(spec, seed=2)
    with torch.no_grad():
        module.params["layers__0__update__ln__weight"].uniform_(0.5, 1.5)
        module.params["layers__0__update__ln__bias"].uniform_(-0.5, 0.5)
    model = module.to_model()
    g = generators.erdos_renyi(200, 4, weighted=True, seed=0)
    with torch.no_grad():
        states = module(GraphBatch(g, 0, spec), 3).numpy()
    # the normalised state: per node, mean beta-weighted, unit spread before the affine map
    gamma, beta = model.weights["layers.0.update.ln.weight"], model.weights["layers.0.update.ln.bias"]
    y = (states[1] - beta) / gamma
    np.testing.assert_allclose(y.mean(axis=1), 0, atol=1e-4)
    np.testing.assert_allclose(y.std(axis=1), 1, atol=1e-2)
    for be in engine.backends.available_backends():
        res = engine.execute(model, g, 0, backend=be, steps=3, hidden=True)
        for a, b in zip(res.hidden, states):
            assert np.abs(a - b).max() <= 1e-5 * max(1.0, np.abs(b).max()), be
