"""Assemble a compiled Model from named channels instead of raw indices.

A compiler declares its hidden channels, inputs and (optionally) graph state by name, the
layer shapes in ``spec``, and then sets individual weights by the names of their rows and
columns: ``b.set("layers.0.message.src", "dd", 1, 1.0)`` (row ``dd`` of ``z``, column 1), or a
whole unit at once, ``b.unit("layers.0.update.node", "disc", {"a_top": 1.0, "b_DISC": 1.0},
"layers.0.update.bias", -1.0)``. MLPs whose intermediate units have names are declared with
:meth:`Builder.mlp`. Everything not set is zero. :meth:`Builder.model` validates through
:class:`engine.Model`.

Default names: rows of a part that reads ``z`` are ``z``'s columns (hidden channels, node
inputs, then ``a_<pointer>`` address and ``b_<channel>`` broadcast features); rows of
``init.weight`` the node inputs; rows of an ``edge`` part the edge inputs; rows of a graph
part the graph channels; columns of a layer as wide as the state the hidden channels (as wide
as the graph state, the graph channels); anything else is addressed by position.
"""
from __future__ import annotations

import numpy as np

from ..model.spec import FORMAT, VERSION, Model, expected_shapes


class Builder:
    """A compiled model under construction: its spec and its weights by row and column names."""

    def __init__(self, name: str, hidden: list, node_inputs: list, edge_inputs: list, dtype: str, *,
                 graph: list = (), pointers: list = (), broadcast: list = ()):
        self.hidden = list(hidden)
        self.node_inputs = list(node_inputs)
        self.edge_inputs = list(edge_inputs)
        self.graph = list(graph)
        self.z_names = (self.hidden + self.node_inputs + [f"a_{p}" for p in pointers]
                        + [f"b_{c}" for c in broadcast])
        self.dtype = np.dtype(dtype)
        self.spec = {
            "format": FORMAT, "version": VERSION, "name": name, "dtype": self.dtype.name,
            "node_inputs": self.node_inputs, "edge_inputs": self.edge_inputs, "hidden": len(self.hidden),
            "layers": [], "decoders": {}, "outputs": {}, "hints": {},
            "termination": {"rule": "steps"},  # set by the compiler
        }
        if self.graph:
            self.spec.update(graph_hidden=len(self.graph), graph_pointers=[self.graph.index(p) for p in pointers],
                             graph_broadcast=[self.graph.index(c) for c in broadcast])
        self.weights: dict = {}  # name -> (array, row names or None, column names or None)

    @classmethod
    def for_spec(cls, spec: dict, hidden: list) -> "Builder":
        """A builder over an existing spec (e.g. a learned architecture's), its hidden channels
        named by ``hidden`` (the rest ``h<i>``) and ``z``'s fed-back hint columns named
        ``f_<decoder>`` (``f_<decoder>_<class>`` for a categorical), its edge inputs likewise."""
        from ..model.spec import layout

        lay = layout(spec)
        names = list(hidden) + [f"h{i}" for i in range(len(hidden), spec["hidden"])]
        b = cls(spec.get("name", "compiled"), names, list(spec.get("node_inputs", [])),
                list(spec.get("edge_inputs", [])), spec["dtype"])
        fed = [f"f_{s.decoder}" if s.width == 1 else f"f_{s.decoder}_{k}" for s in lay.feedback for k in range(s.width)]
        b.z_names = names + b.node_inputs + fed
        b.edge_inputs = b.edge_inputs + [f"f_{s.decoder}" for s in lay.feedback if s.kind == "pointer"]
        b.spec = spec
        return b

    def h(self, name: str) -> int:
        return self.hidden.index(name)

    def g(self, name: str) -> int:
        return self.graph.index(name)

    # ------------------------------------------------------------ declaring
    def dense(self, name: str, rows: list, cols: list) -> None:
        """Declare weight matrix ``name`` with named rows and columns."""
        self.weights[name] = (np.zeros((len(rows), len(cols))), list(rows), list(cols))

    def bias(self, name: str, cols: list) -> None:
        """Declare bias vector ``name`` with named entries."""
        self.weights[name] = (np.zeros(len(cols)), None, list(cols))

    def mlp(self, prefix: str, parts: dict, layers: list) -> None:
        """Declare a by-parts MLP: ``parts`` (part name -> its row names) feed the first layer,
        whose outputs are ``layers[0]``; ``layers[j]`` names the outputs of layer ``j``."""
        for part, rows in parts.items():
            self.dense(f"{prefix}.{part}", rows, layers[0])
        self.bias(f"{prefix}.bias", layers[0])
        for j in range(1, len(layers)):
            self.dense(f"{prefix}.{j}.weight", layers[j - 1], layers[j])
            self.bias(f"{prefix}.{j}.bias", layers[j])

    def _declared(self, name: str):
        """The named weight ``name``, declared from the spec with default names if new."""
        if name not in self.weights:
            shape = expected_shapes(self.spec)[name]
            cols = self._default_names(shape[-1])
            if len(shape) == 1:
                self.weights[name] = (np.zeros(shape), None, cols)
            else:
                self.weights[name] = (np.zeros(shape), self._row_names(name, shape[0]), cols)
        return self.weights[name]

    def _default_names(self, width: int):
        if width == len(self.hidden):
            return list(self.hidden)
        if self.graph and width == len(self.graph):
            return list(self.graph)
        return list(range(width))

    def _row_names(self, name: str, rows: int):
        if name == "init.weight":
            return list(self.node_inputs)
        part = name.rsplit(".", 1)[-1]
        if part == "edge":
            return list(self.edge_inputs)
        if part in ("src", "dst", "node", "weight") and rows == len(self.z_names):
            return list(self.z_names)
        if part == "graph":
            return list(self.graph)
        return list(range(rows))

    # ------------------------------------------------------------ setting
    def set(self, weight: str, row, col, value) -> None:
        """Set ``weight[row, col]`` (a bias: ``weight[col]``, ``row`` None) by names or positions."""
        W, rows, cols = self._declared(weight)
        if W.ndim == 1:
            W[_index(cols, row if col is None else col)] = value
            return
        W[_index(rows, row), _index(cols, col)] = value

    def unit(self, weight: str, col, terms: dict, bias_name: str | None = None, bias: float = 0.0) -> None:
        """Column ``col`` of ``weight`` = sum of ``terms`` (row -> weight), plus ``bias`` in
        ``bias_name``."""
        for row, value in terms.items():
            self.set(weight, row, col, value)
        if bias_name is not None:
            self.set(bias_name, None, col, bias)

    def model(self, description: dict) -> Model:
        """The :class:`~engine.Model`: the spec, every declared weight, zeros elsewhere."""
        self.spec["description"] = description
        weights = {}
        for name, shape in expected_shapes(self.spec).items():
            W = self.weights[name][0] if name in self.weights else np.zeros(shape)
            if W.shape != tuple(shape):
                raise AssertionError(f"{name}: declared {W.shape}, the spec needs {tuple(shape)}")
            weights[name] = W.astype(self.dtype)
        return Model(self.spec, weights)


def _index(names, key) -> int:
    return key if isinstance(key, int) and (names is None or key not in names) else names.index(key)


def block(layers: list) -> dict:
    """Spec of an MLP with outputs ``layers``: relu on every layer but the last."""
    return {"widths": [len(cols) for cols in layers], "activations": ["relu"] * (len(layers) - 1) + ["identity"]}


def gate_opens(b: Builder, weight: str, bias: str, opens: dict, sat: float) -> None:
    """The last layer of a saturated gate: channel ``ch``'s logit is ``2 sat sum(events) - sat``
    for its events ``opens[ch]`` (0/1 units of the previous layer; the channel is written
    exactly when one holds), or ``+sat`` (always written) where ``opens[ch]`` is None."""
    for ch, on in opens.items():
        b.unit(weight, ch, {c: 2 * sat for c in on or []}, bias, sat if on is None else -sat)


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


def linear_decoder(b: Builder, name: str, kind: str, terms: dict, classes: int = 1) -> None:
    """A ``scalar``, ``mask_one`` or ``categorical`` decoder: logit ``k`` = sum of ``terms[k]``
    (z-name -> weight)."""
    b.spec["decoders"][name] = {"type": kind, "classes": classes} if kind == "categorical" else {"type": kind}
    for k, row_terms in terms.items():
        b.unit(f"decoders.{name}.weight", k, row_terms)


def scalar_decoder(b: Builder, name: str, channel: str) -> None:
    """Scalar decoder reading one channel unchanged."""
    linear_decoder(b, name, "scalar", {0: {channel: 1.0}})
