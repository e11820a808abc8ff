"""Model spec validation and the weight file format."""
import json
import zipfile

import numpy as np
import pytest

import engine
from engine import Model, ModelError
from engine.graph import generators
from engine.model.factory import mpnn_spec, random_model


def test_save_load_roundtrip(tmp_path):
    for model in (engine.compile("bfs"), engine.compile("bellman_ford", "float64"),
                  random_model(mpnn_spec(8, gated=True), seed=1)):
        path = tmp_path / "m.npz"
        model.save(path)
        back = Model.load(path)
        assert back.spec == model.spec
        for k in model.weights:
            np.testing.assert_array_equal(back.weights[k], model.weights[k])
            assert back.weights[k].dtype == model.dtype


def test_loaded_compiled_model_still_exact(tmp_path):
    engine.compile("bellman_ford").save(tmp_path / "bf.npz")
    model = Model.load(tmp_path / "bf.npz")
    g = generators.erdos_renyi(500, 4, weighted=True, seed=0)
    np.testing.assert_array_equal(engine.execute(model, g, 0).outputs["pi"],
                                  engine.reference("bellman_ford", g, 0).outputs["pi"])


def test_truncated_file_rejected(tmp_path):
    path = tmp_path / "m.npz"
    engine.compile("bfs").save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="truncated|corrupted"):
        Model.load(path)


def test_corrupted_weights_rejected(tmp_path):
    path = tmp_path / "m.npz"
    engine.compile("bfs").save(path)
    with zipfile.ZipFile(path) as zf:
        entries = {i.filename: zf.read(i) for i in zf.infolist()}
    name = "weights/layers.0.message.src.npy"
    raw = bytearray(entries[name])
    raw[-1] ^= 0x40
    entries[name] = bytes(raw)
    with zipfile.ZipFile(path, "w") as zf:  # rewritten with fresh CRCs: only the checksum can tell
        for k, v in entries.items():
            zf.writestr(k, v)
    with pytest.raises(ModelError, match="checksum"):
        Model.load(path)


def test_missing_file_and_not_a_model(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        Model.load(tmp_path / "none.npz")
    (tmp_path / "junk.npz").write_text("hello")
    with pytest.raises(ModelError, match="truncated, corrupted or not an engine model"):
        Model.load(tmp_path / "junk.npz")


def test_inconsistent_weights_rejected():
    model = engine.compile("bfs")
    w = dict(model.weights)
    w["layers.0.message.src"] = np.zeros((3, 3))
    with pytest.raises(ModelError, match="shape"):
        Model(model.spec, w)
    w = dict(model.weights)
    del w["init.bias"]
    with pytest.raises(ModelError, match="missing"):
        Model(model.spec, w)
    w = dict(model.weights)
    w["init.bias"] = np.array([np.nan, 0])
    with pytest.raises(ModelError, match="NaN"):
        Model(model.spec, w)


@pytest.mark.parametrize("edit, match", [
    (lambda s: s.update(format="other"), "format"),
    (lambda s: s.update(version=99), "version"),
    (lambda s: s.update(dtype="float16"), "dtype"),
    (lambda s: s["layers"][0]["groups"][0].update(kind="median"), "unknown aggregation 'median'"),
    (lambda s: s["layers"][0]["groups"][0].update(size=5), "cover"),
    (lambda s: s["layers"][0]["message"].update(activations=["gelu"]), "unknown activation"),
    (lambda s: s.update(node_inputs=["id", "color"]), r"node_inputs must list inputs from \[.id., .pos., .source.\]"),
    (lambda s: s["outputs"].update(pi="nope"), "unknown decoder"),
    (lambda s: s["termination"].update(rule="forever"), "termination rule"),
    (lambda s: s["termination"].update(channels=[7]), "termination.channels"),
])
def test_spec_errors_name_what_is_allowed(edit, match):
    model = engine.compile("bfs")
    spec = json.loads(json.dumps(model.spec))
    edit(spec)
    with pytest.raises(ModelError, match=match):
        Model(spec, model.weights)


def test_readout_kinds_are_checked():
    model = engine.compile("dfs")
    spec = json.loads(json.dumps(model.spec))
    spec["layers"][0]["readout"]["groups"][0]["kind"] = "sum"
    with pytest.raises(ModelError, match=r"reduce with one of \['min', 'max', 'argmin', 'argmax'\], got 'sum'"):
        Model(spec, model.weights)


def test_compiled_models_document_their_channels():
    for algo in ("bfs", "bellman_ford"):
        desc = engine.compile(algo).spec["description"]
        assert desc["algorithm"] == algo and desc["channels"] and "Hidden channels" in desc["construction"]


def test_memory_that_cannot_fit_is_refused_before_allocating(monkeypatch):
    from engine import MemoryBudgetError

    monkeypatch.setenv("ENGINE_MEMORY_LIMIT", str(2**20))
    g = generators.erdos_renyi(20_000, 4, seed=0)
    with pytest.raises(MemoryBudgetError, match="pass hidden=False"):
        engine.execute(engine.compile("bfs"), g, 0, hidden=True)
    with pytest.raises(MemoryBudgetError, match="message tensor"):
        engine.execute(engine.compile("bfs"), g, 0, backend="reference")
    with pytest.raises(MemoryBudgetError, match="trace=False"):
        engine.reference("dfs", generators.path(2000, directed=True), trace=True)
