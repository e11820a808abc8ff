"""engine.compare: every measure on constructed cases with known answers.

A model that *is* the compiled model scores CKA 1, probe R^2 1 and accuracy 1; a model with
shuffled weights scores near chance; streaming statistics equal the in-memory ones.
"""
import json
import os

import numpy as np
import pytest

import engine
from engine.analysis import behaviour
from engine.analysis.compare import (compare, compare_cell, compare_cells, find_checkpoints, fit_probes,
                                     probe_targets)
from engine.analysis.statistics import CKAMoments, ProbeScore, RidgeMoments, bootstrap_ci, linear_cka
from engine.graph import generate
from engine.model import Model


def _cka_in_memory(X, Y):
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    return np.linalg.norm(Xc.T @ Yc) ** 2 / (np.linalg.norm(Xc.T @ Xc) * np.linalg.norm(Yc.T @ Yc))


def test_streaming_cka_equals_in_memory():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(1000, 12))
    Y = X[:, :5] @ rng.normal(size=(5, 7)) + 0.5 * rng.normal(size=(1000, 7))
    m = CKAMoments(12, 7)
    for a in range(0, 1000, 137):  # uneven chunks
        m.add(X[a:a + 137], Y[a:a + 137])
    assert m.cka() == pytest.approx(_cka_in_memory(X, Y), rel=1e-10)
    # merged moments of two halves equal one pass
    h1, h2 = CKAMoments(12, 7), CKAMoments(12, 7)
    h1.add(X[:400], Y[:400])
    h2.add(X[400:], Y[400:])
    h1.merge(h2)
    assert h1.cka() == pytest.approx(m.cka(), rel=1e-12)
    Xs, Ys = (X - X.mean(0)) / X.std(0), (Y - Y.mean(0)) / Y.std(0)
    assert m.cka(standardise=True) == pytest.approx(_cka_in_memory(Xs, Ys), rel=1e-10)


def test_cka_known_values():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(2000, 6))
    Q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    assert linear_cka(X, 3.0 * X @ Q + 5.0) == pytest.approx(1.0, abs=1e-12)  # rotation, scale, shift
    assert linear_cka(X, rng.normal(size=(2000, 6))) < 0.02  # independent
    # a constant column changes nothing once dropped; standardising removes per-channel scale
    Y = np.concatenate([X * np.array([1, 1e6, 1, 1, 1, 1]), np.ones((2000, 1))], axis=1)
    assert linear_cka(X, Y, standardise=True) == pytest.approx(1.0, abs=1e-12)
    assert linear_cka(X, Y) < 0.5  # raw CKA is dominated by the large channel
    assert np.isnan(linear_cka(X, np.ones((2000, 3))))


def test_ridge_probe_streaming_equals_in_memory():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(600, 8)) * np.arange(1, 9) + 3.0
    X[:, 5] = 2.0  # a constant input
    y = np.stack([X[:, 0] - 2 * X[:, 3] + 0.1 * rng.normal(size=600), X[:, 7]], axis=1)
    m = RidgeMoments(8, 2)
    for a in range(0, 600, 100):
        m.add(X[a:a + 100], y[a:a + 100])
    alpha = 1e-2
    probe = m.fit(alpha)
    keep = X.std(0) > 0
    Xs = (X[:, keep] - X[:, keep].mean(0)) / X[:, keep].std(0)
    yc = y - y.mean(0)
    w = np.linalg.solve(Xs.T @ Xs + alpha * 600 * np.eye(Xs.shape[1]), Xs.T @ yc)
    want = Xs @ w + y.mean(0)
    np.testing.assert_allclose(probe.predict(X), want, rtol=1e-9, atol=1e-9)
    assert probe.weights[5].tolist() == [0.0, 0.0]
    score = ProbeScore(2)
    for a in range(0, 600, 77):
        score.add(probe.predict(X[a:a + 77]), y[a:a + 77])
    r2 = 1 - ((y - want) ** 2).sum(0) / ((y - y.mean(0)) ** 2).sum(0)
    np.testing.assert_allclose(score.r2(), r2, rtol=1e-9)
    assert score.r2()[1] > 0.999 and score.r2()[0] > 0.99


def test_probe_score_mask_accuracy_and_constant_target():
    s = ProbeScore(1)
    s.add(np.array([[0.9], [0.2], [0.6], [0.4]]), np.array([1, 0, 0, 0]))
    assert s.accuracy()[0] == 0.75
    c = ProbeScore(1)
    c.add(np.array([[1.0], [1.0]]), np.array([1.0, 1.0]))
    assert np.isnan(c.r2()[0])  # R^2 undefined on a constant target


def test_bootstrap_interval():
    rng = np.random.default_rng(3)
    groups = [rng.normal(loc, 1.0, size=200) for loc in (0.0, 0.1, -0.1)]
    lo, hi = bootstrap_ci(groups, resamples=500)
    assert lo < np.mean(np.concatenate(groups)) < hi
    assert bootstrap_ci([[0.5, 0.5, 0.5]], resamples=50) == (0.5, 0.5)
    assert all(np.isnan(bootstrap_ci([])))


def test_trace_agreement_and_compounding_known_answer():
    want = {"reach_h": np.array([[1, 0, 0], [1, 1, 0], [1, 1, 1], [1, 1, 1]], dtype=np.float32),
            "pi_h": np.array([[0, 1, 2], [0, 0, 2], [0, 0, 1], [0, 0, 1]], dtype=np.int32)}
    got = {"reach_h": want["reach_h"].copy(), "pi_h": want["pi_h"].copy()}
    got["pi_h"][2, 2] = 2  # wrong at step 2, node 2, right again at step 3? no: step 3 also wrong
    got["pi_h"][3, 2] = 2
    got["pi_h"][3, 0] = 1  # and a new error at step 3, node 0
    a = behaviour.trace_agreement("bfs", got, want)
    assert a["first_divergence_step"] == 2
    assert a["hints"]["reach_h"]["first_divergence_step"] == -1
    h = a["hints"]["pi_h"]
    assert h["per_step"] == [1.0, pytest.approx(2 / 3), pytest.approx(1 / 3)]
    # pairs (1,2) and (2,3) over 3 nodes: right at t: 3 + 2; right at t+1: 2 + 1; both: 2 + 1
    assert (h["pairs"], h["right_before"], h["right_after"], h["right_both"]) == (6, 5, 3, 3)
    c = behaviour.compounding(h)
    assert c["p_right_given_right"] == pytest.approx(3 / 5) and c["p_right_given_wrong"] == 0.0
    assert c["p_right"] == pytest.approx(3 / 6)


def test_pointer_baselines_known_answer():
    from engine.analysis.baselines import pointer_baselines

    # in-neighbours: 0 <- {1}, 1 <- {0, 2}, 2 <- {1, 3}, 3 <- {2} (a path), target: BFS from 0
    g = engine.Graph.from_edges([0, 1, 1, 2, 2, 3], [1, 0, 2, 1, 3, 2], 4)
    b = pointer_baselines(g, np.array([0, 0, 1, 2]))
    assert b["self"] == 0.25
    assert b["lowest candidate"] == 1.0
    assert b["highest candidate"] == 0.0  # 0 -> 1, 1 -> 2, 2 -> 3, 3 -> 3
    assert b["highest in-neighbour below"] == 1.0
    assert b["random candidate"] == pytest.approx((1 / 2 + 1 / 3 + 1 / 3 + 1 / 2) / 4)


def test_scalar_hints_right_within_the_stated_tolerance():
    ok = behaviour.right("scalar", np.array([1.005, 2.0, 100.5, 0.02]), np.array([1.0, 2.5, 100.0, 0.0]))
    assert ok.tolist() == [True, False, True, False]


def test_execute_on_state_sees_every_hidden_state():
    model = engine.compile("bfs", processor="mpnn", hidden=16)
    g = generate("er", 200, degree=4, seed=1)
    ref = engine.reference("bfs", g, 0)
    seen = []
    engine.execute(model, g, 0, steps=ref.steps, on_state=lambda t, h: seen.append((t, h.copy(), h.flags.writeable)))
    full = engine.execute(model, g, 0, steps=ref.steps, hidden=True).hidden
    assert [t for t, _, _ in seen] == list(range(ref.steps + 1))
    assert not any(w for _, _, w in seen)
    for t, h, _ in seen:
        assert np.array_equal(h, full[t])


def _shared(learned, compiled, algo, graphs=24):
    label = "m"
    return {"models": {label: learned}, "compiled": {label: compiled},
            "probes": {label: fit_probes(learned, compiled, algo, graphs=graphs)},
            "targets": {label: probe_targets(algo, compiled)}}


def _cell(algo, n, family="er", graphs=1):
    return {"model": "m", "algorithm": algo, "family": family, "degree": 6.0, "n": n, "seed": 0, "graphs": graphs}


@pytest.mark.parametrize("algo", ["bfs", "bellman_ford"])
def test_the_compiled_model_scores_perfectly_against_itself(algo):
    compiled = engine.compile(algo, processor="mpnn", hidden=32)
    row = compare_cell(_cell(algo, 400, graphs=2), _shared(compiled, compiled, algo))
    assert row["compiled_exact"] and all(row["exact_match"]) and row["clrs_score"] == 1.0
    assert all(f == -1 for f in row["first_divergence_step"])
    assert all(v == pytest.approx(1.0, abs=1e-9) for v in row["cka"])
    assert all(v == pytest.approx(1.0, abs=1e-9) for v in row["cka_standardised"])
    scored = 0
    for name, vals in row["probe_r2"].items():
        finite = [v for v in vals if v is not None]  # None: the channel is constant here (R^2 undefined)
        assert not finite or min(finite) > 0.999, name
        scored += bool(finite)
    assert scored >= len(row["probe_r2"]) - 2  # Bellman-Ford's negative-distance channels stay 0 here
    for name, vals in row["probe_accuracy"].items():
        assert min(vals) == 1.0, name
    for name, c in row["compounding"].items():
        assert c["right_both"] == c["pairs"], name


def test_shuffled_weights_score_near_chance():
    algo = "bfs"
    compiled = engine.compile(algo, processor="mpnn", hidden=32)
    rng = np.random.default_rng(0)
    shuffled = Model(compiled.spec, {k: rng.permutation(v.ravel()).reshape(v.shape) for k, v in compiled.weights.items()})
    row = compare_cell(_cell(algo, 2000), _shared(shuffled, compiled, algo))
    assert row["compiled_exact"]
    # no better than a rule that runs no algorithm (the lowest candidate is often BFS's parent)
    assert row["output_accuracy"][0] <= max(row["baselines"].values()) + 0.05
    assert not any(row["exact_match"])
    assert np.nanmean(row["cka_standardised"]) < 0.5
    channel_r2 = [v for name, vals in row["probe_r2"].items() if name.startswith("channel:") for v in vals
                  if v is not None]
    assert np.median(channel_r2) < 0.5


def test_compare_end_to_end_writes_the_report_and_resumes(tmp_path):
    run = tmp_path / "bfs-compiled" / "seed-0"
    run.mkdir(parents=True)
    engine.compile("bfs", processor="mpnn", hidden=16).save(str(run / "best.npz"))
    out = str(tmp_path / "cmp")
    kwargs = dict(sizes=(16, 200), families=("er", "ws"), seeds=(0,), nodes_per_cell=64, probe_graphs=12,
                  parameters=False, out=out)
    result = compare([str(tmp_path / "bfs-compiled")], **kwargs)
    for name in ("report.md", "summary.csv", "graphs.csv", "steps.csv", "question.csv", "results.json",
                 "accuracy.png", "accuracy.svg", "internal.png", "probes_bfs.png", "steps_bfs.png"):
        assert os.path.getsize(os.path.join(out, name)) > 0, name
    summary = result["tables"]["summary"]
    assert {(s["family"], s["n"]) for s in summary} == {("er", 16), ("er", 200), ("ws", 16), ("ws", 200)}
    assert all(s["output_accuracy"] == 1.0 and s["exact_match"] == 1.0 and s["compiled_exact"] for s in summary)
    assert next(s for s in summary if s["n"] == 16)["graphs"] == 4  # 64 nodes per cell
    doc = json.load(open(os.path.join(out, "results.json")))
    assert doc["question"][0]["accuracy_largest"] == 1.0
    with open(os.path.join(out, "cells.jsonl")) as fh:
        lines = fh.readlines()
    again = compare([str(tmp_path / "bfs-compiled")], **kwargs)  # resumes: no cell is run twice
    with open(os.path.join(out, "cells.jsonl")) as fh:
        assert fh.readlines() == lines
    assert json.dumps(again["tables"]["summary"]) == json.dumps(summary)


def test_a_replaced_checkpoint_does_not_resume_its_old_cells(tmp_path):
    """A cell's key holds the checkpoint file's fingerprint: retrained (here: shuffled)
    weights at the same path are measured again, never reported with the old cells."""
    run = tmp_path / "bfs-run" / "seed-0"
    run.mkdir(parents=True)
    compiled = engine.compile("bfs", processor="mpnn", hidden=16)
    compiled.save(str(run / "best.npz"))
    out = str(tmp_path / "cmp")
    kwargs = dict(sizes=(16,), families=("er",), seeds=(0,), nodes_per_cell=32, probe_graphs=8, parameters=False,
                  out=out)
    first = compare([str(tmp_path / "bfs-run")], **kwargs)["tables"]["summary"]
    assert first[0]["output_accuracy"] == 1.0
    rng = np.random.default_rng(0)
    Model(compiled.spec, {k: rng.permutation(v.ravel()).reshape(v.shape) for k, v in compiled.weights.items()}
          ).save(str(run / "best.npz"))
    second = compare([str(tmp_path / "bfs-run")], **kwargs)["tables"]["summary"]
    assert second[0]["output_accuracy"] < 0.9
    with open(os.path.join(out, "cells.jsonl")) as fh:
        fingerprints = [json.loads(line)["checkpoint"] for line in fh]
    assert len(fingerprints) == 2 and fingerprints[0] != fingerprints[1]


def test_runs_of_the_same_name_get_labels_that_tell_them_apart(tmp_path):
    model = engine.compile("bfs", processor="mpnn", hidden=16)
    for protocol in ("clrs", "sparse"):
        (tmp_path / protocol / "bfs-mpnn" / "seed-0").mkdir(parents=True)
        model.save(str(tmp_path / protocol / "bfs-mpnn" / "seed-0" / "best.npz"))
    found = find_checkpoints([str(tmp_path / "clrs" / "bfs-mpnn"), str(tmp_path / "sparse" / "bfs-mpnn")], "bfs")
    assert [(c.group, c.label) for c in found] == [("clrs/bfs-mpnn", "clrs/bfs-mpnn/seed-0"),
                                                   ("sparse/bfs-mpnn", "sparse/bfs-mpnn/seed-0")]
    alone = find_checkpoints([str(tmp_path / "clrs" / "bfs-mpnn")], "bfs")
    assert [c.label for c in alone] == ["bfs-mpnn/seed-0"]
    assert found[0].fingerprint == alone[0].fingerprint and len(alone[0].fingerprint) == 16


def test_checkpoints_are_checked(tmp_path):
    with pytest.raises(engine.EngineError, match="no seed-"):
        find_checkpoints([str(tmp_path)], "bfs")
    path = tmp_path / "m.npz"
    engine.compile("bellman_ford", processor="mpnn", hidden=16).save(str(path))
    with pytest.raises(engine.EngineError, match="not of 'bfs'"):
        find_checkpoints([str(path)], "bfs")


def test_cells_hold_more_small_graphs():
    run = type("C", (), {"label": "a", "group": "r", "fingerprint": "f"})()
    cells = compare_cells([run], "bfs", [16, 4096, 10_000], ["er", "grid"], [0, 1],
                          max_size={"grid": 4096})
    assert [(c["family"], c["n"], c["graphs"]) for c in cells if c["seed"] == 0] == [
        ("er", 16, 256), ("er", 4096, 1), ("er", 10_000, 1), ("grid", 16, 256), ("grid", 4096, 1)]
    capped = compare_cells([run], "bfs", [16, 1000, 10_000], ["er"], [0],
                           max_size={"bfs": 5000, "bellman_ford": 16})
    assert [c["n"] for c in capped] == [16, 1000]
    by_run = compare_cells([run], "bfs", [16, 1000], ["er"], [0],
                           max_size={"r": 16})
    assert [c["n"] for c in by_run] == [16]


def test_command_line_rejects_bad_input(tmp_path, capsys):
    from engine.compare import main

    assert main([str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    assert "no such" in capsys.readouterr().err
    assert main([str(tmp_path), "--graph", "erx", "--out", str(tmp_path / "o")]) == 2
    assert "unknown families" in capsys.readouterr().err
    assert main([str(tmp_path), "--max-size", "grid", "--out", str(tmp_path / "o")]) == 2
    assert "FAMILY=N" in capsys.readouterr().err
    assert main([str(tmp_path), "--max-size", "grid=big", "--out", str(tmp_path / "o")]) == 2
    assert "number of nodes" in capsys.readouterr().err


def test_attention_of_the_compiled_gatv2_against_itself_and_a_random_gatv2():
    from engine.algorithms.specs import learned_spec
    from engine.analysis.attention import agreement, attention_steps
    from engine.learn.module import GNNModule

    compiled = engine.compile("bfs", processor="gatv2", hidden=16)
    g = generate("er", 300, degree=5, seed=2)
    steps = engine.reference("bfs", g, 0).steps
    perfect = attention_steps(compiled, compiled, g, 0, steps)
    assert len(perfect) == steps - 1 and all(a["nodes"] > 0 for a in perfect)
    for a in perfect:
        assert a["mass"] == 1.0 and a["top1"] == 1.0 and a["js"] == pytest.approx(0.0, abs=1e-12)
    other = GNNModule.initialised(learned_spec("bfs", "gatv2", 16), seed=1).to_model()
    for a in attention_steps(other, compiled, g, 0, steps):
        assert a["mass"] < 0.5 and 0.0 < a["js"] <= 1.0
    # known answer: node 0 has candidates {0, 1} with weights (0.25, 0.75), the compiled one picks 1
    src, pos = np.array([0, 1, 1]), np.array([0, 0, 1])
    a = agreement(np.array([0.25, 0.75, 1.0]), np.array([1, 1]), src, pos, 2)
    m = np.array([0.125, 0.875])  # (P + onehot) / 2
    js = 0.5 * (0.25 * np.log2(0.25 / m[0]) + 0.75 * np.log2(0.75 / m[1])) + 0.5 * np.log2(1 / m[1])
    assert a == {"nodes": 1, "mass": 0.75, "top1": 1.0, "js": pytest.approx(js)}


def test_compare_cell_of_a_gatv2_checkpoint_reports_attention():
    compiled = engine.compile("bfs", processor="gatv2", hidden=16)
    row = compare_cell(_cell("bfs", 200, graphs=2), _shared(compiled, compiled, "bfs", graphs=12))
    assert row["attention"]["top1"] and all(v == 1.0 for v in row["attention"]["top1"])
    assert all(v == 1.0 for v in row["attention"]["mass"])
    assert all(v == pytest.approx(1.0, abs=1e-9) for v in row["cka"])


def test_claims_are_marked_per_run_with_their_basis():
    from engine.analysis.comparison_report import claims

    def q(algo, group, acc, fit, cka, top1=None):
        return {"algorithm": algo, "group": group, "accuracy_64": acc, "smallest_n": 16,
                "probe_channel_r2_smallest": fit, "cka_standardised_smallest": cka, "attention_top1_smallest": top1}

    verdicts = claims([q("bfs", "bfs-mpnn", 0.99, 0.95, 0.7), q("bfs", "bfs-gatv2", 0.99, 0.95, 0.95, 0.5),
                       q("bellman_ford", "bellman_ford-mpnn", 0.9, 0.97, 0.8)])
    by = {v["claim"]: v for v in verdicts}
    assert by["BFS is learned effectively but is internally unfaithful (bfs-mpnn)"]["verdict"] == "supported"
    assert by["BFS is learned effectively but is internally unfaithful (bfs-gatv2)"]["verdict"] == "not supported"
    assert "attention top-1 agreement there 0.500" in by[
        "BFS is learned effectively but is internally unfaithful (bfs-gatv2)"]["basis"]
    between = [v for v in verdicts if v["claim"].startswith("Bellman-Ford")]
    assert len(between) == 1 and between[0]["verdict"] == "supported" and "bfs-mpnn" in between[0]["claim"]
    assert verdicts[-1]["verdict"] == "not measured"

    def dfs(acc, exact=True):
        return {**q("dfs", "dfs-mpnn", acc, 0.5, 0.5), "largest_n": 256, "accuracy_largest": 0.4,
                "compiled_exact_everywhere": exact}

    assert claims([dfs(0.6)])[-1]["verdict"] == "supported"
    assert "at 256 0.4000" in claims([dfs(0.6)])[-1]["basis"]
    assert claims([dfs(0.96)])[-1]["verdict"] == "not supported"  # learned: effective at 64
    assert claims([dfs(0.6, exact=False)])[-1]["verdict"] == "not supported"  # compilable only if exact


def _clrs_dfs_checkpoint(hidden=8, seed=1) -> Model:
    """A DFS model of CLRS's protocol (every pair exchanges messages, layer norm, graph state,
    trained on the ground-truth hint 0), random weights: no compiled form in its own spec."""
    from engine.algorithms.specs import learned_spec
    from engine.model.factory import random_weights

    spec = learned_spec("dfs", hidden=hidden, layer_norm=True, message_graph="complete", graph_hints=True)
    spec["description"]["protocol"] = {"name": "clrs", "hint0": "ground_truth", "eval_feedback": "soft"}
    return Model(spec, random_weights(spec, seed))


def test_a_checkpoint_without_a_compiled_spec_is_compared_with_the_compact_construction():
    from engine.analysis.compare import _run_pair, counterpart, shares_parameters

    learned = _clrs_dfs_checkpoint()
    with pytest.raises(engine.EngineError, match="layer-normalises its updates"):
        counterpart(learned, "dfs", "own")
    dfs_mpnn = engine.compile("dfs", processor="mpnn", hidden=32, message_graph="complete")
    assert shares_parameters(dfs_mpnn, counterpart(dfs_mpnn, "dfs", "own"))  # DFS's own, over every pair
    compact = counterpart(learned, "dfs")  # auto: the compact construction
    assert compact.spec == engine.compile("dfs").spec and not shares_parameters(learned, compact)
    bfs = engine.compile("bfs", processor="mpnn", hidden=16)
    assert counterpart(bfs, "bfs").spec == bfs.spec and shares_parameters(bfs, counterpart(bfs, "bfs"))
    assert counterpart(bfs, "bfs", "compact").spec == engine.compile("bfs").spec
    with pytest.raises(engine.EngineError, match="allowed"):
        counterpart(bfs, "bfs", "theirs")
    # the model trained on the ground-truth hint 0 is given the reference's, the compiled model is not
    g = generate("er", 14, degree=3, directed=True, seed=2)
    seen = []
    ref, res_l, res_c = _run_pair(learned, compact, "dfs", g, None, lambda t, h, c, r: seen.append((t, h.shape, c.shape)))
    from engine.analysis.generalization import fed_back_hints

    assert {"pi_h", "color", "s_prev", "d", "f", "u"} <= set(fed_back_hints(learned))
    first = {name: ref.hints[name][0] for name in fed_back_hints(learned)}
    given = engine.execute(learned, g, None, steps=ref.steps, first_hints=first)
    np.testing.assert_array_equal(res_l.outputs["pi"], given.outputs["pi"])
    assert np.array_equal(res_c.outputs["pi"], ref.outputs["pi"])
    assert [t for t, _, _ in seen] == list(range(1, ref.steps))
    assert seen[0][1] == (14, 8) and seen[0][2] == (14, len(compact.spec["description"]["channels"]["node"]))


def test_the_compact_dfs_against_itself_scores_perfectly():
    """Named node channels of a construction with a graph state are the probe targets."""
    compact = engine.compile("dfs")
    row = compare_cell(_cell("dfs", 60, graphs=2), _shared(compact, compact, "dfs"))
    assert row["compiled_exact"] and all(row["exact_match"]) and all(f == -1 for f in row["first_divergence_step"])
    assert np.nanmin(row["cka"]) == pytest.approx(1.0, abs=1e-9)
    channel_r2 = [v for name, vals in row["probe_r2"].items() if name.startswith("channel:") for v in vals
                  if v is not None]
    assert len(channel_r2) > 100 and min(channel_r2) > 0.999


def test_compare_end_to_end_with_a_clrs_dfs_checkpoint(tmp_path):
    run = tmp_path / "dfs-clrs" / "seed-0"
    run.mkdir(parents=True)
    _clrs_dfs_checkpoint().save(str(run / "best.npz"))
    out = str(tmp_path / "cmp")
    result = compare([str(tmp_path / "dfs-clrs")], sizes=(16, 64), families=("er",), seeds=(0,), nodes_per_cell=64,
                     probe_graphs=6, out=out)
    assert result["parameters"] == []  # no shared parameter space with the compact construction
    assert result["checkpoints"][0]["compiled"] == "compiled-dfs" and result["checkpoints"][0]["hint0"] == "given"
    assert all(s["compiled_exact"] for s in result["tables"]["summary"])
    text = open(os.path.join(out, "report.md")).read()
    assert "dfs-clrs: `compiled-dfs` (compact, hint 0 given)" in text
    assert "| DFS is not learned, though it is compilable | **supported** |" in text  # random weights


def test_compact_counterpart_on_request_skips_the_parameters(tmp_path):
    """--compiled compact: a checkpoint that has a compiled form in its own spec is compared
    with the compact construction instead; the spaces differ, so no parameter measures."""
    run = tmp_path / "bfs-compiled" / "seed-0"
    run.mkdir(parents=True)
    engine.compile("bfs", processor="mpnn", hidden=16).save(str(run / "best.npz"))
    result = compare([str(tmp_path / "bfs-compiled")], sizes=(16,), families=("er",), seeds=(0,), nodes_per_cell=32,
                     probe_graphs=6, compiled="compact")
    assert result["parameters"] == [] and result["checkpoints"][0]["compiled"] == engine.compile("bfs").name
    assert not result["checkpoints"][0]["shares_parameters"]
    summary = result["tables"]["summary"]
    assert all(s["output_accuracy"] == 1.0 and s["compiled_exact"] for s in summary)


def test_controls_are_set_beside_the_base_run_of_the_same_setup():
    from engine.analysis.comparison_report import controls

    def q(algo, group, setup, acc, low, high, steps=None):
        return {"algorithm": algo, "group": group, "setup": setup, "checkpoints": 3, "accuracy_64": acc,
                "accuracy_64_low": low, "accuracy_64_high": high, "median_steps_64": steps, "largest_n": 128,
                "accuracy_largest": acc - 0.1, "compiled_exact_everywhere": True}

    base = q("dfs", "clrs/dfs-mpnn", "clrs, mpnn", 0.98, 0.96, 0.99, 192)
    other_setup = q("dfs", "sparse/dfs-mpnn", "sparse, mpnn", 0.69, 0.64, 0.74)
    below = q("dfs_light", "dfs_light-mpnn", "clrs, mpnn", 0.80, 0.75, 0.85, 192)
    rows = controls([base, other_setup, below])
    assert len(rows) == 1  # paired only with the base run trained the same way
    assert rows[0]["verdict"] == "supported" and rows[0]["base"] == "clrs/dfs-mpnn"
    assert "intervals disjoint, control below" in rows[0]["basis"] and "median trace 192 steps" in rows[0]["basis"]
    assert rows[0]["claim"].startswith("Fewer hints cost DFS accuracy")
    overlap = q("dfs_light", "dfs_light-mpnn", "clrs, mpnn", 0.95, 0.90, 0.97)
    assert controls([base, overlap])[0]["verdict"] == "not supported"
    assert "intervals overlap" in controls([base, overlap])[0]["basis"]
    above = q("dfs_light", "dfs_light-mpnn", "sparse, mpnn", 0.80, 0.76, 0.84)
    row = controls([other_setup, above])[0]
    assert row["verdict"] == "not supported" and "control above" in row["basis"]
    alone = q("bfs_seq", "bfs_seq-mpnn", "sparse, mpnn", 0.5, 0.4, 0.6)
    assert controls([base, alone])[0]["verdict"] == "not measured"  # no sparse BFS run compared
    assert controls([base, other_setup]) == []  # no control among the runs


def test_compare_end_to_end_sets_a_control_beside_its_base(tmp_path):
    from engine.algorithms.specs import learned_spec
    from engine.analysis.compare import training_setup
    from engine.model.factory import random_weights

    spec = learned_spec("dfs_light", hidden=8, layer_norm=True, message_graph="complete")
    spec["description"]["protocol"] = {"name": "clrs", "hint0": "ground_truth", "eval_feedback": "soft"}
    light = Model(spec, random_weights(spec, 2))
    base = _clrs_dfs_checkpoint()
    assert training_setup(light) == training_setup(base) == "clrs, mpnn, layer norm"
    assert training_setup(engine.compile("bfs", processor="mpnn", hidden=8)) == "sparse, mpnn"
    # layer norm is part of the setup: a sparse control with it is not set beside a base without it
    sparse_ln = learned_spec("bfs_seq", hidden=8, layer_norm=True)
    assert training_setup(Model(sparse_ln, random_weights(sparse_ln, 0))) == "sparse, mpnn, layer norm"
    sparse = learned_spec("bfs", hidden=8)
    assert training_setup(Model(sparse, random_weights(sparse, 0))) == "sparse, mpnn"
    for name, model in (("dfs-clrs", base), ("dfs_light-clrs", light)):
        (tmp_path / name / "seed-0").mkdir(parents=True)
        model.save(str(tmp_path / name / "seed-0" / "best.npz"))
    out = str(tmp_path / "cmp")
    result = compare([str(tmp_path / "dfs-clrs"), str(tmp_path / "dfs_light-clrs")], sizes=(16, 64),
                     families=("er",), seeds=(0,), nodes_per_cell=64, probe_graphs=6, out=out)
    assert {c["setup"] for c in result["checkpoints"]} == {"clrs, mpnn, layer norm"}
    assert all(s["compiled_exact"] for s in result["tables"]["summary"])
    doc = json.load(open(os.path.join(out, "results.json")))
    assert [(r["control"], r["base"]) for r in doc["controls"]] == [("dfs_light-clrs", "dfs-clrs")]
    text = open(os.path.join(out, "report.md")).read()
    assert "## Controls: trace length and hint richness" in text
    assert "Fewer hints cost DFS accuracy (rich hints help) (dfs_light-clrs against dfs-clrs, clrs, mpnn, layer norm)" in text
