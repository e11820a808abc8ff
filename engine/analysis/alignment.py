"""Learned against compiled, parameter by parameter (docs/compiled_in_learned.md; COMPARISON.md).

Two models of the same learned MPNN spec (one trained, one compiled into it) have weights that
correspond by name, but hidden units that do not: any permutation of a set of units, and any
positive per-unit scale that ReLU and max allow, leave the function unchanged. Before two such
points are compared, both symmetries are removed:

* :func:`balance` puts every model in one canonical scale: each unit's incoming and outgoing
  weights get equal norms (the rescaling of least total squared norm, reached by iterating);
* :func:`align` permutes the trained model's units onto the compiled model's: node state,
  message MLP hidden units and message channels by the cosine of their activations on the same
  graphs (``scipy.optimize.linear_sum_assignment``), ties (units whose activations agree) broken
  by their weights; the pointer decoders' hidden units, which read only the aligned state and
  fixed inputs, by their weights.

:func:`parameter_report` gives the distance between the two canonical points and the loss
along the straight path between them (the barrier).

    python -m engine.analysis.alignment --algo bfs runs/bfs-mpnn-s*/best.npz --out report.json

compares each trained model with the compiled model of its spec (needs the ``torch`` extra).
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass

import numpy as np

from .._cli import Parser, non_negative_int, positive_int, run_main
from .._files import atomic_write, writable_file
from ..algorithms import ALGORITHMS
from ..errors import EngineError
from ..model.spec import Model, layout

TIE_WEIGHT = 1e-6  # weight distances only decide between units whose activation cosines agree to ~1e-6
BALANCE_SWEEPS = 500
BALANCE_TOLERANCE = 1e-12


@dataclass(frozen=True)
class Block:
    """The entries of weight ``name`` that belong to a unit set: ``size`` positions from ``start``
    along ``axis``. ``others`` lists the unit sets found along the other axis, as
    ``(set name, start)`` (empty for a bias or when the other axis holds fixed inputs only)."""

    name: str
    axis: int
    start: int
    others: tuple = ()


@dataclass(frozen=True)
class UnitSet:
    """Units a permutation or positive scale acts on: a unit's entries in ``outputs`` (the
    weights that produce it) scale with it, those in ``inputs`` (the weights that read it)
    inversely. ``activation``: whether :func:`activations` records the set."""

    name: str
    size: int
    outputs: tuple
    inputs: tuple
    activation: bool = True


def unit_sets(spec: dict) -> list:
    """The unit sets of a one-layer learned MPNN spec (no gate, no graph state)."""
    layers = spec["layers"]
    if len(layers) != 1 or layers[0].get("gate") or spec.get("graph_hidden") or spec.get("processor"):
        raise EngineError("parameter alignment handles one-layer MPNN specs without gate, graph state or "
                          "a processor parametrisation")
    message, update = layers[0]["message"], layers[0]["update"]
    if len(message["widths"]) != 2 or len(update["widths"]) != 1 or update["activations"] != ["relu"]:
        raise EngineError("parameter alignment expects a two-layer message MLP and a one-layer ReLU update")
    if message["activations"][0] != "relu" or any(g["kind"] != "max" for g in layers[0]["groups"]):
        raise EngineError("parameter alignment needs ReLU message units and max aggregation "
                          "(the positive scales it removes must leave the function unchanged)")
    m, u = "layers.0.message", "layers.0.update"
    state = [("state", 0)]
    readers = [Block(f"{m}.src", 0, 0, (("message hidden", 0),)), Block(f"{m}.dst", 0, 0, (("message hidden", 0),)),
               Block(f"{u}.node", 0, 0, (("state", 0),))]
    decoder_sets = []
    for name, dec in spec["decoders"].items():
        p = f"decoders.{name}"
        if dec["type"] == "pointer":
            if len(dec["widths"]) != 2 or dec["activations"][0] != "relu":
                raise EngineError(f"parameter alignment expects a two-layer ReLU pointer decoder ({name!r})")
            units = f"decoder {name}"
            readers += [Block(f"{p}.src", 0, 0, ((units, 0),)), Block(f"{p}.dst", 0, 0, ((units, 0),))]
            decoder_sets.append(UnitSet(
                units, dec["widths"][0],
                outputs=(Block(f"{p}.src", 1, 0, tuple(state)), Block(f"{p}.dst", 1, 0, tuple(state)),
                         Block(f"{p}.edge", 1, 0), Block(f"{p}.bias", 0, 0)),
                inputs=(Block(f"{p}.1.weight", 0, 0),), activation=False))
        elif dec["type"] in ("mask", "scalar", "categorical"):
            readers.append(Block(f"{p}.weight", 0, 0))
        else:
            raise EngineError(f"parameter alignment does not handle {dec['type']!r} decoders ({name!r})")
    layout(spec)  # validates the feedback columns the blocks below index
    return [
        UnitSet("state", spec["hidden"],
                outputs=(Block("init.weight", 1, 0), Block("init.bias", 0, 0), Block(f"{u}.node", 1, 0, tuple(state)),
                         Block(f"{u}.agg", 1, 0, (("message channels", 0),)), Block(f"{u}.bias", 0, 0)),
                inputs=tuple(readers)),
        UnitSet("message hidden", message["widths"][0],
                outputs=(Block(f"{m}.src", 1, 0, tuple(state)), Block(f"{m}.dst", 1, 0, tuple(state)),
                         Block(f"{m}.edge", 1, 0), Block(f"{m}.bias", 0, 0)),
                inputs=(Block(f"{m}.1.weight", 0, 0, (("message channels", 0),)),)),
        UnitSet("message channels", message["widths"][1],
                outputs=(Block(f"{m}.1.weight", 1, 0, (("message hidden", 0),)), Block(f"{m}.1.bias", 0, 0)),
                inputs=(Block(f"{u}.agg", 0, 0, tuple(state)),)),
        *decoder_sets,
    ]


def _units(W: np.ndarray, block: Block, size: int) -> np.ndarray:
    """The block's entries as ``(size, rest)`` rows, one per unit."""
    sl = [slice(None)] * W.ndim
    sl[block.axis] = slice(block.start, block.start + size)
    return np.moveaxis(W[tuple(sl)], block.axis, 0).reshape(size, -1)


def _apply(W: np.ndarray, block: Block, size: int, fn) -> None:
    sl = [slice(None)] * W.ndim
    sl[block.axis] = slice(block.start, block.start + size)
    W[tuple(sl)] = fn(W[tuple(sl)])


def _factor_shape(W: np.ndarray, axis: int, size: int) -> tuple:
    shape = [1] * W.ndim
    shape[axis] = size
    return tuple(shape)


def permute(model: Model, perms: dict) -> Model:
    """``model`` with units reordered: in each set named in ``perms``, new unit ``i`` is old
    unit ``perms[set][i]``. The function is unchanged."""
    weights = {k: v.copy() for k, v in model.weights.items()}
    for us in unit_sets(model.spec):
        if us.name in perms:
            for b in us.outputs + us.inputs:
                _apply(weights[b.name], b, us.size, lambda x, b=b, p=perms[us.name]: np.take(x, p, axis=b.axis))
    return Model(model.spec, weights)


def rescale(weights: dict, us: UnitSet, factors: np.ndarray) -> None:
    """Scale each unit of ``us`` by ``factors`` (its outputs by c, its inputs by 1/c), in place."""
    for b in us.outputs:
        W = weights[b.name]
        _apply(W, b, us.size, lambda x: x * factors.reshape(_factor_shape(W, b.axis, us.size)))
    for b in us.inputs:
        W = weights[b.name]
        _apply(W, b, us.size, lambda x: x / factors.reshape(_factor_shape(W, b.axis, us.size)))


def balance(model: Model) -> Model:
    """``model`` in the canonical scale: every unit's incoming weights (and biases) and outgoing
    weights have equal norms, the positive rescaling of least total squared norm (a convex
    problem in the log-scales, solved by block coordinate steps). Units with no incoming or no
    outgoing weight keep their scale. The function is unchanged."""
    weights = {k: v.astype(np.float64) for k, v in model.weights.items()}
    sets = unit_sets(model.spec)
    for _ in range(BALANCE_SWEEPS):
        worst = 0.0
        for us in sets:
            in2 = sum((_units(weights[b.name], b, us.size) ** 2).sum(axis=1) for b in us.outputs)
            out2 = sum((_units(weights[b.name], b, us.size) ** 2).sum(axis=1) for b in us.inputs)
            ok = (in2 > 0) & (out2 > 0)
            factors = np.ones(us.size)
            factors[ok] = (out2[ok] / in2[ok]) ** 0.25
            worst = max(worst, float(np.abs(np.log(factors)).max()))
            rescale(weights, us, factors)
        if worst < BALANCE_TOLERANCE:
            break
    return Model(model.spec, {k: v.astype(model.dtype) for k, v in weights.items()})


def layer_messages(module, batch, ro, t: int):
    """The first (only) layer's messages at step ``t`` of a torch rollout ``ro``: ``(first-layer
    activations, message outputs, src, pos)`` per message (in-neighbours and self), reading
    the state ``h_t`` with the hints fed back from it (as ``z_{t+1}`` holds them)."""
    import torch

    from ..backends import torch_ops as ops

    layer = module.plan().layers[0]
    src, pos, eid = batch.index[layer.include_self]
    d = module.spec["hidden"]
    z, E = torch.cat([ro.states[t], ro.zs[t + 1][:, d:]], dim=1), ro.Es[t + 1]
    hidden = ops.first_layer(z @ layer.message.src, z @ layer.message.dst + layer.message.bias, E,
                             layer.message.edge if E is not None else None, src, pos, eid, layer.message.act0)
    return hidden, ops.dense_tail(hidden, layer.message.tail), src, pos


def activations(model: Model, data: dict, steps: int) -> dict:
    """Per unit set recorded, the units' activations (samples x units) at every step of a
    rollout of ``model`` on a batch of graphs (hints fed back hard, as the executor does)."""
    import torch

    from ..backends import torch_ops as ops
    from ..learn.module import GNNModule, GraphBatch

    module = GNNModule.from_model(model)
    batch = GraphBatch(data["graphs"], data["sources"], model.spec)
    layer = module.plan().layers[0]
    out = {"state": [], "message hidden": [], "message channels": []}
    with torch.no_grad():
        ro = module.rollout(batch, steps)
        for t in range(steps):
            hidden, messages, src, pos = layer_messages(module, batch, ro, t)
            agg, _ = ops.aggregate(messages, src, pos, batch.num_nodes, layer.groups)
            out["state"].append(ro.states[t + 1].numpy())
            out["message hidden"].append(hidden.numpy())
            out["message channels"].append(agg.numpy())
    return {k: np.concatenate(v).astype(np.float64) for k, v in out.items()}


def _cosines(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Cosines between the columns of A and of B (the measure positive scales leave alone;
    0 against an all-zero column)."""
    na, nb = np.linalg.norm(A, axis=0), np.linalg.norm(B, axis=0)
    return (A.T @ B) / np.outer(np.where(na > 0, na, 1.0), np.where(nb > 0, nb, 1.0))


def signatures(model: Model, us: UnitSet, known: set) -> np.ndarray:
    """Each unit's weights, one row per unit, keeping along the other axes only fixed inputs and
    units of the sets in ``known`` (those already aligned)."""
    parts = []
    for b in us.outputs + us.inputs:
        rows = _units(model.weights[b.name].astype(np.float64), b, us.size)
        if b.others:
            W = model.weights[b.name]
            other = W.shape[1 - b.axis] if W.ndim == 2 else 1
            keep = np.ones(other, dtype=bool)
            sizes = {s.name: s.size for s in unit_sets(model.spec)}
            for name, start in b.others:
                if name == us.name or name not in known:
                    keep[start:start + sizes[name]] = False
            rows = rows[:, keep]
        parts.append(rows)
    return np.concatenate(parts, axis=1)


def _distances(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    D = np.sqrt(np.maximum(((A[:, None, :] - B[None, :, :]) ** 2).sum(axis=2), 0.0))
    return D / max(float(D.max()), 1e-300)


def align(learned: Model, compiled: Model, data: dict, steps: int):
    """Permute the units of ``learned`` (a balanced model) onto those of ``compiled`` (balanced)
    set by set; returns ``(aligned model, {set: mean activation cosine of the matched pairs
    over the compiled model's active units})``."""
    from scipy.optimize import linear_sum_assignment

    if learned.spec["layers"] != compiled.spec["layers"] or learned.spec["hidden"] != compiled.spec["hidden"] \
            or learned.spec["decoders"] != compiled.spec["decoders"]:
        raise EngineError("the two models must share the learned spec's layers, width and decoders")
    act_l, act_c = activations(learned, data, steps), activations(compiled, data, steps)
    quality, known, current = {}, set(), learned
    for us in unit_sets(learned.spec):
        ties = _distances(signatures(compiled, us, known), signatures(current, us, known))
        if us.activation:
            C = _cosines(act_c[us.name], act_l[us.name])  # compiled units x learned units
            cost = -C + TIE_WEIGHT * ties
        else:
            cost = ties
        rows, cols = linear_sum_assignment(cost)
        perm = np.empty(us.size, dtype=np.int64)
        perm[rows] = cols  # new unit i, matched to compiled unit i, is learned unit perm[i]
        current = permute(current, {us.name: perm})
        known.add(us.name)
        if us.activation:
            active = np.abs(act_c[us.name]).max(axis=0) > 0
            quality[us.name] = float(C[rows, cols][active[rows]].mean()) if active.any() else float("nan")
    return current, quality


def flat(model: Model) -> np.ndarray:
    """Every weight, in name order, as one float64 vector."""
    return np.concatenate([model.weights[k].astype(np.float64).ravel() for k in sorted(model.weights)])


def parameter_report(learned: Model, compiled: Model, algo: str, *, graphs: int = 32, seed: int = 0,
                     points: int = 11, batches: int = 2) -> dict:
    """Distance between a trained and the compiled point once both are balanced and aligned, and
    the training loss along the straight path between them (CLRS training batches).

    Returns a dict: matched activation cosines per unit set, ``distance`` and the same relative to
    each point's norm, the distance before alignment (balanced only), the path's losses and its
    ``barrier`` (the most the loss rises above the straight line between its ends)."""
    import torch

    from ..learn.module import GNNModule
    from ..learn.trainer import TrainConfig, batch_loss, sample_batch

    cfg = TrainConfig(algo=algo, seed=seed).validate()
    rng = np.random.RandomState(seed)
    probe = sample_batch(cfg, rng, graphs, cfg.train_sizes)
    steps = max(r.steps for r in probe["refs"])
    a0, c = balance(learned), balance(compiled)
    a, quality = align(a0, c, probe, steps)
    ta, tc = flat(a), flat(c)
    dist = float(np.linalg.norm(ta - tc))
    data = [sample_batch(cfg, rng, cfg.batch, cfg.train_sizes) for _ in range(batches)]

    def loss(weights: dict) -> float:
        module = GNNModule.from_model(Model(learned.spec, weights))
        with torch.no_grad():
            return float(np.mean([float(batch_loss(module, cfg, d)) for d in data]))

    alphas = np.linspace(0.0, 1.0, points)
    path = [loss({k: ((1 - al) * a.weights[k].astype(np.float64) + al * c.weights[k].astype(np.float64))
                  .astype(learned.dtype) for k in a.weights}) for al in alphas]
    linear = (1 - alphas) * path[0] + alphas * path[-1]
    return {"algorithm": algo, "learned": learned.name, "compiled": compiled.name,
            "matched_cosine": quality, "distance": dist,
            "distance_over_learned_norm": dist / max(float(np.linalg.norm(ta)), 1e-300),
            "distance_over_compiled_norm": dist / max(float(np.linalg.norm(tc)), 1e-300),
            "distance_before_alignment": float(np.linalg.norm(flat(a0) - tc)),
            "path_alphas": alphas.tolist(), "path_loss": path,
            "barrier": float(np.max(np.array(path) - linear))}


def compiled_counterpart(learned: Model, algo: str) -> Model:
    """The model ``algo`` compiles into ``learned``'s spec (same processor, width, heads and
    hint mode)."""
    from ..algorithms.specs import HINT_MODES
    from ..compiler import compile as compile_model

    keys = ("layers", "hidden", "decoders", "feedback", "node_inputs", "edge_inputs", "outputs", "hints",
            "processor", "message_graph")

    def differing(a: dict, b: dict) -> list:
        return [k for k in keys if a.get(k) != b.get(k)]

    proc = learned.spec.get("processor") or {}
    kind = proc.get("kind", "mpnn")
    extra = {"heads": int(proc.get("heads", 1))} if kind != "mpnn" else {}
    graph = learned.spec.get("message_graph", "input")
    fewest, refusals = None, []
    for mode in HINT_MODES:
        try:
            compiled = compile_model(algo, processor=kind, hidden=learned.spec["hidden"], hint_mode=mode,
                                     message_graph=graph, **extra)
        except EngineError as exc:
            refusals.append(str(exc))
            continue
        diff = differing(compiled.spec, learned.spec)
        if not diff:
            return compiled
        fewest = diff if fewest is None or len(diff) < len(fewest) else fewest
    why = []
    if fewest is None:
        where = "every pair of nodes" if graph == "complete" else "the input's edges"
        why.append(f"{algo} compiles into no {kind} spec over {where} ({refusals[0]})")
    if any(layer.get("update", {}).get("layer_norm") for layer in learned.spec["layers"]):
        why.append("it layer-normalises its updates, which none of the constructions passes exactly")
    raise EngineError(f"{learned.name!r} does not have a spec {algo} compiles into (processor {kind}, hidden "
                      f"{learned.spec['hidden']}, any hint mode of {list(HINT_MODES)}): "
                      f"{'; '.join(why) if why else 'it differs in ' + ', '.join(fewest)}")


def _main(argv) -> int:
    p = Parser(prog="python -m engine.analysis.alignment", description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="+", help="trained Model files (.npz) of one algorithm, MPNN processor")
    p.add_argument("--algo", required=True, choices=sorted(ALGORITHMS))
    p.add_argument("--graphs", type=positive_int, default=32, help="graphs whose activations align the units")
    p.add_argument("--points", type=positive_int, default=11, help="points on the straight path")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--out", default=None, help="write the reports here as JSON (else print)")
    args = p.parse_args(argv)
    out = writable_file(args.out, "the report") if args.out else None
    reports = []
    for path in args.models:
        learned = Model.load(path)
        report = parameter_report(learned, compiled_counterpart(learned, args.algo), args.algo,
                                  graphs=args.graphs, seed=args.seed, points=args.points)
        reports.append({"file": path, **report})
    text = json.dumps(reports, indent=1)
    if out:
        def write(tmp: str) -> None:
            with open(tmp, "w") as f:
                f.write(text + "\n")

        atomic_write(out, write)
    else:
        print(text)
    return 0


def main(argv=None) -> int:
    return run_main(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
