"""Seconds per training step (sample a batch, loss, backward, clip, Adam), per algorithm.

    python benchmarks/train_step.py [--algos bfs,bellman_ford,dfs] [--protocol sparse|clrs]
                                    [--steps 20] [--processor mpnn] [--json FILE]

Hidden 128, batch 32, CLRS's training sizes: what ``python -m engine.train`` runs per step,
without the periodic evaluation. The median over ``--steps`` steps after two warm-up steps;
torch's thread count and ``lscpu``'s model and ISA flags are reported with it. Runs against
any checkout of this repository (``PYTHONPATH=CHECKOUT``), so two versions can be timed
alternately in one window.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

try:  # imported with the benchmarks package (asv's discovery)
    from .batch_eval import cpu_description
except ImportError:  # run as a script, any checkout on PYTHONPATH: this script's folder
    from batch_eval import cpu_description


def step_seconds(algo: str, protocol: str, processor: str, steps: int) -> float:
    import torch

    from engine.algorithms.specs import learned_spec
    from engine.learn import trainer
    from engine.learn.trainer import TrainConfig, batch_loss, initial_module, sample_batch

    fields = {"algo": algo, "processor": processor}
    if protocol != "sparse":
        fields["protocol"] = protocol
    cfg = TrainConfig.from_fields(fields)
    spec = cfg.spec() if hasattr(cfg, "spec") else learned_spec(cfg.algo, cfg.processor, cfg.hidden, cfg.gated,
                                                                  cfg.heads, cfg.hint_mode, cfg.layer_norm)
    torch.manual_seed(0)
    module = initial_module(cfg, spec)
    if hasattr(trainer, "gradient"):  # the trainer's own step
        opt = trainer.make_optimizer(module, cfg)
        gradient = trainer.gradient
    else:  # a checkout from before it was one function: the same step, as its train() wrote it
        opt = torch.optim.Adam(module.parameters(), lr=cfg.lr)

        def gradient(module, cfg, data, opt):
            loss = batch_loss(module, cfg, data)
            opt.zero_grad()
            loss.backward()
            return loss.item(), float(torch.nn.utils.clip_grad_norm_(module.parameters(), cfg.grad_clip))
    rng = np.random.RandomState(0)
    if hasattr(trainer, "BatchStream"):  # batches drawn while the previous step computes, as train() does
        stream = trainer.BatchStream(cfg, rng, steps + 2)
        draw = lambda: stream.next()[0]  # noqa: E731
    else:
        draw = lambda: sample_batch(cfg, rng, cfg.batch, cfg.train_sizes)  # noqa: E731
    times = []
    for i in range(steps + 2):
        t0 = time.perf_counter()
        data = draw()
        gradient(module, cfg, data, opt)
        opt.step()
        if i >= 2:
            times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--algos", default="bfs,bellman_ford,dfs")
    p.add_argument("--protocol", default="sparse")
    p.add_argument("--processor", default="mpnn")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    import torch

    import engine

    row = {"checkout": os.path.dirname(os.path.dirname(engine.__file__)), "protocol": args.protocol,
           "processor": args.processor, "torch_threads": torch.get_num_threads(), "cpu": cpu_description()}
    for algo in args.algos.split(","):
        row[algo] = step_seconds(algo, args.protocol, args.processor, args.steps)
    print(json.dumps(row))
    if args.json:
        with open(args.json, "a") as fh:
            fh.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
