"""The command line: python -m engine.run."""
import json

import pytest

import engine
from engine.run import main


def _report(capsys, argv):
    assert main(argv + ["--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_bfs_report_is_exact_and_human_readable(capsys):
    assert main(["--algo", "bfs", "--nodes", "2e3", "--degree", "4"]) == 0
    out = capsys.readouterr().out
    assert "n=2,000" in out and "source 0" in out
    assert "verify     exact: outputs and step count equal engine.reference" in out


@pytest.mark.parametrize("mode", ["dense", "active", "auto"])
def test_dfs_runs_3n_steps_in_every_mode(capsys, mode):
    r = _report(capsys, ["--algo", "dfs", "--nodes", "300", "--degree", "3", "--mode", mode])
    assert r["mode"] == mode and r["steps"] == 3 * 300 and r["verify"]["exact"]
    dense_updates = 300 * r["steps"] * r["model"]["layers_per_step"]
    if mode == "dense":
        assert r["node_updates"] == dense_updates and r["aggregates_reused"] == 0
        return
    # every backend steps actively: a DFS step touches a few nodes, not all of them
    assert r["node_updates"] < dense_updates / 10
    if r["backend"] == "native":  # its own loop keeps max aggregates incrementally
        assert 0 < r["aggregates_reused"] <= r["node_updates"]
    else:
        assert r["aggregates_reused"] == 0


def test_grid_bfs_keeps_aggregates(capsys):
    if "native" not in engine.backends.available_backends():
        pytest.skip("native backend not built")
    r = _report(capsys, ["--algo", "bfs", "--graph", "grid", "--nodes", "900", "--mode", "active"])
    assert r["verify"]["exact"] and r["steps"] == 2 * 29 + 1
    # the first application reduces every row (there is no previous aggregate); every later
    # row update takes its aggregate from the store (BFS's messages only rise, so every push
    # applies)
    assert r["aggregates_reused"] == r["node_updates"] - r["graph"]["nodes"]


def test_save_model_writes_a_loadable_model(tmp_path, capsys):
    path = tmp_path / "bf.npz"
    _report(capsys, ["--algo", "bellman_ford", "--nodes", "200", "--save-model", str(path)])
    assert engine.Model.load(str(path)).name == engine.compile("bellman_ford").name


@pytest.mark.parametrize("argv, message", [
    (["--algo", "bfs"], "give --nodes"),
    (["--algo", "bfs", "--nodes", "100", "--source", "5000"], "source must be a node id in [0, 100)"),
])
def test_bad_input_exits_2_with_a_clear_error(capsys, argv, message):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_bad_node_count_is_refused_by_the_parser(capsys):
    assert main(["--algo", "bfs", "--nodes", "0"]) == 2
    err = capsys.readouterr().err
    assert "the number of nodes must be a positive integer" in err and len(err.strip().splitlines()) == 1
