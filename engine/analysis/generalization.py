"""Size-generalisation evaluation of compiled and learned models against the references.

For every model, graph size and seed: generate a graph, run the model with the native (or
chosen) backend for the reference's number of steps (CLRS's oracle termination) or a fixed
budget, and compare with :func:`engine.reference`: pointer accuracy and exact match of the
output, and, where the trace fits (``trace_limit`` nodes), per-hint accuracy over steps
``1 .. T-1`` and the first of those steps at which a hint diverges (-1: none; hint 0 is the
initial state, which CLRS gives as an input rather than asking for it; scalars within
:data:`engine.analysis.behaviour.SCALAR_TOLERANCE`). Results are tidy rows (CSV and JSON) plus an SVG
plot of pointer accuracy against n with a band of one standard deviation over seeds.
"""
from __future__ import annotations

import os
import time

import numpy as np

from .._files import atomic_write
from ..algorithms import ALGORITHMS, reference
from ..algorithms.samplers import CLRS_TRAIN_P, sample
from ..compiler import compile as compile_model
from ..errors import EngineError
from ..graph import generate
from ..model import Model
from .baselines import pointer_baselines
from .behaviour import trace_agreement
from ..runtime import execute


def load_models(names) -> list:
    """``compiled:ALGO`` or a path to a saved Model; returns ``(label, model, algorithm)``
    (already loaded entries pass through)."""
    out = []
    for name in names:
        if isinstance(name, tuple):
            out.append(name)
            continue
        if name.startswith("compiled:"):
            algo = name.split(":", 1)[1]
            model = compile_model(algo)
        else:
            model = Model.load(name)
            algo = (model.spec.get("description") or {}).get("algorithm")
            if algo not in ALGORITHMS:
                raise EngineError(f"{name}: the model does not say which algorithm it learned "
                                  f"(spec.description.algorithm); allowed: {sorted(ALGORITHMS)}")
        out.append((name, model, algo))
    return out


def evaluate_one(model, algo, graph, seed, *, source=None, backend=None, steps=None, trace_limit=10_000):
    info = ALGORITHMS[algo]
    out = info.primary_output
    source = (0 if source is None else source) if info.has_source else None
    trace = graph.num_nodes <= trace_limit
    ref = reference(algo, graph, source, trace=trace)
    # without a trace a model decodes hint 0 itself, and the row says which
    first = given_hint0(model, ref) if trace else None
    t = time.perf_counter()
    oracle = model.spec["termination"]["rule"] == "steps" or steps is not None
    res = execute(model, graph, source, backend=backend, steps=(steps or ref.steps) if oracle else None,
                  trace=trace, first_hints=first)
    row = {"n": graph.num_nodes, "m": graph.num_edges, "seed": seed, "steps": res.steps,
           "reference_steps": ref.steps, "seconds": round(time.perf_counter() - t, 4),
           "pointer_accuracy": float(np.mean(res.outputs[out] == ref.outputs[out])),
           "exact_match": bool(np.array_equal(res.outputs[out], ref.outputs[out]) and res.steps == ref.steps)}
    if model.spec.get("feedback"):
        row["hint0"] = "given" if first else "decoded"
    if info.output(out).kind == "pointer":  # what rules that run no algorithm score on this graph
        rules = pointer_baselines(graph, ref.outputs[out])
        row["best_trivial_rule"] = max(rules, key=rules.get)
        row["best_trivial_accuracy"] = rules[row["best_trivial_rule"]]
    if trace and res.hints:
        agreement = trace_agreement(algo, res.hints, ref.hints)
        for name, h in agreement["hints"].items():
            row[f"hint_{name}_accuracy"] = float(np.mean(h["per_step"])) if h["per_step"] else float("nan")
        row["first_divergence_step"] = agreement["first_divergence_step"]
    return row


def fed_back_hints(model) -> list:
    """The names of the hints ``model`` feeds back (``spec.hints`` whose decoder is in ``spec.feedback``)."""
    fed = set(model.spec.get("feedback", []))
    return [name for name, decoder in (model.spec.get("hints") or {}).items() if decoder in fed]


def takes_given_hint0(model) -> bool:
    """Whether ``model`` feeds hints back and was trained on the ground-truth hint 0 (CLRS's
    protocol, ``description.protocol.hint0``): then it is given the reference's hint 0."""
    protocol = (model.spec.get("description") or {}).get("protocol") or {}
    return protocol.get("hint0") == "ground_truth" and bool(model.spec.get("feedback"))


def given_hint0(model, ref) -> dict | None:
    """The reference's hint 0 for a model trained on the ground-truth hint 0 (CLRS's
    protocol, ``description.protocol.hint0``) that feeds hints back: ``first_hints`` for
    :func:`engine.execute`, from ``ref``'s trace; ``None`` for every other model, which
    decodes hint 0 from its initial state."""
    if not takes_given_hint0(model):
        return None
    if not ref.hints:
        raise EngineError("the model was trained on the ground-truth hint 0, and the reference was run without "
                          "a trace; run the reference with trace=True")
    return {name: ref.hints[name][0] for name in fed_back_hints(model)}


CLRS_FAMILY = "clrs"  # CLRS's own test distribution: its sampler, p drawn per graph, random source


def test_graph(algo, family, n, degree, seed):
    """``(graph, source)`` for one evaluation case."""
    info = ALGORITHMS[algo]
    if family == CLRS_FAMILY:
        _, g, s = sample(algo, n, np.random.RandomState(seed), p=CLRS_TRAIN_P)
        return g, s
    g = generate(family, n, degree=degree, directed=info.directed, weighted=info.weighted, seed=seed)
    return g, (0 if info.has_source else None)


def evaluation_cells(models, sizes, *, family="er", degree=10.0, seeds=(0,)) -> list:
    """The cells of an evaluation, one per model, size and seed (plain values: a cell is a
    task's argument and a log key). ``models``: ``(label, model, algorithm)`` triples."""
    return [{"model": label, "algorithm": algo, "family": family,
             "degree": degree if family != CLRS_FAMILY else None, "n": int(n), "seed": int(seed)}
            for label, _, algo in models for n in sizes for seed in seeds]


def evaluate_cell(cell: dict, models: dict, threads=None, *, backend=None, steps=None, trace_limit=10_000) -> dict:
    """One evaluation cell: the graph is generated here from its seed, the model taken from
    ``models`` (label -> Model, shipped once to a worker)."""
    from ..backends import get_backend

    if threads is not None:
        get_backend(backend, threads)
    g, source = test_graph(cell["algorithm"], cell["family"], cell["n"], cell["degree"], cell["seed"])
    row = evaluate_one(models[cell["model"]], cell["algorithm"], g, cell["seed"], source=source, backend=backend,
                       steps=steps, trace_limit=trace_limit)
    return {k: v for k, v in row.items() if k not in ("n", "seed")}


class _EvaluationTask:
    """``evaluate_cell`` with its options bound (picklable, for Dask)."""

    def __init__(self, **options):
        self.options = options

    def __call__(self, cell, models, threads):
        return evaluate_cell(cell, models, threads, **self.options)


def cell_memory(models: dict):
    """A rough peak-memory estimate of an evaluation cell: the graph, its transpose, the
    reference and the model's buffers."""
    def estimate(cell):
        n = cell["n"]
        m = n * max(cell["degree"] or n, 4.0) if cell["family"] != CLRS_FAMILY else n * n
        fz = models[cell["model"]].hidden + 16
        return int(60 * m + 16 * n * fz)
    return estimate


def evaluate(models, sizes, *, family="er", degree=10.0, seeds=(0,), backend=None, steps=None,
             trace_limit=10_000, out=None, cluster=None, progress=False):
    """One row per model, size and seed (see :func:`evaluate_one`), in that order. ``family``
    is a generator name (:data:`engine.graph.FAMILIES`, mean in-degree ``degree``) or
    ``"clrs"`` (CLRS's sampler, as its test sets are drawn). With ``out``, rows are appended
    to ``out/results.jsonl`` as cells finish and a rerun skips the cells done; ``cluster``
    runs the cells on Dask (:mod:`engine.analysis.sweep`)."""
    from .sweep import ResultLog, run_cells

    loaded = load_models(models)
    cells = evaluation_cells(loaded, sizes, family=family, degree=degree, seeds=seeds)
    by_label = {label: model for label, model, _ in loaded}
    task = _EvaluationTask(backend=backend, steps=steps, trace_limit=trace_limit)
    return run_cells(cells, task, ResultLog(out), shared=by_label, cluster=cluster, desc="evaluate",
                     progress=progress, memory=cell_memory(by_label))


def plot_accuracy(rows, path_stem: str, metric: str = "pointer_accuracy") -> list:
    """Accuracy against n (log scale), one line per model, a band of one standard deviation
    over seeds, with matplotlib (the ``plots`` extra): ``<path_stem>.png`` and ``.svg``.
    Returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["svg.fonttype"] = "none"  # text stays text in the SVG (editable, searchable)
    import matplotlib.pyplot as plt

    rows = [r for r in rows if r.get("status", "ok") == "ok" and metric in r]
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for model in sorted({r["model"] for r in rows}):
        sizes = sorted({r["n"] for r in rows if r["model"] == model})
        vals = [[r[metric] for r in rows if r["model"] == model and r["n"] == n] for n in sizes]
        mean = np.array([np.mean(v) for v in vals])
        std = np.array([np.std(v) for v in vals])
        # a checkpoint is named by its run directory too (runs all hold a best.npz)
        label = model if model.startswith("compiled:") else os.path.join(
            os.path.basename(os.path.dirname(os.path.abspath(model))), os.path.basename(model))
        line, = ax.plot(sizes, mean, marker="o", label=label)
        ax.fill_between(sizes, np.clip(mean - std, 0, 1), np.clip(mean + std, 0, 1), color=line.get_color(),
                        alpha=0.2, linewidth=0)
    ax.set_xscale("log")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("nodes (log scale)")
    ax.set_ylabel(metric.replace("_", " "))
    ax.grid(True, alpha=0.3)
    if rows:
        ax.legend(fontsize="small")
    fig.tight_layout()
    written = []
    for ext in ("png", "svg"):
        path = f"{path_stem}.{ext}"
        atomic_write(path, lambda tmp: fig.savefig(tmp, format=ext, dpi=150))
        written.append(path)
    plt.close(fig)
    return written
