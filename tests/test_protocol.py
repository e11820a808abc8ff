"""The CLRS protocol, element by element, on small constructed cases: the fully connected
message graph and its edge inputs, pointer candidates over all nodes, CLRS-30's test split,
random positions, the ground-truth hint 0, soft feedback values, the preset and its refusals."""
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import engine  # noqa: E402
import engine.backends  # noqa: E402
from engine.algorithms.samplers import clrs_er_matrix, clrs_split  # noqa: E402
from engine.algorithms.specs import learned_spec  # noqa: E402
from engine.analysis.baselines import pointer_baselines  # noqa: E402
from engine.analysis.clrs_test import test_score as clrs_test_score, trivial_scores  # noqa: E402
from engine.errors import EngineError, ModelError  # noqa: E402
from engine.learn.module import GNNModule, GraphBatch  # noqa: E402
from engine.learn.trainer import (PROTOCOLS, TrainConfig, batch_loss, given_hint0, loss_terms, make_batch,  # noqa: E402
                                  pointer_accuracy, sample_batch, train)
from engine.model.factory import random_model  # noqa: E402
from engine.model.message_graph import complete_graph, message_graph  # noqa: E402
from engine.model.spec import expected_shapes  # noqa: E402
from engine.train import main  # noqa: E402


def _graph():
    # 0 -> 1 (weight 2), 2 -> 1 twice (weights 5 and 3: the lighter one counts), 3 -> 3 (a self-loop)
    return engine.Graph.from_edges([0, 2, 2, 3], [1, 1, 1, 3], 4, [2.0, 5.0, 3.0, 7.0])


def test_complete_message_graph_and_its_edge_inputs():
    g = _graph()
    K, adjacency, weight = complete_graph(g, np.float32)
    n = 4
    assert K.num_edges == n * n
    assert np.array_equal(K.indices, np.tile(np.arange(n), n))  # every row: all sources, ascending
    dst = K.edge_targets()
    A = np.zeros((n, n), np.float32)  # A[u, v] of edge u -> v
    A[K.indices, dst] = adjacency
    W = np.zeros((n, n), np.float32)
    W[K.indices, dst] = weight
    want_adj = np.eye(n, dtype=np.float32)  # CLRS's adj: every self pair, then the edges
    want_adj[[0, 2, 3], [1, 1, 3]] = 1
    assert np.array_equal(A, want_adj)
    want_w = np.zeros((n, n), np.float32)
    want_w[0, 1], want_w[2, 1], want_w[3, 3] = 2, 3, 7
    assert np.array_equal(W, want_w)
    spec = learned_spec("bellman_ford", "mpnn", 8, message_graph="complete")
    assert spec["edge_inputs"] == ["adjacency", "weight"] and not spec["layers"][0]["include_self"]
    K2, cols = message_graph(spec, g, np.float32)
    assert np.array_equal(cols, np.stack([adjacency, weight], axis=1))
    # the input message graph: the graph itself; adjacency 1 on each of its edges
    same, cols = message_graph({"edge_inputs": ["weight", "adjacency"]}, g, np.float32)
    assert same is g and np.array_equal(cols, np.stack([g.edge_weights(), np.ones(4, np.float32)], axis=1))


def test_complete_spec_needs_no_virtual_self_edge():
    spec = learned_spec("bfs", "mpnn", 8, message_graph="complete")
    spec["layers"][0]["include_self"] = True
    with pytest.raises(ModelError, match="include_self must be false with message_graph 'complete'"):
        random_model(spec)
    spec["layers"][0]["include_self"] = False
    spec["message_graph"] = "everything"
    with pytest.raises(ModelError, match="message_graph must be one of"):
        random_model(spec)


def test_pointer_candidates_are_all_nodes():
    """On a complete message graph every node may point to every node, an in-neighbour or
    not: the module's candidates for node v are 0..n-1 once each, and the executor decodes
    a non-neighbour when its score is the highest."""
    g = engine.Graph.from_edges([0, 1], [1, 2], 5)  # a path 0 -> 1 -> 2; nodes 3, 4 isolated
    spec = learned_spec("bfs", "mpnn", 8, message_graph="complete")
    model = random_model(spec, seed=3)
    module = GNNModule.from_model(model)
    batch = GraphBatch(g, 0, spec)
    h = module.initial_state(batch)
    scores, src, pos, eid = module.pointer_scores("output_pi", batch, h)
    for v in range(5):
        assert sorted(src[pos == v].tolist()) == list(range(5))
    assert bool((eid >= 0).all())  # no virtual self candidate: the self pair is an edge
    # make node 4 (no edge anywhere) the best candidate of every node: the source part of the
    # score's first layer reads the state, so raise node 4's state by a large offset
    w = dict(model.weights)
    w["decoders.output_pi.src"] = np.zeros_like(w["decoders.output_pi.src"])
    w["decoders.output_pi.src"][spec["hidden"] + 0, 0] = 1.0  # the pos input column (i / n)
    w["decoders.output_pi.1.weight"] = np.zeros_like(w["decoders.output_pi.1.weight"])
    w["decoders.output_pi.1.weight"][0, 0] = 1.0
    w["decoders.output_pi.bias"] = np.zeros_like(w["decoders.output_pi.bias"])
    w["decoders.output_pi.dst"] = np.zeros_like(w["decoders.output_pi.dst"])
    w["decoders.output_pi.edge"] = np.zeros_like(w["decoders.output_pi.edge"])
    chosen = engine.Model(spec, w)
    for be in engine.backends.available_backends():
        res = engine.execute(chosen, g, 0, steps=1, backend=be)
        assert np.array_equal(res.outputs["pi"], np.full(5, 4)), be
    # the same weights over the input's edges choose among in-neighbours and self only
    sparse = learned_spec("bfs", "mpnn", 8)
    ws = {k: v for k, v in w.items() if not k.endswith(".edge")}
    for name, shape in expected_shapes(sparse).items():
        if name.endswith(".edge"):
            ws[name] = np.zeros(shape, np.float32)
    res = engine.execute(engine.Model(sparse, ws), g, 0, steps=1)
    assert np.array_equal(res.outputs["pi"], [0, 1, 2, 3, 4])  # self beats a lower-pos in-neighbour


def test_fully_connected_model_refuses_a_huge_graph_before_allocating():
    model = random_model(learned_spec("bfs", "mpnn", 8, message_graph="complete"))
    big = engine.Graph.from_edges([0], [1], 50_000)
    with pytest.raises(EngineError, match="every pair of nodes.*protocol sparse"):
        engine.execute(model, big, 0, steps=1)
    with pytest.raises(EngineError, match="eval_sizes.*fully connected"):
        TrainConfig.from_fields({"protocol": "clrs", "eval_sizes": [10_000]})


def test_clrs_test_split_is_clrs30s():
    split = clrs_split("bfs", "test")
    assert len(split) == 32
    assert all(g.num_nodes == 64 and g.meta["p"] == 0.5 for _, g, _ in split)
    # the first graph is CLRS's first draw from RandomState(3): p, the matrix, the source
    rng = np.random.RandomState(3)
    assert rng.choice((0.5,)) == 0.5
    A = clrs_er_matrix(rng, 64, 0.5, directed=False, weighted=False)
    assert np.array_equal(split[0][0], A) and split[0][2] == rng.choice(64)
    assert len(clrs_split("dfs", "val")) == 32 and clrs_split("dfs", "val")[0][1].num_nodes == 16
    with pytest.raises(EngineError, match="unknown CLRS split"):
        clrs_split("bfs", "dev")


def test_trivial_rules_are_pooled_over_the_test_nodes_as_the_score_is():
    # two graphs of 4 and 12 nodes: each rule's score weighs a graph by its nodes, not 1/2 each
    small = engine.Graph.from_edges([0, 1, 2], [1, 2, 3], 4)
    large = engine.Graph.from_edges(np.arange(11), np.arange(1, 12), 12)
    data = {"graphs": [small, large], "sources": [0, 0], "pos": None,
            "refs": [engine.reference("bfs", g, 0, trace=True) for g in (small, large)]}
    trivial, best = trivial_scores("bfs", data)
    per_graph = [pointer_baselines(g, r.outputs["pi"]) for g, r in zip(data["graphs"], data["refs"])]
    for rule, score in trivial.items():
        assert score == pytest.approx((4 * per_graph[0][rule] + 12 * per_graph[1][rule]) / 16)
    # on a path from node 0 every BFS parent is the node's lowest candidate and its only
    # in-neighbour below it; the node itself is right only at the source
    assert trivial[best] == trivial["highest in-neighbour below"] == trivial["lowest candidate"] == 1.0
    assert trivial["self"] == pytest.approx(2 / 16)


def test_random_positions_are_sorted_uniform_draws_per_graph():
    cfg = TrainConfig.from_fields({"algo": "bfs", "protocol": "clrs", "hidden": 8})
    data = sample_batch(cfg, np.random.RandomState(0), 3, [5, 9])
    batch = make_batch(data, cfg.spec())
    col = cfg.spec()["node_inputs"].index("pos")
    for pos, g, off in zip(data["pos"], data["graphs"], batch.offsets):
        assert pos.shape == (g.num_nodes,) and np.all(np.diff(pos) > 0) and 0 <= pos[0] and pos[-1] < 1
        assert np.array_equal(batch.x[off:off + g.num_nodes, col].numpy(), pos.astype(np.float32))
    fixed = sample_batch(TrainConfig(algo="bfs", hidden=8), np.random.RandomState(0), 2, [5])
    assert fixed["pos"] is None
    x = make_batch(fixed, learned_spec("bfs", "mpnn", 8)).x[:5, 0].numpy()
    assert np.array_equal(x, (np.arange(5) / 5).astype(np.float32))


def test_ground_truth_hint0_is_fed_into_the_first_step():
    cfg = TrainConfig.from_fields({"algo": "bfs", "protocol": "clrs", "hidden": 8})
    module = GNNModule.initialised(cfg.spec(), 0)
    data = sample_batch(cfg, np.random.RandomState(1), 2, [6])
    batch = make_batch(data, module.spec)
    f, E = given_hint0(module, data, batch)
    lay = module.layout
    cols = {s.decoder: s for s in lay.feedback}
    want_pi = np.concatenate([r.hints["pi_h"][0] + off for r, off in zip(data["refs"], batch.offsets)])
    want_reach = np.concatenate([r.hints["reach_h"][0] for r in data["refs"]])
    slot = cols[module.spec["hints"]["pi_h"]]
    off = lay.hx
    assert np.array_equal(f[:, slot.col - off].numpy(), (want_pi == np.arange(batch.num_nodes)).astype(np.float32))
    assert np.array_equal(E[:, slot.edge_col].numpy(),
                          (want_pi[batch.edge_dst.numpy()] == batch.edge_src.numpy()).astype(np.float32))
    slot = cols[module.spec["hints"]["reach_h"]]
    assert np.array_equal(f[:, slot.col - off].numpy(), want_reach.astype(np.float32))
    with torch.no_grad():
        roll = module.rollout(batch, 2, hard=False, first=(f, E))
    assert torch.equal(roll.zs[1][:, lay.hx:lay.addr_col], f)  # z_1 = [h_1, x, f_0]: the given hint 0
    assert torch.equal(roll.Es[1], E)


def test_soft_feedback_is_the_pointer_softmax_over_all_nodes():
    cfg = TrainConfig.from_fields({"algo": "bfs", "protocol": "clrs", "hidden": 8})
    module = GNNModule.initialised(cfg.spec(), 2)
    g = engine.Graph.from_edges([0, 1, 1, 2], [1, 0, 2, 1], 4)
    batch = GraphBatch(g, 0, module.spec)
    with torch.no_grad():
        z = module.z_of(batch, module.initial_state(batch))
        f, E = module.feed_back(batch, z, batch.E, hard=False)
        dec = module.spec["hints"]["pi_h"]
        slot = next(s for s in module.layout.feedback if s.decoder == dec)
        scores, src, pos, eid = module.pointer_scores(dec, batch, z)
    prob = torch.softmax(scores.reshape(4, 4), dim=1)  # row v: candidates 0..3 (sources ascending)
    ecol = E[:, slot.edge_col].reshape(4, 4)
    assert torch.allclose(ecol, prob, atol=1e-6)
    assert torch.allclose(f[:, slot.col - module.layout.hx], torch.diagonal(prob), atol=1e-6)
    mask = module.spec["hints"]["reach_h"]
    mslot = next(s for s in module.layout.feedback if s.decoder == mask)
    want = torch.sigmoid(module.logits(mask, batch, z))[:, 0]
    assert torch.allclose(f[:, mslot.col - module.layout.hx], want)


def test_protocol_presets_and_overrides(tmp_path):
    clrs = TrainConfig.from_fields({"algo": "bfs", "protocol": "clrs"})
    for key, value in PROTOCOLS["clrs"].items():
        assert getattr(clrs, key) == value
    assert clrs.spec()["message_graph"] == "complete" and clrs.spec()["layers"][0]["update"]["layer_norm"]
    assert clrs.spec()["description"]["protocol"]["eval_feedback"] == "soft"
    override = TrainConfig.from_fields({"algo": "bfs", "protocol": "clrs", "layer_norm": False})
    assert not override.layer_norm and override.message_graph == "complete"
    sparse = TrainConfig.from_fields({"algo": "bfs"})
    assert sparse.message_graph == "input" and sparse.hint0 == "decoded" and "message_graph" not in sparse.spec()
    with pytest.raises(EngineError, match="protocol must be one of"):
        TrainConfig.from_fields({"algo": "bfs", "protocol": "clrs30"})
    with pytest.raises(EngineError, match="hint0 must be one of"):
        TrainConfig.from_fields({"algo": "bfs", "hint0": "given"})


def test_a_checkpoint_from_before_protocols_resumes(tmp_path):
    cfg = TrainConfig(algo="bfs", hidden=8, steps=2, batch=2, train_sizes=(4,), eval_every=2, val_graphs=2)
    train(cfg, str(tmp_path), progress=False)
    state = torch.load(tmp_path / "state.pt", weights_only=True)
    for key in ("protocol", "message_graph", "random_pos", "hint0", "eval_feedback"):
        del state["config"][key]
    torch.save(state, tmp_path / "state.pt")
    result = train(TrainConfig(**{**cfg.__dict__, "steps": 3}), str(tmp_path), progress=False)
    assert result["step"] == 3
    with pytest.raises(EngineError, match="another configuration"):
        train(TrainConfig.from_fields({**cfg.plain(), "steps": 4, "protocol": "clrs"}), str(tmp_path),
              progress=False)


@pytest.mark.parametrize("algo,processor", [("bfs", "mpnn"), ("bellman_ford", "gatv2"), ("dfs", "mpnn")])
def test_clrs_protocol_trains_and_scores_on_the_test_split(tmp_path, algo, processor, capsys):
    out = tmp_path / "run"
    assert main(["--algo", algo, "--processor", processor, "--protocol", "clrs", "--hidden", "16", "--steps", "3",
                 "--batch", "4", "--out", str(out)]) == 0
    model = engine.Model.load(out / "best.npz")
    assert model.spec["message_graph"] == "complete"
    cfg = TrainConfig.from_fields({"algo": algo, "processor": processor, "protocol": "clrs", "hidden": 16})
    data = sample_batch(cfg, np.random.RandomState(0), 2, [5])
    assert torch.isfinite(batch_loss(GNNModule.from_model(model), cfg, data))
    result = clrs_test_score(model)
    assert result["graphs"] == 32 and result["nodes"] == 32 * 64
    assert (result["feedback"], result["hint0"]) == ("soft", "ground_truth")
    assert 0 <= result["score"] <= 1 and result["best_trivial"] in result["trivial"]
    # the executor runs the exported model over the same complete message graph (hard
    # feedback, hint 0 decoded) as the module does: the same pointers, up to float rounding
    g, s = data["graphs"][0], data["sources"][0]
    ref = engine.reference(algo, g, s)
    module = GNNModule.from_model(model)
    batch = GraphBatch(g, s, model.spec)
    with torch.no_grad():
        _, zs, Es, gs = module.rollout(batch, ref.steps, hard=True)
        want = module.decode(model.spec["outputs"]["pi"], batch, zs[-1], Es[-1], gs[-1]).numpy()
    for be in engine.backends.available_backends():
        res = engine.execute(model, g, s, steps=ref.steps, backend=be)
        assert np.mean(res.outputs["pi"] == want) == 1.0, be
    one = {"graphs": [g], "sources": [s], "refs": [engine.reference(algo, g, s, trace=True)], "pos": None}
    assert pointer_accuracy(module, one) == np.mean(want == ref.outputs["pi"])


def test_graph_level_hints_are_decoded_through_a_graph_state():
    """DFS's ``time`` (a graph-level hint): under the CLRS protocol the MPNN gets a graph state
    (max readout, graph update) and a graph_scalar decoder, trained by squared error over each
    graph's steps; the executor decodes it as the module does. GATv2 has none (dropped), the
    sparse protocol leaves it out, and asking learned_spec for it with GATv2 is refused."""
    cfg = TrainConfig.from_fields({"algo": "dfs", "protocol": "clrs", "hidden": 16})
    spec = cfg.spec()
    assert spec["hints"]["time"] == "hint_time" and spec["decoders"]["hint_time"] == {"type": "graph_scalar"}
    assert spec["graph_hidden"] == 16 and "hint_time" not in spec["feedback"]
    assert "time" not in TrainConfig.from_fields({"algo": "dfs", "hidden": 16}).spec()["hints"]
    assert "time" not in TrainConfig.from_fields({"algo": "dfs", "protocol": "clrs", "processor": "gatv2",
                                                  "hidden": 16}).spec()["hints"]
    with pytest.raises(EngineError, match="graph state"):
        learned_spec("dfs", "gatv2", 16, graph_hints=True)
    assert "graph_hidden" not in TrainConfig.from_fields({"algo": "bfs", "protocol": "clrs", "hidden": 16}).spec()

    module = GNNModule.initialised(spec, seed=1)
    data = sample_batch(cfg, np.random.RandomState(0), 3, [4, 6])
    terms = loss_terms(module, cfg, data)
    # the term is the mean squared error of the decoded time over steps 1 .. T_i - 1 of each graph
    batch = GraphBatch(data["graphs"], data["sources"], spec, pos=data["pos"])
    errors = []
    with torch.no_grad():
        for g, r, p in zip(data["graphs"], data["refs"], data["pos"]):
            one = {"graphs": [g], "sources": [None], "refs": [r], "pos": [p]}
            alone = GraphBatch([g], [None], spec, pos=[p])
            ro = module.rollout(alone, r.steps, hard=False, first=given_hint0(module, one, alone))
            errors += [float((module.decode("hint_time", alone, None, g=ro.gs[t])[0] - r.hints["time"][t]) ** 2)
                       for t in range(1, r.steps)]
    assert terms["hint_time"].item() == pytest.approx(np.mean(errors), rel=1e-4)
    model = module.to_model()
    g = data["graphs"][0]
    T = data["refs"][0].steps
    with torch.no_grad():
        alone = GraphBatch([g], [None], spec)
        ro = module.rollout(alone, T, hard=True)
        want = torch.stack([module.decode("hint_time", alone, None, g=ro.gs[t]) for t in range(T + 1)])
    for be in engine.backends.available_backends():
        res = engine.execute(model, g, steps=T, backend=be, trace=True)
        # hint t is decoded from the graph state after t steps, t = 0 .. T - 1, as the reference records it
        np.testing.assert_allclose(res.hints["time"], want[:T, 0].numpy(), rtol=1e-5, atol=1e-6, err_msg=be)


def test_clrs_message_mlp_depth_trains_and_runs_on_every_backend(tmp_path):
    """message_depth 2 is CLRS's MPNN message (relu of the summed parts, then Linear, relu,
    Linear); the exported model runs on every backend as the module does."""
    spec = learned_spec("bfs", "mpnn", 8, message_depth=2, message_graph="complete")
    assert spec["layers"][0]["message"] == {"widths": [8, 8, 8], "activations": ["relu", "relu", "identity"]}
    assert learned_spec("bfs", "mpnn", 8)["layers"][0]["message"]["widths"] == [8, 8]
    with pytest.raises(EngineError, match="message_depth is for the mpnn"):
        TrainConfig.from_fields({"algo": "bfs", "processor": "gatv2", "message_depth": 2})
    with pytest.raises(EngineError, match="message_depth must be an integer"):
        TrainConfig.from_fields({"algo": "bfs", "message_depth": 0})
    conf = tmp_path / "c.json"
    conf.write_text(json.dumps({"message_depth": 2}))
    out = tmp_path / "run"
    assert main(["--algo", "bellman_ford", "--protocol", "clrs", "--hidden", "16", "--steps", "2", "--batch", "4",
                 "--config", str(conf), "--out", str(out)]) == 0
    model = engine.Model.load(out / "best.npz")
    assert len(model.spec["layers"][0]["message"]["widths"]) == 3
    g = engine.graph.generators.erdos_renyi(30, 3, weighted=True, seed=2)
    module = GNNModule.from_model(model)
    with torch.no_grad():
        states = module(GraphBatch(g, 0, model.spec), 3).numpy()
    for be in engine.backends.available_backends():
        res = engine.execute(model, g, 0, steps=3, backend=be, hidden=True)
        assert max(np.abs(a - b).max() for a, b in zip(res.hidden, states)) <= 1e-5 * max(1.0, np.abs(states).max())
