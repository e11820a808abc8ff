"""Evaluate compiled and learned models across graph sizes against the references.

    python -m engine.evaluate CHECKPOINT... --sizes 16,64,256,1e3,1e4,1e5,1e6 --graph er --degree 10 --seeds 0,1,2
    python -m engine.evaluate DIR/best.npz --sizes 64 --graph clrs --seeds 0-63   # CLRS's test protocol

A CHECKPOINT is a saved Model (e.g. DIR/best.npz from engine.train) or ``compiled:ALGO``.
Writes results.csv, results.json and accuracy.svg to --out (default: evaluation/).
"""
from __future__ import annotations

import argparse
import sys

from .analysis.generalization import evaluate, plot_svg, write_rows
from .backends import BACKENDS
from .errors import EngineError
from .graph import FAMILIES
from ._cli import parse_count, parse_seeds


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m engine.evaluate", description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="+", help="saved Model files or compiled:ALGO")
    p.add_argument("--sizes", default="16,64,256,1e3", help="comma-separated node counts")
    p.add_argument("--graph", default="er", choices=sorted(FAMILIES) + ["clrs"],
                   help="generator family, or clrs: CLRS's test sampler (p drawn per graph, random source)")
    p.add_argument("--degree", type=float, default=10.0)
    p.add_argument("--seeds", default="0", help="comma-separated seeds")
    p.add_argument("--backend", default=None, choices=list(BACKENDS))
    p.add_argument("--steps", type=int, default=None, help="fixed step budget instead of the oracle length")
    p.add_argument("--trace-limit", type=int, default=10_000,
                   help="per-hint accuracies for graphs up to this many nodes")
    p.add_argument("--out", default="evaluation")
    args = p.parse_args(argv)
    try:
        sizes = [parse_count(s) for s in args.sizes.split(",")]
        seeds = parse_seeds(args.seeds)
    except (ValueError, argparse.ArgumentTypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    def progress(row):
        print(f"{row['model']:<28s} n={row['n']:<9d} seed={row['seed']} pointer accuracy "
              f"{row['pointer_accuracy']:.4f} exact={row['exact_match']} ({row['seconds']:.2f} s)", flush=True)

    try:
        rows = evaluate(args.models, sizes, family=args.graph, degree=args.degree, seeds=seeds,
                        backend=args.backend, steps=args.steps, trace_limit=args.trace_limit, progress=progress)
    except (EngineError, MemoryError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    write_rows(rows, args.out)
    plot_svg(rows, f"{args.out}/accuracy.svg")
    print(f"wrote {args.out}/results.csv, results.json, accuracy.svg ({len(rows)} rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
