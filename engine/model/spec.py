"""Model: a JSON spec plus named weight arrays (docs/architecture.md, "The spec").

Compiled and learned models share this format and the executor. Notation: ``h`` node
states (n x d), ``x`` raw node inputs (n x f_x, built by the executor from the names in
``node_inputs``), ``z = [h, x]`` (n x f_z), ``e`` edge inputs (m x f_e).

Spec keys
---------
``format``/``version``
    ``"engine-model"`` / 1.
``name``, ``dtype``
    Free name; ``"float32"`` or ``"float64"`` (all weights and states).
``node_inputs``, ``edge_inputs``
    Feature names from :mod:`engine.model.registry`.
``message_graph`` (optional)
    ``"input"`` (default): messages and pointer candidates run over the input graph's edges
    (plus the virtual self edges below); ``"complete"``: over every ordered pair of nodes,
    self pairs included, with the input graph seen through the edge inputs ``adjacency`` and
    ``weight`` (CLRS's fully connected MPNN; :mod:`engine.model.message_graph`). Its layers
    have ``include_self`` false (the self pair is an edge) and its pointer decoders choose
    among all nodes.
``hidden``
    ``d``. The initial state is ``h0 = x @ init.weight + init.bias``.
``layers``
    Processor layers, applied in order once per step. Each has:

    * ``include_self``: whether a virtual self-edge (zero edge features) sends a message;
    * ``message``: ``{"widths": [k0, ...], "activations": [...]}``. The first layer is linear
      by parts: ``pre = (z_u @ src + z_v @ dst + bias) + e_uv @ edge``, computed per node for
      the src/dst parts; further layers are dense, applied per edge;
    * ``groups``: ``[{"kind": REDUCE, "size": s}, ...]`` tiling the message channels; for
      ``argmax``/``argmin`` the first channel of the group is the key and the winner's whole
      group is kept (ties: lowest source index); for ``softmax`` (attention) the first channel
      is the score and the others are values: the group aggregates to ``[max score,
      sum_u softmax(score)_u * value_u]`` (at least 2 channels);
    * ``update``: ``{"widths": [..., d], "activations": [...]}``, first layer
      ``z_v @ node + agg_v @ agg + bias``; with ``"layer_norm": true`` the result is layer
      normalised (``ln.weight``, ``ln.bias``; population variance, eps ``1e-5``);
    * ``gate`` (optional, same form): ``g = sigmoid(gate(...))`` and
      ``h' = g * new + (1 - g) * h``; otherwise ``h' = new``.
``feedback`` (optional)
    Hint decoders whose decoded values are fed back as inputs of the next step (CLRS's
    ``encoded_decoded`` hint mode; the linear encoders fold into the first layers that read
    ``z``). Before each step ``t`` the executor decodes them from ``z_t`` and writes them into
    ``f``, so ``z = [h, x, f, ...]``: a ``mask``, ``mask_one`` or ``scalar`` decoder gives one column, a
    ``categorical`` one one-hot column per class, a ``pointer`` one column ``[p(v) = v]`` plus
    one edge input ``[p(v) = u]`` on each edge ``u -> v`` (after ``edge_inputs``). Before the
    first step ``f = 0``.
``graph_hidden``, ``graph_pointers``, ``graph_broadcast`` (optional)
    A graph-level state ``g`` of ``graph_hidden`` channels, initially ``graph_init.bias``.
    Nodes see ``g`` only where it points at them: for each channel listed in
    ``graph_pointers`` (a node id, or anything else for "no node") a node has an address
    feature, 1 if the channel holds its id; a node addressed by any pointer also sees the
    ``graph_broadcast`` channels of ``g`` (others see 0). So ``z = [h, x, f, a, b]``. A change of
    ``g`` thus reaches only the nodes it addresses before and after, which keeps active
    execution local.
``layers[i].readout`` / ``layers[i].graph_update`` / ``layers[i].graph_gate`` (optional)
    After the layer's node update: ``r_v = readout([h'_v, x_v])`` (a node MLP whose output
    channels are reduced over all nodes by ``readout.groups``: ``max``/``min`` per channel,
    NaN-ignoring; ``argmax``/``argmin`` take the whole group, a key channel then payload
    channels, from the node with the largest/smallest key, lowest index on ties, NaN keys
    never winning, node 0 if every key is NaN), then
    ``g' = graph_update(g, R)`` (first layer by parts ``g @ graph + R @ readout + bias``),
    gated like the node update when ``graph_gate`` is given.
``decoders``
    ``{name: {"type": DECODER, ...}}``. ``graph_scalar`` is a linear map of ``g``. ``mask``/``scalar``/``categorical`` are linear maps
    of ``z`` (mask: ``logit > 0``; categorical: one-hot argmax, lowest class on ties);
    ``pointer`` is a by-parts MLP edge score (like ``message``, final width 1) maximised over
    in-neighbours and the node itself (a complete message graph: over all nodes), lowest
    index on ties.
``outputs``, ``hints``
    CLRS names -> decoder names.
``termination``
    ``{"rule": "fixed_point", "channels": [...], "graph_channels": [...]}`` (stop after the
    first step that leaves those node and graph channels unchanged) or ``{"rule": "steps"}``
    (run the given step count).
``exact_domain`` (optional)
    Bounds inside which the model is exact: ``max_nodes``, ``max_abs_weight``,
    ``min_abs_nonzero_weight``. The executor refuses graphs outside them.
``processor`` (optional)
    ``{"kind": "mpnn" | "gatv2", ...}``: how a learned model's layer weights are
    parametrised (``gatv2``: ``heads``, ``negative_slope``; see :mod:`engine.learn.gatv2`).
    Training keeps that structure; the executor ignores the key.
``description`` (optional)
    Free-form documentation (e.g. a compiled model's channel table).
"""
from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import zipfile
import zlib
from dataclasses import dataclass

import numpy as np

from .._files import atomic_write, writable_file
from .._memory import available_bytes
from ..errors import ModelError
from . import registry as R

FORMAT = "engine-model"
VERSION = 1


def _mlp_shapes(prefix: str, part_dims: dict, block: dict) -> dict:
    """Expected weight shapes of a by-parts MLP: parts feed the first layer."""
    widths = block.get("widths")
    acts = block.get("activations")
    if not isinstance(widths, list) or not widths or not all(isinstance(w, int) and w > 0 for w in widths):
        raise ModelError(f"{prefix}.widths must be a non-empty list of positive integers, got {widths!r}")
    if not isinstance(acts, list) or len(acts) != len(widths):
        raise ModelError(f"{prefix}.activations must list one activation per layer ({len(widths)})")
    for a in acts:
        R.code(a, R.ACTIVATIONS, "activation")
    shapes = {f"{prefix}.{part}": (dim, widths[0]) for part, dim in part_dims.items()}
    shapes[f"{prefix}.bias"] = (widths[0],)
    for j in range(1, len(widths)):
        shapes[f"{prefix}.{j}.weight"] = (widths[j - 1], widths[j])
        shapes[f"{prefix}.{j}.bias"] = (widths[j],)
    return shapes


def _require(cond, msg):
    if not cond:
        raise ModelError(msg)


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and x == x and abs(x) != float("inf")


EXACT_DOMAIN_KEYS = {"max_nodes": "a positive integer", "max_abs_weight": "a positive number",
                     "min_abs_nonzero_weight": "a non-negative number"}


def _check_domain_spec(dom) -> None:
    """``exact_domain``: absent, or an object of the bounds the executor enforces."""
    if dom is None:
        return
    _require(isinstance(dom, dict), "spec.exact_domain must be an object")
    for key, value in dom.items():
        _require(key in EXACT_DOMAIN_KEYS, f"unknown spec.exact_domain bound {key!r}; allowed: {list(EXACT_DOMAIN_KEYS)}")
        ok = (_is_int(value) and value > 0) if key == "max_nodes" else (
            _is_number(value) and (value > 0 if key == "max_abs_weight" else value >= 0))
        _require(ok, f"spec.exact_domain.{key} must be {EXACT_DOMAIN_KEYS[key]}, got {value!r}")


@dataclass(frozen=True)
class FeedbackSlot:
    """A fed-back hint: decoder ``decoder`` of type ``kind`` writes ``width`` node columns of
    ``z`` from column ``col``; a pointer also writes edge input column ``edge_col``."""

    decoder: str
    kind: str
    width: int
    col: int
    edge_col: int | None


@dataclass(frozen=True)
class Layout:
    """Where everything sits in ``z = [h, x, f, a, b]`` (state, node inputs, fed-back hints,
    address features, broadcast features) and in the edge inputs ``[e, pointer columns]``."""

    d: int
    node_inputs: tuple
    edge_inputs: tuple
    feedback: tuple  # of FeedbackSlot, in f column order
    pointers: tuple  # graph channels holding node ids (one address column each)
    broadcast: tuple  # graph channels seen by addressed nodes
    dg: int  # graph state width
    message_graph: str = "input"  # registry.MESSAGE_GRAPHS

    @property
    def pointer_self(self) -> bool:
        """Whether pointer decoders add a virtual self candidate (the self pair is an edge of
        a complete message graph)."""
        return self.message_graph == "input"

    @property
    def fx(self) -> int:
        return len(self.node_inputs)

    @property
    def hx(self) -> int:
        """Width of ``[h, x]`` (what readouts read), and the first column of ``f``."""
        return self.d + self.fx

    @property
    def addr_col(self) -> int:
        return self.hx + sum(s.width for s in self.feedback)

    @property
    def bcast_col(self) -> int:
        return self.addr_col + len(self.pointers)

    @property
    def fz(self) -> int:
        return self.bcast_col + len(self.broadcast)

    @property
    def fe_static(self) -> int:
        return len(self.edge_inputs)

    @property
    def fe(self) -> int:
        return self.fe_static + sum(1 for s in self.feedback if s.kind == "pointer")


def layout(spec: dict) -> Layout:
    """The :class:`Layout` of a spec (validating its ``feedback`` list)."""
    decoders = spec.get("decoders", {})
    fb = spec.get("feedback", [])
    _require(isinstance(fb, list), "spec.feedback must be a list of decoder names")
    _require(len(set(fb)) == len(fb), "spec.feedback lists a decoder twice")
    hint_decoders = set(spec.get("hints", {}).values())
    d, fx = spec["hidden"], len(spec.get("node_inputs", []))
    slots, col, ecol = [], d + fx, len(spec.get("edge_inputs", []))
    for name in fb:
        _require(name in decoders, f"spec.feedback names unknown decoder {name!r}")
        _require(name in hint_decoders, f"spec.feedback: decoder {name!r} is not a hint decoder")
        kind = decoders[name].get("type")
        _require(kind in R.FEEDBACK_TYPES, f"spec.feedback: decoder {name!r} has type {kind!r}; "
                                           f"fed-back hints are {list(R.FEEDBACK_TYPES)}")
        width = decoders[name].get("classes", 1) if kind == "categorical" else 1
        slots.append(FeedbackSlot(name, kind, width, col, ecol if kind == "pointer" else None))
        col += width
        ecol += kind == "pointer"
    return Layout(d=d, node_inputs=tuple(spec.get("node_inputs", [])), edge_inputs=tuple(spec.get("edge_inputs", [])),
                  feedback=tuple(slots), pointers=tuple(spec.get("graph_pointers", [])),
                  broadcast=tuple(spec.get("graph_broadcast", [])), dg=spec.get("graph_hidden", 0),
                  message_graph=spec.get("message_graph", "input"))


def expected_shapes(spec: dict) -> dict:
    """Validate ``spec`` and return ``{weight name: shape}``."""
    _require(isinstance(spec, dict), "spec must be a JSON object")
    _require(spec.get("format") == FORMAT, f"spec.format must be {FORMAT!r}, got {spec.get('format')!r}")
    _require(spec.get("version") == VERSION, f"spec.version {spec.get('version')!r} is not supported; "
                                             f"this engine reads version {VERSION}")
    _require(spec.get("dtype") in R.DTYPES, f"spec.dtype must be one of {list(R.DTYPES)}, got {spec.get('dtype')!r}")
    _require(isinstance(spec.get("name", ""), str), "spec.name must be a string")
    for key, allowed in (("node_inputs", sorted(R.NODE_FEATURES)), ("edge_inputs", list(R.EDGE_FEATURES))):
        names = spec.get(key, [])
        _require(isinstance(names, list) and all(isinstance(x, str) and x in allowed for x in names),
                 f"spec.{key} must list inputs from {allowed}, got {names!r}")
    _require(spec.get("message_graph", "input") in R.MESSAGE_GRAPHS,
             f"spec.message_graph must be one of {list(R.MESSAGE_GRAPHS)}, got {spec.get('message_graph')!r}")
    d = spec.get("hidden")
    _require(_is_int(d) and d > 0, f"spec.hidden must be a positive integer, got {d!r}")
    fx = len(spec.get("node_inputs", []))
    dg = spec.get("graph_hidden", 0)
    _require(_is_int(dg) and dg >= 0, f"spec.graph_hidden must be a non-negative integer, got {dg!r}")
    for key in ("graph_pointers", "graph_broadcast"):
        ch = spec.get(key, [])
        _require(isinstance(ch, list) and all(_is_int(c) and 0 <= c < dg for c in ch),
                 f"spec.{key} must list graph channels in [0, {dg})")
    for key in ("decoders", "outputs", "hints"):
        _require(isinstance(spec.get(key, {}), dict), f"spec.{key} must be an object")
    for name, dec in spec.get("decoders", {}).items():
        _require(isinstance(dec, dict), f"decoders.{name} must be an object")
    _check_domain_spec(spec.get("exact_domain"))
    lay = layout(spec)
    fz, fe = lay.fz, lay.fe
    shapes = {"init.weight": (fx, d), "init.bias": (d,)}
    if dg:
        shapes["graph_init.bias"] = (dg,)
    layers = spec.get("layers")
    _require(isinstance(layers, list) and layers, "spec.layers must be a non-empty list")
    for i, layer in enumerate(layers):
        p = f"layers.{i}"
        msg = layer.get("message")
        _require(isinstance(msg, dict), f"{p}.message is missing")
        shapes.update(_mlp_shapes(f"{p}.message", {"src": fz, "dst": fz, "edge": fe}, msg))
        k_out = msg["widths"][-1]
        groups = layer.get("groups")
        _require(isinstance(groups, list) and groups, f"{p}.groups must be a non-empty list")
        total = 0
        for g in groups:
            _require(isinstance(g, dict), f"{p}.groups must list objects {{kind, size}}")
            agg = R.aggregation(g.get("kind"))
            _require(isinstance(g.get("size"), int) and not isinstance(g["size"], bool) and g["size"] > 0,
                     f"{p}.groups sizes must be positive integers")
            _require(g["size"] >= agg.min_size, f"{p}: a {agg.name} group needs at least {agg.min_size} channels")
            total += g["size"]
        _require(total == k_out, f"{p}.groups cover {total} channels but the message has {k_out}")
        upd = layer.get("update")
        _require(isinstance(upd, dict), f"{p}.update is missing")
        shapes.update(_mlp_shapes(f"{p}.update", {"node": fz, "agg": k_out}, upd))
        _require(upd["widths"][-1] == d, f"{p}.update must end with width hidden={d}")
        _require(isinstance(upd.get("layer_norm", False), bool), f"{p}.update.layer_norm must be true or false")
        if upd.get("layer_norm"):
            shapes[f"{p}.update.ln.weight"] = (d,)
            shapes[f"{p}.update.ln.bias"] = (d,)
        gate = layer.get("gate")
        if gate is not None:
            shapes.update(_mlp_shapes(f"{p}.gate", {"node": fz, "agg": k_out}, gate))
            _require(gate["widths"][-1] == d, f"{p}.gate must end with width hidden={d}")
        _require(isinstance(layer.get("include_self"), bool), f"{p}.include_self must be true or false")
        _require(not (layer["include_self"] and spec.get("message_graph") == "complete"),
                 f"{p}.include_self must be false with message_graph 'complete' (the self pair is an edge of it)")
        readout = layer.get("readout")
        if readout is not None:
            _require(dg > 0, f"{p}.readout needs a graph state (graph_hidden > 0)")
            shapes.update(_mlp_shapes(f"{p}.readout", {"node": d + fx}, readout))
            total = 0
            for g in readout.get("groups", []):
                _require(g.get("kind") in R.READOUT_KINDS, f"{p}.readout groups reduce with one of "
                                                           f"{list(R.READOUT_KINDS)}, got {g.get('kind')!r}")
                _require(isinstance(g.get("size"), int) and g["size"] > 0, f"{p}.readout group sizes must be positive")
                total += g["size"]
            _require(total == readout["widths"][-1], f"{p}.readout.groups cover {total} channels but the readout "
                                                     f"has {readout['widths'][-1]}")
        for key in ("graph_update", "graph_gate"):
            block = layer.get(key)
            if block is None:
                continue
            _require(readout is not None, f"{p}.{key} needs {p}.readout")
            shapes.update(_mlp_shapes(f"{p}.{key}", {"graph": dg, "readout": readout["widths"][-1]}, block))
            _require(block["widths"][-1] == dg, f"{p}.{key} must end with width graph_hidden={dg}")
        _require(layer.get("graph_gate") is None or layer.get("graph_update") is not None,
                 f"{p}.graph_gate needs {p}.graph_update")
    proc = spec.get("processor")
    if proc is not None:
        _require(isinstance(proc, dict), "spec.processor must be an object")
        R.code(proc.get("kind"), R.PROCESSOR_KINDS, "processor kind")
    decoders = spec.get("decoders", {})
    for name, dec in decoders.items():
        p = f"decoders.{name}"
        kind = dec.get("type")
        R.code(kind, R.DECODER_TYPES, "decoder type")
        if kind == "pointer":
            shapes.update(_mlp_shapes(p, {"src": fz, "dst": fz, "edge": fe}, dec))
            _require(dec["widths"][-1] == 1, f"{p} must end with width 1 (the edge score)")
        elif kind == "graph_scalar":
            _require(dg > 0, f"{p} reads the graph state, but graph_hidden is 0")
            shapes[f"{p}.weight"] = (dg, 1)
            shapes[f"{p}.bias"] = (1,)
        else:
            classes = dec.get("classes", 1) if kind == "categorical" else 1
            shapes[f"{p}.weight"] = (fz, classes)
            shapes[f"{p}.bias"] = (classes,)
    for table in ("outputs", "hints"):
        for clrs_name, dec_name in spec.get(table, {}).items():
            _require(dec_name in decoders, f"spec.{table}[{clrs_name!r}] names unknown decoder {dec_name!r}")
    term = spec.get("termination", {})
    R.code(term.get("rule"), R.TERMINATION_RULES, "termination rule")
    if term["rule"] == "fixed_point":
        ch = term.get("channels")
        _require(isinstance(ch, list) and ch and all(isinstance(c, int) and 0 <= c < d for c in ch),
                 f"termination.channels must list state channels in [0, {d})")
        gch = term.get("graph_channels", [])
        _require(isinstance(gch, list) and all(isinstance(c, int) and 0 <= c < dg for c in gch),
                 f"termination.graph_channels must list graph channels in [0, {dg})")
        bound = term.get("max_steps", DEFAULT_STEP_BOUND)
        _require(isinstance(bound, dict) and set(bound) == set(DEFAULT_STEP_BOUND)
                 and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in bound.values()),
                 f"termination.max_steps must map {sorted(DEFAULT_STEP_BOUND)} to integers >= 0, got {bound!r}")
    return shapes


def step_bound(spec: dict, num_nodes: int, num_edges: int) -> int:
    """The most steps a fixed-point run of ``spec`` may take on a graph of this size
    (``termination.max_steps``, default ``4 n + 16``)."""
    bound = spec["termination"].get("max_steps", DEFAULT_STEP_BOUND)
    return bound["per_node"] * num_nodes + bound["per_edge"] * num_edges + bound["constant"]


DEFAULT_STEP_BOUND = {"per_node": 4, "per_edge": 0, "constant": 16}


class Model:
    """A model of the architecture family: ``spec`` (JSON-able dict) plus ``weights``.

    Construction validates every name, shape and dtype and rejects non-finite weights.

    Parameters
    ----------
    spec : dict
        See the module docstring.
    weights : dict of str -> ndarray
    """

    def __init__(self, spec: dict, weights: dict):
        try:
            self.spec = copy.deepcopy(spec)
            shapes = expected_shapes(self.spec)
        except ModelError:
            raise
        except (AttributeError, TypeError, KeyError, IndexError, ValueError, RecursionError) as exc:
            raise ModelError(f"malformed spec ({type(exc).__name__}: {exc}); see engine.model.spec for its "
                             "keys") from None
        if not isinstance(weights, dict):
            raise ModelError(f"weights must be a dict of name -> array, got {type(weights).__name__}")
        dtype = np.dtype(self.spec["dtype"])
        missing = sorted(set(shapes) - set(weights))
        extra = sorted(set(weights) - set(shapes))
        if missing or extra:
            raise ModelError(f"weights do not match the spec: missing {missing[:8]}, unexpected {extra[:8]}")
        self.weights = {}
        for name, shape in shapes.items():
            w = np.asarray(weights[name])
            if w.shape != tuple(shape):
                raise ModelError(f"weight {name!r} has shape {w.shape}, the spec needs {tuple(shape)}")
            if not np.issubdtype(w.dtype, np.floating) and not np.issubdtype(w.dtype, np.integer):
                raise ModelError(f"weight {name!r} must be numeric, got {w.dtype}")
            w = np.ascontiguousarray(w, dtype=dtype)
            if not np.all(np.isfinite(w)):
                raise ModelError(f"weight {name!r} has NaN or inf entries (or overflows {dtype})")
            self.weights[name] = w

    # -------------------------------------------------------------- accessors
    @property
    def name(self) -> str:
        return self.spec.get("name", "model")

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.spec["dtype"])

    @property
    def hidden(self) -> int:
        return self.spec["hidden"]

    def __repr__(self) -> str:
        return (f"Model(name={self.name!r}, hidden={self.hidden}, layers={len(self.spec['layers'])}, "
                f"dtype={self.spec['dtype']}, parameters={self.num_parameters()})")

    def num_parameters(self) -> int:
        return int(sum(w.size for w in self.weights.values()))

    def astype(self, dtype) -> "Model":
        """The same model with weights and arithmetic in ``dtype``."""
        spec = copy.deepcopy(self.spec)
        spec["dtype"] = np.dtype(dtype).name
        return Model(spec, {k: v.astype(dtype) for k, v in self.weights.items()})

    # -------------------------------------------------------------- I/O
    def _checksum(self) -> str:
        """SHA-256 of the whole model: the spec (canonical JSON) and every weight's name,
        dtype, shape and bytes."""
        h = hashlib.sha256()
        h.update(b"engine-model spec\0")
        h.update(json.dumps(self.spec, sort_keys=True, separators=(",", ":")).encode())
        for name in sorted(self.weights):
            w = self.weights[name]
            h.update(f"\0{name}\0{w.dtype.str}\0{w.shape}\0".encode())
            h.update(w.tobytes())
        return h.hexdigest()

    def save(self, path) -> None:
        """Write an ``.npz`` (a zip of ``.npy`` arrays) holding the weights and ``spec.json``
        (the spec and a checksum of the whole model).

        The file is written to a temporary name in the same directory and renamed, so an
        interrupted save never leaves a truncated model at ``path`` (nor a stray temporary
        file); ``path`` must be a regular file in an existing, writable directory.
        """
        path = writable_file(path, "model file")
        meta = {"spec": self.spec, "checksum": {"sha256": self._checksum(), "covers": "spec and weights"}}

        def write(tmp):
            with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
                zf.writestr("spec.json", json.dumps(meta, indent=1, sort_keys=True))
                for name, arr in self.weights.items():
                    buf = io.BytesIO()
                    np.save(buf, arr, allow_pickle=False)
                    zf.writestr(f"weights/{name}.npy", buf.getvalue())

        atomic_write(path, write)

    @classmethod
    def load(cls, path) -> "Model":
        """Read a file written by :meth:`save`.

        Every problem with the file raises :class:`ModelError`: missing, truncated, not a zip,
        members larger than declared or than memory allows (checked before decompressing),
        malformed JSON or arrays, a spec that does not validate, or contents that do not match
        the stored checksum of the whole model (an edited spec included).
        """
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise ModelError(f"model file {path} does not exist" if not os.path.exists(path)
                             else f"model file {path} is not a regular file")
        try:
            meta, weights = _read_members(path)
        except ModelError:
            raise
        except (zipfile.BadZipFile, zipfile.LargeZipFile, KeyError, ValueError, OSError, EOFError, zlib.error,
                NotImplementedError, RecursionError, UnicodeDecodeError, MemoryError, TypeError,
                AttributeError) as exc:
            raise ModelError(f"model file {path} is truncated, corrupted or not an engine model "
                             f"({type(exc).__name__}: {exc})") from None
        if not isinstance(meta, dict) or not isinstance(meta.get("spec"), dict):
            raise ModelError(f"model file {path} has no spec")
        checksum = meta.get("checksum")
        if not isinstance(checksum, dict) or not isinstance(checksum.get("sha256"), str):
            raise ModelError(f"model file {path} has no checksum of the whole model (a file written before "
                             "spec checksums, or edited); re-save the model with this engine")
        model = cls(meta["spec"], weights)
        if checksum["sha256"] != model._checksum():
            raise ModelError(f"model file {path}: the spec or the weights do not match the stored checksum "
                             "(corrupted or edited)")
        return model


MAX_SPEC_BYTES = 16 * 2**20  # spec.json (a description and tables: kilobytes in practice)
MAX_MEMBERS = 100_000


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """A member's bytes, reading no more than its declared size (+1 to notice a lie)."""
    with zf.open(info) as fh:
        data = fh.read(info.file_size + 1)
    if len(data) != info.file_size:
        raise ModelError(f"member {info.filename} holds more or fewer bytes than its header declares")
    return data


def _read_array(data: bytes, name: str) -> np.ndarray:
    """An ``.npy`` member, its header checked against its size before the array is built."""
    buf = io.BytesIO(data)
    major, _ = np.lib.format.read_magic(buf)
    if major not in (1, 2):
        raise ModelError(f"weight {name!r} has an unknown .npy version {major}")
    shape, _, dtype = (np.lib.format.read_array_header_1_0(buf) if major == 1 else
                       np.lib.format.read_array_header_2_0(buf))
    if dtype.kind not in "fiu" or dtype.hasobject:
        raise ModelError(f"weight {name!r} has dtype {dtype}; weights are real numbers")
    count = int(np.prod(shape, dtype=object))
    if count * dtype.itemsize != len(data) - buf.tell():
        raise ModelError(f"weight {name!r} declares shape {shape} of {dtype}, which does not match its "
                         f"{len(data) - buf.tell()} bytes")
    return np.load(io.BytesIO(data), allow_pickle=False)


def _read_members(path: str):
    """``(meta, weights)`` of a model file, with every member's size bounded first."""
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        if len(infos) > MAX_MEMBERS:
            raise ModelError(f"model file {path} has {len(infos)} members; at most {MAX_MEMBERS}")
        by_name = {info.filename: info for info in infos}
        if "spec.json" not in by_name:
            raise ModelError(f"model file {path} has no spec.json")
        if by_name["spec.json"].file_size > MAX_SPEC_BYTES:
            raise ModelError(f"model file {path}: spec.json declares {by_name['spec.json'].file_size} bytes; "
                             f"at most {MAX_SPEC_BYTES}")
        total = sum(info.file_size for info in infos)
        budget = int(available_bytes() * 0.5)
        if total > budget:
            raise ModelError(f"model file {path} declares {total / 2**30:.2f} GiB of contents, more than half "
                             f"of the memory available ({budget / 2**30:.2f} GiB)")
        meta = json.loads(_read_member(zf, by_name["spec.json"]).decode("utf-8"))
        weights = {}
        for info in infos:
            if info.filename.startswith("weights/") and info.filename.endswith(".npy"):
                name = info.filename[len("weights/"):-len(".npy")]
                weights[name] = _read_array(_read_member(zf, info), name)
    return meta, weights
