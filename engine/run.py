"""The main job: run a compiled algorithm on a (large) graph and verify it.

    python -m engine.run --algo bfs --nodes 1e6

Generates (or loads) a graph, compiles the algorithm into GNN weights, executes them with
a backend, and checks the outputs and step count against the CLRS-semantics reference.
Exit status: 0 when exact, 1 on a mismatch or a run that did not settle, 2 on invalid input
(one line on stderr).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

from . import __version__
from ._cli import Parser, finite_float, non_negative_int, parse_count, positive_int, run_main
from ._files import writable_file
from ._memory import peak_rss_bytes, require
from ._progress import StepProgress
from .algorithms import ALGORITHMS, compilable, reference
from .backends import BACKENDS
from .compiler import compile as compile_model
from .errors import EngineError, NegativeCycleError
from .runtime import MODES, execute
from .graph import FAMILIES, generate, load

BYTES_PER_EDGE_BUILD = 40  # generator peak: int64 keys, sort buffers, CSR arrays, weights


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m engine.run", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--algo", required=True, choices=compilable(), help="algorithm to compile and run")
    p.add_argument("--nodes", type=parse_count, default=None, help="number of nodes, e.g. 1e6")
    p.add_argument("--graph", default="er", choices=sorted(FAMILIES), help="generator family (default er)")
    p.add_argument("--degree", type=finite_float, default=10.0, help="mean degree for er/ws/ba (default 10)")
    p.add_argument("--directed", action="store_true", help="directed er/path graph")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--source", type=non_negative_int, default=0, help="source node (default 0)")
    p.add_argument("--graph-file", default=None, help="load an edge list or .mtx file instead of generating")
    p.add_argument("--backend", default=None, choices=list(BACKENDS),
                   help="default: $ENGINE_BACKEND, else the first that loads (native, numba, reference)")
    p.add_argument("--threads", type=positive_int, default=None,
                   help="worker threads (default: $ENGINE_THREADS, else all cores)")
    p.add_argument("--mode", default="auto", choices=list(MODES),
                   help="dense: every node every step; active: changed nodes and their out-neighbours; "
                        "auto (default): active while few nodes change")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--no-verify", action="store_true", help="skip the check against engine.reference")
    p.add_argument("--save-model", default=None, metavar="PATH", help="also write the compiled model (.npz)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--version", action="version", version=f"engine {__version__}")
    return p


def run(args) -> dict:
    info = ALGORITHMS[args.algo]
    if args.save_model:
        writable_file(args.save_model, "--save-model")  # before any work: a bad path fails now
    times = {}
    t = time.perf_counter()
    if args.graph_file:
        graph = load(args.graph_file, dtype=args.dtype)
        family = f"file:{os.path.basename(args.graph_file)}"
    else:
        if args.nodes is None:
            raise EngineError("give --nodes (e.g. --nodes 1e6) or --graph-file")
        require(int(args.nodes * max(args.degree, 4) * BYTES_PER_EDGE_BUILD), f"a {args.nodes}-node graph")
        graph = generate(args.graph, args.nodes, degree=args.degree, directed=args.directed or info.directed,
                         weighted=info.weighted, seed=args.seed, dtype=args.dtype)
        family = args.graph
    times["generate"] = time.perf_counter() - t
    t = time.perf_counter()
    model = compile_model(args.algo, args.dtype)
    times["compile"] = time.perf_counter() - t
    progress = StepProgress()
    t = time.perf_counter()
    try:
        result = execute(model, graph, args.source if info.has_source else None, backend=args.backend,
                         threads=args.threads, mode=args.mode, progress=progress)
    finally:
        progress.close()
    times["execute"] = time.perf_counter() - t
    if args.save_model:  # the run was valid: keep the model it ran
        model.save(args.save_model)
    report = {
        "algorithm": args.algo,
        "backend": result.backend,
        "threads": result.threads,
        "dtype": args.dtype,
        "graph": {"family": family, "nodes": graph.num_nodes, "edges": graph.num_edges,
                  "directed": bool(graph.directed), "seed": args.seed},
        "source": args.source if info.has_source else None,
        "mode": result.mode,
        "steps": result.steps,
        "node_updates": result.node_updates,
        "aggregates_reused": result.aggregates_reused,
        "converged": result.converged,
        "model": {"name": model.name, "hidden": model.hidden, "parameters": model.num_parameters(),
                  "layers_per_step": len(model.spec["layers"])},
    }
    if not result.converged:
        report["unsettled"] = info.unsettled
    if not args.no_verify:
        t = time.perf_counter()
        try:
            ref = reference(args.algo, graph, args.source if info.has_source else None, trace=False,
                            dtype=args.dtype)
        except NegativeCycleError as exc:  # no answer to verify against: the run cannot be right
            report["verify"] = {"exact": False, "reference_error": str(exc)}
        else:
            mismatches = int(sum((result.outputs[name] != want).sum() for name, want in ref.outputs.items()))
            report["verify"] = {"exact": mismatches == 0 and ref.steps == result.steps and result.converged,
                                "mismatching_nodes": mismatches, "reference_steps": ref.steps}
        times["verify"] = time.perf_counter() - t
    report["seconds"] = {k: round(v, 4) for k, v in times.items()}
    report["node_updates_per_second"] = result.node_updates / max(times["execute"], 1e-9)
    report["dense_edges_per_second"] = (graph.num_edges * result.steps * len(model.spec["layers"])
                                        / max(times["execute"], 1e-9))
    report["peak_rss_mb"] = round(peak_rss_bytes() / 2**20, 1)
    return report


def _percent(fraction: float) -> str:
    """A share as a percentage with two significant digits however small (0.0015%)."""
    return f"{fraction * 100:.2g}%" if 0 < fraction < 0.01 else f"{fraction:.2%}"


def format_report(r: dict) -> str:
    g = r["graph"]
    lines = [
        f"engine {__version__}: compiled {r['algorithm']} ({r['model']['name']}, hidden {r['model']['hidden']}, "
        f"{r['model']['parameters']} parameters, {r['dtype']})",
        f"backend    {r['backend']} ({r['threads']} threads)",
        f"graph      {g['family']}: n={g['nodes']:,} m={g['edges']:,} "
        f"({'directed' if g['directed'] else 'undirected'}, seed {g['seed']})"
        + (f", source {r['source']}" if r["source"] is not None else ""),
        f"steps      {r['steps']} ({r['mode']} mode: {r['node_updates']:,} node updates"
        f" = {_percent(r['node_updates'] / max(1, g['nodes'] * r['steps'] * r['model']['layers_per_step']))}"
        " of dense"
        + (f"; {_percent(r['aggregates_reused'] / r['node_updates'])} with kept aggregates"
           if r.get("aggregates_reused") else "")
        + ")"
        + ("" if r["converged"] else " (stopped at the step limit)"),
        "time       " + "  ".join(f"{k} {v:.3f} s" for k, v in r["seconds"].items()),
        f"throughput {r['node_updates_per_second'] / 1e6:.1f} M node updates/s"
        + (f", {r['dense_edges_per_second'] / 1e6:.1f} M edges/s" if r["mode"] == "dense" else ""),
        f"peak RSS   {r['peak_rss_mb']:.0f} MB",
    ]
    if "unsettled" in r:
        lines.append(f"settled    NO: stopped at the step limit without reaching a fixed point ({r['unsettled']})")
    if "verify" in r:
        v = r["verify"]
        if "reference_error" in v:
            lines.append(f"verify     NO ANSWER: the reference has none ({v['reference_error']})")
        elif v["exact"]:
            lines.append(f"verify     exact: outputs and step count equal engine.reference ({v['reference_steps']} steps)")
        else:
            lines.append(f"verify     MISMATCH: {v['mismatching_nodes']} nodes differ; "
                         f"steps {r['steps']} vs reference {v['reference_steps']}")
    return "\n".join(lines)


def _main(argv) -> int:
    args = build_parser().parse_args(argv)
    report = run(args)
    print(json.dumps(report, indent=1) if args.json else format_report(report))
    return 0 if report.get("verify", {}).get("exact", True) and "unsettled" not in report else 1


def main(argv=None) -> int:
    """The command line; returns the exit status (0 exact, 1 wrong or unsettled, 2 invalid input)."""
    return run_main(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
