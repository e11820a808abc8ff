"""Sweeps: cells as tasks on a Dask LocalCluster give the in-process table, survive a lost
worker, resume after an interruption, and skip what is done."""
import json
import os

import numpy as np
import pytest

import engine
from engine.analysis.generalization import evaluate
from engine.analysis.sweep import ResultLog, run_cells
from engine.errors import EngineError

import sweep_tasks

pytest.importorskip("distributed")

CELLS = [{"i": i} for i in range(6)]


def _shared(tmp_path, **kw):
    return dict({"dir": str(tmp_path), "offset": 10}, **kw)


def _calls(tmp_path):
    return {int(name.split("-")[1]): len(open(tmp_path / name).read())
            for name in os.listdir(tmp_path) if name.startswith("calls-")}


def test_a_dask_sweep_gives_the_in_process_table(tmp_path):
    models = ["compiled:bfs", "compiled:bellman_ford"]
    kw = dict(sizes=[16, 300], seeds=[0, 1], degree=4)
    local = evaluate(models, out=str(tmp_path / "here"), **kw)
    dask = evaluate(models, out=str(tmp_path / "dask"), cluster="local:2", **kw)
    assert len(local) == len(dask) == 8
    for a, b in zip(local, dask):
        a, b = dict(a), dict(b)
        a.pop("seconds"), b.pop("seconds")  # wall times differ; everything else is bit for bit
        assert a == b
    assert all(r["status"] == "ok" and r["exact_match"] for r in dask)
    assert len((tmp_path / "dask" / "results.jsonl").read_text().splitlines()) == 8


def test_a_lost_worker_is_replaced_and_its_cell_rerun(tmp_path):
    log = ResultLog(str(tmp_path / "out"))
    rows = run_cells(CELLS, sweep_tasks.square_killing_once, log, shared=_shared(tmp_path, victim=2),
                     cluster="local:2", progress=False)
    assert os.path.exists(tmp_path / "killed")
    assert [r["i"] for r in rows] == list(range(6)) and all(r["status"] == "ok" for r in rows)
    assert [r["value"] for r in rows] == [i * i + 10 for i in range(6)]
    lines = (tmp_path / "out" / "results.jsonl").read_text().splitlines()
    assert len(lines) == 6 and len({json.loads(line)["cell"] for line in lines}) == 6


def test_interrupted_sweeps_resume_and_finished_ones_do_nothing(tmp_path):
    out = str(tmp_path / "out")
    with pytest.raises(KeyboardInterrupt):
        run_cells(CELLS, sweep_tasks.square_interrupted, ResultLog(out), shared=_shared(tmp_path, stop=3),
                  progress=False)
    assert len(json.load(open(os.path.join(out, "results.json")))) == 3  # the table is consistent
    with open(os.path.join(out, "results.jsonl"), "a") as fh:
        fh.write('{"cell": "cut by a ki')  # a kill in the middle of a write
    rows = run_cells(CELLS, sweep_tasks.square, ResultLog(out), shared=_shared(tmp_path), cluster="local:2",
                     progress=False)
    assert [r["value"] for r in rows] == [i * i + 10 for i in range(6)]
    assert _calls(tmp_path) == {i: 1 for i in range(6)}  # each cell ran once in all
    before = open(os.path.join(out, "results.jsonl")).read()
    run_cells(CELLS, sweep_tasks.square, ResultLog(out), shared=_shared(tmp_path), progress=False)
    assert _calls(tmp_path) == {i: 1 for i in range(6)} and open(os.path.join(out, "results.jsonl")).read() == before


def test_cells_that_cannot_fit_are_refused_before_anything_runs(tmp_path):
    with pytest.raises(EngineError, match="needs about .* GiB, more than"):
        run_cells(CELLS, sweep_tasks.square, ResultLog(str(tmp_path / "o")), shared=_shared(tmp_path),
                  memory=lambda cell: 2**50, progress=False)
    assert _calls(tmp_path) == {}


def test_cluster_arguments_and_the_missing_extra(tmp_path, monkeypatch):
    for bad in ("local:0", "local:x", "spark://h:1"):
        with pytest.raises(EngineError, match="--cluster"):
            run_cells(CELLS, sweep_tasks.square, ResultLog(None), shared=_shared(tmp_path), cluster=bad,
                      progress=False)
    import builtins

    real = builtins.__import__

    def no_distributed(name, *a, **k):
        if name.startswith("distributed"):
            raise ImportError("no distributed")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_distributed)
    with pytest.raises(EngineError, match=r"pip install 'engine\[distributed\]'"):
        run_cells(CELLS, sweep_tasks.square, ResultLog(None), shared=_shared(tmp_path), cluster="local:2",
                  progress=False)


def test_a_seed_sweep_of_training_on_dask_equals_the_in_process_one(tmp_path):
    pytest.importorskip("torch")
    from engine.train import main

    argv = ["--algo", "bfs", "--hidden", "8", "--steps", "4", "--batch", "2", "--seeds", "0-1"]
    conf = tmp_path / "c.json"
    conf.write_text(json.dumps({"train_sizes": [4], "eval_every": 2, "val_graphs": 2}))
    assert main(argv + ["--config", str(conf), "--out", str(tmp_path / "here")]) == 0
    assert main(argv + ["--config", str(conf), "--out", str(tmp_path / "dask"), "--cluster", "local:2"]) == 0
    here = json.load(open(tmp_path / "here" / "seeds.json"))
    dask = json.load(open(tmp_path / "dask" / "seeds.json"))
    assert here == dask and [r["seed"] for r in here] == [0, 1]
    for seed in (0, 1):  # the same weights, trained here or on a worker
        a = engine.Model.load(tmp_path / "here" / f"seed-{seed}" / "last.npz")
        b = engine.Model.load(tmp_path / "dask" / f"seed-{seed}" / "last.npz")
        assert all(np.array_equal(a.weights[k], b.weights[k]) for k in a.weights)
