"""Learned against compiled on the same graphs: behaviour, internal vectors and parameters
(``../shared/COMPARISON.md``), streamed so that 10^6-node graphs fit.

For each trained checkpoint L of an algorithm, the compiled model C of the same learned spec
(:func:`engine.analysis.alignment.compiled_counterpart`: same weight names and shapes, analytic
weights, exact) runs on the same graphs, from the same source, for the reference's number of
steps. Per cell (checkpoint x graph family x size x graph seed; a cell of small graphs holds
several, ``nodes_per_cell`` nodes in all):

* **Behaviour** (L against :func:`engine.reference`; C is the exact control and is checked on
  every graph): output pointer accuracy per graph, exact match, CLRS's score (pointer accuracy
  pooled over the nodes of all graphs, as CLRS's evaluation averages over a batch), hint
  accuracy at every step, the first divergent step, compounding counts
  (:mod:`engine.analysis.behaviour`).
* **Internal vectors** at every step ``1 .. T-1``: linear CKA between L's state and C's named
  channels, raw and per-channel standardised (:class:`~engine.analysis.statistics.CKAMoments`);
  linear ridge probes from L's state to each named channel of C and to each mask and scalar
  hint of the reference, fitted on CLRS training-distribution graphs (sizes 4-16) and scored
  here (R^2; accuracy for masks). States are consumed step by step (``execute(on_state=)``);
  only C's few named channels are kept for the run.

Cells run through :func:`engine.analysis.sweep.run_cells` (progress bar, resumable log,
optionally Dask). Parameters (the compiled point's loss, the aligned distance and the path
barrier) come from :mod:`engine.analysis.alignment` and :mod:`engine.analysis.compiled_point`.
"""
from __future__ import annotations

import glob
import hashlib
import os
import time
from dataclasses import dataclass

import numpy as np

from .._memory import require
from ..algorithms import ALGORITHMS, reference
from ..algorithms.samplers import CLRS_TRAIN_P, sample
from ..errors import EngineError
from ..model import Model
from ..runtime import execute
from .baselines import pointer_baselines
from .behaviour import trace_agreement
from .generalization import given_hint0, takes_given_hint0, test_graph
from .statistics import CKAMoments, ProbeScore, RidgeMoments

CHUNK = 1 << 16  # rows per float64 block when reducing a state (bounds the temporaries)
PROBE_KINDS = ("mask", "scalar")  # reference hints a linear probe reads out (pointers are not linear targets)


@dataclass(frozen=True)
class Checkpoint:
    """A trained model: ``label`` (``run/seed-k``), ``group`` (the run directory's name, one
    line per group in the tables), the file it came from and that file's ``fingerprint``
    (part of every cell's key, so that a retrained checkpoint never resumes another's cells)."""

    label: str
    group: str
    path: str
    model: Model
    fingerprint: str = ""


def fingerprint(path: str) -> str:
    """The first 16 hex digits of the SHA-256 of a checkpoint file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def _run_names(dirs: list) -> dict:
    """A name per run directory: its own name, or where two runs share one (``clrs/dfs-mpnn``
    and ``sparse/dfs-mpnn``), as many parent directories as tell them apart."""
    names = {}
    for d in set(dirs):
        parts = os.path.abspath(d).split(os.sep)
        depth = 1
        while depth < len(parts) and any(
                o != d and os.path.abspath(o).split(os.sep)[-depth:] == parts[-depth:] for o in set(dirs)):
            depth += 1
        names[d] = "/".join(parts[-depth:])
    return names


def find_checkpoints(paths, algo: str) -> list:
    """Checkpoints from run directories (``DIR/seed-*/best.npz``, or ``DIR/best.npz``) or
    ``.npz`` files; each must be a learned model of ``algo``."""
    files = []
    for p in paths:
        if os.path.isdir(p):
            found = sorted(glob.glob(os.path.join(p, "seed-*", "best.npz"))) or \
                sorted(glob.glob(os.path.join(p, "best.npz")))
            if not found:
                raise EngineError(f"{p}: no seed-*/best.npz or best.npz in this run directory")
            files += found
        elif os.path.isfile(p):
            files.append(p)
        else:
            raise EngineError(f"{p}: no such run directory or checkpoint file")

    def run_of(f):  # the run directory of a checkpoint file, and its seed directory if any
        parent = os.path.dirname(os.path.abspath(f))
        if os.path.basename(parent).startswith("seed-"):
            return os.path.dirname(parent), os.path.basename(parent)
        return parent, None

    names = _run_names([run_of(f)[0] for f in files])
    out = []
    for f in files:
        model = Model.load(f)
        learned_algo = (model.spec.get("description") or {}).get("algorithm")
        if learned_algo != algo:
            raise EngineError(f"{f}: a model of {learned_algo!r}, not of {algo!r}")
        run, seed = run_of(f)
        group = names[run]
        label = f"{group}/{seed}" if seed else group
        out.append(Checkpoint(label, group, f, model, fingerprint(f)))
    if len({c.label for c in out}) != len(out):
        raise EngineError("two checkpoints have the same run/seed label; pass each run directory once")
    return out


def channel_names(compiled: Model) -> list:
    """The named hidden channels of a compiled model, in channel order from 0; the probe and
    CKA targets. ``description.channels`` maps each channel to its meaning, or, for a
    construction with a graph state, is ``{"node": [...], "graph": [...]}`` (node channels
    only: a probe reads node states)."""
    channels = (compiled.spec.get("description") or {}).get("channels")
    if not channels:
        raise EngineError(f"{compiled.name!r} does not name its channels (spec.description.channels)")
    if isinstance(channels.get("node"), list):
        return list(channels["node"])
    return list(channels.values())


COUNTERPARTS = ("auto", "own", "compact")


def counterpart(learned: Model, algo: str, which: str = "auto") -> Model:
    """The compiled model a checkpoint is compared with: ``own``, the model ``algo`` compiles
    into the checkpoint's own spec (:func:`engine.analysis.alignment.compiled_counterpart`;
    refused with the reason where there is none); ``compact``, the compact construction
    (``engine.compile(algo)``: the exact control and the probe targets, no shared parameter
    space); ``auto``, the own where it exists, else the compact."""
    from ..compiler import compile as compile_model
    from .alignment import compiled_counterpart

    if which not in COUNTERPARTS:
        raise EngineError(f"unknown compiled counterpart {which!r}; allowed: {list(COUNTERPARTS)}")
    if which == "compact":
        return compile_model(algo)
    try:
        return compiled_counterpart(learned, algo)
    except EngineError as exc:
        if which == "own":
            raise EngineError(f"{exc}; compare it with the compact construction instead (compiled='compact' "
                              "or 'auto', --compiled on the command line)") from None
        return compile_model(algo)


def training_setup(model: Model) -> str:
    """How a checkpoint was trained, as far as runs of different algorithms can be set side by
    side: ``"<protocol>, <processor>"``, and ``", layer norm"`` when its processor normalises
    its updates (a control and its base differ in the algorithm alone only when both do or
    neither does). A checkpoint written before protocols were recorded was trained under the
    sparse protocol, the only one there was."""
    desc = model.spec.get("description") or {}
    protocol = (desc.get("protocol") or {}).get("name", "sparse")
    setup = f"{protocol}, {desc.get('processor', '?')}"
    if any((layer.get("update") or {}).get("layer_norm") for layer in model.spec.get("layers", ())):
        setup += ", layer norm"
    return setup


def shares_parameters(learned: Model, compiled: Model) -> bool:
    """Whether the two models are points of one parameter space (same weight names and shapes):
    only then do the compiled point's loss, the aligned distance and the barrier mean anything."""
    a, b = learned.weights, compiled.weights
    return a.keys() == b.keys() and all(a[k].shape == b[k].shape for k in a)


def probe_targets(algo: str, compiled: Model) -> list:
    """Target names: ``channel:NAME`` for C's named channels, ``hint:NAME`` for mask and scalar hints."""
    return [f"channel:{c}" for c in channel_names(compiled)] + \
        [f"hint:{p.name}" for p in ALGORITHMS[algo].hints if p.kind in PROBE_KINDS]


def _targets(algo: str, channels: np.ndarray, ref_hints: dict, t: int) -> np.ndarray:
    """``(n, targets)`` at step ``t``: C's channels then the probed hints."""
    cols = [channels]
    for p in ALGORITHMS[algo].hints:
        if p.kind in PROBE_KINDS:
            cols.append(np.asarray(ref_hints[p.name][t], dtype=np.float64).reshape(-1, 1))
    return np.concatenate([c.astype(np.float64).reshape(channels.shape[0], -1) for c in cols], axis=1)


def _run_pair(learned: Model, compiled: Model, algo: str, graph, source, on_step, backend=None):
    """Run C then L on one graph for the reference's steps; ``on_step(t, h_L, channels_C,
    ref)`` is called for ``t = 1 .. T-1`` with L's state, C's named channels and the
    reference trace. A model trained on the ground-truth hint 0 (CLRS's protocol) is given
    the reference's (:func:`~engine.analysis.generalization.given_hint0`), as in training.
    Returns ``(ref, result_L, result_C)``."""
    ref = reference(algo, graph, source, trace=True)
    T = ref.steps
    k = len(channel_names(compiled))
    n = graph.num_nodes
    require(max(T - 1, 0) * n * k * 4, "keeping the compiled model's named channels for the run",
            "leave this size out, or compare on a machine with more memory")
    kept = np.zeros((max(T - 1, 0), n, k), dtype=np.float32)

    def keep(t, h):
        if 1 <= t <= T - 1:
            kept[t - 1] = h[:, :k]

    res_c = execute(compiled, graph, source, backend=backend, steps=T, trace=True, on_state=keep,
                    first_hints=given_hint0(compiled, ref))

    def feed(t, h):
        if 1 <= t <= T - 1:
            on_step(t, h, kept[t - 1], ref)

    res_l = execute(learned, graph, source, backend=backend, steps=T, trace=True, on_state=feed,
                    first_hints=given_hint0(learned, ref))
    return ref, res_l, res_c


def _chunks(n: int):
    for a in range(0, n, CHUNK):
        yield slice(a, min(a + CHUNK, n))


def fit_probes(learned: Model, compiled: Model, algo: str, *, graphs: int = 256, seed: int = 0,
               alpha: float = 1e-6, sizes=(4, 7, 11, 13, 16), backend=None):
    """Ridge probes from ``learned``'s state to :func:`probe_targets`, fitted on ``graphs``
    CLRS training-distribution graphs (sizes cycled, ``p`` drawn from 0.1..0.9, steps
    ``1 .. T-1`` pooled; ``alpha`` is small: the probe of a model that holds a target linearly
    must score R^2 = 1). Returns a :class:`~engine.analysis.statistics.RidgeProbe` with one
    column per target."""
    rng = np.random.RandomState(seed)
    targets = probe_targets(algo, compiled)
    moments = RidgeMoments(learned.hidden, len(targets))

    def on_step(t, h, channels, ref):
        moments.add(h, _targets(algo, channels, ref.hints, t))

    for i in range(graphs):
        _, g, s = sample(algo, sizes[i % len(sizes)], rng, p=CLRS_TRAIN_P)
        _run_pair(learned, compiled, algo, g, s, on_step, backend)
    if moments.n < 2:
        raise EngineError("the probe graphs gave fewer than two node-steps to fit on")
    return moments.fit(alpha)


def cell_graphs(cell: dict) -> list:
    """The cell's graphs: ``count`` graphs of seeds ``seed * count + i``."""
    algo, n, count = cell["algorithm"], cell["n"], cell["graphs"]
    return [test_graph(algo, cell["family"], n, cell["degree"], cell["seed"] * count + i) for i in range(count)]


ATTENTION_LIMIT = 10_000  # attention measures (torch rollouts) up to this many nodes


def compare_cell(cell: dict, shared: dict, threads=None, *, backend=None, attention_limit: int = ATTENTION_LIMIT) -> dict:
    """One cell: behaviour, CKA and probe scores of checkpoint ``cell["model"]`` against its
    compiled counterpart, per step, pooled over the cell's graphs (lists per graph where a
    bootstrap needs them); for a GATv2 checkpoint of at most ``attention_limit`` nodes also
    the attention measures (:mod:`engine.analysis.attention`)."""
    from ..backends import get_backend

    if threads is not None:
        get_backend(backend, threads)
    algo = cell["algorithm"]
    learned, compiled = shared["models"][cell["model"]], shared["compiled"][cell["model"]]
    probe = shared["probes"][cell["model"]]
    targets = shared["targets"][cell["model"]]
    out_name = ALGORITHMS[algo].primary_output
    k = len(channel_names(compiled))
    cka, scores = {}, {}
    per_graph = {"output_accuracy": [], "exact_match": [], "first_divergence_step": [], "steps": [],
                 "edges": []}
    right_nodes = total_nodes = 0
    hint_sums, hint_counts, counts, baseline_sums = {}, {}, {}, {}
    compiled_exact = True
    attend = (learned.spec.get("processor") or {}).get("kind") == "gatv2" and cell["n"] <= attention_limit
    attention = {}
    t0 = time.perf_counter()
    for g, s in cell_graphs(cell):
        def on_step(t, h, channels, ref):
            m = cka.setdefault(t, CKAMoments(h.shape[1], k))
            sc = scores.setdefault(t, ProbeScore(len(targets)))
            y = None
            for rows in _chunks(h.shape[0]):
                x = h[rows].astype(np.float64)
                m.add(x, channels[rows])
                y = _targets(algo, channels[rows], {name: np.asarray(v)[:, rows] for name, v in ref.hints.items()
                                                    if np.ndim(v) >= 2}, t)  # node hints (not DFS's time)
                sc.add(probe.predict(x), y)

        ref, res_l, res_c = _run_pair(learned, compiled, algo, g, s, on_step, backend)
        want = ref.outputs[out_name]
        ok = res_l.outputs[out_name] == want
        agreement = trace_agreement(algo, res_l.hints, ref.hints)
        control = trace_agreement(algo, res_c.hints, ref.hints)
        compiled_exact &= bool(np.array_equal(res_c.outputs[out_name], want) and control["first_divergence_step"] == -1)
        if attend:
            from .attention import attention_steps

            for t, a in enumerate(attention_steps(learned, compiled, g, s, ref.steps), start=1):
                acc = attention.setdefault(t, {"nodes": 0, "mass": 0.0, "top1": 0.0, "js": 0.0})
                if a["nodes"]:
                    acc["nodes"] += a["nodes"]
                    for key in ("mass", "top1", "js"):
                        acc[key] += a[key] * a["nodes"]
        per_graph["output_accuracy"].append(float(ok.mean()))
        per_graph["exact_match"].append(bool(ok.all()))
        per_graph["first_divergence_step"].append(agreement["first_divergence_step"])
        per_graph["steps"].append(ref.steps)
        per_graph["edges"].append(g.num_edges)
        right_nodes += int(ok.sum())
        for rule, value in pointer_baselines(g, want).items():
            baseline_sums[rule] = baseline_sums.get(rule, 0.0) + value * ok.size
        total_nodes += ok.size
        for name, h in agreement["hints"].items():
            acc_sum, acc_n = hint_sums.setdefault(name, {}), hint_counts.setdefault(name, {})
            for i, a in enumerate(h["per_step"]):
                acc_sum[i + 1] = acc_sum.get(i + 1, 0.0) + a * g.num_nodes
                acc_n[i + 1] = acc_n.get(i + 1, 0) + g.num_nodes
            c = counts.setdefault(name, {"pairs": 0, "right_before": 0, "right_after": 0, "right_both": 0})
            for key in c:
                c[key] += h[key]
    steps = sorted(cka)
    r2 = {t: scores[t].r2() for t in steps}
    acc = {t: scores[t].accuracy() for t in steps}
    kinds = {f"hint:{p.name}": p.kind for p in ALGORITHMS[algo].hints}
    return {
        **per_graph,
        "clrs_score": right_nodes / total_nodes,
        "baselines": {rule: v / total_nodes for rule, v in baseline_sums.items()},
        "compiled_exact": compiled_exact,
        "hint_accuracy": {name: [hint_sums[name][t] / hint_counts[name][t] for t in sorted(hint_sums[name])]
                          for name in hint_sums},
        "compounding": counts,
        "probe_steps": steps,
        "cka": [cka[t].cka() for t in steps],
        "cka_standardised": [cka[t].cka(standardise=True) for t in steps],
        "probe_r2": {name: [_finite(r2[t][j]) for t in steps] for j, name in enumerate(targets)},
        "probe_accuracy": {name: [float(acc[t][j]) for t in steps] for j, name in enumerate(targets)
                           if kinds.get(name) == "mask" or name in MASK_CHANNELS},
        "attention": {key: [attention[t][key] / attention[t]["nodes"] if attention[t]["nodes"] else None
                            for t in sorted(attention)] for key in ("mass", "top1", "js")} if attention else {},
        "seconds": round(time.perf_counter() - t0, 3),
    }


MASK_CHANNELS = ("channel:reach", "channel:not reached", "channel:reached")  # 0/1 channels: accuracy too


def _finite(x) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None


class _CompareTask:
    def __init__(self, **options):
        self.options = options

    def __call__(self, cell, shared, threads):
        return compare_cell(cell, shared, threads, **self.options)


def compare_cells(checkpoints: list, algo: str, sizes, families, seeds, *, degree: float = 10.0,
                  nodes_per_cell: int = 4096, max_size: dict | None = None) -> list:
    """The cells: checkpoint x family x size x seed; a cell of ``n`` nodes holds
    ``max(1, nodes_per_cell // n)`` graphs. ``max_size`` caps sizes per family, algorithm or
    run (``{"ws": 100_000, "bellman_ford": 100_000, "bfs-gatv2": 10_000}``)."""
    cells = []
    for c in checkpoints:
        for family in families:
            for n in sizes:
                caps = max_size or {}
                if n > min(caps.get(family, n), caps.get(algo, n), caps.get(c.group, n)):
                    continue
                for seed in seeds:
                    cells.append({"model": c.label, "checkpoint": c.fingerprint, "algorithm": algo,
                                  "family": family, "degree": degree, "n": int(n), "seed": int(seed),
                                  "graphs": max(1, nodes_per_cell // int(n))})
    return cells


def cell_memory(shared: dict):
    """Peak memory of a cell, roughly: graph and transpose, both models' buffers (state and
    fed-back hints; the native kernels do not keep per-edge messages), and for a trace of
    ``2 log2 n + 16`` steps the reference's and both models' hints and C's kept channels
    (a longer run is checked again before its channels are kept)."""
    def estimate(cell):
        n = cell["n"]
        m = n * max(cell["degree"], 4.0)
        if shared["models"][cell["model"]].spec.get("message_graph") == "complete":
            m = max(m, float(n) * n)  # messages over every pair of nodes
        d = shared["models"][cell["model"]].hidden
        steps = 2 * np.log2(max(n, 2)) + 16
        return int(60 * m + 3 * 8 * n * (d + 16) + steps * n * 64)
    return estimate


def _parameters(checkpoints: list, compiled: dict, out: str | None, progress: bool) -> list:
    """Per MPNN checkpoint that shares its compiled model's parameter space (the alignment
    handles those): the compiled point's training loss and
    gradient norm, the aligned distance and the path barrier (needs the ``torch`` extra);
    logged like cells, so a rerun skips them."""
    from .alignment import parameter_report
    from .compiled_point import compiled_point
    from .sweep import ResultLog, run_cells

    points = {}

    def task(cell, shared, threads):
        c = shared[cell["model"]]
        algo = cell["algorithm"]
        key = compiled[c.label].name + algo
        if key not in points:
            points[key] = compiled_point(compiled[c.label], algo)
        point = points[key]
        report = parameter_report(c.model, compiled[c.label], algo)
        return {"compiled_point_loss": point["loss"], "compiled_point_grad_norm": point["grad_norm"],
                "distance": report["distance"],
                "distance_over_learned_norm": report["distance_over_learned_norm"],
                "distance_over_compiled_norm": report["distance_over_compiled_norm"],
                "barrier": report["barrier"],
                "matched_cosine": report["matched_cosine"]}

    cells = [{"model": c.label, "checkpoint": c.fingerprint, "algorithm": c.model.spec["description"]["algorithm"],
              "file": c.path}
             for c in checkpoints  # the alignment handles one-layer MPNN specs of one parameter space
             if not c.model.spec.get("processor") and shares_parameters(c.model, compiled[c.label])]
    return run_cells(cells, task, ResultLog(out, "parameters", tables=False),
                     shared={c.label: c for c in checkpoints}, desc="parameters", progress=progress)


def compare(paths, *, sizes=(16, 64, 256, 1000), families=("er",), seeds=(0,), degree: float = 10.0,
            max_size: dict | None = None, nodes_per_cell: int = 4096, probe_graphs: int = 256,
            parameters: bool = True, backend: str | None = None, out: str | None = None,
            cluster: str | None = None, progress: bool = False, compiled: str = "auto") -> dict:
    """Compare every trained checkpoint in ``paths`` with a compiled model of its algorithm:
    the one of its own spec where the algorithm compiles into it, else the compact one.

    Parameters
    ----------
    paths : list of str
        Run directories (``DIR/seed-*/best.npz``) or checkpoint files; the algorithm of each
        is read from the checkpoint, and several algorithms may be compared in one call.
    sizes, families, seeds, degree
        Graph sizes, generator families (:data:`engine.graph.FAMILIES`, or ``clrs``), graph
        seeds per cell and mean degree. ``max_size`` caps the sizes of a family, an
        algorithm or a run (e.g. ``{"grid": 10_000, "bellman_ford": 100_000, "bfs-gatv2": 10_000}``).
    nodes_per_cell : int
        A cell of ``n``-node graphs holds ``max(1, nodes_per_cell // n)`` graphs.
    probe_graphs : int
        Training-distribution graphs the probes are fitted on, per checkpoint.
    parameters : bool
        Also the compiled point's loss and the aligned distance and barrier (torch), for the
        checkpoints that share their compiled model's parameter space.
    compiled : {"auto", "own", "compact"}
        The compiled counterpart (:func:`counterpart`): ``own`` refuses a checkpoint whose
        spec has none, ``compact`` compares every checkpoint with the compact construction.
    out : str, optional
        Directory: ``cells.jsonl`` and ``parameters.jsonl`` (a rerun skips finished cells;
        a cell's key holds its checkpoint file's fingerprint, so replaced weights run again),
        then the tables, figures and ``report.md`` (:mod:`engine.analysis.comparison_report`).
    cluster : str, optional
        ``local:N`` or ``tcp://HOST:PORT``: run the cells on Dask.

    Returns
    -------
    dict
        ``{"cells": rows, "parameters": rows, "checkpoints": [...], "tables": {...}}`` with
        the tidy tables of :func:`engine.analysis.comparison_report.tables`.
    """
    from .comparison_report import tables, write_report
    from .sweep import ResultLog, run_cells

    by_algo = {}
    for p in paths:
        model_algo = _algorithm_of(p)
        by_algo.setdefault(model_algo, []).append(p)
    checkpoints, cells, shared = [], [], {"models": {}, "compiled": {}, "probes": {}, "targets": {}}
    compiled_of = {}
    for algo, algo_paths in by_algo.items():
        found = find_checkpoints(algo_paths, algo)
        checkpoints += found
        for c in found:
            control = counterpart(c.model, algo, compiled)
            compiled_of[c.label] = control
            shared["models"][c.label] = c.model
            shared["compiled"][c.label] = control
            shared["targets"][c.label] = probe_targets(algo, control)
        cells += compare_cells(found, algo, sizes, families, seeds, degree=degree, nodes_per_cell=nodes_per_cell,
                               max_size=max_size)
    if len({c.label for c in checkpoints}) != len(checkpoints):
        raise EngineError("two checkpoints have the same run/seed label; pass each run directory once")
    probe_iter = checkpoints
    if progress:
        from tqdm import tqdm
        probe_iter = tqdm(checkpoints, desc="probes", unit="model")
    for c in probe_iter:
        algo = c.model.spec["description"]["algorithm"]
        shared["probes"][c.label] = fit_probes(c.model, compiled_of[c.label], algo, graphs=probe_graphs,
                                               backend=backend)
    rows = run_cells(cells, _CompareTask(backend=backend), ResultLog(out, "cells", tables=False), shared=shared,
                     cluster=cluster, desc="compare", progress=progress, memory=cell_memory(shared))
    params = _parameters(checkpoints, compiled_of, out, progress) if parameters else []
    info = [{"label": c.label, "group": c.group, "file": c.path,
             "algorithm": c.model.spec["description"]["algorithm"], "hidden": c.model.hidden,
             "setup": training_setup(c.model),
             "compiled": compiled_of[c.label].name,
             "shares_parameters": shares_parameters(c.model, compiled_of[c.label]),
             "hint0": "given" if takes_given_hint0(c.model) else "decoded"} for c in checkpoints]
    result = {"cells": rows, "parameters": params, "checkpoints": info,
              "tables": tables(rows, params, info)}
    if out is not None:
        write_report(result, out, {"sizes": list(sizes), "families": list(families), "seeds": list(seeds),
                                   "degree": degree, "nodes_per_cell": nodes_per_cell,
                                   "probe_graphs": probe_graphs, "max_size": max_size or {}})
    return result


def _algorithm_of(path: str) -> str:
    """The algorithm of the first checkpoint under ``path``."""
    files = [path] if os.path.isfile(path) else (sorted(glob.glob(os.path.join(path, "seed-*", "best.npz")))
                                                 or sorted(glob.glob(os.path.join(path, "best.npz"))))
    if not files:
        raise EngineError(f"{path}: no such checkpoint, and no seed-*/best.npz or best.npz under it")
    algo = (Model.load(files[0]).spec.get("description") or {}).get("algorithm")
    if algo not in ALGORITHMS:
        raise EngineError(f"{files[0]}: the model does not say which algorithm it learned; allowed: "
                          f"{sorted(ALGORITHMS)}")
    return algo
