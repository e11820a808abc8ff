"""Size-generalisation evaluation of compiled and learned models against the references.

For every model, graph size and seed: generate a graph, run the model with the native (or
chosen) backend for the reference's number of steps (CLRS's oracle termination) or a fixed
budget, and compare with :func:`engine.reference`: pointer accuracy and exact match of the
output, and, where the trace fits (``trace_limit`` nodes), per-hint accuracy over steps
``1 .. T-1`` and the first of those steps at which a hint diverges (-1: none; hint 0 is the
initial state, which CLRS gives as an input rather than asking for it). Results are tidy rows (CSV and JSON) plus an SVG
plot of pointer accuracy against n with a band of one standard deviation over seeds.
"""
from __future__ import annotations

import csv
import json
import math
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
    t = time.perf_counter()
    oracle = model.spec["termination"]["rule"] == "steps" or steps is not None
    res = execute(model, graph, source, backend=backend, steps=(steps or ref.steps) if oracle else None,
                  trace=trace)
    row = {"n": graph.num_nodes, "m": graph.num_edges, "seed": seed, "steps": res.steps,
           "reference_steps": ref.steps, "seconds": round(time.perf_counter() - t, 4),
           "pointer_accuracy": float(np.mean(res.outputs[out] == ref.outputs[out])),
           "exact_match": bool(np.array_equal(res.outputs[out], ref.outputs[out]) and res.steps == ref.steps)}
    if trace and res.hints:
        first = None
        for name, want in ref.hints.items():
            if name not in res.hints:
                continue
            got = res.hints[name]
            T = min(len(got), len(want))
            # from step 1: hint 0 is the initial state, an input in CLRS, not a prediction
            per_step = [float(np.mean(np.asarray(got[t]) == np.asarray(want[t]))) for t in range(1, T)]
            row[f"hint_{name}_accuracy"] = float(np.mean(per_step)) if per_step else float("nan")
            bad = [t for t in range(1, T) if not np.array_equal(got[t], want[t])]
            if bad and (first is None or bad[0] < first):
                first = bad[0]
        row["first_divergence_step"] = first if first is not None else -1
    return row


CLRS_FAMILY = "clrs"  # CLRS's own test distribution: its sampler, p drawn per graph, random source


def test_graph(algo, family, n, degree, seed):
    """``(graph, source)`` for one evaluation case."""
    info = ALGORITHMS[algo]
    if family == CLRS_FAMILY:
        _, g, s = sample(algo, n, np.random.RandomState(seed), p=CLRS_TRAIN_P)
        return g, s
    g = generate(family, n, degree=degree, directed=info.directed, weighted=info.weighted, seed=seed)
    return g, 0


def evaluate(models, sizes, *, family="er", degree=10.0, seeds=(0,), backend=None, steps=None,
             trace_limit=10_000, progress=None):
    """One row per model, size and seed (see :func:`evaluate_one`). ``family`` is a generator
    name (:data:`engine.graph.FAMILIES`, mean in-degree ``degree``) or ``"clrs"`` (CLRS's
    sampler, as its test sets are drawn)."""
    rows = []
    for label, model, algo in load_models(models):
        for n in sizes:
            for seed in seeds:
                g, source = test_graph(algo, family, n, degree, seed)
                row = {"model": label, "algorithm": algo, "family": family,
                       "degree": degree if family != CLRS_FAMILY else None}
                row.update(evaluate_one(model, algo, g, seed, source=source, backend=backend, steps=steps,
                                        trace_limit=trace_limit))
                rows.append(row)
                if progress:
                    progress(row)
    return rows


def write_rows(rows, out_dir):
    """``results.csv`` and ``results.json`` in ``out_dir``, each replaced atomically."""
    os.makedirs(out_dir, exist_ok=True)
    keys = []
    for r in rows:
        keys += [k for k in r if k not in keys]

    def write_csv(tmp):
        with open(tmp, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=keys)
            w.writeheader()
            w.writerows(rows)

    def write_json(tmp):
        with open(tmp, "w") as fh:
            json.dump(rows, fh, indent=1)

    atomic_write(os.path.join(out_dir, "results.csv"), write_csv)
    atomic_write(os.path.join(out_dir, "results.json"), write_json)


def plot_svg(rows, path, metric="pointer_accuracy"):
    """Accuracy against n (log scale), one line per model, a band of +- one standard
    deviation over seeds. Plain SVG: no plotting library needed."""
    W, H, L, B, R, T = 640, 400, 60, 50, 170, 20
    models = sorted({r["model"] for r in rows})
    sizes = sorted({r["n"] for r in rows})
    lx = [math.log10(n) for n in sizes]
    x0, x1 = min(lx), max(lx) if max(lx) > min(lx) else min(lx) + 1
    sx = lambda v: L + (math.log10(v) - x0) / (x1 - x0) * (W - L - R)  # noqa: E731
    sy = lambda a: T + (1 - a) * (H - T - B)  # noqa: E731
    colors = ["#1b6ca8", "#d1495b", "#2e933c", "#edae49", "#6a4c93", "#00798c"]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" '
             f'font-size="12">', f'<rect width="{W}" height="{H}" fill="white"/>',
             f'<line x1="{L}" y1="{sy(0)}" x2="{W - R}" y2="{sy(0)}" stroke="black"/>',
             f'<line x1="{L}" y1="{sy(0)}" x2="{L}" y2="{sy(1)}" stroke="black"/>']
    for a in (0, 0.25, 0.5, 0.75, 1.0):
        parts.append(f'<text x="{L - 8}" y="{sy(a) + 4}" text-anchor="end">{a:.2f}</text>')
    for n in sizes:
        parts.append(f'<text x="{sx(n)}" y="{sy(0) + 18}" text-anchor="middle">{n:g}</text>')
    parts.append(f'<text x="{(L + W - R) / 2}" y="{H - 8}" text-anchor="middle">nodes (log scale)</text>')
    parts.append(f'<text x="14" y="{(T + H - B) / 2}" transform="rotate(-90 14 {(T + H - B) / 2})" '
                 f'text-anchor="middle">{metric.replace("_", " ")}</text>')
    for i, model in enumerate(models):
        c = colors[i % len(colors)]
        pts = []
        for n in sizes:
            vals = [r[metric] for r in rows if r["model"] == model and r["n"] == n]
            if vals:
                pts.append((n, float(np.mean(vals)), float(np.std(vals))))
        if not pts:
            continue
        upper = " ".join(f"{sx(n)},{sy(min(1, m + s))}" for n, m, s in pts)
        lower = " ".join(f"{sx(n)},{sy(max(0, m - s))}" for n, m, s in reversed(pts))
        parts.append(f'<polygon points="{upper} {lower}" fill="{c}" fill-opacity="0.2" stroke="none"/>')
        parts.append(f'<polyline points="{" ".join(f"{sx(n)},{sy(m)}" for n, m, _ in pts)}" fill="none" '
                     f'stroke="{c}" stroke-width="2"/>')
        for n, m, _ in pts:
            parts.append(f'<circle cx="{sx(n)}" cy="{sy(m)}" r="3" fill="{c}"/>')
        parts.append(f'<rect x="{W - R + 12}" y="{T + 18 * i}" width="12" height="12" fill="{c}"/>')
        # a checkpoint is named by its run directory too (runs all hold a best.npz)
        label = model if model.startswith("compiled:") else os.path.join(
            os.path.basename(os.path.dirname(os.path.abspath(model))), os.path.basename(model))
        parts.append(f'<text x="{W - R + 30}" y="{T + 18 * i + 10}">{label[:22]}</text>')
    parts.append("</svg>")

    def write(tmp):
        with open(tmp, "w") as fh:
            fh.write("\n".join(parts))

    atomic_write(path, write)
