"""Train a GNN of the family on CLRS traces (outputs plus hints), CLRS's setup by default.

    python -m engine.train --algo bfs --processor mpnn --hidden 128 --seed 0 --out DIR

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

import argparse
import dataclasses
import json
import os
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ..algorithms import ALGORITHMS, reference
from ..algorithms.samplers import CLRS_TRAIN_P, sample
from ..errors import EngineError
from ..model.registry import PROCESSOR_KINDS as PROCESSORS
from ..model.spec import FORMAT, VERSION
from .gatv2 import gatv2_layer
from .module import GNNModule, GraphBatch, segment_log_softmax


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


HINT_MODES = ("encoded_decoded", "decoded_only", "none")
FEEDBACK_KINDS = ("mask", "scalar", "categorical", "pointer", "mask_one")


def learned_spec(algo: str, processor: str = "mpnn", hidden: int = 128, gated: bool = False,
                 heads: int = 1, hint_mode: str = "encoded_decoded", layer_norm: bool = False) -> dict:
    """The spec of a learned model: CLRS inputs, one processor layer, one decoder per
    output and per node-level hint.

    ``mpnn``: CLRS's MPNN (message MLP, max aggregation, update). ``gatv2``: GATv2 with
    ``heads`` heads (:mod:`engine.learn.gatv2`); ``gated`` is for ``mpnn`` only;
    ``layer_norm`` normalises the processor's output (CLRS's ``use_ln``).
    ``hint_mode`` as CLRS: ``encoded_decoded`` decodes every node-level hint and feeds it back
    as an input of the next step (``spec.feedback``), ``decoded_only`` decodes without feeding
    back, ``none`` decodes no hints.
    """
    if hint_mode not in HINT_MODES:
        raise EngineError(f"unknown hint mode {hint_mode!r}; allowed: {list(HINT_MODES)}")
    if processor not in PROCESSORS:
        raise EngineError(f"unknown processor {processor!r}; available: {list(PROCESSORS)}")
    if processor == "gatv2" and gated:
        raise EngineError("the gatv2 processor has no gate; use gated=False")
    info = ALGORITHMS[algo]
    spec = {
        "format": FORMAT, "version": VERSION, "name": f"learned-{processor}-{algo}", "dtype": "float32",
        "node_inputs": ["pos", "source"] if info.has_source else ["pos"], "edge_inputs": ["weight"],
        "hidden": hidden,
        "layers": [{
            "include_self": True,
            "message": {"widths": [hidden, hidden], "activations": ["relu", "identity"]},
            "groups": [{"kind": "max", "size": hidden}],
            "update": {"widths": [hidden], "activations": ["relu"]},
        }],
        "decoders": {}, "outputs": {}, "hints": {}, "termination": {"rule": "steps"},
        "description": {"algorithm": algo, "processor": processor, "source": "learned"},
    }
    if processor == "gatv2":
        spec["layers"] = [gatv2_layer(hidden, heads)]
        spec["processor"] = {"kind": "gatv2", "heads": heads, "negative_slope": 0.2}
    if layer_norm:
        spec["layers"][0]["update"]["layer_norm"] = True
    if gated:
        spec["layers"][0]["gate"] = {"widths": [hidden, hidden], "activations": ["relu", "identity"]}
    for table, names in (("outputs", info.outputs), ("hints", info.hints)):
        if table == "hints" and hint_mode == "none":
            continue
        for name, kind in names.items():
            if kind == "graph_scalar":
                continue  # graph-level hints need a graph state; not decoded by this processor
            dec = f"{table[:-1]}_{name}"
            if kind == "pointer":
                spec["decoders"][dec] = {"type": "pointer", "widths": [hidden, 1], "activations": ["relu", "identity"]}
            elif kind == "categorical":
                spec["decoders"][dec] = {"type": "categorical", "classes": 3}
            else:
                spec["decoders"][dec] = {"type": kind}
            spec[table][name] = dec
    if hint_mode == "encoded_decoded":
        spec["feedback"] = [dec for dec in spec["hints"].values()
                            if spec["decoders"][dec]["type"] in FEEDBACK_KINDS]
    return spec


# ----------------------------------------------------------------------------- data
def sample_batch(cfg: TrainConfig, rng: np.random.RandomState, count: int, sizes) -> dict:
    """``count`` CLRS instances with their reference traces, as one disjoint-union batch."""
    info = ALGORITHMS[cfg.algo]
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
        kind = ALGORITHMS[ref.algorithm].hints[name]
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
    _, zs, Es = module.rollout(batch, T, hard=False)
    info = ALGORITHMS[cfg.algo]
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
        loss = loss + decoder_loss(module, info.outputs[name], dec, batch, z_final, E_final, target, valid)
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
            if info.hints[name] == "pointer":
                target = target + shift
            loss = loss + cfg.hint_loss_weight * decoder_loss(
                module, info.hints[name], dec, reps, Z, E, target.reshape(-1), valid.reshape(-1))
    return loss


def pointer_accuracy(module, data) -> float:
    """Share of nodes whose decoded output pointer equals the reference (output ``pi``)."""
    batch = GraphBatch(data["graphs"], data["sources"], module.spec)
    T = max(r.steps for r in data["refs"])
    with torch.no_grad():
        _, zs, Es = module.rollout(batch, T, hard=True)
        steps_per_node = np.repeat([r.steps for r in data["refs"]], [g.num_nodes for g in data["graphs"]])
        z_final = _final(torch.stack(zs), steps_per_node)
        E_final = None
        if batch.E is not None:
            steps_per_edge = np.repeat([r.steps for r in data["refs"]], [g.num_edges for g in data["graphs"]])
            E_final = _final(torch.stack(Es), steps_per_edge)
        pred = module.decode(module.spec["outputs"]["pi"], batch, z_final, E_final).numpy()
    want = np.concatenate([r.outputs["pi"] + off for r, off in zip(data["refs"], batch.offsets)])
    return float((pred == want).mean())


# ----------------------------------------------------------------------------- files
def _atomic(path, write):
    tmp = f"{path}.tmp-{os.getpid()}"
    write(tmp)
    os.replace(tmp, path)


def train(cfg: TrainConfig, out: str, progress=True) -> dict:
    """Train (or resume) into directory ``out``; returns the final metrics."""
    if cfg.algo not in ALGORITHMS:
        raise EngineError(f"unknown algorithm {cfg.algo!r}; allowed: {sorted(ALGORITHMS)}")
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


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m engine.train", description=__doc__.split("\n\n")[0])
    p.add_argument("--algo", required=True, choices=sorted(ALGORITHMS))
    p.add_argument("--processor", default="mpnn", choices=list(PROCESSORS))
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


if __name__ == "__main__":
    sys.exit(main())
