"""Trace what the optimiser does, step by step, in the first steps of a training run.

    python benchmarks/trace_training.py --algo bellman_ford --init compiled --steps 61

Replays ``engine.train``'s loop for one configuration (same module, sampler, seed, Adam and
clipping) and prints, per step, the loss, the gradient norm (before clipping), the largest
gradient entry (after clipping) and its weight, and the largest distance any entry has moved from the start
and its weight. This is how the divergence of training from the compiled Bellman-Ford point
was traced (docs/compiled_in_learned.md). Needs the ``torch`` extra.
"""
from __future__ import annotations

import argparse
import os
import sys


def main(argv=None) -> int:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import numpy as np
    import torch

    from engine.algorithms.specs import learned_spec
    from engine.learn.trainer import TrainConfig, batch_loss, initial_module, sample_batch

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--algo", default="bellman_ford")
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--init", default="compiled", choices=["random", "compiled"])
    p.add_argument("--init-noise", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=61)
    args = p.parse_args(argv)
    cfg = TrainConfig(algo=args.algo, hidden=args.hidden, seed=args.seed, steps=args.steps, init=args.init,
                      init_noise=args.init_noise)
    torch.manual_seed(cfg.seed)
    spec = learned_spec(cfg.algo, cfg.processor, cfg.hidden, cfg.gated, cfg.heads, cfg.hint_mode, cfg.layer_norm)
    module = initial_module(cfg, spec)
    opt = torch.optim.Adam(module.parameters(), lr=cfg.lr)
    rng = np.random.RandomState(cfg.seed)
    start = {name: w.detach().clone() for name, w in module.named_parameters()}
    print("step  loss        grad norm   largest gradient entry          largest move from the start")
    for step in range(1, cfg.steps + 1):
        loss = batch_loss(module, cfg, sample_batch(cfg, rng, cfg.batch, cfg.train_sizes))
        opt.zero_grad()
        loss.backward()
        norm = float(torch.nn.utils.clip_grad_norm_(module.parameters(), cfg.grad_clip))
        grad = max((float(w.grad.abs().max()), name) for name, w in module.named_parameters() if w.grad is not None)
        if not np.isfinite(norm) or not np.isfinite(loss.item()):
            print(f"{step:4d}  {loss.item():.3e}  {norm:.3e}  (not finite: engine.train stops here)")
            break
        opt.step()
        moved = max((float((w.detach() - start[name]).abs().max()), name) for name, w in module.named_parameters())
        print(f"{step:4d}  {loss.item():.3e}  {norm:.3e}  {grad[0]:.3e} {grad[1]:<20s} {moved[0]:.3e} {moved[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
