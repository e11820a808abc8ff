"""Train a GNN of the family on CLRS traces (outputs plus hints), CLRS's setup by default
(the command line is :mod:`engine.train`).

Defaults follow CLRS: Erdős–Rényi graphs from CLRS's samplers, train sizes 4/7/11/13/16
with ``p`` drawn from 0.1..0.9, validation at 16, batch 32, Adam 1e-3, gradient clipping
1.0, 10,000 steps, output loss plus hint loss with CLRS's per-type losses (pointer and
categorical: cross-entropy; mask: binary cross-entropy; scalar: squared error), hints
decoded every step and fed back as inputs of the next one (CLRS's ``encoded_decoded`` hint
mode: soft while training, exactly as the executor decodes them when evaluating);
``--hint-mode decoded_only|none`` for the other modes. ``--config FILE`` (JSON) overrides
any field of :class:`TrainConfig`.

``DIR`` receives ``best.npz`` (the best-on-validation :class:`~engine.Model`, runnable on
every backend), ``last.npz``, ``metrics.jsonl`` and ``state.pt`` (model, optimiser and
sampler state). Every file is written atomically, and a run started again with the same
``DIR`` resumes from ``state.pt``.
"""
from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ..algorithms import algorithm, reference
from ..algorithms.samplers import CLRS_TRAIN_P, sample
from .module import GNNModule, GraphBatch, segment_log_softmax
from .specs import learned_spec


@dataclass
class TrainConfig:
    algo: str = "bfs"
    processor: str = "mpnn"
    hidden: int = 128
    seed: int = 0
    steps: int = 10_000
    batch: int = 32
    lr: float = 1e-3
    grad_clip: float = 1.0
    train_sizes: tuple = (4, 7, 11, 13, 16)
    p: tuple = CLRS_TRAIN_P
    val_size: int = 16
    val_graphs: int = 32
    eval_every: int = 100
    hint_loss_weight: float = 1.0
    gated: bool = False
    heads: int = 1
    layer_norm: bool = False
    hint_mode: str = "encoded_decoded"
    extra: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------- data
def sample_batch(cfg: TrainConfig, rng: np.random.RandomState, count: int, sizes) -> dict:
    """``count`` CLRS instances with their reference traces, as one disjoint-union batch."""
    info = algorithm(cfg.algo)
    graphs, sources, refs = [], [], []
    for _ in range(count):
        n = int(rng.choice(sizes))
        _, g, s = sample(cfg.algo, n, rng, p=cfg.p)
        graphs.append(g)
        sources.append(s if info.has_source else None)
        refs.append(reference(cfg.algo, g, s, trace=True))
    return {"graphs": graphs, "sources": sources, "refs": refs}


def _targets(data, batch: GraphBatch, name: str, stage: str, T: int):
    """Stack one output or hint over the batch: (T, N) targets and a (T, N) validity mask."""
    N = batch.num_nodes
    tgt = np.zeros((T, N) if stage == "hints" else (N,), dtype=np.float64)
    valid = np.zeros((T, N) if stage == "hints" else (N,), dtype=bool)
    cat = None
    for g, ref, off in zip(data["graphs"], data["refs"], batch.offsets):
        sl = slice(off, off + g.num_nodes)
        if stage == "outputs":
            tgt[sl] = ref.outputs[name] + off
            valid[sl] = True
            continue
        h = ref.hints[name]
        kind = algorithm(ref.algorithm).hint(name).kind
        if kind == "categorical":
            if cat is None:
                cat = np.zeros((T, N), dtype=np.int64)
            cat[:len(h), sl] = h.argmax(axis=-1)
        elif kind == "pointer":
            tgt[:len(h), sl] = h + off
        else:
            tgt[:len(h), sl] = h
        valid[1:len(h), sl] = True  # hint 0 is the initial state; steps 1.. are predicted
    return (cat if cat is not None else tgt), valid


def pointer_nll(module, name, batch, z, E, target, mask):
    """Cross-entropy of the pointer decoder over in-neighbours and self."""
    scores, src, pos, _ = module.pointer_scores(name, batch, z, E)
    logp = segment_log_softmax(scores, pos, batch.num_nodes)
    hit = (src == torch.from_numpy(target.astype(np.int64))[pos]) & torch.from_numpy(mask)[pos]
    count = max(int(mask.sum()), 1)
    return -(logp * hit).sum() / count


def decoder_loss(module, kind, name, batch, z, E, target, mask):
    """CLRS's loss of one decoder over the valid entries (``mask``) of a (repeated) batch."""
    if kind == "pointer":
        return pointer_nll(module, name, batch, z, E, target, mask)
    logits = module.logits(name, batch, z)
    m = torch.from_numpy(mask)
    count = max(int(mask.sum()), 1)
    if kind == "mask":
        t = torch.from_numpy(target.astype(np.float32))
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits[:, 0], t, reduction="none")
        return (loss * m).sum() / count
    if kind == "scalar":
        t = torch.from_numpy(target.astype(np.float32))
        return (((logits[:, 0] - t) ** 2) * m).sum() / count
    if kind == "categorical":
        loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(target), reduction="none")
        return (loss * m).sum() / count
    # mask_one: a softmax over each graph's nodes
    logp = segment_log_softmax(logits[:, 0], batch.graph_index, batch.num_graphs)
    t = torch.from_numpy(target.astype(np.float32))
    return -(logp * t * m).sum() / max(1, int((t.numpy() * mask).sum()))


def _final(stacked, steps_per_item):
    """Row ``i`` of ``stacked[steps_per_item[i]]`` (each graph's inputs after its own T_i steps)."""
    return stacked[torch.from_numpy(steps_per_item), torch.arange(stacked.shape[1])]


def batch_loss(module, cfg: TrainConfig, data) -> torch.Tensor:
    """Output loss (from each graph's final step) plus the hint loss over every step, with
    hints fed back soft when the spec feeds them back (CLRS's training)."""
    spec = module.spec
    batch = GraphBatch(data["graphs"], data["sources"], spec)
    T = max(r.steps for r in data["refs"])
    _, zs, Es, _ = module.rollout(batch, T, hard=False)
    info = algorithm(cfg.algo)
    sizes = [g.num_nodes for g in data["graphs"]]
    steps_per_node = np.repeat([r.steps for r in data["refs"]], sizes)
    z_final = _final(torch.stack(zs), steps_per_node)
    E_final = None
    if batch.E is not None:
        steps_per_edge = np.repeat([r.steps for r in data["refs"]], [g.num_edges for g in data["graphs"]])
        E_final = _final(torch.stack(Es), steps_per_edge)
    loss = torch.zeros(())
    for name, dec in spec["outputs"].items():
        target, valid = _targets(data, batch, name, "outputs", T)
        loss = loss + decoder_loss(module, info.output(name).kind, dec, batch, z_final, E_final, target, valid)
    if cfg.hint_loss_weight and T > 1:
        # every step's hints at once: steps 1 .. T-1 as disjoint copies of the batch
        reps = batch.repeat(T - 1)
        Z = torch.cat(zs[1:T])
        E = None if batch.E is None else torch.cat(Es[1:T])
        N = batch.num_nodes
        shift = (np.arange(1, T) - 1)[:, None] * N
        for name, dec in spec["hints"].items():
            target, valid = _targets(data, batch, name, "hints", T)
            target, valid = target[1:T], valid[1:T]
            kind = info.hint(name).kind
            if kind == "pointer":
                target = target + shift
            loss = loss + cfg.hint_loss_weight * decoder_loss(
                module, kind, dec, reps, Z, E, target.reshape(-1), valid.reshape(-1))
    return loss


def pointer_accuracy(module, data) -> float:
    """Share of nodes whose decoded primary output (a pointer) equals the reference's."""
    name = algorithm(data["refs"][0].algorithm).primary_output
    batch = GraphBatch(data["graphs"], data["sources"], module.spec)
    T = max(r.steps for r in data["refs"])
    with torch.no_grad():
        _, zs, Es, _ = module.rollout(batch, T, hard=True)
        steps_per_node = np.repeat([r.steps for r in data["refs"]], [g.num_nodes for g in data["graphs"]])
        z_final = _final(torch.stack(zs), steps_per_node)
        E_final = None
        if batch.E is not None:
            steps_per_edge = np.repeat([r.steps for r in data["refs"]], [g.num_edges for g in data["graphs"]])
            E_final = _final(torch.stack(Es), steps_per_edge)
        pred = module.decode(module.spec["outputs"][name], batch, z_final, E_final).numpy()
    want = np.concatenate([r.outputs[name] + off for r, off in zip(data["refs"], batch.offsets)])
    return float((pred == want).mean())


# ----------------------------------------------------------------------------- files
def _atomic(path, write):
    tmp = f"{path}.tmp-{os.getpid()}"
    write(tmp)
    os.replace(tmp, path)


def train(cfg: TrainConfig, out: str, progress=True) -> dict:
    """Train (or resume) into directory ``out``; returns the final metrics."""
    algorithm(cfg.algo)
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(cfg.seed)
    spec = learned_spec(cfg.algo, cfg.processor, cfg.hidden, cfg.gated, cfg.heads, cfg.hint_mode, cfg.layer_norm)
    module = GNNModule.initialised(spec, cfg.seed, scale=1.0)
    opt = torch.optim.Adam(module.parameters(), lr=cfg.lr)
    rng = np.random.RandomState(cfg.seed)
    val = sample_batch(cfg, np.random.RandomState(10_000 + cfg.seed), cfg.val_graphs, [cfg.val_size])
    state_path = os.path.join(out, "state.pt")
    step, best = 0, -1.0
    if os.path.exists(state_path):
        state = torch.load(state_path, weights_only=False)
        module.load_state_dict(state["module"])
        opt.load_state_dict(state["optimizer"])
        rng.set_state(state["rng"])
        step, best = state["step"], state["best"]
    log = open(os.path.join(out, "metrics.jsonl"), "a")
    t0 = time.perf_counter()
    while step < cfg.steps:
        data = sample_batch(cfg, rng, cfg.batch, cfg.train_sizes)
        loss = batch_loss(module, cfg, data)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(module.parameters(), cfg.grad_clip)
        opt.step()
        step += 1
        record = {"step": step, "loss": loss.item()}
        if step % cfg.eval_every == 0 or step == cfg.steps:
            acc = pointer_accuracy(module, val)
            record["val_pointer_accuracy"] = acc
            if acc > best:
                best = acc
                model = module.to_model()
                _atomic(os.path.join(out, "best.npz"), lambda p: model.save(p))
            _atomic(os.path.join(out, "last.npz"), lambda p: module.to_model().save(p))
            snapshot = {"module": module.state_dict(), "optimizer": opt.state_dict(), "rng": rng.get_state(),
                        "step": step, "best": best, "config": dataclasses.asdict(cfg)}
            _atomic(state_path, lambda p: torch.save(snapshot, p))
        log.write(json.dumps(record) + "\n")
        log.flush()
        if progress and sys.stderr.isatty():
            sys.stderr.write(f"\r  step {step}/{cfg.steps}  loss {record['loss']:.4f}  best val {best:.3f}  "
                             f"{time.perf_counter() - t0:.0f} s")
            sys.stderr.flush()
    log.close()
    if progress and sys.stderr.isatty():
        sys.stderr.write("\n")
    return {"step": step, "best_val_pointer_accuracy": best}
