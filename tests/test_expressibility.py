"""DFS over the input's edges: the locality argument of docs/compiled_in_learned.md, on models.

In a learned spec whose messages run over the input's edges, nodes 0, 2 and 3 of
G1 = {0->2, 2->1, 2->3} and G2 = G1 + {0->1} see the same in-edges and inputs, so any weights
give them the same states at every step, while DFS's trace differs at node 2. The one way
past it is a fed-back one-node mask (an argmax over all nodes).
"""
import numpy as np
import pytest

import engine
from engine.algorithms.specs import learned_spec
from engine.graph import Graph
from engine.model.factory import random_weights

G1 = Graph.from_edges([0, 2, 2], [2, 1, 3], 4, directed=True)
G2 = Graph.from_edges([0, 0, 2, 2], [1, 2, 1, 3], 4, directed=True)
SAME = [0, 2, 3]  # same in-edges and inputs in both graphs


def _states_agree(model) -> bool:
    """Nodes 0, 2, 3 in the same states in both graphs at every step: the same function of the
    same inputs. The native and numba backends compute every row on its own, so equal inputs
    give equal bits (BLAS, the reference backend's products, may round a row differently with
    the number of rows in the call, and a hint fed back hard, an argmax near a tie, can amplify
    that); a state that depends on node 1 differs by far more."""
    backend = "native" if "native" in engine.backends.available_backends() else "numba"
    a = engine.execute(model, G1, None, backend=backend, steps=12, hidden=True).hidden
    b = engine.execute(model, G2, None, backend=backend, steps=12, hidden=True).hidden
    gap = max(float(np.abs(x[SAME] - y[SAME]).max()) for x, y in zip(a, b))
    assert gap == 0 or gap > 1e-3, gap  # the same bits, or a real difference: never in between
    return gap == 0


def test_dfs_trace_differs_where_the_in_views_agree():
    for algo in ("dfs", "dfs_light"):
        c1 = engine.reference(algo, G1, None, trace=True).hints["color"]
        c2 = engine.reference(algo, G2, None, trace=True).hints["color"]
        assert np.argmax(c1[2, 2]) == 1 and np.argmax(c2[2, 2]) == 0  # gray in G1, white in G2


@pytest.mark.parametrize("processor", ["mpnn", "gatv2"])
@pytest.mark.parametrize("algo,mode", [("dfs", "decoded_only"), ("dfs_light", "decoded_only"),
                                       ("dfs_light", "encoded_decoded")])
def test_no_weights_tell_the_two_graphs_apart(algo, mode, processor):
    """The premise on random weights, and the compiler's refusal with the reason."""
    spec = learned_spec(algo, processor, 16, hint_mode=mode)
    for seed in range(3):
        assert _states_agree(engine.Model(spec, random_weights(spec, seed))), seed
    with pytest.raises(engine.EngineError, match="cannot be compiled into .* gray after step 2"):
        engine.compile(algo, processor=processor, hint_mode=mode)


def test_fed_back_one_node_masks_are_the_only_way_past():
    """With DFS's one-node masks fed back (encoded_decoded) the states differ; with those
    decoders' weights zero (every argmax at node 0 in both graphs) they agree again, layer norm
    and graph state included: the argument stops exactly at the global argmax."""
    spec = learned_spec("dfs", "mpnn", 16, hint_mode="encoded_decoded", layer_norm=True, graph_hints=True)
    weights = random_weights(spec, 3)
    assert not _states_agree(engine.Model(spec, weights))
    masks = tuple(f"decoders.hint_{h}." for h in ("s", "u", "v", "s_last"))
    zeroed = {k: np.zeros_like(v) if k.startswith(masks) else v for k, v in weights.items()}
    assert _states_agree(engine.Model(spec, zeroed))
    with pytest.raises(engine.EngineError, match="no 'mpnn' compiler for 'dfs'"):
        engine.compile("dfs", processor="mpnn", hint_mode="encoded_decoded")  # open, not refused
