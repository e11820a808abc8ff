"""The compiled point under the training objective.

A model compiled into a learned architecture (``engine.compile(algo, processor="mpnn")``) is
a point of the learned parameter space, so the training loss can score it:
:func:`compiled_point` gives the loss on CLRS training batches (by term), its gradient norm,
and how the loss changes along random directions around the point (a local minimum has no
direction that lowers it).

    python -m engine.analysis.compiled_point --algo bfs --processor mpnn --hidden 128
    python -m engine.analysis.compiled_point --algo dfs --message-graph complete --batches 2 --batch 16

prints the report as JSON (needs the ``torch`` extra).
"""
from __future__ import annotations

import json
import sys

import numpy as np

from .._cli import Parser, non_negative_int, positive_float, positive_int, run_main
from ..algorithms import ALGORITHMS
from ..model.spec import Model


def compiled_point(model: Model, algo: str, *, batches: int = 4, batch: int = 32, seed: int = 0,
                   directions: int = 8, eps: float = 1e-3) -> dict:
    """The training loss of ``model`` (in a learned architecture) on CLRS training batches.

    Parameters
    ----------
    model : Model
        A model whose spec is a learned spec of ``algo`` (compiled or trained).
    batches, batch : int
        CLRS training batches (sizes 4/7/11/13/16, ``p`` drawn from 0.1..0.9) and their size.
    directions, eps : int, float
        Random directions (Gaussian, scaled per tensor by ``eps`` times its RMS) along which
        the loss is evaluated again.

    Returns
    -------
    dict
        ``loss`` (mean over batches), ``terms`` (per term), ``grad_norm`` (L2 over every
        parameter, of the mean loss), ``direction_changes`` (loss at ``point + eps d`` minus
        the loss, per direction; None where it is not finite), ``non_finite_directions`` and
        ``minimum_along_directions`` (no finite direction lowers it; None if none is finite).
    """
    import torch

    from ..learn.module import GNNModule
    import copy

    from ..learn.trainer import TrainConfig, loss_terms, perturb, sample_batch

    cfg = TrainConfig(algo=algo, batch=batch, seed=seed).validate()
    module = GNNModule.from_model(model)
    rng = np.random.RandomState(seed)
    data = [sample_batch(cfg, rng, batch, cfg.train_sizes) for _ in range(batches)]

    def mean_terms(m):
        totals = {}
        for d in data:
            for name, value in loss_terms(m, cfg, d).items():
                totals[name] = totals.get(name, 0.0) + value / batches
        return totals

    terms = mean_terms(module)
    loss = sum(terms.values(), torch.zeros(()))
    module.zero_grad()
    loss.backward()
    grad = float(torch.sqrt(sum((p.grad.double() ** 2).sum() for p in module.parameters() if p.grad is not None)))
    noise = np.random.default_rng(seed)
    changes = []
    with torch.no_grad():
        for _ in range(directions):
            other = copy.deepcopy(module)
            perturb(other, eps, noise)
            changes.append(float(sum(mean_terms(other).values()) - loss))
    finite = [c for c in changes if np.isfinite(c)]
    return {"algorithm": algo, "model": model.name, "batches": batches, "batch": batch,
            "loss": float(loss.detach()), "terms": {k: float(v.detach()) for k, v in terms.items()}, "grad_norm": grad,
            "eps": eps, "direction_changes": [c if np.isfinite(c) else None for c in changes],
            "non_finite_directions": len(changes) - len(finite),
            # a direction whose loss is not finite (weights so large that eps times their RMS
            # overflows) neither confirms nor refutes a minimum
            "minimum_along_directions": all(c >= 0 for c in finite) if finite else None}


def _main(argv) -> int:
    p = Parser(prog="python -m engine.analysis.compiled_point", description=__doc__.split("\n\n")[0])
    p.add_argument("--algo", required=True, choices=sorted(ALGORITHMS))
    p.add_argument("--processor", default="mpnn", help="the learned architecture compiled into")
    p.add_argument("--hidden", type=positive_int, default=128)
    p.add_argument("--message-graph", default="input", choices=["input", "complete"],
                   help="the learned spec's message graph (complete: CLRS's fully connected MPNN, where DFS compiles)")
    p.add_argument("--model", default=None, help="a saved Model instead of the compiled one")
    p.add_argument("--batches", type=positive_int, default=4)
    p.add_argument("--batch", type=positive_int, default=32)
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--directions", type=non_negative_int, default=8)
    p.add_argument("--eps", type=positive_float, default=1e-3)
    args = p.parse_args(argv)
    from ..compiler import compile as compile_model

    model = Model.load(args.model) if args.model else compile_model(args.algo, processor=args.processor,
                                                                     hidden=args.hidden,
                                                                     message_graph=args.message_graph)
    report = compiled_point(model, args.algo, batches=args.batches, batch=args.batch, seed=args.seed,
                            directions=args.directions, eps=args.eps)
    print(json.dumps(report, indent=1))
    return 0


def main(argv=None) -> int:
    return run_main(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
