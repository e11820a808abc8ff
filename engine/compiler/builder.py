"""Assemble a compiled Model from named channels instead of raw indices.

A compiler declares its hidden channels and inputs by name, the layer shapes, and then
sets individual weights (``b.set("layers.0.message.src", "dd", 1, 1.0)``). Everything not
set is zero. :meth:`Builder.model` validates through :class:`engine.Model`.
"""
from __future__ import annotations

import numpy as np

from ..model.spec import FORMAT, VERSION, Model, expected_shapes


class Builder:
    def __init__(self, name: str, hidden: list, node_inputs: list, edge_inputs: list, dtype: str):
        self.hidden = list(hidden)
        self.node_inputs = list(node_inputs)
        self.edge_inputs = list(edge_inputs)
        self.z_names = self.hidden + self.node_inputs
        self.dtype = np.dtype(dtype)
        self.spec = {
            "format": FORMAT, "version": VERSION, "name": name, "dtype": self.dtype.name,
            "node_inputs": self.node_inputs, "edge_inputs": self.edge_inputs, "hidden": len(self.hidden),
            "layers": [], "decoders": {}, "outputs": {}, "hints": {},
            "termination": {"rule": "steps"},  # set by the compiler
        }
        self.weights: dict = {}

    def h(self, name: str) -> int:
        return self.hidden.index(name)

    def z(self, name: str) -> int:
        return self.z_names.index(name)

    def finalize_shapes(self) -> None:
        for name, shape in expected_shapes(self.spec).items():
            if name not in self.weights:
                self.weights[name] = np.zeros(shape, dtype=np.float64)

    def set(self, weight: str, row, col, value) -> None:
        """Set ``weight[row, col]`` (rows of by-parts ``src/dst/node`` blocks may be z-names;
        rows of ``init.weight`` may be input names; columns may be hidden names)."""
        self.finalize_shapes()
        W = self.weights[weight]
        if W.ndim == 1:
            W[self._col(weight, row if col is None else col)] = value
            return
        W[self._row(weight, row), self._col(weight, col)] = value

    def _row(self, weight, row):
        if isinstance(row, int):
            return row
        if weight == "init.weight":
            return self.node_inputs.index(row)
        if weight.endswith(".edge"):
            return self.edge_inputs.index(row)
        return self.z(row)

    def _col(self, weight, col):
        return col if isinstance(col, int) else self.h(col)

    def model(self, description: dict) -> Model:
        self.finalize_shapes()
        self.spec["description"] = description
        return Model(self.spec, {k: v.astype(self.dtype) for k, v in self.weights.items()})


def id_pointer_decoder(b: Builder, name: str, pointer_channel: str) -> None:
    """Pointer decoder that selects the in-neighbour (or self) ``u`` with ``id_u == p_v``.

    Edge score ``-(relu(id_u - p_v) + relu(p_v - id_u))`` = ``-|id_u - p_v|``: 0 exactly at the
    stored pointer, at most -1 elsewhere (integers, exact).
    """
    b.spec["decoders"][name] = {"type": "pointer", "widths": [2, 1], "activations": ["relu", "identity"]}
    p = f"decoders.{name}"
    b.set(f"{p}.src", "id", 0, 1.0)
    b.set(f"{p}.dst", pointer_channel, 0, -1.0)
    b.set(f"{p}.src", "id", 1, -1.0)
    b.set(f"{p}.dst", pointer_channel, 1, 1.0)
    b.set(f"{p}.1.weight", 0, 0, -1.0)
    b.set(f"{p}.1.weight", 1, 0, -1.0)


def mask_decoder(b: Builder, name: str, channel: str) -> None:
    """Mask decoder for a 0/1 channel: logit ``2 x - 1``."""
    b.spec["decoders"][name] = {"type": "mask"}
    b.set(f"decoders.{name}.weight", channel, 0, 2.0)
    b.set(f"decoders.{name}.bias", None, 0, -1.0)


def scalar_decoder(b: Builder, name: str, channel: str) -> None:
    """Scalar decoder reading one channel unchanged."""
    b.spec["decoders"][name] = {"type": "scalar"}
    b.set(f"decoders.{name}.weight", channel, 0, 1.0)
