"""The basin of the compiled point: train from it, with and without noise and L1, and see
whether gradient descent stays exact.

    python benchmarks/compiled_basin.py --algo bfs --sigmas 0,0.001,0.01,0.03,0.1 --l1 0,1e-5 --seeds 0,1,2 \
        --steps 1000 --out docs/basin/bfs

For each noise level SIGMA (Gaussian, SIGMA times each tensor's RMS) and seed, and for the
L1 penalties given, runs ``engine.train --init compiled --init-noise SIGMA`` (MPNN, hidden
128, CLRS's setup) for ``--steps`` steps, evaluating at ``--eval-sizes`` (ER, mean degree 5)
every ``--eval-every`` steps. Writes, under ``--out``, one run directory per cell (its
``last.npz`` and ``metrics.jsonl``; ``best.npz`` and ``state.pt`` are removed to keep the
committed results small) and ``basin.json`` / ``basin.md``: per cell the loss at the start
and the end, the distance travelled, and accuracy and exact match at every size at the end;
per noise level, the share of seeds exact at the largest size. A run whose loss or gradient
stops being finite ends there (``diverged_at``; its last finite weights are the ones
evaluated, and "loss last" is its last finite loss). A finished cell is not run again (the
trainer resumes or skips it).
"""
from __future__ import annotations

import argparse
import json
import os
import sys


def _mean(values) -> str:
    """The mean of the finite values, or "n/a" when no run had one."""
    return f"{sum(values) / len(values):.3g}" if values else "n/a"


def _cells(args):
    for l1 in args.l1:
        for sigma in args.sigmas:
            for seed in args.seeds:
                yield l1, sigma, seed


def main(argv=None) -> int:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from engine._cli import parse_counts, parse_seeds
    from engine.learn.trainer import TrainConfig, train

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--algo", default="bfs")
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--sigmas", type=lambda s: [float(x) for x in s.split(",")], default=[0.0, 0.001, 0.01, 0.03, 0.1])
    p.add_argument("--l1", type=lambda s: [float(x) for x in s.split(",")], default=[0.0])
    p.add_argument("--seeds", type=parse_seeds, default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--eval-sizes", type=parse_counts, default=[64, 1000, 100000])
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    rows = []
    for l1, sigma, seed in _cells(args):
        run = os.path.join(args.out, f"l1-{l1:g}_sigma-{sigma:g}_seed-{seed}")
        cfg = TrainConfig(algo=args.algo, hidden=args.hidden, seed=seed, steps=args.steps, init="compiled",
                          init_noise=sigma, l1=l1, eval_every=args.eval_every,
                          eval_sizes=tuple(args.eval_sizes))
        log = os.path.join(run, "metrics.jsonl")
        done = os.path.exists(log) and any(r.get("step") == args.steps or r.get("diverged")
                                           for r in map(json.loads, open(log)))
        if not done:
            train(cfg, run, progress=False, force_new=not os.path.exists(os.path.join(run, "state.pt")))
            for name in ("best.npz", "state.pt"):
                if os.path.exists(os.path.join(run, name)):
                    os.unlink(os.path.join(run, name))
        records = [json.loads(line) for line in open(log)]
        evals = [r for r in records if "val_pointer_accuracy" in r]
        finite = [r["loss"] for r in records if r.get("loss") is not None and r["loss"] == r["loss"]]
        row = {"l1": l1, "sigma": sigma, "seed": seed, "steps": args.steps, "loss_first": records[0]["loss"],
               "loss_last": finite[-1] if finite else None, "distance": evals[-1]["distance"],
               "diverged_at": records[-1]["step"] if records[-1].get("diverged") else None,
               "val_pointer_accuracy": evals[-1]["val_pointer_accuracy"]}
        for n in args.eval_sizes:
            row[f"accuracy_{n}"] = evals[-1][f"accuracy_{n}"]
            row[f"exact_{n}"] = evals[-1][f"exact_{n}"]
        rows.append(row)
        print(json.dumps(row), flush=True)
    largest = max(args.eval_sizes)
    with open(os.path.join(args.out, "basin.json"), "w") as fh:
        json.dump(rows, fh, indent=1)
    sizes = " / ".join(f"{n:,}" for n in args.eval_sizes)
    lines = [f"| L1 | sigma | runs exact at n = {largest:,} | accuracy at n = {sizes} (per seed) | "
             "loss first -> last (mean) | distance travelled (mean) |", "|---|---|---|---|---|---|"]
    for l1 in args.l1:
        for sigma in args.sigmas:
            cell = [r for r in rows if r["l1"] == l1 and r["sigma"] == sigma]
            acc = "; ".join(" / ".join("n/a" if r[f"accuracy_{n}"] is None else f"{r[f'accuracy_{n}']:.4f}"
                                       for n in args.eval_sizes) for r in cell)
            broke = [r["diverged_at"] for r in cell if r["diverged_at"] is not None]
            note = f" ({len(broke)} diverged, at step {', '.join(map(str, broke))})" if broke else ""
            firsts = [r["loss_first"] for r in cell if r["loss_first"] is not None]
            lasts = [r["loss_last"] for r in cell if r["loss_last"] is not None]
            lines.append(f"| {l1:g} | {sigma:g} | {sum(r[f'exact_{largest}'] for r in cell)} / {len(cell)}{note} | "
                         f"{acc} | {_mean(firsts)} -> {_mean(lasts)} | "
                         f"{sum(r['distance'] for r in cell) / len(cell):.3g} |")
    with open(os.path.join(args.out, "basin.md"), "w") as fh:
        fh.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
