"""The graph a model's messages and pointer candidates run over, and its static edge inputs.

A spec's ``message_graph`` is ``"input"`` (the default: the input graph's edges, each layer's
virtual self edge as ``include_self`` says, pointer decoders over in-neighbours and the node
itself) or ``"complete"``: every ordered pair ``u -> v`` of the input's nodes, self pairs
included, as CLRS's fully connected MPNN sends messages and its pointer decoders choose, with
the input graph seen only through the edge inputs (``adjacency``: CLRS's ``adj``, 1 on an
input edge and on every self pair; ``weight``: the input edge's weight, 0 where none, the
lightest of parallel edges). A complete message graph has n^2 edges, so it is for CLRS-sized
graphs; larger ones are refused before anything is allocated.
"""
from __future__ import annotations

import numpy as np

from .._memory import require
from ..errors import EngineError
from . import registry as R


def message_graph(spec: dict, graph, dtype):
    """``(message graph, static edge inputs)`` of ``graph`` for a validated ``spec``: the
    graph every layer and pointer decoder runs on, and its ``(m, len(edge_inputs))`` columns
    in ``spec["edge_inputs"]`` order (``dtype``)."""
    names = spec.get("edge_inputs", [])
    if spec.get("message_graph", "input") == "input":
        cols = {"weight": lambda: graph.edge_weights(dtype), "adjacency": lambda: np.ones(graph.num_edges, dtype)}
        return graph, _stack([cols[name]() for name in names], graph.num_edges, dtype)
    complete, adjacency, weight = complete_graph(graph, dtype, spec.get("name", "model"))
    cols = {"weight": weight, "adjacency": adjacency}
    return complete, _stack([cols[name] for name in names], complete.num_edges, dtype)


def _stack(cols, m, dtype):
    return np.ascontiguousarray(np.stack(cols, axis=1)) if cols else np.zeros((m, 0), dtype)


def complete_graph(graph, dtype, model_name: str = "model"):
    """The complete graph over ``graph``'s nodes (all n^2 ordered pairs, sources ascending in
    each row) with its ``adjacency`` and ``weight`` columns, each aligned with its edges."""
    from ..graph import Graph

    n = graph.num_nodes
    if n > R.MAX_COMPLETE_NODES:
        raise EngineError(
            f"model {model_name!r} sends messages between every pair of nodes (message_graph 'complete', CLRS's "
            f"fully connected MPNN): {n} nodes make {n * n:.3g} messages per step, more than the "
            f"{R.MAX_COMPLETE_NODES} nodes (2^31 pairs) a graph can hold; use a model over the input's edges "
            "(message_graph 'input', engine.train --protocol sparse), which scales to 10^6 nodes and beyond")
    itemsize = np.dtype(dtype).itemsize
    require(n * n * (4 + 2 * itemsize + 8) + 8 * (n + 1),
            f"the complete message graph of {n} nodes ({n * n:.3g} node pairs) for model {model_name!r}",
            "fully connected models are for CLRS-sized graphs; use a model over the input's edges "
            "(message_graph 'input', engine.train --protocol sparse) on large graphs")
    indptr = np.arange(n + 1, dtype=np.int64) * n
    indices = np.tile(np.arange(n, dtype=np.int32), n)
    slot = graph.edge_targets().astype(np.int64) * n + graph.indices  # pair (u -> v) sits at v * n + u
    adjacency = np.zeros(n * n, dtype)
    adjacency[slot] = 1
    adjacency[np.arange(n, dtype=np.int64) * (n + 1)] = 1
    weight = np.full(n * n, np.inf, dtype)
    np.minimum.at(weight, slot, graph.edge_weights(dtype))
    weight[np.isinf(weight)] = 0
    complete = Graph._owning(n, indptr, indices, None, True, {"family": "complete", "of": dict(graph.meta)})
    return complete, adjacency, weight
