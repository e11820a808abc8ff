"""Parity of the executor's backends with the torch module, step by step.

    python benchmarks/parity.py MODEL.npz [MODEL.npz ...] [--nodes 1000] [--degree 10] [--steps 16]

For each saved Model (learned or compiled), one Erdős–Rényi graph (directed when the
model's algorithm is DFS), ``--steps`` steps: the torch module's states ``h_0 .. h_T`` (hints
fed back exactly as the executor decodes them) against ``engine.execute(..., hidden=True)``
on every available backend. Prints, per backend, the largest relative state difference over
all steps (``max |a - b| / max(1, max |b|)`` per step, as the tests measure it), the step
where it occurs, and the share of output pointers that agree.
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np


def parity(model, graph, steps: int) -> dict:
    import torch

    import engine
    import engine.backends
    from engine.learn import GNNModule, GraphBatch

    module = GNNModule.from_model(model)
    batch = GraphBatch(graph, 0, model.spec)
    out_ptr = model.spec.get("outputs", {}).get("pi")
    with torch.no_grad():
        states, zs, Es, _ = module.rollout(batch, steps, hard=True)
        want_ptr = module.decode(out_ptr, batch, zs[-1], Es[-1]).numpy() if out_ptr else None
    states = torch.stack(states).numpy()
    result = {}
    for be in engine.backends.available_backends():
        res = engine.execute(model, graph, 0, backend=be, steps=steps, hidden=True)
        rel = [float(np.abs(a - b).max() / max(1.0, float(np.abs(b).max()))) for a, b in zip(res.hidden, states)]
        worst = int(np.argmax(rel))
        row = {"max_relative_state_difference": rel[worst], "at_step": worst}
        if want_ptr is not None:
            row["output_pointer_agreement"] = float(np.mean(res.outputs["pi"] == want_ptr))
        result[be] = row
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="+")
    p.add_argument("--nodes", type=int, default=1000)
    p.add_argument("--degree", type=float, default=10.0)
    p.add_argument("--steps", type=int, default=16)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)

    import engine
    from engine.algorithms import ALGORITHMS
    from engine.graph import generators

    report = {}
    for path in args.models:
        model = engine.Model.load(path)
        algo = (model.spec.get("description") or {}).get("algorithm")
        directed = ALGORITHMS[algo].directed if algo in ALGORITHMS else False
        g = generators.erdos_renyi(args.nodes, args.degree, weighted=True, directed=directed, seed=0)
        report[path] = parity(model, g, args.steps)
        kind = (model.spec.get("processor") or {}).get("kind", "mpnn")
        for be, row in report[path].items():
            agree = row.get("output_pointer_agreement")
            print(f"{path:<40s} {kind:<6s} {be:<10s} max rel. state diff {row['max_relative_state_difference']:.2e} "
                  f"(step {row['at_step']})" + (f"  output pointers agree {agree:.4f}" if agree is not None else ""))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
