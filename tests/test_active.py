"""Active execution (only nodes whose inputs changed) equals dense execution exactly."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import engine
import engine.backends
from engine import Graph
from engine.algorithms.samplers import sample
from engine.graph import generators
from engine.model.factory import mpnn_spec, random_model


def _same(a, b):
    assert a.steps == b.steps
    np.testing.assert_array_equal(a.hidden, b.hidden)
    for k in a.outputs:
        np.testing.assert_array_equal(a.outputs[k], b.outputs[k])


@pytest.mark.parametrize("algo", ["bfs", "bellman_ford"])
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


@pytest.mark.parametrize("algo", ["bfs", "bellman_ford"])
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
    two = random_model(mpnn_spec(4, layers=2), seed=0)
    with pytest.raises(engine.EngineError, match="one processor layer per step"):
        engine.execute(two, g, 0, steps=2, mode="active")
    assert engine.execute(two, g, 0, steps=2, mode="auto").mode == "dense"
