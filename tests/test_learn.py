"""The torch module: Model <-> module both ways, same states as the executor, gradients flow."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import engine  # noqa: E402
import engine.backends  # noqa: E402
from engine.graph import generators  # noqa: E402
from engine.learn import GNNModule, GraphBatch  # noqa: E402
from engine.algorithms import ALGORITHMS, compilable  # noqa: E402
from engine.algorithms.samplers import sample  # noqa: E402
from engine.algorithms.specs import learned_spec  # noqa: E402
from engine.model.factory import mpnn_spec, random_model  # noqa: E402


def _module_trace(module, batch, steps):
    """States, every hint decoded at every step and the outputs, by the module."""
    with torch.no_grad():
        ro = module.rollout(batch, steps)
        hints = {clrs: np.stack([module.decode(dec, batch, z, E, g).numpy()
                                 for z, E, g in zip(ro.zs[:steps], ro.Es[:steps], ro.gs[:steps])])
                 for clrs, dec in module.spec["hints"].items()}
        outputs = {clrs: module.decode(dec, batch, ro.zs[-1], ro.Es[-1], ro.gs[-1]).numpy()
                   for clrs, dec in module.spec["outputs"].items()}
    return torch.stack(ro.states).numpy(), hints, outputs


COMPILED = [(algo, form) for algo in compilable() for form in sorted(ALGORITHMS[algo].compilers)]


@pytest.mark.parametrize("algo, form", COMPILED)
def test_compiled_model_in_the_module_matches_the_executor(algo, form):
    """Every compiled model (compact BFS, Bellman-Ford, DFS: graph state, readouts, addresses;
    and those compiled into learned architectures, with hints fed back) gives the executor's
    states, hints and outputs in the module, bit for bit, at every step."""
    processor, _, graph = form.partition("@")  # "mpnn@complete": the MPNN over every pair of nodes
    model = (engine.compile(algo) if form == "compact"
             else engine.compile(algo, processor=processor, hidden=32, message_graph=graph or "input"))
    info = ALGORITHMS[algo]
    rng = np.random.RandomState(4)
    graphs = [sample(algo, n, rng, p=(0.2, 0.5))[1] for n in (5, 9, 14)]
    graphs.append(generators.erdos_renyi(60, 3, weighted=True, directed=info.directed, seed=2))
    module = GNNModule.from_model(model)
    for g in graphs:
        source = 3 % g.num_nodes if info.has_source else None
        steps = engine.reference(algo, g, source).steps if model.spec["termination"]["rule"] == "steps" else None
        res = engine.execute(model, g, source, backend="reference", hidden=True, trace=True, steps=steps)
        states, hints, outputs = _module_trace(module, GraphBatch(g, source, model.spec), res.steps)
        np.testing.assert_array_equal(states, res.hidden)
        for name, want in res.hints.items():  # a graph scalar: one value per graph of the batch
            np.testing.assert_array_equal(hints[name].reshape(want.shape), want, err_msg=name)
        for name, want in res.outputs.items():
            np.testing.assert_array_equal(outputs[name], want, err_msg=name)


def test_graph_states_of_a_batch_are_per_graph():
    """Compiled DFS on a batch of graphs: each graph keeps its own graph state (pointers hold
    ids within their graph) and equals its own run, also after it finished (3 n < T)."""
    model = engine.compile("dfs")
    rng = np.random.RandomState(0)
    graphs = [sample("dfs", n, rng, p=(0.3,))[1] for n in (4, 7, 9)]
    batch = GraphBatch(graphs, [None] * 3, model.spec)
    module = GNNModule.from_model(model)
    with torch.no_grad():
        ro = module.rollout(batch, 27)
    for j, (g, off) in enumerate(zip(graphs, batch.offsets)):
        res = engine.execute(model, g, backend="reference", hidden=True, steps=27)
        np.testing.assert_array_equal(torch.stack(ro.states).numpy()[:, off:off + g.num_nodes], res.hidden)
        np.testing.assert_array_equal(ro.gs[-1][j].numpy(), res.final_graph)


def test_readouts_reduce_per_graph_as_the_executor_does():
    """Runs of min/max channels (reduced together) and an argmax group with its payload, with
    NaNs and a graph whose values are all NaN: each graph's row equals numpy_ops' reduction of
    that graph alone."""
    from engine.backends.numpy_ops import reduce_readout_channels
    from engine.learn.module import reduce_readouts
    from engine.model import registry as MR

    kinds = ["max", "max", "max", "min", "min", "argmax", "payload", "max"]
    codes = np.array([MR.READOUT_CHANNELS.index(k) for k in kinds])
    rng = np.random.RandomState(3)
    sizes = [3, 5, 4]
    graphs = [engine.Graph.from_edges([], [], n) for n in sizes]
    r = rng.normal(size=(sum(sizes), len(kinds)))
    r[rng.uniform(size=r.shape) < 0.2] = np.nan
    r[8:12, :] = np.nan  # the third graph: nothing but NaN
    spec = learned_spec("bfs", "mpnn", 4)
    batch = GraphBatch(graphs, [0, 0, 0], spec)
    got = reduce_readouts(torch.from_numpy(r), codes, batch).numpy()
    for j, (n, off) in enumerate(zip(sizes, batch.offsets)):
        np.testing.assert_array_equal(got[j], reduce_readout_channels(r[off:off + n], codes))


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
    from engine.algorithms.specs import learned_spec

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
