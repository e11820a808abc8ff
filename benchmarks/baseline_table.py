"""The single-task baseline table: trained runs scored on CLRS's test distribution.

    python -m engine.train --algo bfs --seed 0 --out runs/bfs-mpnn-s0     # one per algorithm and seed
    python benchmarks/baseline_table.py runs/* [--size 64] [--graphs 64]

Each run directory's ``best.npz`` (the best-on-validation Model) is evaluated like CLRS's
test split: ``--graphs`` graphs of ``--size`` nodes from CLRS's sampler (``p`` drawn per
graph, random source), the native backend, the reference's step count; the score is the
output pointer accuracy over all test nodes, beside the best trivial rule (a rule that runs
no algorithm, :mod:`engine.analysis.baselines`) on the same graphs. Runs are grouped by algorithm, processor and
hint mode; the table gives the mean and standard deviation over their training seeds and the
training steps each run took.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections import defaultdict

import numpy as np


def run_info(run_dir: str) -> dict:
    import engine

    model = engine.Model.load(os.path.join(run_dir, "best.npz"))
    spec = model.spec
    steps = 0
    with open(os.path.join(run_dir, "metrics.jsonl")) as fh:
        for line in fh:
            steps = max(steps, json.loads(line)["step"])
    mode = "encoded_decoded" if spec.get("feedback") else ("decoded_only" if spec.get("hints") else "none")
    return {"dir": run_dir, "model": model, "algorithm": spec["description"]["algorithm"],
            "processor": (spec.get("processor") or {}).get("kind", "mpnn"), "hint_mode": mode,
            "layer_norm": bool(spec["layers"][0]["update"].get("layer_norm")), "train_steps": steps}


def score(model, algo: str, size: int, graphs: int) -> tuple:
    """The model's pointer accuracy over all test nodes, and each trivial rule's
    (:mod:`engine.analysis.baselines`) on the same graphs."""
    from engine.algorithms import reference
    from engine.analysis.baselines import pointer_baselines
    from engine.analysis.generalization import evaluate_one, test_graph

    hits = total = 0
    rules = defaultdict(float)
    for seed in range(graphs):
        g, source = test_graph(algo, "clrs", size, None, seed)
        row = evaluate_one(model, algo, g, seed, source=source, backend="native", trace_limit=0)
        hits += row["pointer_accuracy"] * row["n"]
        total += row["n"]
        for rule, acc in pointer_baselines(g, reference(algo, g, source).outputs["pi"]).items():
            rules[rule] += acc * row["n"]
    return hits / total, {rule: v / total for rule, v in rules.items()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--graphs", type=int, default=64)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    groups = defaultdict(list)
    for run in args.runs:
        if not os.path.exists(os.path.join(run, "best.npz")):
            continue
        info = run_info(run)
        info["score"], info["trivial"] = score(info.pop("model"), info["algorithm"], args.size, args.graphs)
        print(f"{run:<40s} {info['algorithm']:<13s} {info['processor']:<6s} {info['hint_mode']:<16s} "
              f"steps {info['train_steps']:>6d}  pointer accuracy at n={args.size}: {info['score']:.4f}", flush=True)
        groups[(info["algorithm"], info["processor"], info["hint_mode"], info["layer_norm"])].append(info)
    print()
    print(f"| algorithm | processor | hints | seeds | training steps | pointer accuracy at n={args.size} (mean ± std) "
          f"| best trivial rule, same graphs |")
    print("|---|---|---|---|---|---|---|")
    table = []
    for (algo, proc, mode, ln), runs in sorted(groups.items()):
        scores = np.array([r["score"] for r in runs])
        steps = sorted({r["train_steps"] for r in runs})
        trivial = runs[0]["trivial"]  # the test graphs are the same for every run of an algorithm
        best = max(trivial, key=trivial.get)
        print(f"| {algo} | {proc}{' + LN' if ln else ''} | {mode} | {len(runs)} | {'/'.join(map(str, steps))} | "
              f"{100 * scores.mean():.2f}% ± {100 * scores.std():.2f} | {100 * trivial[best]:.2f}% ({best}) |")
        table.append({"algorithm": algo, "processor": proc, "hint_mode": mode, "layer_norm": ln,
                      "seeds": len(runs), "train_steps": steps, "mean": float(scores.mean()),
                      "std": float(scores.std()), "runs": {r["dir"]: r["score"] for r in runs},
                      "trivial": runs[0]["trivial"]})
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(table, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
