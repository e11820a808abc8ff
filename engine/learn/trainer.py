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
sampler state, tensors and plain values only: it loads with ``weights_only=True``, so a
crafted file cannot run code). Every file is written atomically. A run started again with
the same ``DIR`` and configuration resumes from ``state.pt`` (``steps`` may grow), with the
log cut back to the checkpoint; a different configuration, or run files without a
``state.pt``, are refused unless ``force_new`` starts afresh.

A step whose loss or gradient norm is not finite ends the run before the optimiser takes
it: the log's last record carries ``"diverged": true`` (and ``null`` for what was not
finite), the last finite weights are evaluated and saved, and a resume of that run returns
at once (the result says ``diverged``).
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import math
import os
import sys
from dataclasses import dataclass, field

import numpy as np
import torch

from .._files import atomic_write
from .._progress import bar
from ..algorithms import algorithm, reference
from ..algorithms.samplers import CLRS_TRAIN_P, sample
from ..errors import EngineError
from ..model.registry import MESSAGE_GRAPHS, PROCESSOR_KINDS
from .module import GNNModule, GraphBatch, segment_log_softmax
from ..algorithms.specs import HINT_MODES, learned_spec


INITS = ("random", "compiled")
COMPLETE_EVAL_LIMIT = 4096  # largest eval size of a fully connected model (16.8 million messages per step)
HINT0 = ("decoded", "ground_truth")  # what the first step is fed: hints decoded from h_0, or CLRS's given hint 0
FEEDBACK = ("hard", "soft")  # how hints are fed back when evaluating (training always feeds them soft)
# Named protocols: the fields each sets (a field given explicitly overrides its preset value).
PROTOCOLS = {
    # over the input's edges, as it runs at 10^6 nodes: pointers over in-neighbours and self,
    # positions i/n, no layer norm, hint 0 decoded, hard feedback when evaluating
    "sparse": {"message_graph": "input", "layer_norm": False, "random_pos": False, "hint0": "decoded",
               "eval_feedback": "hard", "graph_hints": False},
    # CLRS's baselines (examples/run.py defaults): fully connected processor, pointers over all
    # nodes, random_pos, use_ln, the ground-truth hint 0, soft hints at evaluation too, graph-level
    # hints (DFS's time) decoded through a graph state where the processor has one (MPNN)
    "clrs": {"message_graph": "complete", "layer_norm": True, "random_pos": True, "hint0": "ground_truth",
             "eval_feedback": "soft", "graph_hints": True},
}


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
    init: str = "random"  # "random" (Glorot-style) or "compiled" (engine.compile with this processor)
    init_noise: float = 0.0  # Gaussian noise on the start point: sigma times each tensor's RMS
    l1: float = 0.0  # L1 penalty on every weight (added to the loss)
    eval_sizes: tuple = ()  # sizes scored at every evaluation (ER graphs, mean degree 5, native backend)
    protocol: str = "sparse"  # the preset the run started from (PROTOCOLS); the fields below are what it uses
    message_graph: str = "input"  # "input" (the input's edges) or "complete" (every pair, CLRS's MPNN)
    random_pos: bool = False  # CLRS's random_pos: sorted uniform positions per training/validation graph
    hint0: str = "decoded"  # HINT0
    eval_feedback: str = "hard"  # FEEDBACK, for the validation score
    graph_hints: bool = False  # decode graph-level hints (DFS's time) through a graph state (MPNN only)
    message_depth: int = 1  # dense layers after the message's first layer (2: CLRS's MPNN; MPNN only)
    # subnormal floats flushed to zero in the training step's forward and backward passes on the CPU,
    # as XLA (under which CLRS trains) does by default; subnormals from a sharpening model's
    # softmaxes slowed sparse BFS steps from 35 to 42 ms over 150 steps (31 ms flat with it).
    # Evaluation never flushes.
    flush_subnormals: bool = True
    extra: dict = field(default_factory=dict)

    def validate(self) -> "TrainConfig":
        """Check every field's type and range; :class:`EngineError` names the first bad one."""
        def integer(name, minimum):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < minimum:
                raise EngineError(f"config {name} must be an integer >= {minimum}, got {v!r}")

        def number(name, minimum, strict):
            v = getattr(self, name)
            ok = (not isinstance(v, bool) and isinstance(v, (int, float, np.number)) and math.isfinite(v)
                  and (v > minimum if strict else v >= minimum))
            if not ok:
                raise EngineError(f"config {name} must be a finite number {'>' if strict else '>='} {minimum}, "
                                  f"got {v!r}")

        algorithm(self.algo)
        if self.processor not in PROCESSOR_KINDS:
            raise EngineError(f"config processor must be one of {list(PROCESSOR_KINDS)}, got {self.processor!r}")
        if self.hint_mode not in HINT_MODES:
            raise EngineError(f"config hint_mode must be one of {list(HINT_MODES)}, got {self.hint_mode!r}")
        for name in ("hidden", "steps", "batch", "val_size", "val_graphs", "eval_every", "heads", "message_depth"):
            integer(name, 1)
        integer("seed", 0)
        number("lr", 0, strict=True)
        number("grad_clip", 0, strict=True)
        number("hint_loss_weight", 0, strict=False)
        number("init_noise", 0, strict=False)
        number("l1", 0, strict=False)
        for name, allowed in (("protocol", tuple(PROTOCOLS)), ("message_graph", MESSAGE_GRAPHS), ("hint0", HINT0),
                              ("eval_feedback", FEEDBACK)):
            if getattr(self, name) not in allowed:
                raise EngineError(f"config {name} must be one of {list(allowed)}, got {getattr(self, name)!r}")
        if self.init not in INITS:
            raise EngineError(f"config init must be one of {list(INITS)}, got {self.init!r}")
        if not isinstance(self.eval_sizes, (tuple, list)) or not all(
                isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in self.eval_sizes):
            raise EngineError(f"config eval_sizes must be a list of positive integers, got {self.eval_sizes!r}")
        for name in ("gated", "layer_norm", "random_pos", "graph_hints"):
            if not isinstance(getattr(self, name), bool):
                raise EngineError(f"config {name} must be true or false, got {getattr(self, name)!r}")
        sizes = self.train_sizes
        if (not isinstance(sizes, (tuple, list)) or not sizes
                or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in sizes)):
            raise EngineError(f"config train_sizes must be a non-empty list of positive integers, got {sizes!r}")
        if (not isinstance(self.p, (tuple, list)) or not self.p
                or not all(isinstance(q, (int, float)) and not isinstance(q, bool) and 0 < q <= 1 for q in self.p)):
            raise EngineError(f"config p must be a non-empty list of edge probabilities in (0, 1], got {self.p!r}")
        if self.message_graph == "complete" and any(n > COMPLETE_EVAL_LIMIT for n in self.eval_sizes):
            raise EngineError(f"config eval_sizes {list(self.eval_sizes)}: a fully connected model (message_graph "
                              f"'complete') sends n^2 messages per step, so it is scored up to "
                              f"{COMPLETE_EVAL_LIMIT} nodes here; score larger graphs with a sparse-protocol model")
        if self.message_depth != 1 and self.processor != "mpnn":
            raise EngineError(f"config message_depth is for the mpnn processor; {self.processor} fixes its message "
                              "layers")
        if self.processor == "gatv2" and self.hidden % self.heads:
            raise EngineError(f"config heads ({self.heads}) must divide hidden ({self.hidden}) for gatv2")
        if not isinstance(self.extra, dict):
            raise EngineError(f"config extra must be an object, got {self.extra!r}")
        return self

    def plain(self) -> dict:
        """The fields as JSON values (tuples as lists), as checkpoints store and compare them."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_fields(cls, fields: dict) -> "TrainConfig":
        """A validated config from field values (lists become tuples); unknown fields refused.
        A ``protocol`` sets its :data:`PROTOCOLS` fields, except those given explicitly."""
        unknown = sorted(set(fields) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise EngineError(f"unknown config fields {unknown}; allowed: {[f.name for f in dataclasses.fields(cls)]}")
        protocol = fields.get("protocol", "sparse")
        if protocol not in PROTOCOLS:
            raise EngineError(f"config protocol must be one of {list(PROTOCOLS)}, got {protocol!r}")
        fields = {**PROTOCOLS[protocol], **fields}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}).validate()

    @staticmethod
    def default(name: str):
        """The default value of field ``name`` (for checkpoints written before it existed)."""
        f = {f.name: f for f in dataclasses.fields(TrainConfig)}[name]
        value = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        return json.loads(json.dumps(value))

    def spec(self) -> dict:
        """The spec of the model this configuration trains."""
        # GATv2 has no graph state: its graph-level hints are dropped (the README's protocol table)
        spec = learned_spec(self.algo, self.processor, self.hidden, self.gated, self.heads, self.hint_mode,
                            self.layer_norm, self.message_graph, self.graph_hints and self.processor == "mpnn",
                            self.message_depth)
        # how the model is evaluated under its protocol (engine.analysis.clrs_test reads it)
        spec["description"]["protocol"] = {"name": self.protocol, "random_pos": self.random_pos,
                                           "hint0": self.hint0, "eval_feedback": self.eval_feedback}
        return spec


# ----------------------------------------------------------------------------- data
def sample_batch(cfg: TrainConfig, rng: np.random.RandomState, count: int, sizes) -> dict:
    """``count`` CLRS instances with their reference traces, as one disjoint-union batch."""
    info = algorithm(cfg.algo)
    graphs, sources, refs, pos = [], [], [], []
    for _ in range(count):
        n = int(rng.choice(sizes))
        _, g, s = sample(cfg.algo, n, rng, p=cfg.p)
        graphs.append(g)
        sources.append(s if info.has_source else None)
        refs.append(reference(cfg.algo, g, s, trace=True))
        if cfg.random_pos:  # CLRS's process_random_pos: sorted uniform draws replace i / n
            pos.append(np.sort(rng.uniform(size=n)))
    return {"graphs": graphs, "sources": sources, "refs": refs, "pos": pos or None}


class BatchStream:
    """The training batches of a run, each drawn from ``rng`` while the previous step
    computes (one background thread; torch releases the interpreter during its kernels).

    :meth:`next` returns ``(batch, rng state after it)``: the state a checkpoint saved after
    that step must hold, so a resumed run draws the batches an uninterrupted one would, no
    matter how far ahead the stream has drawn.
    """

    def __init__(self, cfg: "TrainConfig", rng: np.random.RandomState, count: int):
        from concurrent.futures import ThreadPoolExecutor

        self.cfg, self.rng, self.left = cfg, rng, count
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="engine-batches")
        self.pending = self._submit()

    def _draw(self):
        data = sample_batch(self.cfg, self.rng, self.cfg.batch, self.cfg.train_sizes)
        after = np.random.RandomState()
        after.set_state(self.rng.get_state())
        return data, after

    def _submit(self):
        if self.left <= 0:
            return None
        self.left -= 1
        return self.pool.submit(self._draw)

    def next(self):
        data, after = self.pending.result()
        self.pending = self._submit()
        return data, after

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def by_steps(data) -> dict:
    """``data`` with its graphs ordered by step count, longest first (ties in sampled order):
    a rollout then runs each step on a prefix of the batch (``GNNModule.rollout``'s
    ``graph_steps``)."""
    order = sorted(range(len(data["refs"])), key=lambda i: -data["refs"][i].steps)
    return {key: (None if value is None else [value[i] for i in order]) for key, value in data.items()}


def make_batch(data, spec: dict, device="cpu") -> GraphBatch:
    """The :class:`GraphBatch` of sampled ``data`` (with its random positions, if any) on
    ``device``."""
    return GraphBatch(data["graphs"], data["sources"], spec, pos=data.get("pos"), device=device)


def device_of(module) -> torch.device:
    """Where ``module``'s parameters are (batches, targets and losses are made there)."""
    return next(module.parameters()).device


def training_device(device: str | None = "auto") -> torch.device:
    """The device training runs on: ``"auto"`` (or None) is CUDA when this machine has it,
    else the CPU; ``"cpu"``, ``"cuda"``, ``"cuda:1"``... as given, refused with a clear
    message when this machine lacks it."""
    from ..backends.torch_backend import torch_device

    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch_device(device)
    except EngineError as exc:
        raise EngineError(f"training device {device!r}: choose auto, cpu, cuda or cuda:N ({exc})") from None


def given_hint0(module, data, batch: GraphBatch):
    """``(f, E)`` of the reference's hint 0 (CLRS's ground-truth first hint), for
    :meth:`GNNModule.rollout`'s ``first``; None when the spec feeds no hints back."""
    if not module.layout.feedback:
        return None
    by_decoder = {dec: name for name, dec in module.spec["hints"].items()}
    info = algorithm(data["refs"][0].algorithm)
    values = {}
    for slot in module.layout.feedback:
        name = by_decoder[slot.decoder]
        kind = info.hint(name).kind
        rows = [ref.hints[name][0] + (off if kind == "pointer" else 0)
                for ref, off in zip(data["refs"], batch.offsets)]
        values[slot.decoder] = torch.from_numpy(np.concatenate(rows).astype(np.int64 if kind == "pointer" else
                                                                          np.float64)).to(batch.device)
    return module.encode_feedback(batch, values)





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


def pointer_nll(module, name, batch, z, E, target, mask, scores=None):
    """Cross-entropy of the pointer decoder over its candidates (in-neighbours and self, or
    all nodes): ``-log`` of the probability the softmax over a node's candidates puts on its
    target node (summed over the candidates that are that node: the self message and a
    self-loop, or parallel edges). ``scores``: the decoder's candidate scores, if computed."""
    if scores is None:
        scores, src, pos, _ = module.pointer_scores(name, batch, z, E)
    else:
        src, pos, _ = batch.index[module.layout.pointer_self]
    logp = segment_log_softmax(scores, pos, batch.num_nodes)
    dev = logp.device
    mask_t = torch.from_numpy(mask).to(dev)
    hit = (src == torch.from_numpy(target.astype(np.int64)).to(dev)[pos]) & mask_t[pos]
    # per node, log sum over its hits of p (a log-sum-exp over the hits, -inf where none)
    masked = torch.where(hit, logp, torch.full_like(logp, float("-inf")))
    top = torch.full((batch.num_nodes,), float("-inf"), dtype=logp.dtype, device=dev).scatter_reduce(
        0, pos, masked.detach(), reduce="amax")
    safe_top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
    total = torch.zeros(batch.num_nodes, dtype=logp.dtype, device=dev).index_add(0, pos,
                                                                               torch.exp(masked - safe_top[pos]))
    node_logp = torch.log(total) + safe_top
    valid = mask_t & torch.isfinite(top)
    count = max(int(mask.sum()), 1)
    return -torch.where(valid, node_logp, torch.zeros_like(node_logp)).sum() / count


def decoder_loss(module, kind, name, batch, z, E, target, mask, raw=None):
    """CLRS's loss of one decoder over the valid entries (``mask``) of a (repeated) batch;
    ``raw``: the decoder's scores (pointer) or logits on ``z`` when already computed."""
    if kind == "pointer":
        return pointer_nll(module, name, batch, z, E, target, mask, raw)
    logits = module.logits(name, batch, z) if raw is None else raw
    dev = logits.device
    m = torch.from_numpy(mask).to(dev)
    count = max(int(mask.sum()), 1)
    if kind == "mask":
        t = torch.from_numpy(target.astype(np.float32)).to(dev)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits[:, 0], t, reduction="none")
        return (loss * m).sum() / count
    if kind == "scalar":
        t = torch.from_numpy(target.astype(np.float32)).to(dev)
        return (((logits[:, 0] - t) ** 2) * m).sum() / count
    if kind == "categorical":
        loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(target).to(dev), reduction="none")
        return (loss * m).sum() / count
    # mask_one: a softmax over each graph's nodes
    logp = segment_log_softmax(logits[:, 0], batch.graph_index, batch.num_graphs)
    t = torch.from_numpy(target.astype(np.float32)).to(dev)
    return -(logp * t * m).sum() / max(1, int((target * mask).sum()))


def graph_scalar_loss(module, dec: str, batch, gs, data, name: str, T: int):
    """Squared error of graph-level hint ``name`` (decoder ``dec``, a linear map of the graph
    state) over steps ``1 .. T_i - 1`` of each graph ``i``, from the rollout's graph states
    ``gs``."""
    G = batch.num_graphs
    target = np.zeros((T - 1, G), dtype=np.float32)
    valid = np.zeros((T - 1, G), dtype=bool)
    for i, ref in enumerate(data["refs"]):
        h = np.asarray(ref.hints[name])
        target[:len(h) - 1, i] = h[1:]
        valid[:len(h) - 1, i] = True
    # every step's graph states in one decode: (T - 1) x G values
    pred = module.decode(dec, batch, None, g=torch.cat(gs[1:T])).view(T - 1, G)
    dev = pred.device
    err = (pred - torch.from_numpy(target).to(dev)) ** 2
    return (err * torch.from_numpy(valid).to(dev)).sum() / max(int(valid.sum()), 1)


def _final(stacked, steps_per_item):
    """Row ``i`` of ``stacked[steps_per_item[i]]`` (each graph's inputs after its own T_i steps)."""
    return stacked[torch.from_numpy(steps_per_item).to(stacked.device), torch.arange(stacked.shape[1],
                                                                                     device=stacked.device)]


def loss_terms(module, cfg: TrainConfig, data) -> dict:
    """The training loss by term: ``output_<name>`` (from each graph's final step) and
    ``hint_<name>`` (over steps ``1 .. T-1``, weighted by ``cfg.hint_loss_weight``), with hints
    fed back soft when the spec feeds them back (CLRS's training)."""
    spec = module.spec
    data = by_steps(data)
    batch = make_batch(data, spec, device_of(module))
    steps = [r.steps for r in data["refs"]]
    T = max(steps)
    decoded = []  # the fed-back decoders' outputs on z_0 .. z_{T-1}: the hint predictions, reused below
    _, zs, Es, gs = module.rollout(batch, T, hard=False, decoded=decoded, graph_steps=steps,
                                  first=given_hint0(module, data, batch) if cfg.hint0 == "ground_truth" else None)
    info = algorithm(cfg.algo)
    sizes = [g.num_nodes for g in data["graphs"]]
    steps_per_node = np.repeat([r.steps for r in data["refs"]], sizes)
    z_final = _final(torch.stack(zs), steps_per_node)
    E_final = None
    if batch.E is not None:
        E_final = _final(torch.stack(Es), steps_per_node[batch.edge_dst.cpu().numpy()])
    terms = {}
    for name, dec in spec["outputs"].items():
        target, valid = _targets(data, batch, name, "outputs", T)
        terms[f"output_{name}"] = decoder_loss(module, info.output(name).kind, dec, batch, z_final, E_final,
                                               target, valid)
    if cfg.hint_loss_weight and T > 1:
        # every step's hints at once: steps 1 .. T-1 as disjoint copies of the batch
        reps = batch.repeat(T - 1)
        Z = torch.cat(zs[1:T])
        E = None if batch.E is None else torch.cat(Es[1:T])
        N = batch.num_nodes
        shift = (np.arange(1, T) - 1)[:, None] * N
        for name, dec in spec["hints"].items():
            kind = info.hint(name).kind
            if kind == "graph_scalar":
                terms[f"hint_{name}"] = cfg.hint_loss_weight * graph_scalar_loss(module, dec, batch, gs, data, name, T)
                continue
            target, valid = _targets(data, batch, name, "hints", T)
            target, valid = target[1:T], valid[1:T]
            if kind == "pointer":
                target = target + shift
            raw = torch.cat([decoded[t][dec] for t in range(1, T)]) if dec in decoded[1] else None
            terms[f"hint_{name}"] = cfg.hint_loss_weight * decoder_loss(
                module, kind, dec, reps, Z, E, target.reshape(-1), valid.reshape(-1), raw)
    return terms


def batch_loss(module, cfg: TrainConfig, data) -> torch.Tensor:
    """The training loss: the sum of :func:`loss_terms`."""
    return sum(loss_terms(module, cfg, data).values(), torch.zeros((), device=device_of(module)))


def pointer_accuracy(module, data, feedback: str = "hard", hint0: str = "decoded") -> float:
    """Share of nodes whose decoded primary output (a pointer) equals the reference's, with
    hints fed back ``feedback`` (:data:`FEEDBACK`) and the first step fed ``hint0``
    (:data:`HINT0`); the defaults are how the executor runs a model."""
    name = algorithm(data["refs"][0].algorithm).primary_output
    data = by_steps(data)
    batch = make_batch(data, module.spec, device_of(module))
    steps = [r.steps for r in data["refs"]]
    T = max(steps)
    with torch.no_grad():
        first = given_hint0(module, data, batch) if hint0 == "ground_truth" else None
        _, zs, Es, _ = module.rollout(batch, T, hard=feedback == "hard", first=first, graph_steps=steps)
        steps_per_node = np.repeat([r.steps for r in data["refs"]], [g.num_nodes for g in data["graphs"]])
        z_final = _final(torch.stack(zs), steps_per_node)
        E_final = None
        if batch.E is not None:
            E_final = _final(torch.stack(Es), steps_per_node[batch.edge_dst.cpu().numpy()])
        pred = module.decode(module.spec["outputs"][name], batch, z_final, E_final).cpu().numpy()
    want = np.concatenate([r.outputs[name] + off for r, off in zip(data["refs"], batch.offsets)])
    return float((pred == want).mean())


# ----------------------------------------------------------------------------- files
RUN_FILES = ("best.npz", "last.npz", "metrics.jsonl", "state.pt")


def save_state(path: str, module, opt, rng: np.random.RandomState, step: int, best: float, cfg: TrainConfig,
               diverged: bool = False):
    """The checkpoint, as tensors and plain values (loadable with ``weights_only=True``);
    ``diverged`` marks a run stopped by a non-finite loss or gradient (it is not resumed)."""
    kind, keys, pos, has_gauss, gauss = rng.get_state()
    snapshot = {"module": _to_cpu(module.state_dict()), "optimizer": _to_cpu(opt.state_dict()),
                "rng": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                        "has_gauss": int(has_gauss), "gauss": float(gauss)},
                "step": int(step), "best": float(best), "config": cfg.plain(),
                "diverged": bool(diverged)}
    atomic_write(path, lambda tmp: torch.save(snapshot, tmp))


def _to_cpu(value):
    """``value`` (a state dict, nested) with every tensor on the CPU: checkpoints load on any
    machine, and a run moves between CPU and GPU on resume."""
    if isinstance(value, torch.Tensor):
        return value.cpu()
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_cpu(v) for v in value)
    return value


def load_state(path: str) -> dict:
    """A checkpoint written by :func:`save_state`; never unpickles code."""
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as exc:  # noqa: BLE001 - torch raises several types for bad or unsafe files
        raise EngineError(f"{path} is not a checkpoint this trainer can load safely "
                          f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
    if not isinstance(state, dict) or not {"module", "optimizer", "rng", "step", "best", "config"} <= set(state):
        raise EngineError(f"{path} is not a checkpoint of engine.train")
    return state


def _rng_state(saved: dict) -> tuple:
    return (saved["kind"], saved["keys"].numpy().astype(np.uint32), saved["pos"], saved["has_gauss"], saved["gauss"])


def _truncate_log(path: str, step: int) -> None:
    """Keep the records of steps up to ``step`` (the checkpoint's): steps run after it are run again."""
    if not os.path.exists(path):
        return
    keep = []
    with open(path) as fh:
        for line in fh:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                break  # a line cut by a kill: everything after it is after the checkpoint too
            if not isinstance(record, dict) or record.get("step", step + 1) > step:
                break
            keep.append(line if line.endswith("\n") else line + "\n")

    def write(tmp):
        with open(tmp, "w") as fh:
            fh.writelines(keep)

    atomic_write(path, write)


def _prepare_dir(out: str, cfg: TrainConfig, force_new: bool):
    """The checkpoint to resume from (None: a fresh run), after checking that resuming is
    what the directory and the configuration allow."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise EngineError(f"--out {out} exists and is not a directory")
    os.makedirs(out, exist_ok=True)
    state_path = os.path.join(out, "state.pt")
    present = [name for name in RUN_FILES if os.path.exists(os.path.join(out, name))]
    if force_new:
        for name in present:
            os.unlink(os.path.join(out, name))
        return None
    if not present:
        return None
    if "state.pt" not in present:
        raise EngineError(f"{out} holds files of another run ({', '.join(present)}) but no state.pt to resume "
                          "from; use an empty directory, or --force-new to replace them")
    state = load_state(state_path)
    mine, theirs = cfg.plain(), dict(state["config"])
    # a field the checkpoint predates had its default there
    theirs = {k: theirs.get(k, TrainConfig.default(k)) for k in mine}
    differ = sorted(k for k in mine if k != "steps" and mine.get(k) != theirs.get(k))
    if differ:
        what = ", ".join(f"{k}: {theirs.get(k)!r} there, {mine[k]!r} here" for k in differ[:4])
        raise EngineError(f"{out} holds a run with another configuration ({what}); resume with the same one, "
                          "or pass --force-new")
    return state


def perturb(module, sigma: float, rng: np.random.Generator) -> None:
    """Add Gaussian noise to every parameter, in place: ``sigma`` times the tensor's RMS (or
    ``sigma`` itself for an all-zero tensor)."""
    with torch.no_grad():
        for p in module.parameters():
            # in float64: compiled weights reach 2^90, whose square overflows float32
            rms = float(p.detach().double().pow(2).mean().sqrt()) if p.numel() else 0.0
            noise = torch.from_numpy(rng.standard_normal(tuple(p.shape)) * sigma * (rms if rms > 0 else 1.0))
            p.add_(noise.to(dtype=p.dtype, device=p.device))


def initial_module(cfg: TrainConfig, spec: dict):
    """The module training starts from: random weights, or the compiled point of the same
    spec (``cfg.init``), plus ``cfg.init_noise``."""
    if cfg.init == "compiled":
        from ..compiler import compile as compile_model

        model = compile_model(cfg.algo, processor=cfg.processor, hidden=cfg.hidden, hint_mode=cfg.hint_mode,
                              message_graph=cfg.message_graph)
        same = {k: v for k, v in model.spec.items() if k not in ("name", "exact_domain", "description")}
        if same != {k: v for k, v in spec.items() if k not in ("name", "description")}:
            raise EngineError(f"the compiled {cfg.algo} ({cfg.processor}) does not have this run's spec "
                              "(layer norm, gates, heads, message depth and graph hints must be as it was compiled)")
        module = GNNModule(spec)
        with torch.no_grad():
            for name, w in model.weights.items():
                module.w(name).copy_(torch.from_numpy(w))
    else:
        module = GNNModule.initialised(spec, cfg.seed, scale=1.0)
    if cfg.init_noise:
        perturb(module, cfg.init_noise, np.random.default_rng(cfg.seed))
    return module


@functools.lru_cache(maxsize=4)
def _size_case(algo: str, n: int):
    """The evaluation graph of size ``n`` (ER, mean degree 5, seed 0, source 0), its step
    count and the reference's primary output: built once per run and size, not at every
    evaluation."""
    from ..graph import generate

    info = algorithm(algo)
    g = generate("er", n, degree=5.0, directed=info.directed, weighted=info.weighted, seed=0)
    source = 0 if info.has_source else None
    ref = reference(algo, g, source, trace=False)
    return g, source, ref.steps, ref.outputs[info.primary_output]


def size_scores(module, cfg: TrainConfig) -> dict:
    """Pointer accuracy and exact match of the current weights on one ER graph (mean degree
    5, seed 0, source 0) per size of ``cfg.eval_sizes``, run by the executor."""
    from ..runtime import execute

    name = algorithm(cfg.algo).primary_output
    model = module.to_model()
    out = {}
    for n in cfg.eval_sizes:
        g, source, steps, want = _size_case(cfg.algo, int(n))
        try:
            res = execute(model, g, source, steps=steps)
        except EngineError as exc:  # weights whose activations overflow decode NaN scores
            out[f"accuracy_{n}"], out[f"exact_{n}"], out[f"error_{n}"] = None, False, str(exc)
            continue
        out[f"accuracy_{n}"] = float(np.mean(res.outputs[name] == want))
        out[f"exact_{n}"] = bool(np.array_equal(res.outputs[name], want))
    return out


def make_optimizer(module, cfg: TrainConfig):
    """CLRS's optimiser: Adam at ``cfg.lr`` (one kernel per operation over all tensors)."""
    return torch.optim.Adam(module.parameters(), lr=cfg.lr, foreach=True)


def gradient(module, cfg: TrainConfig, data, opt) -> tuple:
    """The loss of ``data`` (plus the L1 penalty) and its gradient, clipped to
    ``cfg.grad_clip`` in place: ``(loss, gradient norm before clipping)``. The caller takes
    ``opt.step()`` when both are finite."""
    with subnormals_flushed(cfg.flush_subnormals):
        loss = batch_loss(module, cfg, data)
        if cfg.l1:
            loss = loss + cfg.l1 * sum(p.abs().sum() for p in module.parameters())
        opt.zero_grad()
        loss.backward()
    grad_norm = float(torch.nn.utils.clip_grad_norm_(module.parameters(), cfg.grad_clip))
    return loss.item(), grad_norm


@contextlib.contextmanager
def subnormals_flushed(on: bool = True):
    """Within the block (``on``), torch flushes subnormal floats to zero on the CPU
    (``torch.set_flush_denormal``); after it, subnormals are kept again, torch's default."""
    if not on:
        yield
        return
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


def _flat(module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1).double() for p in module.parameters()])


def _evaluate_and_save(record: dict, module, cfg: TrainConfig, val, start, best: float, out: str) -> float:
    """Score the current weights into ``record`` (validation accuracy, distance from the
    start point, ``cfg.eval_sizes``), write ``last.npz`` (and ``best.npz`` on a new best);
    returns the best validation accuracy so far."""
    acc = pointer_accuracy(module, val, cfg.eval_feedback, cfg.hint0)
    record["val_pointer_accuracy"] = acc
    travelled = torch.linalg.norm(_flat(module) - start)
    record["distance"] = float(travelled / max(float(torch.linalg.norm(start)), 1e-30))
    record.update(size_scores(module, cfg))
    if acc > best:
        best = acc
        module.to_model().save(os.path.join(out, "best.npz"))
    module.to_model().save(os.path.join(out, "last.npz"))
    return best


def train(cfg: TrainConfig, out: str, progress=True, force_new: bool = False, device: str | None = "auto") -> dict:
    """Train (or resume) into directory ``out`` on ``device`` (:func:`training_device`: CUDA
    when available, else the CPU); returns the final metrics. The device is not part of the
    run's configuration: a run resumes on another device."""
    cfg.validate()
    target = training_device(device)
    state = _prepare_dir(out, cfg, force_new)
    torch.manual_seed(cfg.seed)
    spec = cfg.spec()
    module = initial_module(cfg, spec).to(target)
    start = _flat(module)  # the start point: distances travelled are measured from it
    opt = make_optimizer(module, cfg)
    rng = np.random.RandomState(cfg.seed)
    val = sample_batch(cfg, np.random.RandomState(10_000 + cfg.seed), cfg.val_graphs, [cfg.val_size])
    state_path = os.path.join(out, "state.pt")
    log_path = os.path.join(out, "metrics.jsonl")
    step, best = 0, -1.0
    if state is not None:
        module.load_state_dict(state["module"])
        opt.load_state_dict(state["optimizer"])
        rng.set_state(_rng_state(state["rng"]))
        step, best = state["step"], state["best"]
        _truncate_log(log_path, step)
    if state is not None and state.get("diverged"):
        return {"step": step, "best_val_pointer_accuracy": best, "diverged": True}
    log = open(log_path, "a")
    steps_bar = bar(cfg.steps, f"train {cfg.algo}", "step", progress and sys.stderr.isatty(), initial=step)
    diverged = False
    batches = BatchStream(cfg, rng, cfg.steps - step)
    try:
        while step < cfg.steps:
            data, rng = batches.next()
            value, grad_norm = gradient(module, cfg, data, opt)
            step += 1
            diverged = not (math.isfinite(value) and math.isfinite(grad_norm))
            if diverged:
                # A non-finite loss or gradient would turn every weight into NaN at the step:
                # the run stops at the last finite weights, which are evaluated and kept.
                record = {"step": step, "loss": value if math.isfinite(value) else None,
                          "grad_norm": grad_norm if math.isfinite(grad_norm) else None, "diverged": True}
            else:
                opt.step()
                record = {"step": step, "loss": value}
            if diverged or step % cfg.eval_every == 0 or step == cfg.steps:
                best = _evaluate_and_save(record, module, cfg, val, start, best, out)
                save_state(state_path, module, opt, rng, step, best, cfg, diverged=diverged)
            log.write(json.dumps(record) + "\n")
            log.flush()
            if diverged:
                break
            steps_bar.update(1)
            steps_bar.set_postfix(loss=f"{record['loss']:.4f}", best_val=f"{best:.3f}", refresh=False)
    finally:
        batches.close()
        log.close()
        steps_bar.close()
    result = {"step": step, "best_val_pointer_accuracy": best}
    if diverged:
        result["diverged"] = True
    return result


class SeedTask:
    """Train one seed of a sweep into ``<out>/seed-<seed>`` (resuming a run found there): a
    picklable task for :func:`engine.analysis.sweep.run_cells`."""

    def __init__(self, fields: dict, out: str, device: str | None = "auto"):
        self.fields, self.out, self.device = dict(fields), out, device

    def __call__(self, cell: dict, shared, threads) -> dict:
        if threads is not None:
            torch.set_num_threads(threads)
        cfg = TrainConfig.from_fields(dict(self.fields, seed=cell["seed"]))
        return train(cfg, os.path.join(self.out, f"seed-{cell['seed']}"), progress=False, device=self.device)
