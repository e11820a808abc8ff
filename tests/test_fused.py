"""The native fused edge scores (engine.learn.fused): the torch ops' numbers up to rounding,
their gradients, determinism, clear errors, and the training loss they give."""
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
                                         ("bfs", {"processor": "gatv2", "protocol": "clrs"})])
def test_training_loss_and_gradient_equal_the_torch_ops(monkeypatch, algo, fields):
    from engine.learn import trainer

    cfg = trainer.TrainConfig.from_fields({"algo": algo, "processor": "mpnn", "hidden": 32, **fields})
    torch.manual_seed(0)
    module = trainer.initial_module(cfg, cfg.spec())
    data = trainer.sample_batch(cfg, np.random.RandomState(0), 8, cfg.train_sizes)
    calls = []
    real = fused._EdgeScore.apply
    monkeypatch.setattr(fused._EdgeScore, "apply", lambda *a: calls.append(1) or real(*a))
    loss = trainer.batch_loss(module, cfg, data)
    grads = torch.autograd.grad(loss, list(module.parameters()), allow_unused=True)
    assert calls, "the fused kernel was not used"
    monkeypatch.setattr(fused, "_native", None)  # the torch ops
    loss_ref = trainer.batch_loss(module, cfg, data)
    grads_ref = torch.autograd.grad(loss_ref, list(module.parameters()), allow_unused=True)
    assert abs(loss.item() - loss_ref.item()) <= 1e-5 * abs(loss_ref.item())
    for a, b in zip(grads, grads_ref):
        if a is None or b is None:
            assert a is None and b is None
            continue
        assert (a - b).norm().item() <= 1e-4 * max(b.norm().item(), 1e-3)
