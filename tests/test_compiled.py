"""Compiled BFS, Bellman-Ford and DFS (compact and inside the learned architectures) equal the CLRS-semantics reference bit for bit, on every backend."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import engine
from engine import Graph
from engine.algorithms import ALGORITHMS, compilable
from engine.algorithms.samplers import sample
from engine.graph import generators

from conftest import HAND

ALGOS = [a for a in compilable() if ALGORITHMS[a].has_source]  # the tests below pass a source


def assert_same_as_reference(algo, model, graph, source, backend):
    ref = engine.reference(algo, graph, source, trace=True, dtype=model.dtype)
    res = engine.execute(model, graph, source, backend=backend, trace=True)
    assert res.backend == backend
    assert res.steps == ref.steps, f"{algo}: {res.steps} steps, reference {ref.steps}"
    np.testing.assert_array_equal(res.outputs["pi"], ref.outputs["pi"])
    assert set(res.hints) == set(ref.hints)
    for name, expected in ref.hints.items():
        np.testing.assert_array_equal(res.hints[name], expected, err_msg=f"hint {name}")


@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_clrs_samples(algo, dtype, backend):
    model = engine.compile(algo, dtype)
    rng = np.random.RandomState(11)
    for n in [4, 5, 7, 11, 16, 20]:
        for _ in range(5):
            _, g, s = sample(algo, n, rng, p=(0.1, 0.3, 0.5, 0.9), dtype=dtype)
            assert_same_as_reference(algo, model, g, s, backend)


@pytest.mark.parametrize("algo", ALGOS)
def test_hand_written_graphs(algo, backend):
    model = engine.compile(algo)
    for name, A in HAND.items():
        g = Graph.from_dense(A)
        for s in range(A.shape[0]):
            assert_same_as_reference(algo, model, g, s, backend)


@pytest.mark.parametrize("algo", ALGOS)
def test_directed_graphs_with_ties(algo, backend):
    """Few distinct weights force equal-distance routes; directed edges, self-loops, sinks."""
    model = engine.compile(algo)
    rng = np.random.RandomState(5)
    for n in [6, 12, 30]:
        for _ in range(6):
            A = rng.binomial(1, 0.25, size=(n, n)) * rng.choice([0.25, 0.5, 1.0], size=(n, n))
            g = Graph.from_dense(A)
            assert_same_as_reference(algo, model, g, int(rng.randint(n)), backend)


def test_bellman_ford_negative_weights(backend):
    model = engine.compile("bellman_ford")
    rng = np.random.default_rng(2)
    for _ in range(10):
        n = 25
        src, dst = rng.integers(0, n, 120), rng.integers(0, n, 120)
        keep = src < dst  # a DAG: no negative cycle
        w = rng.choice([-1.0, -0.5, 0.5, 1.0, 1.5], keep.sum())
        g = Graph.from_edges(src[keep], dst[keep], n, w, duplicates="min")
        assert_same_as_reference("bellman_ford", model, g, 0, backend)


@pytest.mark.parametrize("algo", ALGOS)
def test_sparse_families(algo, backend):
    model = engine.compile(algo)
    for family in ["er", "grid", "path", "tree", "ws", "ba"]:
        g = generators.generate(family, 300, weighted=True, degree=4, seed=3)
        ref = engine.reference(algo, g, 7, trace=False)
        res = engine.execute(model, g, 7, backend=backend)
        np.testing.assert_array_equal(res.outputs["pi"], ref.outputs["pi"])
        assert res.steps == ref.steps


def test_oracle_step_count(backend):
    """Termination at the reference trace length gives the same answer."""
    g = generators.erdos_renyi(500, 3, weighted=True, seed=1)
    source = int(np.argmax(g.in_degree()))
    for algo in ALGOS:
        ref = engine.reference(algo, g, source, trace=True)
        assert ref.steps > 4
        res = engine.execute(engine.compile(algo), g, source, backend=backend, steps=ref.steps)
        assert res.steps == ref.steps
        np.testing.assert_array_equal(res.outputs["pi"], ref.outputs["pi"])
        # cut before the last step that changes a pointer (bfs_seq's last steps may change none)
        cut = int(np.flatnonzero(np.any(ref.hints["pi_h"] != ref.outputs["pi"], axis=1)).max())
        short = engine.execute(engine.compile(algo), g, source, backend=backend, steps=cut)
        assert short.steps == cut and np.any(short.outputs["pi"] != ref.outputs["pi"])


def test_float64_model_needs_float64_reference():
    g = generators.erdos_renyi(200, 4, weighted=True, seed=0, dtype="float64")
    res = engine.execute(engine.compile("bellman_ford", "float64"), g, 0, trace=True)
    ref = engine.reference("bellman_ford", g, 0, trace=True)
    np.testing.assert_array_equal(res.hints["d"], ref.hints["d"])
    assert res.hints["d"].dtype == np.float64


def test_exact_domain_is_enforced():
    g = Graph.from_edges([0], [1], 2, [2.0**50])
    with pytest.raises(engine.EngineError, match="exact for"):
        engine.execute(engine.compile("bellman_ford"), g, 0)
    g = Graph.from_edges([0], [1], 2, [1e-30])
    with pytest.raises(engine.EngineError, match="exact for"):
        engine.execute(engine.compile("bellman_ford"), g, 0)


def test_source_is_validated():
    g = generators.path(4)
    with pytest.raises(engine.EngineError, match="source must be"):
        engine.execute(engine.compile("bfs"), g, 9)


def test_no_algorithm_names_below_the_compiler():
    """The runtime (executor, backends, model, kernels) never branches on an algorithm name."""
    import pathlib

    root = pathlib.Path(engine.__file__).parent
    files = [*(root / "runtime").glob("*.py"), *(root / "backends").glob("*.py"), *(root / "model").glob("*.py"),
             *(root.parent / "csrc").rglob("*.h"), root.parent / "python" / "bindings.cpp"]
    names = {f.name for f in files}
    # the directories exist and hold what the runtime is made of: a grep over nothing passes nothing
    assert {"executor.py", "bound.py", "native.py", "reference.py", "plan.py", "spec.py", "message_passing.h",
            "active.h", "reduce.h", "bindings.cpp"} <= names
    names_of_algorithms = set(ALGORITHMS) | {"bellman", "dijkstra"}
    for f in files:
        text = f.read_text().lower()
        for name in names_of_algorithms:
            assert name not in text, f"{f.name} mentions {name!r}"


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dfs_clrs_samples(dtype, backend):
    model = engine.compile("dfs", dtype)
    rng = np.random.RandomState(21)
    for n in [4, 5, 7, 11, 16]:
        for _ in range(4):
            _, g, _ = sample("dfs", n, rng, p=(0.1, 0.3, 0.5, 0.9), dtype=dtype)
            assert_same_as_reference("dfs", model, g, None, backend)


def test_dfs_hand_written_and_undirected_graphs(backend):
    """Several roots, self-loops, sinks, cycles (directed and undirected)."""
    model = engine.compile("dfs")
    for A in HAND.values():
        assert_same_as_reference("dfs", model, Graph.from_dense(A), None, backend)
    for g in (generators.grid(4, 5), generators.random_tree(30, seed=2), generators.path(12, directed=True),
              generators.erdos_renyi(40, 1.5, directed=True, self_loops=True, seed=6)):
        assert_same_as_reference("dfs", model, g, None, backend)


def test_dfs_random_directed_graphs(backend):
    model = engine.compile("dfs")
    for seed in range(3):
        g = generators.erdos_renyi(120, 2.5, directed=True, seed=seed)
        assert_same_as_reference("dfs", model, g, None, backend)


@pytest.mark.slow
@pytest.mark.parametrize("algo", ALGOS + ["dfs"])
def test_million_nodes_exact(algo):
    g = generators.erdos_renyi(10**6, 10, weighted=algo != "dfs", directed=algo == "dfs", seed=0)
    if algo == "dfs":
        ref = engine.reference("dfs", g, trace=False)
        res = engine.execute(engine.compile("dfs"), g)
        assert res.steps == ref.steps == 3 * 10**6
        np.testing.assert_array_equal(res.outputs["pi"], ref.outputs["pi"])
        return
    ref = engine.reference(algo, g, 0, trace=False)
    res = engine.execute(engine.compile(algo), g, 0)
    assert res.steps == ref.steps
    np.testing.assert_array_equal(res.outputs["pi"], ref.outputs["pi"])


# ----------------------------------------------------------------------------- inside learned architectures
def _learned_part(spec):
    return {k: v for k, v in spec.items() if k not in ("name", "exact_domain", "description")}


MPNN_MODES = [("bfs", "encoded_decoded"), ("bfs", "decoded_only"), ("bfs", "none"),
              ("bellman_ford", "encoded_decoded")]
MPNN_DOMAINS = {"bfs": {"max_nodes": 2**23},
                "bellman_ford": {"max_nodes": 2**23, "max_abs_weight": 2.0, "min_abs_nonzero_weight": 2.0**-30}}


@pytest.mark.parametrize("algo,hint_mode", MPNN_MODES)
def test_mpnn_compiled_has_the_learned_spec(algo, hint_mode):
    """Same spec as training produces (weight names and shapes, decoders, feedback), only the
    weights set analytically, none of them depending on the graph size."""
    from engine.algorithms.specs import learned_spec

    model = engine.compile(algo, processor="mpnn", hidden=32, hint_mode=hint_mode)
    assert _learned_part(model.spec) == _learned_part(learned_spec(algo, "mpnn", 32, hint_mode=hint_mode))
    assert model.spec["exact_domain"] == MPNN_DOMAINS[algo]


def _mpnn_cases(algo):
    """CLRS's sampled graphs of every size, the hand-written graphs from every source, and
    directed graphs with self-loops; for Bellman-Ford also ties (few distinct weights), negative
    weights and zero-weight cycles through the source (its in-neighbours tie with d_s)."""
    rng = np.random.RandomState(3)
    cases = [sample(algo, n, rng, p=(0.1, 0.3, 0.6, 0.9))[1:] for n in (1, 2, 4, 5, 7, 11, 16, 20) for _ in range(3)]
    cases += [(Graph.from_dense(A), s) for A in HAND.values() for s in range(A.shape[0])]
    weighted = ALGORITHMS[algo].weighted
    cases += [(generators.erdos_renyi(60, 2, directed=True, self_loops=True, weighted=weighted, seed=1), 5),
              (generators.grid(6, 9, weighted=weighted), 0), (generators.path(30, weighted=weighted), 29)]
    if algo == "bellman_ford":
        for n in (6, 12, 30):
            for _ in range(4):
                A = rng.binomial(1, 0.3, size=(n, n)) * rng.choice([0.25, 0.5, 1.0], size=(n, n))
                cases.append((Graph.from_dense(A), int(rng.randint(n))))
        r2 = np.random.default_rng(2)
        for _ in range(6):
            src, dst = r2.integers(0, 25, 120), r2.integers(0, 25, 120)
            keep = src < dst  # a DAG: no negative cycle
            w = r2.choice([-1.0, -0.5, 0.5, 1.0, 1.5], keep.sum())
            cases.append((Graph.from_edges(src[keep], dst[keep], 25, w, duplicates="min"), 0))
        zero_cycles = [Graph.from_edges([0, 1], [1, 0], 2, [0.5, -0.5]),
                       Graph.from_edges([2, 0, 1, 1, 2], [0, 1, 2, 0, 1], 3, [-1.0, 0.5, 0.5, -0.5, 1.0])]
        cases += [(g, s) for g in zero_cycles for s in range(g.num_nodes)]
        cases += [(generators.generate(f, 300, weighted=True, degree=4, seed=3), 7) for f in ("er", "ws", "ba")]
    return cases


@pytest.mark.parametrize("algo,hidden", [("bfs", 6), ("bfs", 128), ("bellman_ford", 11), ("bellman_ford", 128)])
def test_mpnn_compiled_equals_the_reference(algo, hidden, backend):
    """Outputs and every hint at every step, bit for bit, on every backend."""
    model = engine.compile(algo, processor="mpnn", hidden=hidden)
    for g, s in _mpnn_cases(algo):
        ref = engine.reference(algo, g, s, trace=True)
        res = engine.execute(model, g, s, backend=backend, steps=ref.steps, trace=True)
        np.testing.assert_array_equal(res.outputs["pi"], ref.outputs["pi"])
        for name, expected in ref.hints.items():
            np.testing.assert_array_equal(res.hints[name], expected, err_msg=name)


def test_mpnn_compiled_domain():
    model = engine.compile("bfs", processor="mpnn")
    with pytest.raises(engine.EngineError, match="at most 8388608 nodes"):
        engine.runtime.check_domain(model, Graph.from_edges([], [], 2**23 + 1))
    for algo in ("bfs", "bellman_ford"):
        with pytest.raises(engine.EngineError, match="float32"):
            engine.compile(algo, "float64", processor="mpnn")
    with pytest.raises(engine.EngineError, match="no 'gcn' compiler"):
        engine.compile("bfs", processor="gcn")


def test_mpnn_compiled_bellman_ford_domain():
    """The weight range is enforced at its boundary; the construction needs hints fed back and
    its eleven channels."""
    model = engine.compile("bellman_ford", processor="mpnn", hidden=16)
    for w, ok in ((2.0, True), (-2.0, True), (2.0**-30, True), (np.nextafter(np.float32(2.0), np.float32(3)), False),
                  (2.0**-31, False)):
        g = Graph.from_edges([0, 1], [1, 2], 3, np.array([w, 0.5], dtype=np.float32))
        if ok:
            res = engine.execute(model, g, 0, steps=engine.reference("bellman_ford", g, 0).steps)
            np.testing.assert_array_equal(res.outputs["pi"], engine.reference("bellman_ford", g, 0).outputs["pi"])
        else:
            with pytest.raises(engine.EngineError, match="exact for"):
                engine.execute(model, g, 0, steps=3)
    for mode in ("decoded_only", "none"):
        with pytest.raises(engine.EngineError, match="fed back"):
            engine.compile("bellman_ford", processor="mpnn", hint_mode=mode)
    with pytest.raises(engine.EngineError, match="hidden >= 11"):
        engine.compile("bellman_ford", processor="mpnn", hidden=10)


@pytest.mark.parametrize("hint_mode", ["encoded_decoded", "decoded_only", "none"])
@pytest.mark.parametrize("heads", [1, 4])
def test_gatv2_compiled_has_the_learned_spec(hint_mode, heads):
    from engine.algorithms.specs import learned_spec
    from engine.learn.module import GNNModule

    model = engine.compile("bfs", processor="gatv2", hidden=32, hint_mode=hint_mode, heads=heads)
    assert _learned_part(model.spec) == _learned_part(learned_spec("bfs", "gatv2", 32, heads=heads,
                                                                   hint_mode=hint_mode))
    assert model.spec["exact_domain"] == {"max_nodes": 2**20}
    GNNModule.from_model(model)  # checks every weight GATv2 fixes (value rows, aggregate selection)


@pytest.mark.parametrize("hidden,heads", [(6, 1), (128, 1), (128, 8)])
def test_gatv2_compiled_bfs_equals_the_reference(hidden, heads, backend):
    """Saturated attention: outputs and every hint at every step, bit for bit, on every backend."""
    model = engine.compile("bfs", processor="gatv2", hidden=hidden, heads=heads)
    for g, s in _mpnn_cases("bfs"):
        ref = engine.reference("bfs", g, s, trace=True)
        res = engine.execute(model, g, s, backend=backend, steps=ref.steps, trace=True)
        np.testing.assert_array_equal(res.outputs["pi"], ref.outputs["pi"])
        for name, expected in ref.hints.items():
            np.testing.assert_array_equal(res.hints[name], expected, err_msg=name)


def test_gatv2_compiled_bfs_domain_boundary():
    """At n = 2**20 the attention still separates adjacent indices (the closest keys) on every
    pair tried, across the index range; one node more is refused; heads must leave head 0 six
    channels."""
    n = 2**20
    model = engine.compile("bfs", processor="gatv2", hidden=8)
    rng = np.random.default_rng(0)
    firsts = np.unique(np.concatenate([np.arange(1, 40), rng.integers(1, n - 3000, 400), np.arange(n - 2100, n - 2060)]))
    firsts = firsts[(firsts % 2 == 1)]  # pairs (i, i + 1) that do not overlap
    targets = n - 1 - np.arange(firsts.size)  # distinct nodes above every pair
    src = np.concatenate([np.zeros(2 * firsts.size, dtype=np.int64), firsts, firsts + 1])
    dst = np.concatenate([firsts, firsts + 1, targets, targets])
    g = Graph.from_edges(np.concatenate([src, dst]), np.concatenate([dst, src]), n)
    ref = engine.reference("bfs", g, 0, trace=True)
    res = engine.execute(model, g, 0, steps=ref.steps, trace=True)
    assert (ref.outputs["pi"][targets] == firsts).all()  # the lower of the two tied parents
    np.testing.assert_array_equal(res.outputs["pi"], ref.outputs["pi"])
    for name, expected in ref.hints.items():
        np.testing.assert_array_equal(res.hints[name], expected, err_msg=name)
    with pytest.raises(engine.EngineError, match="at most 1048576 nodes"):
        engine.runtime.check_domain(model, Graph.from_edges([], [], n + 1))
    with pytest.raises(engine.EngineError, match="six|6 channels"):
        engine.compile("bfs", processor="gatv2", hidden=16, heads=4)
    with pytest.raises(engine.EngineError, match="float32"):
        engine.compile("bfs", "float64", processor="gatv2")
    with pytest.raises(engine.EngineError, match="heads= is for attention"):
        engine.compile("bfs", processor="mpnn", heads=2)


@pytest.mark.slow
def test_gatv2_compiled_million_nodes():
    g = generators.erdos_renyi(10**6, 10, seed=0)
    ref = engine.reference("bfs", g, 0, trace=False)
    res = engine.execute(engine.compile("bfs", processor="gatv2", hidden=8), g, 0, steps=ref.steps)
    np.testing.assert_array_equal(res.outputs["pi"], ref.outputs["pi"])


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["bfs", "bellman_ford"])
def test_mpnn_compiled_million_nodes(algo):
    g = generators.erdos_renyi(10**6, 10, weighted=ALGORITHMS[algo].weighted, seed=0)
    ref = engine.reference(algo, g, 0, trace=False)
    res = engine.execute(engine.compile(algo, processor="mpnn"), g, 0, steps=ref.steps)
    np.testing.assert_array_equal(res.outputs["pi"], ref.outputs["pi"])

# ----------------------------------------------------------------------------- DFS in CLRS's fully connected MPNN
_DFS_MPNN = engine.compile("dfs", processor="mpnn", hidden=32, message_graph="complete")


def _dfs_complete_cases():
    """CLRS's sampled graphs (every size, p from sparse to dense), the hand-written graphs, and
    directed graphs with self-loops, sinks and several trees."""
    rng = np.random.RandomState(5)
    cases = [sample("dfs", n, rng, p=(0.1, 0.3, 0.5, 0.9))[1] for n in (1, 2, 4, 5, 7, 11, 16) for _ in range(2)]
    cases += [Graph.from_dense(A) for A in HAND.values()]
    cases += [generators.erdos_renyi(24, 1.5, directed=True, self_loops=True, seed=4), generators.path(9, directed=True),
              generators.random_tree(14, seed=1)]
    return cases


def test_mpnn_compiled_dfs_has_the_learned_spec():
    """CLRS's MPNN (every pair of nodes, message MLP [h, h], time through a graph state), no
    layer norm; the weights analytic, none depending on the graph size."""
    from engine.algorithms.specs import learned_spec

    model = engine.compile("dfs", processor="mpnn", hidden=64, message_graph="complete")
    expected = learned_spec("dfs", "mpnn", 64, message_graph="complete", graph_hints=True, message_depth=2)
    assert _learned_part(model.spec) == _learned_part(expected)
    assert model.spec["exact_domain"] == {"max_nodes": 4096}


def test_mpnn_compiled_dfs_equals_the_reference(backend):
    """Outputs and every hint (colours, times, pointers, the four one-node masks, the graph's
    time) at every one of the 3n steps, bit for bit, on every backend."""
    model = engine.compile("dfs", processor="mpnn", hidden=32, message_graph="complete")
    for g in _dfs_complete_cases():
        ref = engine.reference("dfs", g, trace=True)
        res = engine.execute(model, g, backend=backend, steps=ref.steps, trace=True)
        np.testing.assert_array_equal(res.outputs["pi"], ref.outputs["pi"])
        assert set(res.hints) == set(ref.hints)
        for name, expected in ref.hints.items():
            np.testing.assert_array_equal(res.hints[name], expected, err_msg=name)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 12), density=st.floats(0.0, 1.0), seed=st.integers(0, 10**6))
def test_mpnn_compiled_dfs_random_directed_graphs(n, density, seed):
    """Any directed graph (self-loops, sinks, unreachable parts; any density): every hint at
    every step (reference backend; the other backends run the fixed cases above)."""
    A = (np.random.default_rng(seed).random((n, n)) < density).astype(np.float32)
    g = Graph.from_dense(A)
    ref = engine.reference("dfs", g, trace=True)
    res = engine.execute(_DFS_MPNN, g, backend="reference", steps=ref.steps, trace=True)
    np.testing.assert_array_equal(res.outputs["pi"], ref.outputs["pi"])
    for name, expected in ref.hints.items():
        np.testing.assert_array_equal(res.hints[name], expected, err_msg=name)


def test_mpnn_compiled_dfs_at_clrs_test_size_and_beyond():
    """CLRS's test graphs (n = 64, p = 0.5) and four times their size, bit for bit (native)."""
    model = engine.compile("dfs", processor="mpnn", hidden=32, message_graph="complete")
    rng = np.random.RandomState(11)
    for n in (64, 256):
        g = sample("dfs", n, rng, p=(0.5,))[1]
        ref = engine.reference("dfs", g, trace=True)
        res = engine.execute(model, g, backend="native", steps=ref.steps, trace=True)
        np.testing.assert_array_equal(res.outputs["pi"], ref.outputs["pi"])
        for name, expected in ref.hints.items():
            np.testing.assert_array_equal(res.hints[name], expected, err_msg=f"{name} at n = {n}")


def test_mpnn_compiled_dfs_domain_and_refusals():
    model = engine.compile("dfs", processor="mpnn", message_graph="complete")
    engine.runtime.check_domain(model, Graph.from_edges([], [], 4096))
    with pytest.raises(engine.EngineError, match="at most 4096 nodes"):
        engine.runtime.check_domain(model, Graph.from_edges([], [], 4097))
    with pytest.raises(engine.EngineError, match="message_graph='complete'"):
        engine.compile("dfs", processor="mpnn")  # over the input's edges: open
    with pytest.raises(engine.EngineError, match="encoded_decoded"):
        engine.compile("dfs", processor="mpnn", message_graph="complete", hint_mode="none")
    with pytest.raises(engine.EngineError, match="float32"):
        engine.compile("dfs", "float64", processor="mpnn", message_graph="complete")
    with pytest.raises(engine.EngineError, match="hidden >= 28"):
        engine.compile("dfs", processor="mpnn", message_graph="complete", hidden=16)
    with pytest.raises(engine.EngineError, match="no 'mpnn@complete' compiler for 'bfs'"):
        engine.compile("bfs", processor="mpnn", message_graph="complete")
    with pytest.raises(engine.EngineError, match="learned processor"):
        engine.compile("dfs", message_graph="complete")
    with pytest.raises(engine.EngineError, match="unknown message graph"):
        engine.compile("dfs", processor="mpnn", message_graph="grid")


def test_mpnn_compiled_dfs_module_parity_and_loss():
    """The torch module of the compiled model rolls out the executor's states bit for bit (hard
    hints), and the training loss at the compiled point (soft hints, as CLRS trains) is 0."""
    torch = pytest.importorskip("torch")
    from engine.learn.module import GNNModule, GraphBatch
    from engine.learn.trainer import TrainConfig, loss_terms, sample_batch

    model = engine.compile("dfs", processor="mpnn", hidden=32, message_graph="complete")
    g = generators.erdos_renyi(9, 2.0, directed=True, seed=3)
    res = engine.execute(model, g, backend="reference", steps=27, hidden=True)
    module = GNNModule.from_model(model)
    with torch.no_grad():
        ro = module.rollout(GraphBatch([g], [None], model.spec), 27, hard=True)
    np.testing.assert_array_equal(torch.stack([z[:, :32] for z in ro.zs]).numpy(), res.hidden)
    cfg = TrainConfig(algo="dfs", batch=4, seed=0).validate()
    data = sample_batch(cfg, np.random.RandomState(0), 4, (4, 7, 11))
    with torch.no_grad():
        terms = loss_terms(module, cfg, data)
    assert set(terms) == {"output_pi"} | {f"hint_{h.name}" for h in ALGORITHMS["dfs"].hints}
    assert all(abs(float(v)) < 1e-20 for v in terms.values()), terms
