"""Active execution (only nodes whose inputs changed) equals dense execution exactly."""
import json

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import engine
import engine.backends
from engine import Graph
from engine.algorithms import ALGORITHMS, compilable
from engine.algorithms.samplers import sample
from engine.compiler.constants import SATURATE
from engine.graph import generators
from engine.model.factory import mpnn_spec, random_model


SOURCED = [a for a in compilable() if ALGORITHMS[a].has_source]


def _same(a, b):
    assert a.steps == b.steps
    np.testing.assert_array_equal(a.hidden, b.hidden)
    for k in a.outputs:
        np.testing.assert_array_equal(a.outputs[k], b.outputs[k])


@pytest.mark.parametrize("algo", SOURCED)
def test_compiled_active_equals_dense_on_small_graphs(algo, backend):
    model = engine.compile(algo)
    rng = np.random.RandomState(3)
    for n in [4, 9, 16, 30]:
        for _ in range(4):
            _, g, s = sample(algo, n, rng, p=(0.1, 0.3, 0.6))
            runs = [engine.execute(model, g, s, backend=backend, mode=m, hidden=True, trace=True)
                    for m in ("dense", "active", "auto")]
            for r in runs[1:]:
                _same(r, runs[0])
                for k in runs[0].hints:
                    np.testing.assert_array_equal(r.hints[k], runs[0].hints[k])


@pytest.mark.parametrize("algo", SOURCED)
def test_active_mode_on_high_diameter_graphs(algo, backend):
    model = engine.compile(algo)
    for g in (generators.grid(12, 15, weighted=True, seed=1), generators.path(60, weighted=True)):
        dense = engine.execute(model, g, 0, backend=backend, mode="dense", hidden=True)
        active = engine.execute(model, g, 0, backend=backend, mode="active", hidden=True)
        _same(active, dense)
        assert active.node_updates < dense.node_updates / 3  # a wavefront, not the whole grid


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 14), m=st.integers(0, 40), seed=st.integers(0, 10**6),
       kind=st.sampled_from(["max", "min", "sum", "mean"]), gated=st.booleans())
def test_random_models_active_equals_dense(n, m, seed, kind, gated):
    rng = np.random.default_rng(seed)
    g = Graph.from_edges(rng.integers(0, n, m), rng.integers(0, n, m), n, rng.random(m))
    # a saturating model reaches fixed points quickly, so some nodes stop changing
    model = random_model(mpnn_spec(6, groups=((kind, None),), gated=gated, message_depth=1), seed=seed % 97,
                         scale=2.0)
    for be in engine.backends.available_backends():
        dense = engine.execute(model, g, 0, backend=be, steps=5, mode="dense", hidden=True)
        active = engine.execute(model, g, 0, backend=be, steps=5, mode="active", hidden=True)
        _same(active, dense)


def test_mode_errors():
    g = generators.path(5)
    with pytest.raises(engine.EngineError, match="mode must be one of"):
        engine.execute(engine.compile("bfs"), g, 0, mode="lazy")


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 14), m=st.integers(0, 40), seed=st.integers(0, 10**6),
       layers=st.integers(2, 3))
def test_multi_layer_random_models_active_equals_dense(n, m, seed, layers):
    rng = np.random.default_rng(seed)
    g = Graph.from_edges(rng.integers(0, n, m), rng.integers(0, n, m), n, rng.random(m))
    model = random_model(mpnn_spec(5, groups=(("max", 2), ("min", None)), layers=layers, gated=True,
                                   message_depth=1), seed=seed % 89, scale=2.0)
    for be in engine.backends.available_backends():
        dense = engine.execute(model, g, 0, backend=be, steps=4, mode="dense", hidden=True)
        active = engine.execute(model, g, 0, backend=be, steps=4, mode="active", hidden=True)
        _same(active, dense)


def test_compiled_dfs_active_equals_dense(backend):
    """DFS: one layer per step and a graph state; a step touches only the addressed nodes
    and the out-neighbours of the node pushed at the step before."""
    model = engine.compile("dfs")
    rng = np.random.RandomState(8)
    graphs = [sample("dfs", n, rng, p=(0.2, 0.5))[1] for n in (4, 7, 12, 20)]
    graphs += [generators.grid(6, 7), generators.erdos_renyi(150, 3, directed=True, seed=2)]
    for g in graphs:
        runs = [engine.execute(model, g, backend=backend, mode=m, hidden=True, trace=True)
                for m in ("dense", "active", "auto")]
        for r in runs[1:]:
            _same(r, runs[0])
            np.testing.assert_array_equal(r.final_graph, runs[0].final_graph)
            for k in runs[0].hints:
                np.testing.assert_array_equal(r.hints[k], runs[0].hints[k])
    assert runs[1].node_updates < runs[0].node_updates / 5


@pytest.mark.parametrize("mode", ["dense", "active", "auto"])
def test_native_step_loop_equals_python_loop(mode):
    """The C++ step loop (used when no trace or hidden states are asked for) gives the same
    states, steps and outputs as the Python loop, bit for bit (both sum the per-node first
    layer of small models input by input), and bit for bit across its own modes."""
    if "native" not in engine.backends.available_backends():
        pytest.skip("native backend not built")
    cases = [(engine.compile("dfs"), generators.erdos_renyi(400, 3, directed=True, seed=5), None),
             (engine.compile("dfs"), generators.grid(9, 11), None),
             (engine.compile("bfs"), generators.grid(20, 30, seed=0), None),
             (engine.compile("bellman_ford"), generators.erdos_renyi(3000, 4, weighted=True, seed=2), None),
             (engine.compile("bellman_ford"), generators.path(200, weighted=True, seed=1), None),
             (random_model(mpnn_spec(6, groups=(("max", 3), ("sum", None)), gated=True, message_depth=2),
                           seed=4, scale=0.7), generators.erdos_renyi(500, 3, weighted=True, seed=3), 6)]
    for model, g, steps in cases:
        source = 0 if "source" in model.spec["node_inputs"] else None
        loop = engine.execute(model, g, source, backend="native", mode=mode, steps=steps)
        python = engine.execute(model, g, source, backend="native", mode=mode, steps=steps, hidden=True)
        assert loop.steps == python.steps and loop.converged == python.converged
        if model.name.startswith("compiled"):
            np.testing.assert_array_equal(loop.final_state, python.hidden[-1])
            if loop.final_graph is not None:
                np.testing.assert_array_equal(loop.final_graph, python.final_graph)
            for k in loop.outputs:
                np.testing.assert_array_equal(loop.outputs[k], python.outputs[k])
        else:
            np.testing.assert_array_equal(loop.final_state, python.hidden[-1])
            dense = engine.execute(model, g, source, backend="native", mode="dense", steps=steps)
            np.testing.assert_array_equal(loop.final_state, dense.final_state)
        if mode == "dense":
            assert loop.node_updates == g.num_nodes * loop.steps * len(model.spec["layers"])
        elif steps is None:
            assert loop.node_updates < g.num_nodes * loop.steps


def test_native_step_loop_thread_count_independent():
    if "native" not in engine.backends.available_backends():
        pytest.skip("native backend not built")
    import os

    g = generators.erdos_renyi(20_000, 6, weighted=True, seed=5)
    model = random_model(mpnn_spec(8, groups=(("sum", 4), ("max", None)), gated=True), seed=1, scale=0.5)
    states = []
    for threads in (1, 2):
        for mode in ("dense", "auto"):
            states.append(engine.execute(model, g, 0, backend="native", steps=4, threads=threads,
                                         mode=mode).final_state)
    engine.backends.load_backend("native").set_threads(os.cpu_count())
    for s in states[1:]:
        np.testing.assert_array_equal(s, states[0])


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 40), m=st.integers(0, 120), seed=st.integers(0, 10**6), layers=st.integers(1, 2),
       kind=st.sampled_from(["max", "min", "sum", "argmax"]))
def test_native_loop_random_models_modes_agree(n, m, seed, layers, kind):
    """The C++ step loop gives the same states bit for bit in dense, active and auto modes on
    random (untrained, saturating) models of one and two layers, and the Python loop's states."""
    if "native" not in engine.backends.available_backends():
        pytest.skip("native backend not built")
    rng = np.random.default_rng(seed)
    g = Graph.from_edges(rng.integers(0, n, m), rng.integers(0, n, m), n, rng.random(m))
    groups = (("argmax", 2), ("max", None)) if kind == "argmax" else ((kind, None),)
    model = random_model(mpnn_spec(6, groups=groups, layers=layers, gated=True, message_depth=1),
                         seed=seed % 101, scale=2.0)
    runs = [engine.execute(model, g, 0, backend="native", steps=6, mode=mode) for mode in ("dense", "active", "auto")]
    for r in runs[1:]:
        np.testing.assert_array_equal(r.final_state, runs[0].final_state)
    python = engine.execute(model, g, 0, backend="native", steps=6, mode="dense", hidden=True)
    np.testing.assert_array_equal(runs[0].final_state, python.hidden[-1])


def _native_loop_runs(model, g, steps):
    """The native loop's dense, active and auto runs, each checked against the Python loop
    (``hidden=True`` keeps the executor's own loop) bit for bit."""
    runs = [engine.execute(model, g, backend="native", steps=steps, mode=m) for m in ("dense", "active", "auto")]
    python = engine.execute(model, g, backend="native", steps=steps, mode="dense", hidden=True)
    for r in runs:
        np.testing.assert_array_equal(r.final_state, python.hidden[-1])
        np.testing.assert_array_equal(r.final_graph, python.final_graph)
    return runs


@pytest.mark.parametrize("part", ["message.src", "message.dst", "update.node", "gate.node"])
@pytest.mark.parametrize("columns", ["addresses", "broadcast", "scan broadcast"])
def test_native_loop_address_changes_on_perturbed_dfs(part, columns):
    """The native loop recomputes a row after a graph-state change only where the layer reads
    the changed address or broadcast columns. Compiled DFS with random weights on those
    columns in one part of each layer (message source or destination, update, gate) reads
    them there alone: its active runs still equal its dense runs and the Python loop, bit for
    bit. ("scan broadcast": only the broadcast id of the scanned node, which keeps its value
    while other pointers move, so a node that a pointer leaves changes that column alone.)"""
    if "native" not in engine.backends.available_backends():
        pytest.skip("native backend not built")
    base = engine.compile("dfs")
    spec = base.spec
    addr = base.hidden + 1  # z = [h, id, addresses, broadcast]
    bcast = addr + len(spec["graph_pointers"])
    lo, hi = {"addresses": (addr, bcast), "broadcast": (bcast, bcast + len(spec["graph_broadcast"])),
              "scan broadcast": (bcast, bcast + 1)}[columns]
    assert spec["graph_broadcast"][0] in spec["graph_pointers"]  # the first broadcast is a pointer's id
    for seed in range(2):
        rng = np.random.default_rng(seed)
        weights = {k: v.copy() for k, v in base.weights.items()}
        for i in range(len(spec["layers"])):
            W = weights[f"layers.{i}.{part}"]
            rows = rng.choice(np.arange(lo, hi), size=min(2, hi - lo), replace=False)
            cols = rng.integers(0, W.shape[1], size=rows.size)
            W[rows, cols] = rng.choice([-0.5, 0.25, 1.0], size=rows.size).astype(W.dtype)
        model = engine.Model(spec, weights)
        runs = _native_loop_runs(model, generators.erdos_renyi(60, 3, directed=True, seed=seed), steps=40)
        assert runs[1].node_updates < runs[0].node_updates


def _readout_by_loop(r, kinds):
    """Readout reductions by the definition, one node at a time (groups as (kind, size))."""
    out, c = [], 0
    for kind, size in kinds:
        if kind in ("min", "max"):
            for j in range(c, c + size):
                vals = [x for x in r[:, j] if not np.isnan(x)]
                out.append((max if kind == "max" else min)(vals) if vals else np.nan)
        else:
            best = 0
            for v in range(r.shape[0]):
                key, cur = r[v, c], r[best, c]
                better = key > cur if kind == "argmax" else key < cur
                if not np.isnan(key) and (np.isnan(cur) or better):
                    best = v
            out.extend(r[best, c:c + size])
        c += size
    return np.array(out, dtype=r.dtype)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 40), seed=st.integers(0, 10**6))
def test_readout_reductions_follow_their_definition(n, seed):
    from engine.backends.numpy_ops import reduce_readout_channels
    from engine.model.registry import READOUT_CHANNELS

    rng = np.random.default_rng(seed)
    kinds = [("argmax", 3), ("min", 1), ("argmin", 2), ("max", 2), ("argmax", 1)]
    r = rng.integers(0, 4, size=(n, sum(s for _, s in kinds))).astype(np.float32)  # many ties
    r[rng.random(r.shape) < 0.3] = np.nan
    codes = []
    for kind, size in kinds:
        codes += [READOUT_CHANNELS.index(kind)] + [READOUT_CHANNELS.index(
            "payload" if kind.startswith("arg") else kind)] * (size - 1)
    got = reduce_readout_channels(r, np.array(codes, dtype=np.uint8))
    np.testing.assert_array_equal(got, _readout_by_loop(r, kinds))


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 700), k=st.integers(0, 60), seed=st.integers(0, 10**6),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_native_readout_tree_follows_the_definition(n, k, seed, dtype):
    """run_steps' readout trees, built and then updated leaf by leaf, hold the reductions by
    their definition after every update, with NaN keys, infinities, signed zeros and ties."""
    if "native" not in engine.backends.available_backends():
        pytest.skip("native backend not built")
    from engine import _native
    from engine.model.registry import READOUT_CHANNELS

    rng = np.random.default_rng(seed)
    kinds = [("argmax", 2), ("min", 1), ("argmin", 3), ("max", 1), ("argmax", 1)]
    codes = []
    for kind, size in kinds:
        codes += [READOUT_CHANNELS.index(kind)] + [READOUT_CHANNELS.index("payload")] * (size - 1)
    r = len(codes)
    # a few of these values (say only NaN and -inf) in runs of equal ones: ties, whole blocks alike
    pool = np.array([np.nan, -np.inf, np.inf, -0.0, 0.0, 1.0, 2.0, -3.0], dtype=dtype)
    pool = rng.choice(pool, size=rng.integers(1, 4), replace=False)
    run = int(rng.integers(1, 20))
    cache = np.repeat(rng.choice(pool, size=(n // run + 1, r)), run, axis=0)[:n].copy()
    payload = np.array([READOUT_CHANNELS[c] == "payload" for c in codes])
    cache[:, payload] = np.arange(n, dtype=dtype)[:, None] + rng.integers(0, 3, size=(n, payload.sum()))
    leaves = rng.integers(0, n, size=k).astype(np.int64)
    values = rng.choice(pool, size=(k, r))
    values[:, payload] = rng.integers(0, n, size=(k, payload.sum()))
    roots = _native.readout_tree_roots(cache, np.array(codes, np.uint8), leaves, values)
    np.testing.assert_array_equal(roots[0], _readout_by_loop(cache, kinds))
    for j in range(k):
        cache[leaves[j]] = values[j]
        np.testing.assert_array_equal(roots[j + 1], _readout_by_loop(cache, kinds), err_msg=f"after update {j}")


def test_readout_arg_group_ties_and_nan_keys():
    from engine.backends.numpy_ops import reduce_readout_channels
    from engine.model.registry import READOUT_CHANNELS

    codes = np.array([READOUT_CHANNELS.index(k) for k in ("argmax", "payload", "argmin", "payload")], np.uint8)
    nan = np.nan
    r = np.array([[nan, 10, nan, 20], [3, 11, nan, 21], [3, 12, nan, 22], [1, 13, nan, 23]], dtype=np.float32)
    # the first node with the largest key wins; with every key NaN, node 0
    np.testing.assert_array_equal(reduce_readout_channels(r, codes), [3, 11, nan, 20])


def _readout_model(seed):
    """A random one-layer model with a graph state fed by every kind of readout group. Only
    the readout's payload channels read the node input ``pos``; everything else sees the graph
    structure alone, so structurally alike nodes have equal states and tie on every key while
    their payloads differ."""
    spec = mpnn_spec(6, groups=(("max", None),), gated=True, message_depth=1, node_inputs=("pos",),
                     edge_inputs=(), pointer=False)
    spec["graph_hidden"] = 4
    spec["graph_pointers"] = [0]
    spec["graph_broadcast"] = [1]
    spec["layers"][0]["readout"] = {
        "widths": [6], "activations": ["relu"],
        "groups": [{"kind": "argmax", "size": 2}, {"kind": "min", "size": 1}, {"kind": "argmin", "size": 2},
                   {"kind": "max", "size": 1}]}
    spec["layers"][0]["graph_update"] = {"widths": [4], "activations": ["identity"]}
    weights = dict(random_model(spec, seed=seed).weights)
    pos = spec["hidden"]  # z = [h, pos, address, broadcast]
    weights["init.weight"] = np.zeros_like(weights["init.weight"])
    for name in ("layers.0.message.src", "layers.0.message.dst", "layers.0.update.node", "layers.0.gate.node"):
        weights[name] = weights[name].copy()
        weights[name][pos] = 0
    readout = weights["layers.0.readout.node"].copy()
    readout[pos, [0, 2, 3, 5]] = 0  # keys and min/max channels: structure only
    readout[pos, [1, 4]] = 1.0  # payloads: the node's position
    weights["layers.0.readout.node"] = readout
    return engine.Model(spec, weights)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(2, 400), m=st.integers(0, 1200), seed=st.integers(0, 10**6))
def test_incremental_readout_trees_equal_full_reductions(n, m, seed):
    """The native loop's readout trees, updated leaf by leaf in active steps, give the graph
    state that full reductions (dense steps) and the Python loop (NumPy reductions; readout
    and graph MLPs summed in the native order) give, bit for bit."""
    if "native" not in engine.backends.available_backends():
        pytest.skip("native backend not built")
    rng = np.random.default_rng(seed)
    g = Graph.from_edges(rng.integers(0, n, m), rng.integers(0, n, m), n)
    _native_loop_runs(_readout_model(seed % 89), g, steps=6)


def _bfs_with_readouts():
    """Compiled BFS plus a graph state that reads the reach flags through every kind of
    readout group: keys tie at most nodes, and the reached set grows in edge order from the last
    node (lower ids keep taking over the argmax), so the native loop updates the trees' leaves
    in no particular order."""
    bfs = engine.compile("bfs")
    spec = dict(bfs.spec)
    spec["layers"] = [dict(spec["layers"][0])]
    spec["graph_hidden"] = 6
    spec["layers"][0]["readout"] = {
        "widths": [6], "activations": ["identity"],
        "groups": [{"kind": "argmax", "size": 2}, {"kind": "argmin", "size": 2}, {"kind": "min", "size": 1},
                   {"kind": "max", "size": 1}]}
    spec["layers"][0]["graph_update"] = {"widths": [6], "activations": ["identity"]}
    weights = dict(bfs.weights)
    names = list(bfs.spec["description"]["channels"]) + list(bfs.spec["node_inputs"])
    readout = np.zeros((len(names), 6), dtype=np.float32)
    for col, name in enumerate(["r", "id", "r", "id", "p", "p"]):
        readout[names.index(name), col] = 1.0  # g' = (argmax r, its id, argmin r, its id, min p, max p)
    weights.update({"layers.0.readout.node": readout, "layers.0.readout.bias": np.zeros(6, np.float32),
                    "layers.0.graph_update.graph": np.zeros((6, 6), np.float32),
                    "layers.0.graph_update.readout": np.eye(6, dtype=np.float32),
                    "layers.0.graph_update.bias": np.zeros(6, np.float32),
                    "graph_init.bias": np.zeros(6, np.float32)})
    return engine.Model(spec, weights)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(2, 300), m=st.integers(0, 900), seed=st.integers(0, 10**6))
def test_readout_trees_with_ties_in_any_leaf_order(n, m, seed):
    rng = np.random.default_rng(seed)
    g = Graph.from_edges(rng.integers(0, n, m), rng.integers(0, n, m), n)
    model = _bfs_with_readouts()
    for steps in (1, 2, 3, 5, 8):
        runs = [engine.execute(model, g, n - 1, steps=steps, backend=b, mode=mode)
                for b, mode in (("reference", "dense"), (None, "dense"), (None, "active"))]
        for r in runs[1:]:
            np.testing.assert_array_equal(r.final_graph, runs[0].final_graph)



def _dfs_with_clearing_layer(variant):
    """Compiled DFS followed by a second layer that clears the scratch channel ``key`` (gate
    exactly 1, new value 0, no message) and keeps every other channel (gate exactly 0). The
    second layer neither reads ``key`` nor keeps it, unless ``variant`` makes it: its gate
    reads an input, its gate is not exactly 1, or its update reads ``key``."""
    base = engine.compile("dfs")
    spec = json.loads(json.dumps(base.spec))
    d, fz = base.hidden, base.hidden + 1 + len(spec["graph_pointers"]) + len(spec["graph_broadcast"])
    node = spec["description"]["channels"]["node"]
    key, white = node.index("key"), node.index("white")
    spec["layers"].append({"include_self": False,
                           "message": {"widths": [1], "activations": ["identity"]},
                           "groups": [{"kind": "max", "size": 1}],
                           "update": {"widths": [d], "activations": ["identity"]},
                           "gate": {"widths": [d], "activations": ["identity"]}})
    dtype = base.weights["layers.0.message.src"].dtype
    weights = dict(base.weights)
    for part, shape in (("message.src", (fz, 1)), ("message.dst", (fz, 1)), ("message.edge", (0, 1)),
                        ("message.bias", (1,)), ("update.node", (fz, d)), ("update.agg", (1, d)),
                        ("update.bias", (d,)), ("gate.node", (fz, d)), ("gate.agg", (1, d))):
        weights[f"layers.1.{part}"] = np.zeros(shape, dtype)
    gate_bias = np.full(d, -SATURATE, dtype)
    gate_bias[key] = SATURATE
    weights["layers.1.gate.bias"] = gate_bias
    if variant == "gate reads inputs":  # white nodes keep their key
        weights["layers.1.gate.node"][white, key] = -2 * SATURATE
    elif variant == "gate not exactly 1":  # sigmoid(3) < 1: the old key leaks through
        weights["layers.1.gate.bias"][key] = 3.0
    elif variant == "update reads it":  # the new key is the old one
        weights["layers.1.update.node"][key, key] = 1.0
    return engine.Model(spec, weights)


@pytest.mark.parametrize("variant", ["as built", "gate reads inputs", "gate not exactly 1", "update reads it"])
def test_native_loop_skips_only_changes_the_next_layer_ignores(variant):
    """A row that changed only in channels the next layer neither reads nor keeps (its gate
    there is exactly 1 whatever the inputs) is not recomputed by that layer: compiled DFS
    followed by a layer that clears its scratch channel ``key``. Variants where that layer
    depends on ``key`` after all must recompute those rows, and every variant equals its
    dense run and the Python loop bit for bit."""
    if "native" not in engine.backends.available_backends():
        pytest.skip("native backend not built")
    model = _dfs_with_clearing_layer(variant)
    updates = {}
    for seed in range(3):
        runs = _native_loop_runs(model, generators.erdos_renyi(80, 4, directed=True, seed=seed), steps=120)
        updates[seed] = runs[1].node_updates
    if variant == "as built":  # the skipped rows: fewer updates than when the gate leaks
        leaky = _dfs_with_clearing_layer("gate not exactly 1")
        for seed in range(3):
            g = generators.erdos_renyi(80, 4, directed=True, seed=seed)
            r = engine.execute(leaky, g, backend="native", steps=120, mode="active")
            assert updates[seed] < r.node_updates


def test_single_layer_skips_rows_that_changed_only_where_it_ignores():
    """One layer is its own next layer: compiled DFS writes its scratch channel ``key``
    without reading it (its gate there is the constant 1), so a row whose key alone changed
    is not recomputed at the next step. When the gate there reads an input (``disc``, which
    leaves it at sigmoid(>= SATURATE) = 1, so the run is the same), the loop cannot know it
    is 1 and must recompute those rows. Both equal their dense runs and the Python loop bit
    for bit."""
    if "native" not in engine.backends.available_backends():
        pytest.skip("native backend not built")
    built = engine.compile("dfs")
    key = built.spec["description"]["channels"]["node"].index("key")
    weights = dict(built.weights)
    weights["layers.0.gate.1.weight"] = weights["layers.0.gate.1.weight"].copy()
    weights["layers.0.gate.1.weight"][0, key] = 1.0  # the first gate unit is disc (>= 0)
    reads_key = engine.Model(built.spec, weights)
    for seed in range(3):
        g = generators.erdos_renyi(80, 4, directed=True, seed=seed)
        skipping = _native_loop_runs(built, g, steps=None)[1]
        recomputing = _native_loop_runs(reads_key, g, steps=None)[1]
        np.testing.assert_array_equal(skipping.final_state, recomputing.final_state)
        assert skipping.node_updates < recomputing.node_updates


def _coarse_model(seed, layers, groups, message_depth, dst="all", edge_inputs=(), hidden=6):
    """A random gated model whose weights are multiples of 1/2, so that messages tie, repeat,
    rise and fall (a message that falls from its row's extreme cannot be pushed). ``dst``: what
    the messages' destination part reads: ``all`` (state and inputs: it changes with the
    state), ``inputs`` (a fixed part per node) or ``none`` (the same part for every node)."""
    from engine.model.factory import random_weights

    spec = mpnn_spec(hidden, edge_inputs=edge_inputs, groups=groups, layers=layers, gated=True,
                     message_depth=message_depth)
    weights = {k: np.round(2 * v) / 2 for k, v in random_weights(spec, seed, scale=2.0).items()}
    for i in range(layers):
        W = weights[f"layers.{i}.message.dst"]
        W[: {"all": 0, "inputs": spec["hidden"], "none": W.shape[0]}[dst]] = 0.0
    return engine.Model(spec, weights)


def _native_modes_agree(model, g, steps):
    """Native dense, active and auto runs and the Python loop: the same states bit for bit;
    returns the active run."""
    runs = [engine.execute(model, g, 0, backend="native", steps=steps, mode=m) for m in ("dense", "active", "auto")]
    python = engine.execute(model, g, 0, backend="native", steps=steps, mode="dense", hidden=True)
    for r in runs:
        np.testing.assert_array_equal(r.final_state, python.hidden[-1])
    return runs[1]


COARSE_GROUPS = {"max": (("max", None),), "min": (("min", None),), "max+min": (("max", 3), ("min", None)),
                 "argmin+max": (("argmin", 3), ("max", None)), "argmax+argmin": (("argmax", 2), ("argmin", None))}


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 30), m=st.integers(0, 240), seed=st.integers(0, 10**6), layers=st.integers(1, 2),
       groups=st.sampled_from(sorted(COARSE_GROUPS)), message_depth=st.integers(1, 2),
       dst=st.sampled_from(["all", "inputs", "none"]), edge_features=st.booleans())
def test_incremental_aggregation_equals_reduction(n, m, seed, layers, groups, message_depth, dst, edge_features):
    """Max/min and argmax/argmin aggregates kept incrementally (pushed from the changed
    messages into a store) equal a reduction over the in-edges bit for bit, on graphs with
    self-loops and repeated edges (several messages from one source), with destination parts
    that change, stay or are shared, with and without edge features (coarse weights: ties)."""
    if "native" not in engine.backends.available_backends():
        pytest.skip("native backend not built")
    rng = np.random.default_rng(seed)
    weights = rng.integers(0, 4, m) / 2 if edge_features else None
    g = Graph.from_edges(rng.integers(0, n, m), rng.integers(0, n, m), n, weights)
    model = _coarse_model(seed % 89, layers, COARSE_GROUPS[groups], message_depth, dst,
                          ("weight",) if edge_features else ())
    _native_modes_agree(model, g, steps=6)


@pytest.mark.parametrize("layers", [1, 2])
def test_wide_parts_of_changed_rows_keep_the_row_products_bits(layers):
    """The native loop computes the message parts of learned widths (k0 >= 16) for the rows
    that changed in blocks (update_parts: the rows gathered, then dense_accumulate_tile),
    once more than kSerialRows (512) rows changed: the states must keep the bits of the
    Python loop, whose parts are one row product per node."""
    if "native" not in engine.backends.available_backends():
        pytest.skip("native backend not built")
    g = generators.erdos_renyi(1500, 3, directed=True, seed=layers)
    model = _coarse_model(layers, layers, COARSE_GROUPS["argmin+max"], 2, "all", hidden=32)
    assert model.spec["layers"][0]["message"]["widths"][0] >= 16
    _native_modes_agree(model, g, steps=4)


@pytest.mark.parametrize("groups", ["argmin+max", "argmax+argmin"])
def test_incremental_aggregation_on_multigraphs(groups):
    """Several edges from one source into one node, with different edge weights: one
    source sends several messages, and a winner's message must be told from its siblings.
    Fixed seeds over dense multigraphs (the property test above draws them only at times)."""
    if "native" not in engine.backends.available_backends():
        pytest.skip("native backend not built")
    for seed in range(24):
        rng = np.random.default_rng(seed)
        n = int(rng.integers(2, 12))
        m = int(rng.integers(3 * n, 8 * n))
        g = Graph.from_edges(rng.integers(0, n, m), rng.integers(0, n, m), n, rng.integers(0, 4, m) / 2)
        model = _coarse_model(seed, 1 + seed % 2, COARSE_GROUPS[groups], 1 + (seed // 2) % 2,
                              ["all", "inputs", "none"][seed % 3], ("weight",))
        _native_modes_agree(model, g, steps=8)


def _bfs_variant(change):
    """Compiled BFS, or a variant: ``dst``: its min message also reads the destination's id
    (a fixed destination part per node); ``edge``: it also reads an edge weight; ``sum``:
    its max group relabelled ``sum``."""
    base = engine.compile("bfs")
    spec, weights = base.spec, {k: v.copy() for k, v in base.weights.items()}
    if change == "dst":
        weights["layers.0.message.dst"][base.hidden, 1] = 0.5  # z column `hidden` is the input id
    elif change == "edge":
        spec = dict(spec, edge_inputs=["weight"])
        weights["layers.0.message.edge"] = np.array([[0.0, 0.5]], dtype=np.float32)
        weights["decoders.pi.edge"] = np.zeros((1, 2), dtype=np.float32)
    elif change == "sum":
        spec = dict(spec, layers=[dict(spec["layers"][0], groups=[{"kind": "sum", "size": 1},
                                                                  {"kind": "min", "size": 1}])])
    return engine.Model(spec, weights)


@pytest.mark.parametrize("change", ["none", "dst", "edge", "bellman_ford"])
def test_incremental_aggregation_is_used_where_it_applies(change):
    """Active steps take aggregates from the store where every group is max/min or
    argmax/argmin (with a shared or a fixed per-node destination part, with or without edge
    features: compiled BFS and variants, compiled Bellman-Ford), and agree with every other
    loop; with a sum group every active row reduces its in-edges."""
    if "native" not in engine.backends.available_backends():
        pytest.skip("native backend not built")
    for seed in range(3):
        g = generators.erdos_renyi(150, 2, directed=True, seed=seed)
        rng = np.random.default_rng(seed)
        weighted = Graph.from_edges(g.indices, g.edge_targets(), g.num_nodes,
                                    rng.integers(1, 4, g.num_edges).astype(np.float32))
        model = engine.compile("bellman_ford") if change == "bellman_ford" else _bfs_variant(change)
        graph = weighted if change in ("edge", "bellman_ford") else g
        assert _native_modes_agree(model, graph, steps=12).aggregates_reused > 0
        assert _native_modes_agree(_bfs_variant("sum"), g, steps=12).aggregates_reused == 0


def test_compiled_bfs_grid_skips_rows_whose_aggregate_holds():
    """On a grid, compiled BFS's already-reached rows behind the wavefront keep their
    aggregates when a neighbour is reached: the active run skips them (fewer updates than
    D and all its out-neighbours) and takes every active aggregate from the store."""
    if "native" not in engine.backends.available_backends():
        pytest.skip("native backend not built")
    g = generators.grid(30, 30, seed=0)
    model = engine.compile("bfs")
    r = engine.execute(model, g, 0, backend="native", mode="active")
    ref = engine.reference("bfs", g, 0)
    np.testing.assert_array_equal(r.outputs["pi"], ref.outputs["pi"])
    first = g.num_nodes  # the first application computes every row (no previous aggregate)
    assert r.aggregates_reused == r.node_updates - first
    # without kept aggregates an active step recomputes D and all its out-neighbours (the
    # Python stepper, same results); with them the rows whose aggregate holds are skipped
    python = engine.execute(model, g, 0, backend="native", mode="active", hidden=True)
    np.testing.assert_array_equal(python.outputs["pi"], r.outputs["pi"])
    assert r.node_updates < python.node_updates


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("start,stop", [(0, 1), (0, 2), (1, 4), (2, 5), (0, 5)])
def test_column_copies_move_the_bits_of_slicing(dtype, start, stop):
    """set_columns / get_columns (row blocks as opaque elements) equal slicing, bit for bit:
    NaN payloads and signed zeros included; other layouts fall back to slicing."""
    from engine.runtime.columns import get_columns, set_columns

    rng = np.random.default_rng(0)
    z = rng.normal(size=(37, 5)).astype(dtype)
    z[3, :] = -0.0
    z[4, :] = np.nan
    bits = np.dtype(f"u{z.itemsize}")
    z.view(bits)[5, :] = z.view(bits)[4, :] ^ 1  # another NaN payload
    got = get_columns(z, start, stop)
    assert got.flags.c_contiguous and got.dtype == z.dtype
    np.testing.assert_array_equal(got.view(bits), np.ascontiguousarray(z[:, start:stop]).view(bits))
    dst = np.zeros_like(z)
    set_columns(dst, start, got)
    want = np.zeros_like(z)
    want[:, start:stop] = got
    np.testing.assert_array_equal(dst.view(bits), want.view(bits))
    # a non-contiguous destination or source, and a different dtype, take the slicing path
    big = np.zeros((37, 10), dtype=dtype)
    set_columns(big[:, ::2], start, got)
    np.testing.assert_array_equal(big[:, ::2][:, start:stop], got)
    other = np.zeros((37, 5), dtype=np.float16)
    set_columns(other, start, got)
    np.testing.assert_array_equal(other[:, start:stop], got.astype(np.float16))
