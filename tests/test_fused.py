"""The native fused kernels (engine.learn.fused): edge scores, attention and the max
aggregation's backward give the torch ops' numbers up to rounding, their gradients,
determinism, clear errors, and the training loss they give."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from engine.backends import torch_ops as ops  # noqa: E402
from engine.learn import fused  # noqa: E402

pytestmark = pytest.mark.skipif(fused._native is None, reason="engine._native is not built")


def reference_scores(S, Q, E, We, w, bias, src, pos, eid, heads, slope):
    """The same scores in torch ops: the first layer, the activation, a per-head dot."""
    pre = ops.first_layer(S, Q, E, We, src, pos, eid, act0=0)
    act = torch.where(pre > 0, pre, slope * pre) if slope else torch.relu(pre)
    return (act * w).view(pre.shape[0], heads, -1).sum(-1) + bias


def case(dtype, n=13, m=57, d=32, fe=3, heads=1, self_messages=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    rnd = lambda *shape: torch.randn(*shape, generator=g, dtype=dtype, requires_grad=True)  # noqa: E731
    S, Q = rnd(n, d), rnd(n, d)
    E = None if fe == 0 else torch.rand(m - self_messages, fe, generator=g, dtype=dtype).requires_grad_()
    We = None if fe == 0 else rnd(fe, d)
    w, bias = rnd(d), rnd(heads)
    pos = torch.sort(torch.randint(0, n, (m,), generator=g))[0]
    src = torch.randint(0, n, (m,), generator=g)
    eid = torch.cat([torch.randperm(m - self_messages, generator=g), torch.full((self_messages,), -1)])
    eid = eid[torch.randperm(m, generator=g)]
    return S, Q, E, We, w, bias, src, pos, eid


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 2e-5)])
@pytest.mark.parametrize("heads,slope", [(1, 0.0), (1, 1.0), (4, 0.2), (2, 0.0)])
@pytest.mark.parametrize("fe", [0, 3])
def test_scores_and_gradients_match_the_torch_ops(dtype, tol, heads, slope, fe):
    S, Q, E, We, w, bias, src, pos, eid = case(dtype, fe=fe, heads=heads)
    ref = reference_scores(S, Q, E, We, w, bias, src, pos, eid, heads, slope)
    out = fused.head_scores(S, Q, E, We, w, bias, src, pos, eid, heads, slope)
    assert out.shape == ref.shape == (src.shape[0], heads)
    scale = ref.abs().max().item()
    assert (out - ref).abs().max().item() <= tol * scale
    leaves = [t for t in (S, Q, E, We, w, bias) if t is not None]
    g = torch.randn(ref.shape, dtype=dtype, generator=torch.Generator().manual_seed(1))
    want = torch.autograd.grad(ref, leaves, g)
    got = torch.autograd.grad(out, leaves, g)
    for a, b in zip(want, got):
        assert (a - b).abs().max().item() <= tol * max(a.abs().max().item(), 1.0)


@pytest.mark.parametrize("slope", [0.0, 0.2])
def test_gradcheck(slope):
    S, Q, E, We, w, bias, src, pos, eid = case(torch.float64, n=6, m=20, d=8, fe=2, heads=2, self_messages=3)
    f = lambda *t: fused.head_scores(*t, src, pos, eid, 2, slope)  # noqa: E731
    assert torch.autograd.gradcheck(f, (S, Q, E, We, w, bias))


def test_relu_gradient_is_zero_at_zero_and_nan_passes():
    # a pre-activation exactly 0 gets no gradient (as torch's ReLU); NaN stays NaN forward
    S = torch.zeros((2, 4), dtype=torch.float64, requires_grad=True)
    Q = torch.tensor([[0.0, 1.0, -1.0, float("nan")]] * 2, dtype=torch.float64, requires_grad=True)
    w = torch.ones(4, dtype=torch.float64, requires_grad=True)
    idx = torch.tensor([0, 1])
    out = fused.head_scores(S, Q, None, None, w, torch.zeros(2, dtype=torch.float64), idx, idx,
                            torch.tensor([-1, -1]), heads=2, slope=0.0)
    assert out[0, 0].item() == 1.0 and torch.isnan(out[0, 1])
    grad, = torch.autograd.grad(out[:, 0].sum(), [Q])
    assert grad[:, :2].tolist() == [[0.0, 1.0], [0.0, 1.0]]


def test_forward_does_not_depend_on_threads_and_backward_is_deterministic():
    S, Q, E, We, w, bias, src, pos, eid = case(torch.float32, n=200, m=3000, d=64, fe=3, self_messages=200)
    before = torch.get_num_threads()
    try:
        outs, grads = [], []
        for threads in (1, 2, 2):
            torch.set_num_threads(threads)
            out = fused.head_scores(S, Q, E, We, w, bias, src, pos, eid)
            outs.append(out.detach().clone())
            grads.append(torch.autograd.grad(out.sum(), [S, Q, E, We, w]))
    finally:
        torch.set_num_threads(before)
    assert torch.equal(outs[0], outs[1]) and torch.equal(outs[1], outs[2])
    assert all(torch.equal(a, b) for a, b in zip(grads[1], grads[2]))
    assert all(torch.allclose(a, b, rtol=1e-5, atol=1e-5) for a, b in zip(grads[0], grads[1]))


def test_bad_indices_are_refused():
    S, Q, E, We, w, bias, src, pos, eid = case(torch.float64)
    bad = src.clone()
    bad[3] = S.shape[0]
    with pytest.raises(ValueError, match="node index outside"):
        fused.head_scores(S, Q, E, We, w, bias, bad, pos, eid)
    bad = eid.clone()
    bad[0] = E.shape[0]
    with pytest.raises(ValueError, match="edge row outside"):
        fused.head_scores(S, Q, E, We, w, bias, src, pos, bad)
    with pytest.raises(ValueError, match="heads must divide"):
        fused.head_scores(S, Q, E, We, w, bias.new_zeros(5), src, pos, eid, heads=5)


@pytest.mark.parametrize("algo,fields", [("dfs", {"protocol": "clrs"}), ("bfs", {}),
                                         ("bfs", {"processor": "gatv2", "protocol": "clrs"}),
                                         ("dfs", {"processor": "gatv2", "heads": 4})])
def test_training_loss_and_gradient_equal_the_torch_ops(monkeypatch, algo, fields):
    from engine.learn import trainer

    cfg = trainer.TrainConfig.from_fields({"algo": algo, "processor": "mpnn", "hidden": 32, **fields})
    torch.manual_seed(0)
    module = trainer.initial_module(cfg, cfg.spec())
    data = trainer.sample_batch(cfg, np.random.RandomState(0), 8, cfg.train_sizes)
    calls = []
    for kernel in (fused._EdgeScore, fused._AttentionAggregate, fused._ExtremumOfLinear):
        real = kernel.apply
        monkeypatch.setattr(kernel, "apply", lambda *a, real=real, kernel=kernel: calls.append(kernel) or real(*a))
    loss = trainer.batch_loss(module, cfg, data)
    grads = torch.autograd.grad(loss, list(module.parameters()), allow_unused=True)
    assert fused._EdgeScore in calls, "the fused scores were not used"
    if cfg.processor == "gatv2":
        assert fused._AttentionAggregate in calls, "the fused attention was not used"
    else:
        assert fused._ExtremumOfLinear in calls, "the fused max aggregation was not used"
    monkeypatch.setattr(fused, "_native", None)  # the torch ops
    loss_ref = trainer.batch_loss(module, cfg, data)
    grads_ref = torch.autograd.grad(loss_ref, list(module.parameters()), allow_unused=True)
    assert abs(loss.item() - loss_ref.item()) <= 1e-5 * abs(loss_ref.item())
    for a, b in zip(grads, grads_ref):
        if a is None or b is None:
            assert a is None and b is None
            continue
        assert (a - b).norm().item() <= 1e-4 * max(b.norm().item(), 1e-3)


def attention_case(dtype, heads, n=20, m=90, d=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    scores = torch.randn(m, heads, dtype=dtype, generator=g, requires_grad=True)
    V = torch.randn(n, d, dtype=dtype, generator=g, requires_grad=True)
    pos = torch.sort(torch.randint(0, n - 2, (m,), generator=g))[0]  # the last two rows get no messages
    src = torch.randint(0, n, (m,), generator=g)
    return scores, V, src, pos


def reference_attention(scores, V, src, pos, n, heads):
    d = V.shape[1]
    msg = torch.cat([scores[:, :, None], V.index_select(0, src).view(-1, heads, d // heads)], dim=2).reshape(-1, heads + d)
    groups = [(6, h * (1 + d // heads), (h + 1) * (1 + d // heads)) for h in range(heads)]  # 6: softmax
    return ops.aggregate(msg, src, pos, n, groups)[0]


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-13), (torch.float32, 1e-5)])
@pytest.mark.parametrize("heads", [1, 4])
def test_attention_aggregate_and_gradients_match_the_torch_ops(dtype, tol, heads):
    scores, V, src, pos = attention_case(dtype, heads)
    ref = reference_attention(scores, V, src, pos, 20, heads)
    out = fused.attention_aggregate(scores, V, src, pos, 20, heads)
    assert out.shape == ref.shape == (20, heads + 16)
    assert (out - ref).abs().max().item() <= tol
    assert out[-2:].abs().max().item() == 0.0  # rows without messages
    g = torch.randn(ref.shape, dtype=dtype, generator=torch.Generator().manual_seed(1))
    for a, b in zip(torch.autograd.grad(ref, [scores, V], g), torch.autograd.grad(out, [scores, V], g)):
        assert (a - b).abs().max().item() <= 10 * tol


def test_attention_gradcheck_on_the_value_columns():
    scores, V, src, pos = attention_case(torch.float64, 2, n=8, m=30, d=6)
    cols = [c for c in range(2 + 6) if c % 4]  # the per-head maxima carry no gradient
    f = lambda s, v: fused.attention_aggregate(s, v, src, pos, 8, 2)[:, cols]  # noqa: E731
    assert torch.autograd.gradcheck(f, (scores, V))


def test_attention_refuses_ungrouped_rows():
    scores, V, src, pos = attention_case(torch.float64, 1)
    with pytest.raises(ValueError, match="non-decreasing"):
        fused.attention_aggregate(scores, V, src, pos.flip(0), 20, 1)
    with pytest.raises(ValueError, match="row outside"):
        fused.attention_aggregate(scores, V, src, pos, 5, 1)


def test_inference_stays_in_torch_ops(monkeypatch):
    from engine.learn import trainer

    cfg = trainer.TrainConfig.from_fields({"algo": "bfs", "processor": "gatv2", "hidden": 16})
    module = trainer.initial_module(cfg, cfg.spec())
    data = trainer.sample_batch(cfg, np.random.RandomState(0), 4, cfg.train_sizes)
    used = []
    for kernel in (fused._EdgeScore, fused._AttentionAggregate, fused._ExtremumOfLinear):
        monkeypatch.setattr(kernel, "apply", lambda *a, kernel=kernel: used.append(kernel))
    with torch.no_grad():
        trainer.pointer_accuracy(module, data)
        mpnn = trainer.TrainConfig.from_fields({"algo": "bfs", "processor": "mpnn", "hidden": 16})
        trainer.pointer_accuracy(trainer.initial_module(mpnn, mpnn.spec()), data)
    assert used == []
    with torch.no_grad():
        assert not fused.available(torch.zeros(1))
    assert fused.available(torch.zeros(1))


def test_messages_without_edge_inputs_on_an_edgeless_batch():
    # only self messages (eid -1) and an edge-input table of no rows: zero edge gradient, no error
    S = torch.randn(3, 8, dtype=torch.float64, requires_grad=True)
    Q = torch.randn(3, 8, dtype=torch.float64, requires_grad=True)
    E = torch.zeros((0, 2), dtype=torch.float64, requires_grad=True)
    We = torch.randn(2, 8, dtype=torch.float64, requires_grad=True)
    w, bias = torch.randn(8, dtype=torch.float64), torch.zeros(1, dtype=torch.float64)
    idx = torch.arange(3)
    out = fused.head_scores(S, Q, E, We, w, bias, idx, idx, torch.full((3,), -1))
    ref = reference_scores(S, Q, E, We, w, bias, idx, idx, torch.full((3,), -1), 1, 0.0)
    assert torch.allclose(out, ref, rtol=1e-12, atol=1e-12)
    dE, dWe = torch.autograd.grad(out.sum(), [E, We])
    assert dE.shape == (0, 2) and dWe.abs().max().item() == 0.0


# ---------------------------------------------------------------- max aggregation backward

MAX, MIN = 2, 3  # aggregation codes (engine.model.registry)


def extremum_case(dtype, n=12, m=60, k=16, w=8, dead=10, seed=0):
    """Messages grouped by destination (the last two rows get none), some first-layer rows
    all zero (ReLU-dead: their messages are the bias, ties in every channel)."""
    g = torch.Generator().manual_seed(seed)
    H = torch.relu(torch.randn(m, k, generator=g, dtype=dtype))
    H[torch.randperm(m, generator=g)[:dead]] = 0
    W = torch.randn(k, w, generator=g, dtype=dtype)
    b = torch.randn(w, generator=g, dtype=dtype)
    pos = torch.sort(torch.randint(0, n - 2, (m,), generator=g))[0]
    src = torch.randint(0, n, (m,), generator=g)
    return H.requires_grad_(), W.requires_grad_(), b.requires_grad_(), src, pos


def extremum_pair(H, W, b, src, pos, n, groups):
    ref = ops.aggregate(H @ W + b, src, pos, n, groups)[0]
    out = fused._ExtremumOfLinear.apply(H, W, b, src, pos, n, groups)
    return ref, out


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 2e-5)])
@pytest.mark.parametrize("groups", [[(MAX, 0, 8)], [(MIN, 0, 8)], [(MAX, 0, 3), (MIN, 3, 8)]])
def test_extremum_gradients_match_the_torch_ops(dtype, tol, groups):
    H, W, b, src, pos = extremum_case(dtype)
    ref, out = extremum_pair(H, W, b, src, pos, 12, groups)
    assert torch.equal(out, ref)  # torch's own forward
    assert out[-2:].abs().max().item() == 0.0
    assert (ref[:-2] != 0).all()  # no extremum is exactly 0 here (see test_ties_split_evenly)
    g = torch.randn(ref.shape, dtype=dtype, generator=torch.Generator().manual_seed(1))
    for a, c in zip(torch.autograd.grad(ref, [H, W, b], g), torch.autograd.grad(out, [H, W, b], g)):
        assert (a - c).abs().max().item() <= tol * max(a.abs().max().item(), 1.0)


def test_extremum_gradcheck():
    H, W, b, src, pos = extremum_case(torch.float64, n=6, m=20, k=5, w=4, dead=0)
    assert torch.autograd.gradcheck(lambda h, w_, b_: fused._ExtremumOfLinear.apply(h, w_, b_, src, pos, 6,
                                                                                    [(MAX, 0, 4)]), (H, W, b))


def test_ties_split_evenly():
    # row 0: three equal messages (zero first-layer rows: the bias) and a lower one; row 1:
    # one message whose maximum is exactly 0
    H = torch.tensor([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [-1.0, 0.0], [0.0, 0.0]], dtype=torch.float64,
                     requires_grad=True)
    W = torch.tensor([[2.0], [5.0]], dtype=torch.float64, requires_grad=True)
    b = torch.tensor([3.0], dtype=torch.float64, requires_grad=True)
    pos = torch.tensor([0, 0, 0, 0, 1])
    out = fused._ExtremumOfLinear.apply(H, W, b, pos, pos, 2, [(MAX, 0, 1)])
    assert out[:, 0].tolist() == [3.0, 3.0]
    dH, dW, db = torch.autograd.grad(out, [H, W, b], torch.tensor([[6.0], [4.0]], dtype=torch.float64))
    # each tie of row 0 gets 6 / 3 = 2 (times W's column); row 1's one message gets all 4
    assert dH.tolist() == [[4.0, 10.0], [4.0, 10.0], [4.0, 10.0], [0.0, 0.0], [8.0, 20.0]]
    assert db.tolist() == [10.0]  # the whole gradient: 3 * 2 + 4
    assert dW.tolist() == [[0.0], [0.0]]
    # an extremum of exactly 0: the message gets the whole gradient (torch's scatter_reduce
    # also counts its zero fill there and gives it half)
    b0 = torch.tensor([0.0], dtype=torch.float64, requires_grad=True)
    out = fused._ExtremumOfLinear.apply(H[4:], W, b0, pos[4:], pos[4:] - 1, 1, [(MAX, 0, 1)])
    assert torch.autograd.grad(out, [b0], torch.tensor([[4.0]], dtype=torch.float64))[0].tolist() == [4.0]


def test_extremum_backward_is_deterministic_and_refuses_bad_rows():
    H, W, b, src, pos = extremum_case(torch.float32, n=400, m=3000, k=32, w=16, dead=100)
    M = (H @ W + b).detach()
    agg = ops.aggregate(M, src, pos, 400, [(MAX, 0, 16)])[0]
    G = torch.randn(agg.shape)
    args = [t.detach().numpy() for t in (H, W, M, agg, pos, G)]
    first = fused._native.extremum_linear_backward(*args, threads=2)
    again = fused._native.extremum_linear_backward(*args, threads=2)
    for a, c in zip(first, again):
        assert np.array_equal(a, c)
    one = fused._native.extremum_linear_backward(*args, threads=1)
    assert np.array_equal(first[0], one[0])  # each dH row comes from one thread
    args[4] = pos.flip(0).numpy()
    with pytest.raises(ValueError, match="non-decreasing"):
        fused._native.extremum_linear_backward(*args, threads=1)
    args[4] = pos.numpy()[:-1]
    with pytest.raises(ValueError, match="pos"):
        fused._native.extremum_linear_backward(*args, threads=1)
