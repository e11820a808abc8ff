"""Message layers whose weights are mostly zero run as sparse column sums in the native kernel
(GATv2's score and value selection): the same bits as the dense loop, which still runs where an
input is infinite or NaN (0 * inf = NaN there)."""
import numpy as np
import pytest

import engine
from engine.backends import available_backends
from engine.graph import generators
from engine.model.factory import mpnn_spec, random_model

pytestmark = pytest.mark.skipif("native" not in available_backends(), reason="needs the native backend")

HIDDEN = 64  # the message's second layer: 64 x 64 = 4096 weights, the smallest the kernel takes sparse
SPARE = list(range(HIDDEN - 8, HIDDEN))  # message channels that the update never reads


def _pair(seed: int, scale: float = 0.5, kind: str = "max"):
    """Two models with the same states: the message's second layer holds 4% nonzero weights (run
    sparse), and in the twin its 8 spare columns are filled too, 16% nonzero (run dense). A
    spare channel is aggregated on its own (max or sum) and read by all-zero rows of the update, which
    the kernels skip, so it reaches no state."""
    spec = mpnn_spec(HIDDEN, groups=((kind, None),), message_depth=2, pointer=False)  # no NaN pointer scores
    base = random_model(spec, seed=seed, scale=scale)
    rng = np.random.default_rng(seed)
    w = base.weights["layers.0.message.1.weight"].copy()
    w[rng.random(w.shape) > 0.04] = 0
    w[:, SPARE] = 0
    agg = base.weights["layers.0.update.agg"].copy()
    agg[SPARE, :] = 0
    sparse = engine.Model(spec, {**base.weights, "layers.0.message.1.weight": w, "layers.0.update.agg": agg})
    filled = w.copy()
    filled[:, SPARE] = rng.standard_normal((HIDDEN, len(SPARE))).astype(w.dtype)
    dense = engine.Model(spec, {**sparse.weights, "layers.0.message.1.weight": filled})
    assert np.count_nonzero(w) * 8 < w.size < np.count_nonzero(filled) * 8
    return sparse, dense


@pytest.mark.parametrize("threads", [1, 2])
def test_sparse_message_layer_has_the_dense_bits(threads):
    sparse, dense = _pair(seed=1)
    g = generators.erdos_renyi(500, 12, weighted=True, seed=2)  # rows of more than one tile of 16 messages
    a = engine.execute(sparse, g, 0, steps=4, hidden=True, backend="native", threads=threads)
    b = engine.execute(dense, g, 0, steps=4, hidden=True, backend="native", threads=threads)
    assert np.isfinite(a.hidden).all()
    np.testing.assert_array_equal(a.hidden.view(np.uint32), b.hidden.view(np.uint32))


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_non_finite_message_inputs_take_the_dense_loop():
    """A first-layer channel that overflows to inf, with one nonzero weight, into a channel the
    update never reads: in the dense sums every other column meets it as 0 * inf = NaN, and
    the sparse layer must give those NaNs, not the finite sums over its nonzero weights
    (summed, so that the NaNs reach the states)."""
    sparse, dense = _pair(seed=3, kind="sum")

    def blow_up(model):
        w = dict(model.weights)
        src = w["layers.0.message.src"].copy()
        src[:, 0] = np.float32(3e38)  # channel 0 of the first layer overflows (relu keeps +inf)
        second = w["layers.0.message.1.weight"].copy()
        second[0, :] = 0
        second[0, SPARE[0]] = 1  # read by the dense loop (the row is not all zero), into a spare channel
        w.update({"layers.0.message.src": src, "layers.0.message.1.weight": second})
        return engine.Model(model.spec, w)

    sparse, dense = blow_up(sparse), blow_up(dense)
    g = generators.erdos_renyi(200, 8, weighted=True, seed=4)
    a = engine.execute(sparse, g, 0, steps=2, hidden=True, backend="native")
    b = engine.execute(dense, g, 0, steps=2, hidden=True, backend="native")
    # the infinite channel reaches only a spare message channel; the NaNs are the zero weights'
    assert np.isnan(a.hidden[1]).any()
    np.testing.assert_array_equal(a.hidden.view(np.uint32), b.hidden.view(np.uint32))


def _sequential_product(X, W):
    """X @ W as the kernels sum it: for each output, the inputs ascending from +0, one rounded
    multiplication and one rounded addition each, all-zero rows of W skipped."""
    Y = np.zeros((X.shape[0], W.shape[1]), dtype=np.float32)
    for i in range(W.shape[0]):
        if W[i].any():
            Y = Y + X[:, i:i + 1] * W[i]
    return Y


@pytest.mark.parametrize("width", [48, 33])
@pytest.mark.parametrize("mode", ["dense", "active"])
def test_message_tiles_across_rows_give_each_row_its_own_bits(mode, width):
    """The native kernel computes the dense message layers of several rows' messages together
    (tiles of up to 64 messages spanning rows). Every row must get the bits of its own
    messages folded in its own order: checked against the same arithmetic in NumPy, on a graph
    with a row of 300 in-edges (several tiles), rows with none (no self-edge: aggregate 0) and
    every degree in between; a max group and an order-sensitive sum group. The update is
    relu([aggregate, -aggregate]) exactly (weights [I, -I]), so the state after one step
    holds the aggregate, both signs. A message of width 33 leaves one column past the blocks
    of 32, summed in registers (the path of every pointer decoder's score)."""
    hidden, summed = 96, 8
    spec = mpnn_spec(hidden, groups=(("max", width - summed), ("sum", summed)), message_depth=2,
                     include_self=False, pointer=False)
    model = random_model(spec, seed=7, scale=0.5)
    rng = np.random.default_rng(8)
    w = dict(model.weights)
    # the source part reads each state channel once (one weight per column): the same bits
    # whichever way the executor sums it (at this width NumPy's BLAS does)
    w["layers.0.message.src"][:] = 0
    w["layers.0.message.src"][:hidden] = np.diag(rng.uniform(0.5, 1.5, hidden)).astype(np.float32)
    w["layers.0.message.dst"][:] = 0  # the destination part is the bias
    w["layers.0.update.node"][:] = 0
    w["layers.0.update.agg"][:] = np.hstack([np.eye(width), -np.eye(width), np.zeros((width, hidden - 2 * width))])
    w["layers.0.update.bias"][:] = 0
    model = engine.Model(spec, w)
    n = 400
    src = np.concatenate([rng.integers(0, n, 300), rng.integers(0, n, 1500)])
    dst = np.concatenate([np.full(300, 5), rng.integers(0, n // 2, 1500)])  # no in-edges at most nodes >= 200
    g = engine.Graph.from_edges(src, dst, n, weights=rng.random(src.size).astype(np.float32))
    degree = np.diff(g.indptr)
    assert (degree == 0).any() and degree.max() >= 300
    got = engine.execute(model, g, 0, steps=1, hidden=True, backend="native", mode=mode, threads=2).hidden
    h = got[0]
    S = h * np.diag(w["layers.0.message.src"][:hidden])
    u = g.indices.astype(np.int64)
    x = S[u] + w["layers.0.message.bias"]
    x = x + g.weights[:, None].astype(np.float32) * w["layers.0.message.edge"][0]
    x = np.maximum(x, np.float32(0))
    m = _sequential_product(x, w["layers.0.message.1.weight"]) + w["layers.0.message.1.bias"]
    agg = np.zeros((n, width), dtype=np.float32)
    for v in np.flatnonzero(degree):
        rows = m[g.indptr[v]:g.indptr[v + 1]]
        agg[v, :width - summed] = rows[:, :width - summed].max(axis=0)
        total = rows[0, width - summed:].copy()
        for r in rows[1:]:
            total = total + r[width - summed:]
        agg[v, width - summed:width] = total
    expected = np.zeros((n, hidden), dtype=np.float32)
    expected[:, :2 * width] = np.maximum(np.hstack([agg, -agg]), np.float32(0))
    np.testing.assert_array_equal(got[1].view(np.uint32), expected.view(np.uint32))
