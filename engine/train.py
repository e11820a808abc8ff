"""``python -m engine.train``: train a GNN of the family on CLRS traces.

    python -m engine.train --algo bfs --processor mpnn --hidden 128 --seed 0 --out DIR
    python -m engine.train --algo bfs --seeds 0-4 --cluster local:2 --out DIR   # a seed sweep on Dask

See :mod:`engine.learn.trainer` for the setup (CLRS's defaults) and the files written to DIR.
"""
from __future__ import annotations

import json
import sys

from ._cli import Parser, non_negative_float, non_negative_int, parse_counts, parse_seeds, positive_int, run_main
from .algorithms import ALGORITHMS
from .errors import EngineError
from .model.registry import PROCESSOR_KINDS


def _main(argv) -> int:
    from .algorithms.specs import HINT_MODES
    from .learn.trainer import TrainConfig, train, training_device

    p = Parser(prog="python -m engine.train", description=__doc__.split("\n\n")[0])
    p.add_argument("--algo", required=True, choices=sorted(ALGORITHMS))
    p.add_argument("--processor", default="mpnn", choices=list(PROCESSOR_KINDS))
    p.add_argument("--hidden", type=positive_int, default=128)
    p.add_argument("--heads", type=positive_int, default=1, help="attention heads (gatv2)")
    p.add_argument("--hint-mode", default="encoded_decoded", choices=list(HINT_MODES))
    p.add_argument("--protocol", default="sparse", choices=["sparse", "clrs"],
                   help="clrs: CLRS's setup (fully connected processor, pointers over all nodes, random_pos, "
                        "layer norm, ground-truth hint 0, soft hints when evaluating); sparse (default): over "
                        "the input's edges, as models run at 10^6 nodes")
    p.add_argument("--layer-norm", action="store_true", default=None,
                   help="layer-normalise the processor output (CLRS use_ln; on under --protocol clrs)")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--seeds", type=parse_seeds, default=None,
                   help="a seed sweep (e.g. 0-4): one run per seed in OUT/seed-<s>, resumable, in the sweep "
                        "log OUT/seeds.jsonl")
    p.add_argument("--cluster", default=None,
                   help="with --seeds: train the seeds on Dask, local:N (N worker processes) or tcp://HOST:PORT")
    p.add_argument("--steps", type=positive_int, default=None)
    p.add_argument("--batch", type=positive_int, default=None)
    p.add_argument("--init", default="random", choices=["random", "compiled"],
                   help="start from random weights or from the compiled point of the same spec")
    p.add_argument("--init-noise", type=non_negative_float, default=0.0, metavar="SIGMA",
                   help="Gaussian noise on the start point, SIGMA times each tensor's RMS")
    p.add_argument("--l1", type=non_negative_float, default=0.0, metavar="LAMBDA", help="L1 penalty on every weight")
    p.add_argument("--eval-sizes", type=parse_counts, default=None,
                   help="sizes scored at every evaluation (ER, mean degree 5), e.g. 64,1e3,1e5")
    p.add_argument("--config", default=None, help="JSON file overriding TrainConfig fields")
    p.add_argument("--force-new", action="store_true",
                   help="start afresh in --out, replacing the files of a run there (else it resumes)")
    p.add_argument("--device", default="auto",
                   help="auto (default: CUDA when this machine has it, else the CPU), cpu, cuda or cuda:N; "
                        "not part of the run's configuration, so a run resumes on another device")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    fields = {"algo": args.algo, "processor": args.processor, "hidden": args.hidden, "seed": args.seed,
              "heads": args.heads, "hint_mode": args.hint_mode, "init": args.init, "protocol": args.protocol,
              "init_noise": args.init_noise, "l1": args.l1}
    if args.layer_norm:
        fields["layer_norm"] = True
    if args.eval_sizes is not None:
        fields["eval_sizes"] = args.eval_sizes
    if args.config:
        try:
            with open(args.config) as fh:
                extra = json.load(fh)
        except json.JSONDecodeError as exc:
            raise EngineError(f"--config {args.config} is not JSON ({exc})") from None
        if not isinstance(extra, dict):
            raise EngineError(f"--config {args.config} must hold a JSON object of TrainConfig fields")
        fields.update(extra)
    if args.steps is not None:
        fields["steps"] = args.steps
    if args.batch is not None:
        fields["batch"] = args.batch
    cfg = TrainConfig.from_fields(fields)
    training_device(args.device)  # a device this machine lacks is refused before any run starts
    if args.seeds is None:
        if args.cluster:
            raise EngineError("--cluster trains a seed sweep: give --seeds too (e.g. --seeds 0-4)")
        result = train(cfg, args.out, force_new=args.force_new, device=args.device)
        print(json.dumps(result))
        if result.get("diverged"):
            print(f"engine.train: the run diverged at step {result['step']} (non-finite loss or gradient); "
                  f"its last finite weights are in {args.out}", file=sys.stderr)
            return 1
        return 0
    from .analysis.sweep import ResultLog, run_cells
    from .learn.trainer import SeedTask

    if args.force_new:
        raise EngineError("--force-new replaces one run; remove the sweep's directory to start a sweep afresh")
    rows = run_cells([{"seed": s} for s in args.seeds], SeedTask(cfg.plain(), args.out, args.device), ResultLog(args.out, "seeds"),
                     cluster=args.cluster, desc="train", retries=0)
    for row in rows:
        print(json.dumps(row))
    return 1 if any(r["status"] != "ok" or r.get("diverged") for r in rows) else 0


def main(argv=None) -> int:
    """The command line; returns the exit status (2: invalid input, with one line on stderr)."""
    return run_main(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
