"""Evaluate compiled and learned models across graph sizes against the references.

    python -m engine.evaluate CHECKPOINT... --sizes 16,64,256,1e3,1e4,1e5,1e6 --graph er --degree 10 --seeds 0,1,2
    python -m engine.evaluate DIR/best.npz --sizes 64 --graph clrs --seeds 0-63   # CLRS's test protocol

A CHECKPOINT is a saved Model (e.g. DIR/best.npz from engine.train) or ``compiled:ALGO``.
Writes results.jsonl (one line per finished cell: a rerun skips what is done),
results.csv, results.json and accuracy.png/.svg to --out (default: evaluation/).
``--cluster local:N`` or ``--cluster tcp://HOST:PORT`` runs the cells on Dask.
"""
from __future__ import annotations

import os
import sys

from ._cli import Parser, finite_float, non_negative_int, parse_counts, parse_seeds, run_main
from ._files import output_dir
from .analysis.sweep import report_failed
from .analysis.generalization import evaluate, load_models, plot_accuracy
from .backends import BACKENDS
from .errors import EngineError
from .graph import FAMILIES

OUTPUTS = ("results.jsonl", "results.csv", "results.json", "accuracy.png", "accuracy.svg")


def _main(argv) -> int:
    p = Parser(prog="python -m engine.evaluate", description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="+", help="saved Model files or compiled:ALGO")
    p.add_argument("--sizes", type=parse_counts, default="16,64,256,1e3", help="comma-separated node counts")
    p.add_argument("--graph", default="er", choices=sorted(FAMILIES) + ["clrs"],
                   help="generator family, or clrs: CLRS's test sampler (p drawn per graph, random source)")
    p.add_argument("--degree", type=finite_float, default=10.0)
    p.add_argument("--seeds", type=parse_seeds, default="0", help="comma-separated seeds or ranges (0-4)")
    p.add_argument("--backend", default=None, choices=list(BACKENDS))
    p.add_argument("--steps", type=non_negative_int, default=None,
                   help="fixed step budget instead of the oracle length")
    p.add_argument("--trace-limit", type=non_negative_int, default=10_000,
                   help="per-hint accuracies for graphs up to this many nodes")
    p.add_argument("--cluster", default=None,
                   help="run the cells on Dask: local:N (N worker processes) or tcp://HOST:PORT (a scheduler)")
    p.add_argument("--out", default="evaluation")
    args = p.parse_args(argv)
    if args.degree < 0:
        raise EngineError(f"--degree must be non-negative, got {args.degree}")
    models = load_models(args.models)  # every model loads before any work
    out = output_dir(args.out, OUTPUTS)

    rows = evaluate(models, args.sizes, family=args.graph, degree=args.degree, seeds=args.seeds,
                    backend=args.backend, steps=args.steps, trace_limit=args.trace_limit, out=out,
                    cluster=args.cluster, progress=True)
    plot_accuracy(rows, os.path.join(out, "accuracy"))
    failed = report_failed(rows)
    print(f"wrote {out}/results.csv, results.json, accuracy.png/.svg ({len(rows)} rows, {failed} failed)")
    return 1 if failed else 0


def main(argv=None) -> int:
    """The command line; returns the exit status (2: invalid input, with one line on stderr)."""
    return run_main(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
