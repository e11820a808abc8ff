"""A model's weights gathered into typed blocks: the one reading of a spec's arithmetic.

:func:`build_plan` turns a validated spec and its weights into a :class:`ModelPlan`:
per-layer blocks (message MLP, aggregation groups, update, gate, readout, graph update),
decoders and the input layout. Every consumer of a model's arithmetic reads these blocks,
so none of them interprets the spec on its own: the executor's Python step loops
(:mod:`engine.runtime`), the native step loop (``python/bindings.cpp`` reads the blocks
attribute by attribute) and the torch module (:mod:`engine.learn.module`, which builds the
same plan over its parameters). The arrays are whatever the weight getter returns: NumPy
arrays for a :class:`~engine.Model`, torch tensors for the module.

Notation (see :mod:`engine.model.spec`): ``z = [h, x, f, a, b]`` (:class:`Layout`), ``e`` the
edge inputs, ``g`` the graph state.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from . import registry as R
from .spec import Layout, layout

Array = Any  # numpy.ndarray or torch.Tensor


@dataclass(frozen=True)
class Dense:
    """A dense layer ``y = act(x @ weight + bias)`` (``act``: an :data:`~registry.ACTIVATIONS` code)."""

    weight: Array
    bias: Array
    act: int


@dataclass(frozen=True)
class EdgeMLP:
    """An MLP on an edge ``u -> v`` whose first layer is linear by parts:
    ``act0((z_u @ src + z_v @ dst + bias) + e_uv @ edge)``, then the ``tail`` layers. The
    per-node parts ``S = z @ src`` and ``Q = z @ dst + bias`` are computed once per node.
    A message MLP, or a pointer decoder's edge score (final width 1)."""

    src: Array
    dst: Array
    bias: Array
    edge: Array  # (f_e, k0)
    act0: int
    tail: tuple  # of Dense

    @property
    def width(self) -> int:
        """Channels of the result."""
        return int((self.tail[-1].weight if self.tail else self.src).shape[1])


@dataclass(frozen=True)
class NodeMLP:
    """An MLP on a row whose first layer is linear by parts:
    ``act0((z @ Wz + agg @ Wa) + b0)``, then the ``tail`` layers, then, if ``ln_gamma`` is
    set, a layer norm (population variance, eps :data:`~registry.LAYER_NORM_EPS`).
    Update and gate MLPs (``z``: the node's inputs, ``agg``: its aggregate), readouts
    (``z``: ``[h', x]``; ``Wa`` is None) and the graph update and gate (``z``: the graph
    state, ``agg``: the reduced readouts)."""

    Wz: Array
    Wa: Array | None
    b0: Array
    act0: int
    tail: tuple  # of Dense
    ln_gamma: Array | None = None
    ln_beta: Array | None = None

    @property
    def width(self) -> int:
        return int((self.tail[-1].weight if self.tail else self.Wz).shape[1])


@dataclass(frozen=True)
class Readout:
    """A graph readout: ``mlp`` on every node's ``[h', x]``, reduced over the nodes channel by
    channel: ``codes[j]`` indexes :data:`~registry.READOUT_CHANNELS` (``min``/``max``
    alone; ``argmin``/``argmax`` the key of a group of the following ``payload`` channels)."""

    mlp: NodeMLP
    codes: np.ndarray  # uint8, one per readout channel


@dataclass(frozen=True)
class LayerPlan:
    """One processor layer: messages, aggregation, update, optional gate, readout and graph
    update (see :mod:`engine.model.spec`)."""

    message: EdgeMLP
    groups: np.ndarray  # int64 (G, 3): aggregation code, first channel, end channel
    include_self: bool
    update: NodeMLP
    gate: NodeMLP | None
    readout: Readout | None
    graph_update: NodeMLP | None
    graph_gate: NodeMLP | None

    @property
    def aggregations(self) -> list:
        """The :class:`~registry.Aggregation` of each group."""
        return [R.aggregation(int(code)) for code in self.groups[:, 0]]


@dataclass(frozen=True)
class Decoder:
    """A decoder: ``kind`` a :data:`~registry.DECODER_TYPES` name; linear ones read ``z``
    (``graph_scalar``: ``g``) through ``weight`` and ``bias``; a pointer scores each
    candidate edge with ``score``."""

    name: str
    kind: str
    weight: Array | None = None
    bias: Array | None = None
    score: EdgeMLP | None = None
    classes: int = 1


@dataclass(frozen=True)
class ModelPlan:
    """Everything a model computes with, in typed blocks."""

    layout: Layout
    dtype: np.dtype
    init_weight: Array
    init_bias: Array
    graph_init: Array | None
    layers: tuple  # of LayerPlan
    decoders: dict  # name -> Decoder
    outputs: dict  # CLRS name -> decoder name
    hints: dict


def _act(name: str) -> int:
    return R.code(name, R.ACTIVATIONS, "activation")


def _tail(prefix: str, block: dict, w: Callable) -> tuple:
    return tuple(Dense(w(f"{prefix}.{j}.weight"), w(f"{prefix}.{j}.bias"), _act(block["activations"][j]))
                 for j in range(1, len(block["widths"])))


def _edge_mlp(prefix: str, block: dict, w: Callable) -> EdgeMLP:
    return EdgeMLP(w(f"{prefix}.src"), w(f"{prefix}.dst"), w(f"{prefix}.bias"), w(f"{prefix}.edge"),
                   _act(block["activations"][0]), _tail(prefix, block, w))


def _node_mlp(prefix: str, block: dict, w: Callable, parts=("node", "agg")) -> NodeMLP:
    z_part, agg_part = parts
    norm = (w(f"{prefix}.ln.weight"), w(f"{prefix}.ln.bias")) if block.get("layer_norm") else (None, None)
    return NodeMLP(w(f"{prefix}.{z_part}"), w(f"{prefix}.{agg_part}") if agg_part else None, w(f"{prefix}.bias"),
                   _act(block["activations"][0]), _tail(prefix, block, w), *norm)


def readout_codes(groups: list) -> np.ndarray:
    """Per-channel :data:`~registry.READOUT_CHANNELS` codes of a readout's groups."""
    codes = []
    for g in groups:
        codes.append(R.code(g["kind"], R.READOUT_KINDS, "readout reduction"))
        follow = "payload" if g["kind"] in R.READOUT_ARG_KINDS else g["kind"]
        codes += [R.READOUT_CHANNELS.index(follow)] * (g["size"] - 1)
    return np.array(codes, dtype=np.uint8)


def group_table(groups: list) -> np.ndarray:
    """The ``(G, 3)`` int64 table ``(aggregation code, start, stop)`` of a layer's groups."""
    table, start = [], 0
    for g in groups:
        table.append((R.aggregation(g["kind"]).code, start, start + g["size"]))
        start += g["size"]
    return np.array(table, dtype=np.int64).reshape(-1, 3)


def _layer(i: int, spec: dict, w: Callable) -> LayerPlan:
    ls, p = spec["layers"][i], f"layers.{i}"
    readout = None
    if ls.get("readout") is not None:
        ro = ls["readout"]
        readout = Readout(_node_mlp(f"{p}.readout", ro, w, parts=("node", None)), readout_codes(ro["groups"]))
    graph = {key: _node_mlp(f"{p}.{key}", ls[key], w, parts=("graph", "readout"))
             for key in ("graph_update", "graph_gate") if ls.get(key) is not None}
    return LayerPlan(
        message=_edge_mlp(f"{p}.message", ls["message"], w), groups=group_table(ls["groups"]),
        include_self=bool(ls["include_self"]), update=_node_mlp(f"{p}.update", ls["update"], w),
        gate=_node_mlp(f"{p}.gate", ls["gate"], w) if ls.get("gate") is not None else None,
        readout=readout, graph_update=graph.get("graph_update"), graph_gate=graph.get("graph_gate"))


def _decoder(name: str, dec: dict, w: Callable) -> Decoder:
    p = f"decoders.{name}"
    if dec["type"] == "pointer":
        return Decoder(name, "pointer", score=_edge_mlp(p, dec, w))
    return Decoder(name, dec["type"], w(f"{p}.weight"), w(f"{p}.bias"),
                   classes=dec.get("classes", 1) if dec["type"] == "categorical" else 1)


def build_plan(spec: dict, weight: Callable[[str], Array]) -> ModelPlan:
    """The :class:`ModelPlan` of a validated ``spec``, with ``weight(name)`` giving each weight."""
    lay = layout(spec)
    return ModelPlan(
        layout=lay, dtype=np.dtype(spec["dtype"]), init_weight=weight("init.weight"), init_bias=weight("init.bias"),
        graph_init=weight("graph_init.bias") if lay.dg else None,
        layers=tuple(_layer(i, spec, weight) for i in range(len(spec["layers"]))),
        decoders={name: _decoder(name, dec, weight) for name, dec in spec.get("decoders", {}).items()},
        outputs=dict(spec.get("outputs", {})), hints=dict(spec.get("hints", {})))
