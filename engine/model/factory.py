"""Specs of common processors and randomly initialised weights for any spec.

Used for untrained models in tests and benchmarks, and as the starting point of learned
models.
"""
from __future__ import annotations

import numpy as np

from ..errors import ModelError
from .spec import FORMAT, VERSION, Model, expected_shapes


def mpnn_spec(hidden: int = 16, *, node_inputs=("pos", "source"), edge_inputs=("weight",),
              groups=(("max", None),), message_depth: int = 2, update_depth: int = 1, gated: bool = False,
              include_self: bool = True, layers: int = 1, dtype: str = "float32", pointer: bool = True,
              name: str = "mpnn") -> dict:
    """A CLRS-style MPNN spec: message MLP (relu), aggregation per group, update, optional gate.

    ``groups`` is a sequence of ``(kind, size)``; a ``None`` size takes the remaining
    channels of the message width (``hidden``).
    """
    sizes, used = [], 0
    for kind, size in groups:
        sizes.append([kind, size])
        used += size or 0
    for g in sizes:
        if g[1] is None:
            g[1] = hidden - used
    width = sum(s for _, s in sizes)
    msg_widths = [hidden] * (message_depth - 1) + [width]
    spec = {
        "format": FORMAT, "version": VERSION, "name": name, "dtype": dtype,
        "node_inputs": list(node_inputs), "edge_inputs": list(edge_inputs), "hidden": hidden,
        "layers": [],
        "decoders": {"out": {"type": "scalar"}},
        "outputs": {"out": "out"},
        "hints": {"out_h": "out"},
        "termination": {"rule": "steps"},
    }
    for _ in range(layers):
        layer = {
            "include_self": include_self,
            "message": {"widths": msg_widths, "activations": ["relu"] * (message_depth - 1) + ["identity"]},
            "groups": [{"kind": k, "size": s} for k, s in sizes],
            "update": {"widths": [hidden] * update_depth, "activations": ["relu"] * update_depth},
        }
        if gated:
            layer["gate"] = {"widths": [hidden, hidden], "activations": ["relu", "identity"]}
        spec["layers"].append(layer)
    if pointer:
        spec["decoders"]["ptr"] = {"type": "pointer", "widths": [hidden, 1], "activations": ["relu", "identity"]}
        spec["outputs"]["ptr"] = "ptr"
    return spec


def gatv2_layer(hidden: int, heads: int, include_self: bool = True) -> dict:
    """The layer spec of one GATv2 layer of width ``hidden`` with ``heads`` heads."""
    if heads < 1 or hidden % heads:
        raise ModelError(f"GATv2 needs heads >= 1 dividing hidden={hidden}, got heads={heads}")
    d, head = hidden, hidden // heads
    return {
        "include_self": include_self,
        "message": {"widths": [4 * d, heads + d], "activations": ["relu", "identity"]},
        "groups": [{"kind": "softmax", "size": 1 + head} for _ in range(heads)],
        "update": {"widths": [d], "activations": ["relu"]},
    }


def gatv2_columns(hidden: int, heads: int):
    """Columns of a GATv2 message's second layer (:func:`gatv2_layer`): for each attention
    channel ``k``, the score column of its head; for each value channel ``c``, its column.
    Head ``h`` owns the group ``[score_h, value channels of h]``."""
    head = hidden // heads
    score_col = np.array([(k // head) * (1 + head) for k in range(hidden)])
    value_col = np.array([(c // head) * (1 + head) + 1 + (c % head) for c in range(hidden)])
    return score_col, value_col


def random_weights(spec: dict, seed: int = 0, scale: float = 1.0) -> dict:
    """Glorot-style random weights for every tensor the spec needs."""
    rng = np.random.default_rng(seed)
    weights = {}
    for name, shape in expected_shapes(spec).items():
        if name.endswith(".ln.weight") or name.endswith(".ln.bias"):  # layer norm: identity scale, no shift
            weights[name] = np.full(shape, 1.0 if name.endswith("weight") else 0.0)
            continue
        fan_in = shape[0] if len(shape) == 2 else 1
        std = scale / np.sqrt(max(fan_in, 1))
        weights[name] = rng.normal(0.0, std, size=shape)
    return weights


def random_model(spec: dict, seed: int = 0, scale: float = 1.0) -> Model:
    return Model(spec, random_weights(spec, seed, scale))
