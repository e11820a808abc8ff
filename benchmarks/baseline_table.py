"""The single-task baseline table: trained runs scored on CLRS-30's test split, by protocol.

    python -m engine.train --algo bfs --protocol clrs --seeds 0-2 --out docs/runs/clrs/bfs-mpnn
    python benchmarks/baseline_table.py docs/runs/clrs/*/seed-* docs/runs/bfs-mpnn/seed-* \
        docs/runs/sparse/*/seed-* [--json FILE]

Each run directory's ``best.npz`` (the best-on-validation Model) is scored by
:func:`engine.analysis.clrs_test.test_score`: CLRS-30's test split (32 graphs of 64 nodes,
``p = 0.5``, sampler seed 3), evaluated under the run's own protocol (``clrs``: fully
connected, ground-truth hint 0, soft hints; ``sparse``: over the input's edges, hint 0
decoded, hard hints, as the executor runs it), the reference's step count; the score is the
output pointer accuracy pooled over the test nodes, as CLRS reports it, beside the best rule
that runs no algorithm on the same graphs (also for an algorithm none of the runs trained,
so the table says what a score would have to beat). Runs are grouped by protocol, algorithm,
processor and hint mode: mean, standard deviation over training seeds, each seed's value and
the training steps each run took, with the published figures beside them. A run evaluated
with soft hints (the ``clrs`` protocol) is also scored with its decoded hints fed back hard
(CLRS's ``hint_repred_mode='hard'``; the same ground-truth hint 0), the column that tells
an error of soft feedback from one of the learned steps. A run whose
``state.pt`` is short of its step count is still training: it is left out and listed.

Each run's scores are kept beside its checkpoint (``test_score.json``, keyed by the SHA-256 of
``best.npz`` and :data:`SCORER`), so adding a run scores only that run; ``--rescore`` ignores
them.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from collections import defaultdict

import numpy as np

NAMES = {"bfs": "BFS", "bellman_ford": "Bellman-Ford", "dfs": "DFS"}
# Published single-task test scores (n = 64, CLRS-30's test split): MPNN as CLRS-30 reports it
# (Veličković et al. 2022) and Triplet-GMPNN (Ibarz et al. 2022); mean ± std over seeds.
PUBLISHED = {
    "bfs": "MPNN about 99-100",
    "bellman_ford": "MPNN 92.01 ± 0.28; Triplet-GMPNN 97.39 ± 0.19",
    "dfs": "MPNN 6.54 ± 0.56; Triplet-GMPNN 47.79 ± 4.19",
}


def training_state(run_dir: str):
    """``(step, steps)`` of a run whose ``state.pt`` says it is still short of its step
    count, else None (finished runs, and runs without a checkpoint)."""
    path = os.path.join(run_dir, "state.pt")
    if not os.path.exists(path):
        return None
    from engine.learn.trainer import load_state

    state = load_state(path)
    if state["step"] < state["config"]["steps"] and not state.get("diverged"):
        return state["step"], state["config"]["steps"]
    return None


SCORER = 1  # bump when the test split or the scoring changes: kept scores are then recomputed
SCORE_FILE = "test_score.json"
SCORE_KEYS = ("score", "hard", "trivial", "best_trivial", "evaluation")


def checkpoint_digest(run_dir: str) -> str:
    with open(os.path.join(run_dir, "best.npz"), "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def kept_score(run_dir: str) -> dict | None:
    """The scores kept beside this run's checkpoint, if they are of this checkpoint and scorer."""
    path = os.path.join(run_dir, SCORE_FILE)
    if not os.path.exists(path):
        return None
    with open(path) as fh:
        kept = json.load(fh)
    if kept.get("scorer") != SCORER or kept.get("checkpoint_sha256") != checkpoint_digest(run_dir):
        return None
    return {k: kept[k] for k in SCORE_KEYS}


def keep_score(run_dir: str, scores: dict) -> None:
    from engine._files import atomic_write

    doc = {"scorer": SCORER, "checkpoint_sha256": checkpoint_digest(run_dir), **{k: scores[k] for k in SCORE_KEYS}}

    def write(tmp: str) -> None:
        with open(tmp, "w") as fh:
            json.dump(doc, fh, indent=1)

    atomic_write(os.path.join(run_dir, SCORE_FILE), write)


def run_info(run_dir: str) -> dict:
    import engine

    model = engine.Model.load(os.path.join(run_dir, "best.npz"))
    spec = model.spec
    steps = 0
    with open(os.path.join(run_dir, "metrics.jsonl")) as fh:
        for line in fh:
            steps = max(steps, json.loads(line)["step"])
    mode = "encoded_decoded" if spec.get("feedback") else ("decoded_only" if spec.get("hints") else "none")
    protocol = (spec["description"].get("protocol") or {}).get("name", "sparse")
    return {"dir": run_dir, "model": model, "algorithm": spec["description"]["algorithm"], "protocol": protocol,
            "processor": (spec.get("processor") or {}).get("kind", "mpnn"), "hint_mode": mode,
            "layer_norm": bool(spec["layers"][0]["update"].get("layer_norm")), "train_steps": steps}


def main(argv=None) -> int:
    from engine.analysis.clrs_test import test_data, test_score, trivial_scores

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+")
    p.add_argument("--json", default=None)
    p.add_argument("--rescore", action="store_true", help="score every run again (ignore test_score.json)")
    args = p.parse_args(argv)
    groups = defaultdict(list)
    data = {}
    training = []
    for run in args.runs:
        if not os.path.exists(os.path.join(run, "best.npz")):
            continue
        unfinished = training_state(run)
        if unfinished is not None:  # scored once it has trained all its steps
            training.append((run, *unfinished))
            continue
        info = run_info(run)
        algo = info["algorithm"]
        kept = None if args.rescore else kept_score(run)
        if kept is None:
            if algo not in data:
                data[algo] = test_data(algo)
            result = test_score(info["model"], algo, data=data[algo])
            hard = result["score"] if result["feedback"] == "hard" else \
                test_score(info["model"], algo, feedback="hard", data=data[algo])["score"]
            kept = {"score": result["score"], "hard": hard, "trivial": result["trivial"],
                    "best_trivial": result["best_trivial"],
                    "evaluation": f"{result['feedback']} hints, hint 0 {result['hint0']}"}
            keep_score(run, kept)
        info.pop("model")
        info.update(kept)
        print(f"{run:<48s} {info['protocol']:<6s} {algo:<13s} {info['processor']:<6s} steps {info['train_steps']:>6d}  "
              f"pointer accuracy: {info['score']:.4f} (hints fed back hard: {info['hard']:.4f})", flush=True)
        groups[(info["protocol"], algo, info["processor"], info["hint_mode"], info["layer_norm"])].append(info)
    print()
    print("| protocol | algorithm | processor | seeds | training steps | pointer accuracy, CLRS-30 test split "
          "(mean ± std; per seed) | the same, hints fed back hard | best trivial rule, same graphs | published |")
    print("|---|---|---|---|---|---|---|---|---|")
    table = []
    for (protocol, algo, proc, mode, ln), runs in sorted(groups.items()):
        scores = np.array([r["score"] for r in runs])
        hard = np.array([r["hard"] for r in runs])
        hard_cell = "(evaluated hard)" if runs[0]["evaluation"].startswith("hard") else \
            f"{100 * hard.mean():.2f}% ± {100 * hard.std():.2f} ({', '.join(f'{100 * s:.2f}' for s in hard)})"
        steps = sorted({r["train_steps"] for r in runs})
        trivial, best = runs[0]["trivial"], runs[0]["best_trivial"]  # the same test graphs for every run
        each = ", ".join(f"{100 * s:.2f}" for s in scores)
        name = f"{'MPNN' if proc == 'mpnn' else 'GATv2'}{' + LN' if ln else ''}"
        if mode != "encoded_decoded":
            name += f" ({mode})"
        print(f"| {protocol} | {NAMES.get(algo, algo)} | {name} | {len(runs)} | {'/'.join(f'{s:,}' for s in steps)} | "
              f"**{100 * scores.mean():.2f}% ± {100 * scores.std():.2f}** ({each}) | {hard_cell} | "
              f"{100 * trivial[best]:.2f}% ({best}) | {PUBLISHED.get(algo, '')} |")
        table.append({"protocol": protocol, "algorithm": algo, "processor": proc, "hint_mode": mode,
                      "layer_norm": ln, "seeds": len(runs), "train_steps": steps, "mean": float(scores.mean()),
                      "std": float(scores.std()), "runs": {r["dir"]: r["score"] for r in runs},
                      "hard": {r["dir"]: r["hard"] for r in runs},
                      "evaluation": runs[0]["evaluation"], "trivial": trivial})
    scored = {r["algorithm"] for runs in groups.values() for r in runs}
    for algo in [a for a in NAMES if a not in scored]:  # no finished run: what a score would have to beat
        trivial, best = trivial_scores(algo)
        print(f"| | {NAMES[algo]} | (no finished run) | 0 | | | | {100 * trivial[best]:.2f}% ({best}) | "
              f"{PUBLISHED[algo]} |")
        table.append({"algorithm": algo, "seeds": 0, "trivial": trivial})
    for run, step, steps in training:
        print(f"still training (left out): {run} at step {step:,} of {steps:,}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(table, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
