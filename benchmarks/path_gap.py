"""Bellman-Ford pointer accuracy by the gap between competing paths, per model.

    python benchmarks/path_gap.py RUN_DIR [RUN_DIR ...] [--er-nodes 1000] [--er-graphs 3] --out DIR

Each ``RUN_DIR`` holds ``seed-*/best.npz`` (trained Bellman-Ford models); the compiled MPNN
(``engine.compile("bellman_ford", processor="mpnn")``) runs beside them as the exact control.
Graphs: CLRS-30's test split (32 graphs of 64 nodes) and ``--er-graphs`` ER graphs of
``--er-nodes`` nodes (mean degree 5, weights uniform in (0, 1]; sparse-protocol models and the
control only: a fully connected model would send n^2 messages). Every model runs in the
executor (hard hints, hint 0 decoded, the reference's step count). Writes ``path_gap.csv``
(one row per model, graph set and gap bucket, pooled over seeds), ``path_gap.png``/``.svg``
and prints the table; :mod:`engine.analysis.path_gap` defines the gap.
"""
from __future__ import annotations

import argparse
import glob
import os
import sys

import numpy as np


def graph_sets(er_nodes: int, er_graphs: int) -> dict:
    from engine.algorithms.samplers import clrs_split
    from engine.graph import generate

    test = [(g, s) for _, g, s in clrs_split("bellman_ford", "test")]
    er = [(generate("er", er_nodes, degree=5.0, weighted=True, seed=k), 0) for k in range(er_graphs)]
    return {"CLRS test (n = 64)": test, f"ER n = {er_nodes}": er}


def predictions(model, cases, refs) -> list:
    import engine

    return [engine.execute(model, g, s, steps=r.steps).outputs["pi"] for (g, s), r in zip(cases, refs)]


def label(run_dir: str, model) -> str:
    spec = model.spec
    proto = ((spec.get("description") or {}).get("protocol") or {}).get("name", "sparse")
    proc = (spec.get("processor") or {}).get("kind", "mpnn")
    return f"{proto} {'GATv2' if proc == 'gatv2' else 'MPNN'} ({os.path.basename(run_dir.rstrip('/'))})"


def main(argv=None) -> int:
    import engine
    from engine._files import output_dir, write_csv
    from engine.analysis.path_gap import accuracy_by_gap

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+")
    p.add_argument("--er-nodes", type=int, default=1000)
    p.add_argument("--er-graphs", type=int, default=3)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    out = args.out
    output_dir(out, ["path_gap.csv", "path_gap.png", "path_gap.svg"])
    sets = graph_sets(args.er_nodes, args.er_graphs)
    refs = {name: [engine.reference("bellman_ford", g, s, trace=False) for g, s in cases]
            for name, cases in sets.items()}
    models = [("compiled MPNN (exact control)", [engine.compile("bellman_ford", processor="mpnn")])]
    for run in args.runs:
        seeds = [engine.Model.load(f) for f in sorted(glob.glob(os.path.join(run, "seed-*", "best.npz")))]
        if not seeds:
            print(f"{run}: no seed-*/best.npz", file=sys.stderr)
            return 2
        models.append((label(run, seeds[0]), seeds))
    rows = []
    for name, cases in sets.items():
        graphs, sources = [g for g, _ in cases], [s for _, s in cases]
        for model_name, seeds in models:
            if any(m.spec.get("message_graph") == "complete" for m in seeds) and graphs[0].num_nodes > 64:
                continue  # a fully connected model on large graphs: n^2 messages a step
            preds = [pred for m in seeds for pred in predictions(m, cases, refs[name])]
            reps = len(seeds)
            for row in accuracy_by_gap(graphs * reps, sources * reps, preds, refs[name] * reps):
                rows.append({"model": model_name, "seeds": reps, "graphs": name, **row})
                print(f"{name:<20s} {model_name:<40s} gap [{row['low']:g}, {row['high']:g}) "
                      f"nodes {row['nodes']:>6d} accuracy {row['accuracy']}", flush=True)
    write_csv(os.path.join(out, "path_gap.csv"), rows)
    plot(rows, os.path.join(out, "path_gap"))
    return 0


def plot(rows: list, stem: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["svg.fonttype"] = "none"
    import matplotlib.pyplot as plt

    sets = sorted({r["graphs"] for r in rows})
    fig, axes = plt.subplots(1, len(sets), figsize=(6 * len(sets), 4), squeeze=False)
    for ax, name in zip(axes[0], sets):
        for model in dict.fromkeys(r["model"] for r in rows if r["graphs"] == name):
            pts = [r for r in rows if r["graphs"] == name and r["model"] == model
                   and np.isfinite(r["low"]) and r["accuracy"] is not None]
            xs = [np.sqrt(max(r["low"], 1e-4) * (r["high"] if np.isfinite(r["high"]) else 3.0)) for r in pts]
            ax.plot(xs, [r["accuracy"] for r in pts], marker="o", label=model)
        ax.set_xscale("log")
        ax.set_xlabel("gap between the best and second-best path into the node")
        ax.set_ylabel("output pointer accuracy")
        ax.set_title(f"Bellman-Ford, {name}")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    for ext in ("png", "svg"):
        fig.savefig(f"{stem}.{ext}", dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
