"""Hint feedback (CLRS's encoded_decoded mode): decoded hints become inputs of the next step,
the same way in the executor (every backend) and in the torch module."""
import numpy as np
import pytest

import engine
import engine.backends
from engine.errors import EngineError, ModelError
from engine.graph import Graph, generators
from engine.model.spec import FORMAT, VERSION, expected_shapes


def _reach_by_feedback() -> engine.Model:
    """h0 = source; the mask hint is h > 0.5 and is fed back; a step sets h'_v = max over
    in-neighbours and v of the fed-back mask: the hints are BFS reachability after t steps,
    computed only through the feedback path (the message reads f alone)."""
    spec = {
        "format": FORMAT, "version": VERSION, "name": "reach-by-feedback", "dtype": "float32",
        "node_inputs": ["source"], "edge_inputs": [], "hidden": 1,
        "layers": [{"include_self": True, "message": {"widths": [1], "activations": ["relu"]},
                    "groups": [{"kind": "max", "size": 1}],
                    "update": {"widths": [1], "activations": ["identity"]}}],
        "decoders": {"m": {"type": "mask"}}, "outputs": {"m": "m"}, "hints": {"m": "m"},
        "feedback": ["m"], "termination": {"rule": "steps"},
    }
    w = {k: np.zeros(s, np.float32) for k, s in expected_shapes(spec).items()}
    w["init.weight"][0, 0] = 1
    w["decoders.m.weight"][0, 0] = 1  # z = [h, source, f]
    w["decoders.m.bias"][0] = -0.5
    w["layers.0.message.src"][2, 0] = 1  # reads f of the sender only
    w["layers.0.update.agg"][0, 0] = 1
    return engine.Model(spec, w)


@pytest.mark.parametrize("directed", [False, True])
def test_fed_back_hints_drive_the_next_step(directed, backend):
    g = generators.erdos_renyi(300, 2, directed=directed, seed=5)
    model = _reach_by_feedback()
    res = engine.execute(model, g, 7, backend=backend, steps=6, trace=True)
    # hop distances from the source
    dist = np.full(g.num_nodes, np.inf)
    dist[7] = 0
    frontier = [7]
    out_indptr, out_targets, _ = g.out_csr()
    for t in range(1, 7):
        nxt = [int(u) for v in frontier for u in out_targets[out_indptr[v]:out_indptr[v + 1]] if dist[u] == np.inf]
        for u in nxt:
            dist[u] = t
        frontier = sorted(set(nxt))
    for t in range(6):
        # hint t (decoded from h_t before step t) is fed into step t: h_{t+1} widens it by a hop
        np.testing.assert_array_equal(res.hints["m"][t], (dist <= t).astype(np.float32))
    np.testing.assert_array_equal(res.outputs["m"], (dist <= 6).astype(np.float32))


def test_feedback_models_run_dense():
    g = generators.path(20)
    model = _reach_by_feedback()
    with pytest.raises(EngineError, match="feeds decoded hints back"):
        engine.execute(model, g, 0, steps=3, mode="active")
    res = engine.execute(model, g, 0, steps=3, mode="auto")
    assert res.outputs["m"].sum() == 4 and res.mode == "dense"


def test_feedback_spec_errors():
    spec = _reach_by_feedback().spec
    for fb, msg in [(["nope"], "unknown decoder"), (["m", "m"], "twice"), ("m", "must be a list")]:
        bad = dict(spec, feedback=fb)
        with pytest.raises(ModelError, match=msg):
            expected_shapes(bad)
    bad = dict(spec, hints={}, feedback=["m"])
    with pytest.raises(ModelError, match="not a hint decoder"):
        expected_shapes(bad)


@pytest.mark.parametrize("algo,processor", [("bfs", "mpnn"), ("dfs", "mpnn"), ("bellman_ford", "gatv2")])
def test_executor_matches_the_module_with_feedback(algo, processor):
    """Every backend gives the module's states and hints when hints are fed back (pointer,
    mask, mask_one, categorical and scalar hints)."""
    torch = pytest.importorskip("torch")
    from engine.learn import GNNModule, GraphBatch
    from engine.algorithms.specs import learned_spec

    spec = learned_spec(algo, processor, 16, hint_mode="encoded_decoded")
    assert spec["feedback"]
    module = GNNModule.initialised(spec, seed=4)
    model = module.to_model()
    g = generators.erdos_renyi(150, 3, weighted=True, directed=algo == "dfs", seed=1)
    batch = GraphBatch(g, 0, spec)
    with torch.no_grad():
        states, zs, Es, _ = module.rollout(batch, 5, hard=True)
        want_hints = {name: [module.decode(dec, batch, z, E).numpy() for z, E in zip(zs[:5], Es[:5])]
                      for name, dec in spec["hints"].items()}
    states = torch.stack(states).numpy()
    for be in engine.backends.available_backends():
        res = engine.execute(model, g, 0, backend=be, steps=5, hidden=True, trace=True)
        for step, (a, b) in enumerate(zip(res.hidden, states)):
            assert np.abs(a - b).max() <= 1e-5 * max(1.0, np.abs(b).max()), (be, step)
        for name, rows in want_hints.items():
            for t, want in enumerate(rows):
                got = res.hints[name][t]
                if got.dtype.kind == "f" and spec["decoders"][spec["hints"][name]]["type"] == "scalar":
                    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
                else:  # random float weights: a decoder's argmax may flip at a near-tie of two logits
                    assert np.mean(got == want) > 0.99, (be, name, t)


def test_pointer_feedback_marks_the_pointed_edge():
    """A fed-back pointer gives node column [p(v) = v] and edge column [p(v) = u]."""
    g = Graph.from_edges([0, 1, 2, 2], [1, 2, 1, 0], 3)
    spec = {
        "format": FORMAT, "version": VERSION, "name": "ptr", "dtype": "float64",
        "node_inputs": ["id"], "edge_inputs": [], "hidden": 1,
        "layers": [{"include_self": False, "message": {"widths": [1], "activations": ["identity"]},
                    "groups": [{"kind": "sum", "size": 1}],
                    "update": {"widths": [1], "activations": ["identity"]}}],
        "decoders": {"p": {"type": "pointer", "widths": [1], "activations": ["identity"]}},
        "outputs": {}, "hints": {"p": "p"}, "feedback": ["p"], "termination": {"rule": "steps"},
    }
    w = {k: np.zeros(s) for k, s in expected_shapes(spec).items()}
    w["decoders.p.src"][1, 0] = -1  # score = -id(u): points at the lowest-id candidate
    w["layers.0.message.edge"][0, 0] = 1  # message = [p(v) = u]
    w["layers.0.update.agg"][0, 0] = 10
    w["layers.0.update.node"][2, 0] = 1  # + [p(v) = v]
    res = engine.execute(engine.Model(spec, w), g, steps=1, hidden=True, trace=True)
    # candidates: v itself and its in-neighbours; lowest id wins
    np.testing.assert_array_equal(res.hints["p"][0], [0, 0, 1])
    # node 0 points at itself (1); nodes 1 and 2 point along an edge (10)
    np.testing.assert_array_equal(res.hidden[1][:, 0], [1, 10, 10])


@pytest.mark.parametrize("algo", ["bfs", "dfs"])
def test_first_hints_feed_the_reference_hint_0_as_the_module_does(algo):
    """execute(first_hints=) feeds the given hint 0 into the first step, as the module's
    rollout does with CLRS's ground-truth hint 0 (every backend, within the parity bound);
    feeding the hints the model decodes itself changes nothing, bit for bit."""
    torch = pytest.importorskip("torch")
    from engine.algorithms.specs import learned_spec
    from engine.learn import GNNModule, GraphBatch
    from engine.learn.trainer import given_hint0

    spec = learned_spec(algo, "mpnn", 16, hint_mode="encoded_decoded")
    module = GNNModule.initialised(spec, seed=2)
    model = module.to_model()
    g = generators.erdos_renyi(60, 3, weighted=True, directed=algo == "dfs", seed=3)
    source = 0 if algo == "bfs" else None
    ref = engine.reference(algo, g, source, trace=True)
    fed = [name for name, dec in spec["hints"].items() if dec in spec["feedback"]]
    first = {name: ref.hints[name][0] for name in fed}
    batch = GraphBatch(g, 0, spec)
    data = {"graphs": [g], "sources": [source], "refs": [ref], "pos": None}
    with torch.no_grad():
        states = torch.stack(module.rollout(batch, 4, hard=True, first=given_hint0(module, data, batch)).states)
    for be in engine.backends.available_backends():
        res = engine.execute(model, g, source, backend=be, steps=4, hidden=True, first_hints=first)
        for step, (a, b) in enumerate(zip(res.hidden, states.numpy())):
            assert np.abs(a - b).max() <= 1e-5 * max(1.0, np.abs(b).max()), (be, step)
    plain = engine.execute(model, g, source, steps=4, hidden=True, trace=True)
    own = {name: plain.hints[name][0] for name in fed}
    again = engine.execute(model, g, source, steps=4, hidden=True, first_hints=own)
    np.testing.assert_array_equal(again.hidden, plain.hidden)
    assert any(not np.array_equal(first[k], own[k]) for k in fed)  # an untrained model's hint 0 is wrong
    given = engine.execute(model, g, source, steps=4, hidden=True, first_hints=first)
    np.testing.assert_array_equal(given.hidden[0], plain.hidden[0])
    assert not np.array_equal(given.hidden[1], plain.hidden[1])


def test_first_hints_errors():
    from engine.algorithms.specs import learned_spec
    from engine.model.factory import random_model

    model = random_model(learned_spec("bfs", "mpnn", 8, hint_mode="encoded_decoded"))
    g = generators.erdos_renyi(20, 3, seed=0)
    with pytest.raises(EngineError, match="not a hint model .* feeds back; allowed: \\['pi_h', 'reach_h'\\]"):
        engine.execute(model, g, 0, steps=2, first_hints={"d": np.zeros(20)})
    with pytest.raises(EngineError, match="must be finite with shape \\(20,\\)"):
        engine.execute(model, g, 0, steps=2, first_hints={"reach_h": np.zeros(19)})
    with pytest.raises(EngineError, match="pointer: node ids in \\[0, 20\\)"):
        engine.execute(model, g, 0, steps=2, first_hints={"pi_h": np.full(20, 20)})
    with pytest.raises(EngineError, match="allowed: \\[\\]"):
        engine.execute(engine.compile("bfs"), g, 0, first_hints={"pi_h": np.arange(20)})
