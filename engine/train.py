"""``python -m engine.train``: train a GNN of the family on CLRS traces.

    python -m engine.train --algo bfs --processor mpnn --hidden 128 --seed 0 --out DIR

See :mod:`engine.learn.trainer` for the setup (CLRS's defaults) and the files written to DIR.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from ._cli import run_main
from .algorithms import ALGORITHMS
from .model.registry import PROCESSOR_KINDS


def _main(argv) -> int:
    from .learn.specs import HINT_MODES
    from .learn.trainer import TrainConfig, train

    p = argparse.ArgumentParser(prog="python -m engine.train", description=__doc__.split("\n\n")[0])
    p.add_argument("--algo", required=True, choices=sorted(ALGORITHMS))
    p.add_argument("--processor", default="mpnn", choices=list(PROCESSOR_KINDS))
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--heads", type=int, default=1, help="attention heads (gatv2)")
    p.add_argument("--hint-mode", default="encoded_decoded", choices=list(HINT_MODES))
    p.add_argument("--layer-norm", action="store_true", help="layer-normalise the processor output (CLRS use_ln)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--batch", type=int, default=None)
    p.add_argument("--config", default=None, help="JSON file overriding TrainConfig fields")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    fields = {"algo": args.algo, "processor": args.processor, "hidden": args.hidden, "seed": args.seed,
              "heads": args.heads, "hint_mode": args.hint_mode, "layer_norm": args.layer_norm}
    if args.config:
        with open(args.config) as fh:
            extra = json.load(fh)
        unknown = set(extra) - {f.name for f in dataclasses.fields(TrainConfig)}
        if unknown:
            print(f"error: unknown config fields {sorted(unknown)}", file=sys.stderr)
            return 2
        fields.update({k: tuple(v) if isinstance(v, list) else v for k, v in extra.items()})
    if args.steps is not None:
        fields["steps"] = args.steps
    if args.batch is not None:
        fields["batch"] = args.batch
    result = train(TrainConfig(**fields), args.out)
    print(json.dumps(result))
    return 0


def main(argv=None) -> int:
    return run_main(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
