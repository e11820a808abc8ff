"""Compare learned checkpoints with a compiled model of their algorithm, from 16 to 10^6 nodes.

    python -m engine.compare docs/runs/bfs-mpnn docs/runs/bellman_ford-mpnn \\
        docs/runs/bfs-gatv2 --sizes 16,64,256,1e3,1e4,1e5,1e6 --graph er,ws --max-size ws=1e5 \\
        --max-size bellman_ford=1e5 --max-size bfs-gatv2=1e4 --out docs/comparison

The compiled model is the one of the checkpoint's own spec where the algorithm compiles
into it (the parameter measures need that), else the compact construction (``--compiled``).
A RUN_DIR holds ``seed-*/best.npz`` (``engine.train``'s layout) or is a checkpoint file; the
algorithm is read from each checkpoint. Writes report.md, summary/graphs/steps/parameters/
question CSVs, results.json and PNG/SVG figures to --out; cells.jsonl and parameters.jsonl
keep finished cells, so an interrupted run resumes. Needs the ``torch`` extra (probes on
training-distribution graphs use only the engine; the parameters need torch) and ``plots``.
"""
from __future__ import annotations

import argparse
import sys

from ._cli import Parser, finite_float, parse_count, parse_counts, parse_seeds, positive_int, run_main
from ._files import output_dir
from .backends import BACKENDS
from .errors import EngineError
from .algorithms import ALGORITHMS
from .graph import FAMILIES

OUTPUTS = ("cells.jsonl", "parameters.jsonl", "report.md", "results.json", "summary.csv", "graphs.csv",
           "steps.csv", "parameters.csv", "question.csv")


def _families(text: str) -> list:
    names = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in names if t not in FAMILIES and t != "clrs"]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"unknown families {bad or text!r}; allowed: {sorted(FAMILIES) + ['clrs']}")
    return names


def _caps(items) -> dict:
    caps = {}
    for item in items or []:
        name, _, size = item.partition("=")
        if not name or not size:
            raise EngineError(f"--max-size takes FAMILY=N, ALGORITHM=N or RUN=N (FAMILY one of {sorted(FAMILIES)}, "
                              f"ALGORITHM one of {sorted(ALGORITHMS)}, RUN a run directory's name), got {item!r}")
        try:
            caps[name] = parse_count(size)
        except argparse.ArgumentTypeError as exc:
            raise EngineError(f"--max-size {item!r}: {exc}") from None
    return caps


def _main(argv) -> int:
    from .analysis.compare import compare

    p = Parser(prog="python -m engine.compare", description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", help="run directories (seed-*/best.npz) or checkpoint files")
    p.add_argument("--sizes", type=parse_counts, default="16,64,256,1e3,1e4", help="comma-separated node counts")
    p.add_argument("--graph", type=_families, default="er", help="comma-separated generator families (or clrs)")
    p.add_argument("--max-size", action="append", help="FAMILY=N, ALGORITHM=N or RUN=N (a run directory's name, or its parent/name where two runs share a name): leave sizes above N out there")
    p.add_argument("--degree", type=finite_float, default=10.0)
    p.add_argument("--seeds", type=parse_seeds, default="0", help="graph seeds per cell: 0,1,2 or 0-4")
    p.add_argument("--nodes-per-cell", type=positive_int, default=4096,
                   help="a cell of small graphs holds this many nodes (n=16: 256 graphs)")
    p.add_argument("--probe-graphs", type=positive_int, default=256,
                   help="training-distribution graphs the probes are fitted on, per checkpoint")
    p.add_argument("--no-parameters", action="store_true",
                   help="skip the compiled point's loss, the aligned distance and the barrier")
    p.add_argument("--compiled", default="auto", choices=["auto", "own", "compact"],
                   help="the compiled counterpart: the one of the checkpoint's own spec (own), the compact "
                        "construction (compact), or the own where the algorithm compiles into that spec (auto)")
    p.add_argument("--backend", default=None, choices=list(BACKENDS))
    p.add_argument("--cluster", default=None, help="local:N or tcp://HOST:PORT: run the cells on Dask")
    p.add_argument("--out", default="comparison")
    args = p.parse_args(argv)
    if args.degree < 0:
        raise EngineError(f"--degree must be non-negative, got {args.degree}")
    caps = _caps(args.max_size)
    output_dir(args.out, OUTPUTS)
    result = compare(args.runs, sizes=args.sizes, families=args.graph, seeds=args.seeds, degree=args.degree,
                     max_size=caps, nodes_per_cell=args.nodes_per_cell, probe_graphs=args.probe_graphs,
                     parameters=not args.no_parameters, backend=args.backend, out=args.out, cluster=args.cluster,
                     progress=True, compiled=args.compiled)
    from .analysis.sweep import report_failed

    failed = report_failed(result["cells"] + result["parameters"])
    print(f"wrote {args.out}/report.md ({len(result['cells'])} cells, {failed} failed)")
    return 1 if failed else 0


def main(argv=None) -> int:
    """The command line; returns the exit status (2: invalid input, with one line on stderr)."""
    return run_main(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
