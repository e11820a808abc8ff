"""Bad input as a careless user or an attacker gives it: a clear named error, never a crash,
a hang, code execution, a silent wrong answer or a lost file. One test (at least) per class
of problem; the fuzz tests at the end feed random bytes and random spec mutations."""
import json
import os
import pickle
import subprocess
import sys
import textwrap
import warnings
import zipfile

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings, strategies as st

import engine
from engine import EngineError, Graph, GraphError, Model, ModelError
from engine.backends import available_backends
from engine.graph import generators, load

from conftest import native_module


def _python(code: str) -> subprocess.CompletedProcess:
    """Run code in a fresh interpreter: a crash there is a failed assertion here, not a dead run."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120)


# ----------------------------------------------------------------------------- 1. graphs own their arrays
@pytest.mark.parametrize("backend", ["native", "numba", "reference"])
def test_changing_the_callers_arrays_changes_nothing(backend):
    if backend not in available_backends():
        pytest.skip(f"{backend} not available")
    ptr = np.array([0, 1, 3, 4])
    idx = np.array([1, 0, 2, 1], np.int32)
    w = np.array([1.0, 2.0, 3.0, 4.0], np.float32)
    g = Graph(3, ptr, idx, w)
    idx[1] = 2_000_000_000
    ptr[1] = 10**9
    w[0] = np.nan
    assert g.indices[1] == 0 and g.indptr[1] == 1 and g.weights[0] == 1.0
    res = engine.execute(engine.compile("bfs"), g, 0, backend=backend)
    np.testing.assert_array_equal(res.outputs["pi"], engine.reference("bfs", g, 0).outputs["pi"])


def test_arrays_made_writeable_again_are_checked_not_trusted():
    """Sabotage on purpose: the kernels see writeable arrays and validate them first."""
    out = _python("""
        import numpy as np, engine
        from engine.graph import generators
        for backend in engine.backends.available_backends():
            g = generators.path(6)
            g.indices.flags.writeable = True
            g.indices[2] = 2_000_000_000
            try:
                engine.execute(engine.compile("bfs"), g, 0, backend=backend)
            except (ValueError, engine.EngineError) as exc:
                print(backend, "refused", type(exc).__name__)
    """)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("refused") == len(available_backends()), out.stdout


# ----------------------------------------------------------------------------- 2. the bindings check CSR
@pytest.mark.parametrize("indptr", [[0, 5, 1], [0, 10**9, 1], [0, -5, 1], [1, 1, 1], [0, 1, 2]])
def test_native_transpose_refuses_malformed_csr(indptr):
    native = native_module()
    with pytest.raises(ValueError, match="indptr|out of range"):
        native.transpose(np.array(indptr, np.int64), np.array([0], np.int32))


def test_native_edge_pass_refuses_malformed_csr_by_default():
    native = native_module()
    from engine.backends.base import EdgeInputs

    S = np.ones((2, 1), np.float32)
    edges = EdgeInputs(S, S, None, None, 0, (), np.array([[2, 0, 1]], np.int64), True)
    for indptr, indices in (([0, 5, 1], [0]), ([0, 1, 1], [9]), ([0, -1, 1], [0])):
        with pytest.raises(ValueError):
            native.edge_pass(np.array(indptr, np.int64), np.array(indices, np.int32), edges)


# ----------------------------------------------------------------------------- 3. threads
@pytest.mark.parametrize("threads", [0, -3, 2.5, True, "2"])
def test_bad_thread_counts_are_refused(threads):
    with pytest.raises(EngineError, match="threads must be a positive integer"):
        engine.execute(engine.compile("bfs"), generators.path(5), 0, threads=threads)


def test_huge_thread_counts_are_capped_with_a_warning():
    out = _python("""
        import warnings, engine
        from engine.graph import generators
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            r = engine.execute(engine.compile("bfs"), generators.path(50), 0, threads=10**6)
        print(r.outputs["pi"][-1], r.threads, any("per core" in str(x.message) for x in w))
    """)
    assert out.returncode == 0, out.stderr
    last, threads, warned = out.stdout.split()
    assert last == "48" and 1 <= int(threads) <= 4 * os.cpu_count() and warned == "True"


def test_engine_threads_is_honoured_and_checked(monkeypatch):
    g = generators.path(50)
    monkeypatch.setenv("ENGINE_THREADS", "1")
    assert engine.execute(engine.compile("bfs"), g, 0, backend="native" if "native" in available_backends()
                          else None).threads == 1
    monkeypatch.setenv("ENGINE_THREADS", "abc")
    with pytest.raises(EngineError, match="ENGINE_THREADS"):
        engine.execute(engine.compile("bfs"), g, 0)
    from engine.run import main

    assert main(["--algo", "bfs", "--nodes", "50"]) == 2


# ----------------------------------------------------------------------------- 4. step counts
@pytest.mark.parametrize("kwargs", [dict(max_steps=2.5), dict(max_steps=0), dict(max_steps=True),
                                    dict(steps=2.5), dict(steps=-1), dict(steps="3")])
def test_non_integer_step_counts_are_refused(kwargs, backend):
    with pytest.raises(EngineError, match="steps must be an integer"):
        engine.execute(engine.compile("bfs"), generators.path(5), 0, backend=backend, **kwargs)


# ----------------------------------------------------------------------------- 5. checkpoints never run code
class _Payload:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_a_crafted_checkpoint_is_refused_without_running_it(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    from engine.learn.trainer import TrainConfig, train

    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run"
    out.mkdir()
    torch.save({"module": _Payload()}, out / "state.pt")
    with pytest.raises(EngineError, match="cannot load safely|not a checkpoint"):
        train(TrainConfig(algo="bfs", hidden=8, steps=2, batch=2, train_sizes=(4,), val_graphs=2), str(out),
              progress=False)
    assert not (tmp_path / "PWNED").exists()


# ----------------------------------------------------------------------------- 6-8. model files
def _rewrite(path, members: dict, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)


def _members(path) -> dict:
    with zipfile.ZipFile(path) as zf:
        return {i.filename: zf.read(i) for i in zf.infolist()}


def test_oversized_members_are_refused_before_they_are_read(tmp_path):
    path = tmp_path / "bomb.npz"
    _rewrite(path, {"spec.json": b" " * (20 * 2**20)}, zipfile.ZIP_DEFLATED)
    assert path.stat().st_size < 2**20  # small on disk, large inside
    with pytest.raises(ModelError, match="spec.json declares"):
        Model.load(path)
    engine.compile("bfs").save(tmp_path / "m.npz")
    members = _members(tmp_path / "m.npz")
    header = np.lib.format.header_data_from_array_1_0(np.zeros(2, np.float32))
    header["shape"] = (10**13,)
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    members["weights/init.bias.npy"] = buf.getvalue() + b"\0" * 8
    _rewrite(tmp_path / "lie.npz", members)
    with pytest.raises(ModelError, match="does not match its"):
        Model.load(tmp_path / "lie.npz")


@pytest.mark.parametrize("edit", [
    lambda s: s["layers"][0]["groups"][1].update(kind="argmax"),
    lambda s: s.pop("exact_domain"),
    lambda s: s.update(name="renamed"),
])
def test_the_checksum_covers_the_spec(tmp_path, edit):
    path = tmp_path / "m.npz"
    engine.compile("bellman_ford").save(path)
    members = _members(path)
    meta = json.loads(members["spec.json"])
    edit(meta["spec"])
    members["spec.json"] = json.dumps(meta).encode()
    _rewrite(path, members)
    with pytest.raises(ModelError, match="checksum"):
        Model.load(path)


def test_malformed_model_files_raise_model_errors(tmp_path):
    good = tmp_path / "good.npz"
    engine.compile("bfs").save(good)
    members = _members(good)
    cases = {
        "deep json": dict(members, **{"spec.json": b"[" * 100_000 + b"]" * 100_000}),
        "not json": dict(members, **{"spec.json": b"\xff\xfe not json"}),
        "typed wrong": dict(members, **{"spec.json": json.dumps({"spec": {"format": "engine-model", "version": 1,
                                                                          "dtype": "float32", "hidden": "8",
                                                                          "layers": "x"}}).encode()}),
        "layers of strings": dict(members, **{"spec.json": json.dumps(
            {"spec": dict(json.loads(members["spec.json"])["spec"], layers=["x"])}).encode()}),
        "object array": dict(members, **{"weights/init.bias.npy": pickle.dumps([1, 2])}),
    }
    for name, content in cases.items():
        path = tmp_path / f"{name}.npz"
        _rewrite(path, content)
        with pytest.raises(ModelError):
            Model.load(path)
    # a corrupted deflate stream, and a compression method zipfile does not implement
    path = tmp_path / "deflated.npz"
    _rewrite(path, members, zipfile.ZIP_DEFLATED)
    raw = bytearray(path.read_bytes())
    start = raw.index(b"spec.json") + len(b"spec.json")
    for k in range(start + 4, start + 40):
        raw[k] ^= 0x5A
    path.write_bytes(bytes(raw))
    with pytest.raises(ModelError):
        Model.load(path)
    raw = bytearray(good.read_bytes())
    raw[8] = 99  # local header's compression method
    raw[raw.index(b"PK\x01\x02") + 10] = 99  # and the central directory's
    (tmp_path / "method.npz").write_bytes(bytes(raw))
    with pytest.raises(ModelError):
        Model.load(tmp_path / "method.npz")
    with pytest.raises(ModelError, match="not a regular file"):
        Model.load(tmp_path)


# ----------------------------------------------------------------------------- 9. precision
def test_weights_the_model_would_round_are_refused():
    g = Graph.from_edges([0, 0, 1], [2, 1, 2], 3, [1.00000001, 0.5, 0.5], dtype="float64")
    with pytest.raises(EngineError, match="rounds 1 of this graph's float64 weights"):
        engine.execute(engine.compile("bellman_ford"), g, 0)
    res = engine.execute(engine.compile("bellman_ford", "float64"), g, 0)
    np.testing.assert_array_equal(res.outputs["pi"], engine.reference("bellman_ford", g, 0).outputs["pi"])
    exact = Graph.from_edges([0, 0, 1], [2, 1, 2], 3, [1.0, 0.5, 0.25], dtype="float64")
    engine.execute(engine.compile("bellman_ford"), exact, 0)  # representable: no rounding, no error
    rounded = engine.execute(engine.compile("bellman_ford"), g.with_dtype("float32"), 0)  # accepted explicitly
    assert rounded.converged


# ----------------------------------------------------------------------------- 10. negative cycles
def test_an_unsettled_run_is_reported(tmp_path, capsys):
    g = Graph.from_edges([0, 1, 2], [1, 2, 1], 3, [1.0, -2.0, 1.0])
    with pytest.raises(engine.NegativeCycleError):
        engine.reference("bellman_ford", g, 0)
    with pytest.warns(RuntimeWarning, match="without reaching a fixed point"):
        res = engine.execute(engine.compile("bellman_ford"), g, 0)
    assert not res.converged
    edges = tmp_path / "cycle.txt"
    edges.write_text("0 1 1.0\n1 2 -2.0\n2 1 1.0\n")
    from engine.run import main

    for extra in ([], ["--no-verify"]):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            assert main(["--algo", "bellman_ford", "--graph-file", str(edges)] + extra) == 1
        out = capsys.readouterr().out
        assert "negative-weight cycle" in out and "exact" not in out.split("verify")[-1]


# ----------------------------------------------------------------------------- 11. file types by content
def test_file_types_are_told_by_content(tmp_path):
    import gzip

    import scipy.io

    A = sp.random(12, 12, density=0.3, random_state=0, format="coo")
    scipy.io.mmwrite(tmp_path / "m.mtx", A)
    want = load(tmp_path / "m.mtx")
    text = (tmp_path / "m.mtx").read_bytes()
    for name in ("up.MTX", "matrix.txt", "noext"):
        (tmp_path / name).write_bytes(text)
        g = load(tmp_path / name)
        np.testing.assert_array_equal(g.to_scipy().toarray(), want.to_scipy().toarray())
    (tmp_path / "edges.mtx").write_text("0 1\n1 2\n")
    with pytest.raises(GraphError, match="does not start with %%MatrixMarket"):
        load(tmp_path / "edges.mtx")
    (tmp_path / "bad.mtx.gz").write_bytes(gzip.compress(b"%%MatrixMarket matrix coordinate real general\n3 x\n"))
    with pytest.raises(GraphError, match="not a readable Matrix Market"):
        load(tmp_path / "bad.mtx.gz")
    (tmp_path / "trunc.mtx.gz").write_bytes(gzip.compress(text)[:40])
    with pytest.raises(GraphError):
        load(tmp_path / "trunc.mtx.gz")


# ----------------------------------------------------------------------------- 12. one rule for matrices
def test_matrix_constructors_agree():
    rows, cols = np.array([0, 0, 1, 2, 2]), np.array([1, 1, 2, 0, 0])
    data = np.array([1.0, -1.0, 2.0, 0.0, 3.0])  # (0,1) sums to 0; (2,0) has a stored zero
    A = sp.coo_array((data, (rows, cols)), shape=(3, 3))
    a, b = Graph.from_scipy(A), Graph.from_dense(A.toarray())
    for x, y in ((a.indptr, b.indptr), (a.indices, b.indices), (a.weights, b.weights)):
        np.testing.assert_array_equal(x, y)
    assert a.num_edges == 2
    # edge lists are edges: a weight of 0 is an edge
    assert Graph.from_edges([0], [1], 2, [0.0]).num_edges == 1


# ----------------------------------------------------------------------------- 13. node ids
@pytest.mark.parametrize("source", [True, False, np.True_, 1.0, "0", -1])
def test_node_ids_are_integers(source):
    g = generators.path(5)
    with pytest.raises(EngineError, match="source must be a node id"):
        engine.execute(engine.compile("bfs"), g, source)
    with pytest.raises(EngineError, match="source must be a node id"):
        engine.reference("bfs", g, source)


# ----------------------------------------------------------------------------- 14-15. training directories
def _config(**kw):
    from engine.learn.trainer import TrainConfig

    return TrainConfig(**dict(dict(algo="bfs", hidden=8, steps=4, batch=2, train_sizes=(4,), eval_every=2,
                                   val_graphs=2), **kw))


def test_resuming_another_configuration_is_refused(tmp_path):
    pytest.importorskip("torch")
    from engine.learn.trainer import train

    train(_config(), str(tmp_path), progress=False)
    with pytest.raises(EngineError, match="another configuration.*seed"):
        train(_config(seed=1, steps=6), str(tmp_path), progress=False)
    with pytest.raises(EngineError, match="another configuration.*lr"):
        train(_config(lr=0.5), str(tmp_path), progress=False)
    train(_config(seed=1, steps=6), str(tmp_path), progress=False, force_new=True)
    steps = [json.loads(line)["step"] for line in open(tmp_path / "metrics.jsonl")]
    assert steps == list(range(1, 7))


def test_a_killed_run_resumes_without_duplicate_log_lines(tmp_path):
    pytest.importorskip("torch")
    from engine.learn.trainer import train

    train(_config(steps=4), str(tmp_path), progress=False)
    with open(tmp_path / "metrics.jsonl", "a") as fh:  # steps run after the checkpoint, then a kill
        fh.write(json.dumps({"step": 5, "loss": 1.0}) + "\n" + '{"step": 6, "lo')
    train(_config(steps=6), str(tmp_path), progress=False)
    steps = [json.loads(line)["step"] for line in open(tmp_path / "metrics.jsonl")]
    assert steps == list(range(1, 7))


def test_files_of_another_run_are_not_overwritten(tmp_path):
    pytest.importorskip("torch")
    from engine.learn.trainer import train

    engine.compile("bfs").save(tmp_path / "best.npz")
    before = (tmp_path / "best.npz").read_bytes()
    with pytest.raises(EngineError, match="no state.pt to resume"):
        train(_config(), str(tmp_path), progress=False)
    assert (tmp_path / "best.npz").read_bytes() == before


# ----------------------------------------------------------------------------- 16-18. command lines
def _one_line_exit_2(main, argv, capsys):
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, (argv, err)
    assert len(err.splitlines()) == 1 and err.startswith("error: "), (argv, err)
    return err


def test_evaluate_validates_before_writing(tmp_path, capsys):
    from engine.evaluate import main

    out = tmp_path / "eval"
    assert main(["compiled:bfs", "--sizes", "16", "--out", str(out)]) == 0
    capsys.readouterr()
    before = {name: (out / name).read_bytes() for name in ("results.csv", "results.json", "accuracy.svg")}
    for argv in (["--seeds", "5-2"], ["--sizes", "0"], ["--degree", "nan"], ["--steps", "-5"], ["--seeds", "x"],
                 ["--sizes", "16", "--graph", "nope"]):
        _one_line_exit_2(main, ["compiled:bfs"] + argv + ["--out", str(out)], capsys)
    _one_line_exit_2(main, [str(tmp_path / "missing.npz"), "--out", str(out)], capsys)
    _one_line_exit_2(main, ["compiled:nope", "--out", str(out)], capsys)
    (tmp_path / "file").write_text("x")
    _one_line_exit_2(main, ["compiled:bfs", "--out", str(tmp_path / "file")], capsys)
    assert before == {name: (out / name).read_bytes() for name in before}


def test_save_model_only_after_a_valid_run_and_only_to_a_regular_file(tmp_path, capsys):
    from engine.run import main

    path = tmp_path / "m.npz"
    path.write_bytes(b"keep me")
    _one_line_exit_2(main, ["--algo", "bfs", "--nodes", "50", "--source", "999", "--save-model", str(path)], capsys)
    assert path.read_bytes() == b"keep me"
    _one_line_exit_2(main, ["--algo", "bfs", "--nodes", "50", "--save-model", os.devnull], capsys)
    assert not os.path.isfile(os.devnull)
    _one_line_exit_2(main, ["--algo", "bfs", "--nodes", "50", "--save-model", str(tmp_path)], capsys)
    _one_line_exit_2(main, ["--algo", "bfs", "--nodes", "50", "--save-model", str(tmp_path / "no" / "m.npz")], capsys)
    assert main(["--algo", "bfs", "--nodes", "50", "--save-model", str(path)]) == 0
    assert Model.load(path).name == "compiled-bfs"
    assert sorted(os.listdir(tmp_path)) == ["m.npz"]  # no temporary files left behind


def test_run_exits_2_with_one_line(tmp_path, capsys, monkeypatch):
    from engine.run import main

    (tmp_path / "dir").mkdir()
    for argv in (["--degree", "nan"], ["--seed", "-1"], ["--graph-file", str(tmp_path / "dir")],
                 ["--graph-file", str(tmp_path / "missing.txt")], ["--threads", "0"], ["--nodes", "1e400"],
                 ["--mode", "lazy"], ["--degree", "-2"], ["--backend", "gpu"]):
        _one_line_exit_2(main, ["--algo", "bfs", "--nodes", "50"] + argv, capsys)
    _one_line_exit_2(main, ["--algo", "nope", "--nodes", "50"], capsys)
    monkeypatch.setenv("ENGINE_MEMORY_LIMIT", "abc")
    _one_line_exit_2(main, ["--algo", "bfs", "--nodes", "50"], capsys)
    monkeypatch.delenv("ENGINE_MEMORY_LIMIT")
    if "torch" in available_backends():
        monkeypatch.setattr(engine.backends, "_loaded", {})  # the device is read when the backend loads
        monkeypatch.setenv("ENGINE_TORCH_DEVICE", "cuda:7")
        _one_line_exit_2(main, ["--algo", "bfs", "--nodes", "50", "--backend", "torch"], capsys)


def test_train_exits_2_with_one_line(tmp_path, capsys):
    pytest.importorskip("torch")
    from engine.train import main

    conf = tmp_path / "c.json"
    out = ["--out", str(tmp_path / "run")]
    for argv, config in ((["--batch", "0"], None), (["--steps", "-5"], None), (["--hidden", "x"], None),
                         ([], {"lr": "fast"}), ([], {"train_sizes": []}), ([], {"p": [1.5]}),
                         ([], {"learning_rate": 1}), ([], [1, 2]), (["--processor", "gatv2", "--heads", "3"], None)):
        args = ["--algo", "bfs"] + argv + out
        if config is not None:
            conf.write_text(json.dumps(config))
            args += ["--config", str(conf)]
        _one_line_exit_2(main, args, capsys)
    conf.write_text("{not json")
    _one_line_exit_2(main, ["--algo", "bfs", "--config", str(conf)] + out, capsys)
    assert not (tmp_path / "run").exists() or not os.listdir(tmp_path / "run")


# ----------------------------------------------------------------------------- fuzz
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=4096), prefix=st.sampled_from([b"", b"PK\x03\x04", b"%%MatrixMarket "]))
def test_random_bytes_give_only_engine_errors(tmp_path, data, prefix):
    path = tmp_path / "blob"
    path.write_bytes(prefix + data)
    for reader, errors in ((Model.load, ModelError), (load, GraphError)):
        try:
            reader(path)
        except errors:
            pass


def _paths(obj, prefix=()):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield prefix + (k,)
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield prefix + (i,)
            yield from _paths(v, prefix + (i,))


BASE_SPECS = {algo: engine.compile(algo) for algo in ("bfs", "bellman_ford", "dfs")}
JUNK = st.one_of(st.none(), st.booleans(), st.integers(-10, 10**12), st.floats(allow_nan=True),
                 st.text(max_size=8), st.lists(st.integers(-3, 20), max_size=4),
                 st.dictionaries(st.text(max_size=5), st.integers(), max_size=3))


@settings(max_examples=300, deadline=None)
@given(algo=st.sampled_from(sorted(BASE_SPECS)), pick=st.integers(0, 10**6), value=JUNK, delete=st.booleans())
def test_random_spec_mutations_give_model_errors_or_valid_models(algo, pick, value, delete):
    model = BASE_SPECS[algo]
    spec = json.loads(json.dumps(model.spec))
    paths = list(_paths(spec))
    path = paths[pick % len(paths)]
    parent = spec
    for key in path[:-1]:
        parent = parent[key]
    if delete and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    try:
        mutated = Model(spec, model.weights)
    except ModelError:
        return
    # a spec that validates runs or refuses with an engine error, never a crash
    g = generators.erdos_renyi(20, 2, weighted=True, directed=True, seed=1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            engine.execute(mutated, g, 0, steps=3, backend="reference")
    except EngineError:
        pass


@settings(max_examples=200, deadline=None)
@given(n=st.integers(-2, 12), src=st.lists(st.one_of(st.integers(-5, 20), st.floats()), max_size=12),
       dst=st.lists(st.one_of(st.integers(-5, 20), st.floats()), max_size=12),
       weights=st.one_of(st.none(), st.lists(st.floats(), max_size=12)),
       dtype=st.sampled_from([None, "float32", "float64", "float16", "int8"]))
def test_random_edge_lists_give_graph_errors_or_valid_graphs(n, src, dst, weights, dtype):
    try:
        g = Graph.from_edges(src, dst, n, weights, dtype=dtype)
    except GraphError:
        return
    g.validate()
    assert g.num_edges == len(src)


@settings(max_examples=100, deadline=None)
@given(A=st.lists(st.lists(st.one_of(st.floats(), st.integers(-3, 3)), min_size=3, max_size=3),
                  min_size=1, max_size=3))
def test_random_matrices_give_graph_errors_or_valid_graphs(A):
    for make in (lambda a: Graph.from_dense(a), lambda a: Graph.from_scipy(sp.coo_array(a))):
        try:
            g = make(np.array(A, dtype=float))
        except GraphError:
            continue
        g.validate()
