"""GATv2 as a parametrisation of the family: the module trains GATv2's own parameters, the
export keeps the structure exactly, and every backend runs it like the module."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import engine  # noqa: E402
import engine.backends  # noqa: E402
from engine.errors import ModelError  # noqa: E402
from engine.graph import generators  # noqa: E402
from engine.learn import GNNModule, GraphBatch  # noqa: E402
from engine.model.factory import gatv2_layer  # noqa: E402
from engine.algorithms.specs import learned_spec  # noqa: E402
from engine.learn.trainer import TrainConfig, train  # noqa: E402


def _leaky(x, slope=0.2):
    return np.where(x > 0, x, slope * x)


def test_layer_is_gatv2_written_out():
    """One layer of the exported Model equals GATv2 computed directly in NumPy (float64)."""
    spec = learned_spec("bfs", "gatv2", 8, heads=2, hint_mode="decoded_only")
    spec["dtype"] = "float64"
    module = GNNModule.initialised(spec, seed=3)
    model = module.to_model()
    g = generators.erdos_renyi(40, 3, weighted=True, seed=1)
    res = engine.execute(model, g, 0, backend="reference", steps=1, hidden=True)
    h0 = res.hidden[0]
    x = np.hstack([np.arange(40)[:, None] / 40, np.eye(40)[:, :1]])
    z = np.hstack([h0, x])
    p = {k.split("_", 1)[1]: v.detach().numpy() for k, v in module.structure.p.items()}
    W = model.weights
    src, dst, w = g.indices, g.edge_targets(), g.edge_weights(np.float64)
    src = np.concatenate([np.arange(40), src])  # self messages first
    dst = np.concatenate([np.arange(40), dst])
    e = np.concatenate([np.zeros(40), w])[:, None]
    pre = z[src] @ p["att_src"] + z[dst] @ p["att_dst"] + e @ p["att_edge"] + p["att_bias"]
    val = z[src] @ p["val_src"] + p["val_bias"]
    want = np.zeros((40, 8))
    for head in range(2):
        sl = slice(4 * head, 4 * head + 4)
        score = _leaky(pre[:, sl]) @ p["att_heads"][sl]
        for v in range(40):
            sel = dst == v
            a = np.exp(score[sel] - score[sel].max())
            want[v, sl] = (a / a.sum()) @ val[sel, sl]
    want = np.maximum(0, z @ W["layers.0.update.node"] + want + W["layers.0.update.bias"])
    np.testing.assert_allclose(res.hidden[1], want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("heads", [1, 4])
def test_export_and_backends_agree_with_the_module(heads):
    spec = learned_spec("bellman_ford", "gatv2", 16, heads=heads)
    module = GNNModule.initialised(spec, seed=heads)
    model = module.to_model()
    again = GNNModule.from_model(model)
    g = generators.erdos_renyi(300, 4, weighted=True, seed=0)
    with torch.no_grad():
        states = again(GraphBatch(g, 0, spec), 4).numpy()
    for be in engine.backends.available_backends():
        res = engine.execute(model, g, 0, backend=be, steps=4, hidden=True)
        for step, (a, b) in enumerate(zip(res.hidden, states)):
            assert np.abs(a - b).max() <= 1e-5 * max(1.0, np.abs(b).max()), (be, step)


def test_weights_without_the_structure_are_refused():
    spec = learned_spec("bfs", "gatv2", 8)
    model = GNNModule.initialised(spec, seed=0).to_model()
    weights = dict(model.weights)
    weights["layers.0.message.src"] = weights["layers.0.message.src"].copy()
    weights["layers.0.message.src"][0, 8] += 1  # the -P half no longer mirrors P
    with pytest.raises(ModelError, match="GATv2 structure"):
        GNNModule.from_model(engine.Model(spec, weights))
    bad = dict(spec, layers=[dict(gatv2_layer(8, 1), groups=[{"kind": "max", "size": 9}])])
    with pytest.raises(ModelError, match="shape of a GATv2 layer"):
        GNNModule(bad)
    with pytest.raises(ModelError, match="dividing hidden"):
        gatv2_layer(8, 3)


def test_training_keeps_the_structure_and_lowers_the_loss(tmp_path):
    cfg = TrainConfig(algo="bfs", processor="gatv2", hidden=16, heads=2, steps=40, batch=8, train_sizes=(4, 7),
                      eval_every=20, val_graphs=8, seed=2)
    train(cfg, str(tmp_path), progress=False)
    import json
    losses = [json.loads(line)["loss"] for line in open(tmp_path / "metrics.jsonl")]
    assert np.mean(losses[-8:]) < np.mean(losses[:8])
    model = engine.Model.load(tmp_path / "last.npz")
    GNNModule.from_model(model)  # the structure survived training (checked exactly)
    assert model.spec["processor"]["kind"] == "gatv2"


def test_bellman_ford_is_refused_in_gatv2_because_edge_weights_reach_only_attention():
    """engine.compile refuses Bellman-Ford in GATv2 and says why; the premise of the argument
    (docs/compiled_in_learned.md), on models: as one edge weight grows, a GATv2's states stop
    changing (the weight only moves attention logits, whose softmax saturates) while d_u + w
    grows; an MPNN's message reads the weight and its states follow it."""
    with pytest.raises(engine.EngineError, match="cannot be compiled into 'gatv2'.*values"):
        engine.compile("bellman_ford", processor="gatv2")

    def states(model, w):
        g = engine.Graph.from_edges([0], [1], 2, np.array([w], dtype=np.float32))
        return engine.execute(model, g, 0, backend="reference", steps=3, hidden=True).hidden[-1]

    for seed in range(3):
        gat = GNNModule.initialised(learned_spec("bellman_ford", "gatv2", 16, heads=2), seed=seed).to_model()
        mpnn = GNNModule.initialised(learned_spec("bellman_ford", "mpnn", 16), seed=seed).to_model()
        far = [states(gat, w) for w in (1e5, 1e6, 1e8)]
        assert all(np.array_equal(far[0], s) for s in far[1:]), seed
        assert np.abs(states(mpnn, 1e8)).max() > 10 * np.abs(states(mpnn, 1e6)).max(), seed
