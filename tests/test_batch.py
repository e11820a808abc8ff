"""execute_batch: many graphs stepped together give each graph its own execute result, bit for bit."""
import numpy as np
import pytest

import engine
from engine.algorithms.specs import learned_spec
from engine.errors import EngineError
from engine.graph import generators
from engine.model.factory import mpnn_spec, random_model


def _graphs(count, seed, directed=False, lo=3, hi=24):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(lo, hi, count)
    return [generators.erdos_renyi(int(n), float(rng.uniform(1, min(5, n - 1))), weighted=True, directed=directed,
                                   seed=int(rng.integers(2**31))) for n in sizes]


# Backends whose rows are computed one by one, so that a row's bits do not depend on how many
# rows share the call: native and numba run their products of learned widths (node MLPs,
# initial state, decoder parts) in their own row loops. NumPy and torch run them through BLAS,
# whose result for a row may depend on how many rows the call has (OpenBLAS's kernels for small
# calls on an AVX2 EPYC do): learned states agree there within float32 rounding (the parity
# bound), compiled models still bit for bit.
ROW_BY_ROW = ("native", "numba")


def _assert_same(one, got, exact_state=True):
    assert set(one.outputs) == set(got.outputs)
    for name in one.outputs:
        assert one.outputs[name].dtype == got.outputs[name].dtype
        np.testing.assert_array_equal(got.outputs[name], one.outputs[name], err_msg=name)
    if exact_state:
        np.testing.assert_array_equal(got.final_state, one.final_state)
    else:
        np.testing.assert_allclose(got.final_state, one.final_state, rtol=1e-5, atol=1e-6)
    if one.hints is not None:
        for name in one.hints:
            if exact_state or not np.issubdtype(one.hints[name].dtype, np.floating):
                np.testing.assert_array_equal(got.hints[name], one.hints[name], err_msg=name)
            else:  # decoded values (a scalar hint) carry the state's rounding; masks stay 0 or 1
                np.testing.assert_allclose(got.hints[name], one.hints[name], rtol=1e-5, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("algo", ["bfs", "bellman_ford"])
def test_compiled_fixed_point_batch_equals_each_execute(algo, backend):
    graphs = _graphs(40, seed=1)
    sources = [i % g.num_nodes for i, g in enumerate(graphs)]
    model = engine.compile(algo)
    results = engine.execute_batch(model, graphs, sources, backend=backend)
    assert len(results) == len(graphs)
    for g, s, got in zip(graphs, sources, results):
        one = engine.execute(model, g, s, backend=backend)
        _assert_same(one, got)
        np.testing.assert_array_equal(got.outputs["pi"], engine.reference(algo, g, s).outputs["pi"])
        assert got.converged and got.steps >= one.steps


@pytest.mark.parametrize("algo,processor,message_graph", [
    ("bfs", "mpnn", "input"), ("bfs", "gatv2", "input"), ("dfs", "mpnn", "complete"), ("bfs_seq", "mpnn", "input")])
def test_learned_batch_with_own_step_counts_and_traces(algo, processor, message_graph, backend):
    """Graphs grouped by their own step counts; hints fed back, pointers local to each graph,
    mask_one hints (bfs_seq's u and v) one node per graph."""
    pytest.importorskip("torch")
    from engine.learn import GNNModule

    spec = learned_spec(algo, processor, 16, hint_mode="encoded_decoded", message_graph=message_graph)
    model = GNNModule.initialised(spec, seed=3).to_model()
    graphs = _graphs(12, seed=2, directed=algo == "dfs", hi=14)
    source = algo != "dfs"
    sources = [i % g.num_nodes for i, g in enumerate(graphs)] if source else None
    steps = [1 + i % 4 for i in range(len(graphs))]
    results = engine.execute_batch(model, graphs, sources, steps=steps, trace=True, backend=backend)
    for i, (g, got) in enumerate(zip(graphs, results)):
        one = engine.execute(model, g, sources[i] if source else None, steps=steps[i], trace=True, backend=backend)
        _assert_same(one, got, exact_state=backend in ROW_BY_ROW)
        assert got.steps == steps[i]


def test_wide_layers_do_not_depend_on_the_rows_they_are_computed_with():
    """Wide node MLPs (and layer norm) run in blocks of rows: a row's bits are the same
    whatever rows share its block (thread counts, dense or active steps, a batch's offsets)."""
    spec = mpnn_spec(40, groups=(("max", None), ("sum", 8)), gated=True, layers=2)
    model = random_model(spec, seed=5, scale=0.5)
    graphs = _graphs(9, seed=4, lo=5, hi=40)
    whole = [engine.execute(model, g, 0, backend="native" if "native" in engine.backends.available_backends()
                            else None, steps=3, hidden=True, threads=1) for g in graphs]
    for threads in (1, 2):
        batch = engine.execute_batch(model, graphs, steps=3, threads=threads)
        for one, got in zip(whole, batch):
            np.testing.assert_array_equal(got.final_state, one.hidden[-1])
    for mode in ("dense", "active"):
        again = engine.execute(model, graphs[-1], 0, steps=3, hidden=True, mode=mode, threads=2)
        np.testing.assert_array_equal(again.hidden, whole[-1].hidden)


@pytest.mark.parametrize("backend_name", ["numba", "native"])
def test_learned_active_steps_give_the_dense_steps_bits(backend_name):
    """Learned widths on a backend's own row loops: active steps, which compute the message
    parts of the changed rows only, give the dense steps' bits."""
    if backend_name not in engine.backends.available_backends():
        pytest.skip(f"{backend_name} backend not available")
    spec = mpnn_spec(128, groups=(("max", None), ("sum", 8)), gated=True, layers=2)  # past small_matmul's BLAS cut-off
    model = random_model(spec, seed=6, scale=0.2)
    g = _graphs(1, seed=8, lo=300, hi=400)[0]
    dense = engine.execute(model, g, 0, steps=4, hidden=True, mode="dense", backend=backend_name)
    active = engine.execute(model, g, 0, steps=4, hidden=True, mode="active", backend=backend_name)
    np.testing.assert_array_equal(active.hidden.view(np.uint32), dense.hidden.view(np.uint32))


def test_first_hints_are_given_per_graph():
    pytest.importorskip("torch")
    from engine.learn import GNNModule

    spec = learned_spec("bfs", "mpnn", 16, hint_mode="encoded_decoded")
    model = GNNModule.initialised(spec, seed=1).to_model()
    graphs = _graphs(6, seed=5)
    fed = [name for name, dec in spec["hints"].items() if dec in spec["feedback"]]
    firsts = [{name: engine.reference("bfs", g, 0, trace=True).hints[name][0] for name in fed} for g in graphs]
    results = engine.execute_batch(model, graphs, steps=3, first_hints=firsts)
    for g, first, got in zip(graphs, firsts, results):
        _assert_same(engine.execute(model, g, 0, steps=3, first_hints=first), got)
    with pytest.raises(EngineError, match="some graphs and not others"):
        engine.execute_batch(model, graphs, steps=3, first_hints=[firsts[0]] + [None] * 5)


def test_batch_refusals():
    graphs = _graphs(3, seed=6)
    bfs = engine.compile("bfs")
    with pytest.raises(EngineError, match="graph state"):
        engine.execute_batch(engine.compile("dfs"), graphs)
    with pytest.raises(EngineError, match="one count per graph"):
        engine.execute_batch(bfs, graphs, steps=[1, 2])
    with pytest.raises(EngineError, match="needs steps="):
        engine.execute_batch(bfs, graphs, trace=True)
    with pytest.raises(EngineError, match="one entry per graph"):
        engine.execute_batch(bfs, graphs, [0])
    with pytest.raises(EngineError, match="at least one graph"):
        engine.execute_batch(bfs, [])
    with pytest.raises(EngineError, match=r"graphs\[1\] is not an engine.Graph"):
        engine.execute_batch(bfs, [graphs[0], "g"])
    with pytest.raises(EngineError, match="node"):
        engine.execute_batch(bfs, graphs, [0, 0, 10_000])
