"""Training: the loss falls, checkpoints are written atomically, runs resume, and the
exported model runs on every backend as the module does."""
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import engine  # noqa: E402
import engine.backends  # noqa: E402
from engine.learn.module import GNNModule, GraphBatch  # noqa: E402
from engine.algorithms.specs import learned_spec  # noqa: E402
from engine.learn.trainer import TrainConfig, pointer_accuracy, sample_batch, train  # noqa: E402
from engine.train import main  # noqa: E402


def _losses(out):
    with open(out / "metrics.jsonl") as fh:
        return [json.loads(line) for line in fh]


@pytest.mark.parametrize("algo", ["bfs", "bellman_ford", "dfs"])
def test_tiny_training_run_lowers_the_loss(tmp_path, algo):
    cfg = TrainConfig(algo=algo, hidden=16, steps=40, batch=8, train_sizes=(4, 7), eval_every=20,
                      val_graphs=8, seed=1)
    result = train(cfg, str(tmp_path), progress=False)
    records = _losses(tmp_path)
    assert result["step"] == 40 and len(records) == 40
    first = np.mean([r["loss"] for r in records[:8]])
    last = np.mean([r["loss"] for r in records[-8:]])
    assert last < first, (first, last)
    # the reported best is the best validation score logged, and best.npz scores it again
    logged = [r["val_pointer_accuracy"] for r in records if "val_pointer_accuracy" in r]
    assert result["best_val_pointer_accuracy"] == max(logged)
    val = sample_batch(cfg, np.random.RandomState(10_000 + cfg.seed), cfg.val_graphs, [cfg.val_size])
    best = GNNModule.from_model(engine.Model.load(tmp_path / "best.npz"))
    assert pointer_accuracy(best, val) == result["best_val_pointer_accuracy"]
    assert (tmp_path / "state.pt").exists()


def test_export_runs_on_every_backend(tmp_path):
    train(TrainConfig(algo="bfs", hidden=16, steps=20, batch=4, train_sizes=(4, 7), eval_every=10,
                      val_graphs=4), str(tmp_path), progress=False)
    model = engine.Model.load(tmp_path / "best.npz")
    g = engine.generate("er", 200, degree=4, seed=3)
    ref = engine.reference("bfs", g, 0)
    module = GNNModule.from_model(model)
    batch = GraphBatch(g, 0, model.spec)
    assert model.spec["feedback"]  # CLRS's default hint mode feeds decoded hints back
    with torch.no_grad():
        _, zs, Es, _ = module.rollout(batch, ref.steps, hard=True)
        want = module.decode(model.spec["outputs"]["pi"], batch, zs[-1], Es[-1]).numpy()
    for be in engine.backends.available_backends():
        res = engine.execute(model, g, 0, backend=be, steps=ref.steps)
        # learned float weights: backends sum in different orders, so a pointer score may tie
        # to rounding and its argmax go either way (the contract for learned models is float32
        # rounding, not bit-exactness)
        assert np.mean(res.outputs["pi"] == want) > 0.99, be


def test_resume_continues_from_the_checkpoint(tmp_path):
    cfg = TrainConfig(algo="bfs", hidden=8, steps=10, batch=4, train_sizes=(4,), eval_every=5, val_graphs=4)
    train(cfg, str(tmp_path), progress=False)
    cfg.steps = 15
    result = train(cfg, str(tmp_path), progress=False)
    assert result["step"] == 15
    assert [r["step"] for r in _losses(tmp_path)] == list(range(1, 16))


def test_a_resumed_run_draws_and_trains_as_an_uninterrupted_one(tmp_path, monkeypatch):
    """Batches are drawn ahead of the step that uses them; the checkpoint keeps the random
    state after the batch it trained on, so a run killed after a checkpoint (with the next
    batch already drawn) and resumed trains exactly as an uninterrupted one."""
    import engine.learn.trainer as trainer

    cfg = TrainConfig(algo="bfs", hidden=8, steps=10, batch=4, train_sizes=(4, 7), eval_every=5, val_graphs=4)
    train(cfg, str(tmp_path / "whole"), progress=False)
    real, calls = trainer.gradient, {"n": 0}

    def killed_at_step_7(*args):
        calls["n"] += 1
        if calls["n"] == 7:
            raise KeyboardInterrupt  # after the step-5 checkpoint, with batches 6 and 7 drawn
        return real(*args)

    monkeypatch.setattr(trainer, "gradient", killed_at_step_7)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, str(tmp_path / "split"), progress=False)
    monkeypatch.setattr(trainer, "gradient", real)
    train(cfg, str(tmp_path / "split"), progress=False)
    assert _losses(tmp_path / "whole") == _losses(tmp_path / "split")
    whole = engine.Model.load(tmp_path / "whole" / "last.npz").weights
    split = engine.Model.load(tmp_path / "split" / "last.npz").weights
    assert all(np.array_equal(whole[k], split[k]) for k in whole)


@pytest.mark.parametrize("algo,protocol", [("bfs", "sparse"), ("dfs", "clrs"), ("bellman_ford", "clrs")])
def test_a_rollout_on_the_running_graphs_equals_the_full_rollout(algo, protocol):
    """Each step runs only the graphs that have steps left (a prefix of the batch ordered by
    step count): every graph's states up to its own step count, and the loss, are the full
    rollout's."""
    from engine.errors import EngineError
    from engine.learn.trainer import by_steps, loss_terms, make_batch

    cfg = TrainConfig.from_fields({"algo": algo, "protocol": protocol, "hidden": 16})
    module = GNNModule.initialised(cfg.spec(), 1)
    data = by_steps(sample_batch(cfg, np.random.RandomState(5), 6, [4, 7, 11]))
    steps = [r.steps for r in data["refs"]]
    assert len(set(steps)) > 1  # the case exercises graphs that stop early
    batch = make_batch(data, module.spec)
    with torch.no_grad():
        full = module.rollout(batch, max(steps), hard=False)
        short = module.rollout(batch, max(steps), hard=False, graph_steps=steps)
    # equal up to float32 rounding: a matrix product over fewer rows may round differently
    for t in range(max(steps) + 1):
        for off, n, T in zip(batch.offsets, [g.num_nodes for g in data["graphs"]], steps):
            if t <= T:
                assert torch.allclose(full.states[t][off:off + n], short.states[t][off:off + n],
                                      rtol=1e-5, atol=1e-5), (t, T)
    # and after its last step a graph's state is left as it was (the full rollout moves on)
    last = [off for off, T in zip(batch.offsets, steps) if T < max(steps)][-1]
    assert torch.equal(short.states[-1][last], short.states[min(steps)][last])
    with pytest.raises(EngineError, match="non-increasing"):
        module.rollout(batch, max(steps), graph_steps=steps[::-1])
    terms = loss_terms(module, cfg, data)
    real = module.rollout
    module.rollout = lambda *a, graph_steps=None, **k: real(*a, **k)  # every graph every step
    try:
        again = loss_terms(module, cfg, data)
    finally:
        module.rollout = real
    for key in terms:
        assert terms[key].item() == pytest.approx(again[key].item(), rel=1e-6), key


def test_cli_and_config(tmp_path):
    conf = tmp_path / "c.json"
    conf.write_text(json.dumps({"train_sizes": [4], "eval_every": 2, "val_graphs": 2}))
    assert main(["--algo", "bfs", "--hidden", "8", "--steps", "2", "--batch", "2", "--config", str(conf),
                 "--out", str(tmp_path / "run")]) == 0
    conf.write_text(json.dumps({"learning_rate": 1}))
    assert main(["--algo", "bfs", "--config", str(conf), "--out", str(tmp_path / "x")]) == 2


def test_learned_spec_decodes_every_node_hint():
    spec = learned_spec("dfs", hidden=8)
    assert set(spec["hints"]) == {"pi_h", "color", "d", "f", "s_prev", "s", "u", "v", "s_last"}
    engine.Model(spec, {k: np.zeros(v) for k, v in engine.model.spec.expected_shapes(spec).items()})


def test_training_from_the_compiled_point(tmp_path):
    """--init compiled starts at the compiled BFS (exact at every evaluated size, loss ~0,
    gradients ~0: Adam barely moves); noise moves the start point and the run records how far
    training travels; the L1 penalty is part of the loss."""
    base = dict(algo="bfs", hidden=8, steps=4, batch=4, train_sizes=(4, 7), eval_every=2, val_graphs=4,
                eval_sizes=(64, 300), init="compiled")
    train(TrainConfig(**base), str(tmp_path / "exact"), progress=False)
    last = _losses(tmp_path / "exact")[-1]
    assert last["loss"] < 1e-20 and last["distance"] < 1e-12
    assert last["exact_64"] and last["exact_300"] and last["val_pointer_accuracy"] == 1.0
    train(TrainConfig(**dict(base, init_noise=0.5, l1=1e-3)), str(tmp_path / "noisy"), progress=False)
    noisy = _losses(tmp_path / "noisy")
    assert noisy[0]["loss"] > 1e-3 and noisy[-1]["distance"] > 0
    assert {"accuracy_64", "accuracy_300"} <= set(noisy[-1])
    with pytest.raises(engine.EngineError, match="does not have this run's spec"):
        train(TrainConfig(**dict(base, layer_norm=True)), str(tmp_path / "ln"), progress=False)


def test_a_non_finite_step_ends_the_run_at_its_last_finite_weights(tmp_path, monkeypatch):
    """A loss that stops being finite (the sharp Bellman-Ford compiled point does this under
    Adam) ends the run before the optimiser step: the record says so, the weights kept are
    finite and evaluated, the command exits 1, and a resume does not train on."""
    import engine.learn.trainer as trainer

    calls = {"n": 0}
    real = trainer.batch_loss

    def blows_up_at_step_3(module, cfg, data):
        calls["n"] += 1
        loss = real(module, cfg, data)
        return loss * float("inf") if calls["n"] == 3 else loss

    monkeypatch.setattr(trainer, "batch_loss", blows_up_at_step_3)
    cfg = TrainConfig(algo="bfs", hidden=8, steps=10, batch=4, train_sizes=(4,), eval_every=5, val_graphs=4,
                      eval_sizes=(32,))
    result = train(cfg, str(tmp_path), progress=False)
    assert result == {"step": 3, "best_val_pointer_accuracy": result["best_val_pointer_accuracy"], "diverged": True}
    records = _losses(tmp_path)
    assert [r["step"] for r in records] == [1, 2, 3]
    assert records[-1]["diverged"] is True and records[-1]["loss"] is None and "accuracy_32" in records[-1]
    kept = engine.Model.load(tmp_path / "last.npz")
    assert all(np.isfinite(w).all() for w in kept.weights.values())
    cfg.steps = 20
    assert train(cfg, str(tmp_path), progress=False)["diverged"] and len(_losses(tmp_path)) == 3
    calls["n"] = 0
    assert main(["--algo", "bfs", "--hidden", "8", "--steps", "5", "--batch", "2", "--out", str(tmp_path / "cli")]) == 1


def test_noise_relative_to_rms_survives_huge_compiled_constants():
    """Bellman-Ford's compiled weights reach 2^90: their square overflows float32, so the
    RMS is taken in float64 and the perturbed weights stay finite and near their size."""
    from engine.learn.trainer import perturb

    module = GNNModule(learned_spec("bellman_ford", hidden=8))
    with torch.no_grad():
        for p in module.parameters():
            p.fill_(2.0 ** 90)
    perturb(module, 0.01, np.random.default_rng(0))
    for p in module.parameters():
        rel = (p.detach().double() / 2.0 ** 90 - 1).abs()
        assert torch.isfinite(p).all() and float(rel.max()) < 0.1 and float(rel.max()) > 0


def test_training_runs_on_cuda_when_available_and_refuses_a_device_it_lacks(tmp_path, capsys):
    from engine.learn.trainer import training_device

    assert training_device("auto").type == training_device(None).type == \
        ("cuda" if torch.cuda.is_available() else "cpu")
    assert main(["--algo", "bfs", "--device", "tpu", "--steps", "1", "--out", str(tmp_path / "tpu")]) == 2
    assert "training device 'tpu': choose auto, cpu, cuda or cuda:N" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(["--algo", "bfs", "--device", "cuda", "--steps", "1", "--out", str(tmp_path / "cuda")]) == 2
        assert "no CUDA device" in capsys.readouterr().err
    assert not (tmp_path / "tpu").exists() and not (tmp_path / "cuda").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_run_on_cuda_matches_the_cpu_and_resumes_on_the_cpu(tmp_path):
    cfg = TrainConfig(algo="bellman_ford", hidden=16, steps=4, batch=4, train_sizes=(5,), eval_every=2, val_graphs=4)
    train(cfg, str(tmp_path / "cpu"), progress=False, device="cpu")
    train(cfg, str(tmp_path / "gpu"), progress=False, device="cuda")
    cpu, gpu = _losses(tmp_path / "cpu"), _losses(tmp_path / "gpu")
    assert cpu[0]["loss"] == pytest.approx(gpu[0]["loss"], rel=1e-4)
    state = torch.load(tmp_path / "gpu" / "state.pt", weights_only=True)
    assert all(t.device.type == "cpu" for t in state["module"].values())
    cfg.steps = 6
    assert train(cfg, str(tmp_path / "gpu"), progress=False, device="cpu")["step"] == 6


@pytest.mark.parametrize("flush", [True, False])
def test_training_step_flushes_subnormals_only_when_configured_and_only_within_it(monkeypatch, flush):
    import torch

    from engine.learn import trainer

    cfg = trainer.TrainConfig.from_fields({"algo": "bfs", "hidden": 8, "flush_subnormals": flush})
    module = trainer.initial_module(cfg, cfg.spec())
    opt = trainer.make_optimizer(module, cfg)
    data = trainer.sample_batch(cfg, np.random.RandomState(0), 2, cfg.train_sizes)
    tiny = lambda: (torch.tensor([1e-39]) * torch.tensor([1.0])).item()  # noqa: E731  (float32 subnormal)
    seen = []
    real = trainer.batch_loss
    monkeypatch.setattr(trainer, "batch_loss", lambda *a: seen.append(tiny()) or real(*a))
    loss, norm = trainer.gradient(module, cfg, data, opt)
    assert np.isfinite(loss) and np.isfinite(norm)
    assert (seen[0] == 0.0) == flush
    assert tiny() != 0.0  # kept again after the step
