"""The specs of learned models of an algorithm: CLRS's encode-process-decode over the
architecture family (what engine.learn trains, and what engine.compiler compiles into when a
processor is named)."""
from __future__ import annotations

from ..model.factory import gatv2_layer
from .registry import algorithm
from ..errors import EngineError
from ..model import registry as R
from ..model.registry import FEEDBACK_TYPES, PROCESSOR_KINDS as PROCESSORS
from ..model.spec import FORMAT, VERSION

HINT_MODES = ("encoded_decoded", "decoded_only", "none")


def learned_spec(algo: str, processor: str = "mpnn", hidden: int = 128, gated: bool = False,
                 heads: int = 1, hint_mode: str = "encoded_decoded", layer_norm: bool = False,
                 message_graph: str = "input", graph_hints: bool = False, message_depth: int = 1) -> dict:
    """The spec of a learned model: CLRS inputs, one processor layer, one decoder per
    output and per node-level hint.

    ``mpnn``: CLRS's MPNN (message MLP, max aggregation, update). ``gatv2``: GATv2 with
    ``heads`` heads (:mod:`engine.learn.gatv2`); ``gated`` is for ``mpnn`` only;
    ``layer_norm`` normalises the processor's output (CLRS's ``use_ln``).
    ``message_graph``: ``"input"`` (messages over the input's edges plus self, pointers over
    in-neighbours and self: scales to 10^6 nodes) or ``"complete"`` (every pair of nodes, the
    input seen through the edge inputs ``adjacency`` and ``weight``, pointers over all nodes:
    CLRS's fully connected MPNN, and for ``gatv2`` CLRS's ``gatv2_full``).
    ``hint_mode`` as CLRS: ``encoded_decoded`` decodes every node-level hint and feeds it back
    as an input of the next step (``spec.feedback``), ``decoded_only`` decodes without feeding
    back, ``none`` decodes no hints.
    ``graph_hints``: decode the graph-level hints too (DFS's ``time``), through a graph state
    of ``hidden`` channels, CLRS's graph decoder in the family's terms: after each step a
    readout ``max_v (h'_v, x_v) W_r`` and the update ``g' = relu(g W_g + R W_R + b)``, and a
    ``graph_scalar`` decoder of ``g``. The graph state is decoded, not fed back: nodes see the
    family's graph state only where a pointer channel addresses them, which a learned state
    does not hold (CLRS adds its graph features to every message). ``mpnn`` only.
    ``message_depth``: the dense layers after the message's first (by-parts, ReLU) layer: 1
    gives ``W2 relu(...)``; 2 gives ``W3 relu(W2 relu(...))``, CLRS's MPNN (its messages pass
    ``hk.nets.MLP([h, h])`` after the ReLU of the summed linear parts). ``mpnn`` only.
    """
    if hint_mode not in HINT_MODES:
        raise EngineError(f"unknown hint mode {hint_mode!r}; allowed: {list(HINT_MODES)}")
    if processor not in PROCESSORS:
        raise EngineError(f"unknown processor {processor!r}; available: {list(PROCESSORS)}")
    if processor == "gatv2" and gated:
        raise EngineError("the gatv2 processor has no gate; use gated=False")
    if isinstance(message_depth, bool) or not isinstance(message_depth, int) or message_depth < 1:
        raise EngineError(f"message_depth must be an integer >= 1, got {message_depth!r}")
    if message_depth != 1 and processor != "mpnn":
        raise EngineError(f"message_depth is for the mpnn processor; {processor} fixes its message layers")
    if message_graph not in R.MESSAGE_GRAPHS:
        raise EngineError(f"unknown message graph {message_graph!r}; allowed: {list(R.MESSAGE_GRAPHS)}")
    complete = message_graph == "complete"
    info = algorithm(algo)
    graph_probes = [p for p in info.hints if p.kind == "graph_scalar"] if graph_hints and hint_mode != "none" else []
    if graph_probes and processor != "mpnn":
        raise EngineError(f"graph-level hints need a graph state, which the {processor} processor does not have; "
                          "use processor='mpnn' or graph_hints=False")
    spec = {
        "format": FORMAT, "version": VERSION, "name": f"learned-{processor}-{algo}", "dtype": "float32",
        "node_inputs": ["pos", "source"] if info.has_source else ["pos"], "edge_inputs": ["adjacency", "weight"] if complete else ["weight"],
        "hidden": hidden,
        "layers": [{
            "include_self": not complete,
            "message": {"widths": [hidden] * (1 + message_depth),
                        "activations": ["relu"] * message_depth + ["identity"]},
            "groups": [{"kind": "max", "size": hidden}],
            "update": {"widths": [hidden], "activations": ["relu"]},
        }],
        "decoders": {}, "outputs": {}, "hints": {}, "termination": {"rule": "steps"},
        "description": {"algorithm": algo, "processor": processor, "source": "learned"},
    }
    if processor == "gatv2":
        spec["layers"] = [gatv2_layer(hidden, heads, include_self=not complete)]
        spec["processor"] = {"kind": "gatv2", "heads": heads, "negative_slope": 0.2}
    if complete:
        spec["message_graph"] = "complete"
    if layer_norm:
        spec["layers"][0]["update"]["layer_norm"] = True
    if gated:
        spec["layers"][0]["gate"] = {"widths": [hidden, hidden], "activations": ["relu", "identity"]}
    for table, probes in (("outputs", info.outputs), ("hints", info.hints)):
        if table == "hints" and hint_mode == "none":
            continue
        for probe in probes:
            if probe.kind == "graph_scalar" and probe not in graph_probes:
                continue  # graph-level hints are decoded only with graph_hints (a graph state)
            dec = f"{table[:-1]}_{probe.name}"
            if probe.kind == "pointer":
                spec["decoders"][dec] = {"type": "pointer", "widths": [hidden, 1], "activations": ["relu", "identity"]}
            elif probe.kind == "categorical":
                spec["decoders"][dec] = {"type": "categorical", "classes": probe.classes}
            else:
                spec["decoders"][dec] = {"type": probe.kind}
            spec[table][probe.name] = dec
    if graph_probes:
        spec["graph_hidden"] = hidden
        spec["layers"][-1]["readout"] = {"widths": [hidden], "activations": ["identity"],
                                         "groups": [{"kind": "max", "size": hidden}]}
        spec["layers"][-1]["graph_update"] = {"widths": [hidden], "activations": ["relu"]}
    if hint_mode == "encoded_decoded":
        spec["feedback"] = [dec for dec in spec["hints"].values()
                            if spec["decoders"][dec]["type"] in FEEDBACK_TYPES]
    return spec
