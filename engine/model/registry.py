"""The one Python list of what the architecture family is built from.

The C++ kernels keep the same lists (``csrc/engine/reduce.h`` for the aggregation kinds,
``csrc/engine/registry.h`` for the rest); a test checks that names, codes and properties
agree. Codes are the list positions. See ``docs/architecture.md`` for how to add a kind.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ModelError


@dataclass(frozen=True)
class Aggregation:
    """An aggregation kind: how a group of message channels is reduced over a node's messages.

    Attributes
    ----------
    name : str
        The name a spec uses (``layers[i].groups[j].kind``).
    code : int
        Its position in :data:`AGGREGATIONS` (the C++ ``engine::Reduce`` value).
    arg : bool
        The group's first channel is a key and the winning message's whole group is kept
        (ties to the lowest source; NaN keys never win); the winner is reported.
    incremental : bool
        A node's aggregate can be updated exactly from one changed message (the native step
        loop keeps such aggregates and pushes changed messages into them).
    min_size : int
        The fewest channels a group of this kind may have.
    identity : float
        The fold's identity (the key's, for an arg kind; the score's, for softmax). A node
        with no message aggregates to 0 whatever the kind.
    """

    name: str
    code: int
    arg: bool
    incremental: bool
    min_size: int
    identity: float


AGGREGATIONS = (
    Aggregation("sum", 0, arg=False, incremental=False, min_size=1, identity=0.0),
    Aggregation("mean", 1, arg=False, incremental=False, min_size=1, identity=0.0),
    Aggregation("max", 2, arg=False, incremental=True, min_size=1, identity=-np.inf),
    Aggregation("min", 3, arg=False, incremental=True, min_size=1, identity=np.inf),
    Aggregation("argmax", 4, arg=True, incremental=True, min_size=1, identity=-np.inf),
    Aggregation("argmin", 5, arg=True, incremental=True, min_size=1, identity=np.inf),
    # attention: channel 0 the score, the others values: [max score, sum softmax(score) * value]
    Aggregation("softmax", 6, arg=False, incremental=False, min_size=2, identity=-np.inf),
)
assert all(a.code == i for i, a in enumerate(AGGREGATIONS)), "codes are positions"
_BY_NAME = {a.name: a for a in AGGREGATIONS}

REDUCE_KINDS = tuple(a.name for a in AGGREGATIONS)
ARG_REDUCE_KINDS = tuple(a.name for a in AGGREGATIONS if a.arg)


def aggregation(kind) -> Aggregation:
    """The :class:`Aggregation` named ``kind`` (a name or a code); :class:`ModelError` if unknown."""
    if isinstance(kind, str):
        if kind in _BY_NAME:
            return _BY_NAME[kind]
    elif isinstance(kind, (int, np.integer)) and not isinstance(kind, bool) and 0 <= kind < len(AGGREGATIONS):
        return AGGREGATIONS[int(kind)]
    raise ModelError(f"unknown aggregation {kind!r}; allowed: {list(REDUCE_KINDS)} (codes 0..{len(REDUCE_KINDS) - 1})")


def check_group_codes(groups) -> None:
    """Refuse a ``(G, 3)`` group table ``(code, start, stop)`` with an unknown aggregation code."""
    for code in np.asarray(groups).reshape(-1, 3)[:, 0]:
        aggregation(int(code))


ACTIVATIONS = ("identity", "relu")
READOUT_KINDS = ("min", "max", "argmin", "argmax")  # readout groups; arg groups: key, then payload
READOUT_ARG_KINDS = ("argmin", "argmax")
READOUT_CHANNELS = READOUT_KINDS + ("payload",)  # per-channel codes: an arg group's key, then payload
DECODER_TYPES = ("mask", "scalar", "categorical", "pointer", "mask_one", "graph_scalar")
FEEDBACK_TYPES = ("mask", "scalar", "categorical", "pointer", "mask_one")  # decoders a hint can be fed back from
TERMINATION_RULES = ("fixed_point", "steps")
PROCESSOR_KINDS = ("mpnn", "gatv2")  # parametrisations of learned layers (engine.learn)
EXECUTION_MODES = ("dense", "active", "auto")  # csrc/engine/registry.h: Mode
LAYER_NORM_EPS = 1e-5  # csrc/engine/message_passing.h: kLayerNormEps
DTYPES = ("float32", "float64")


def _node_id(n, source, dtype):
    return np.arange(n, dtype=dtype)[:, None]


def _node_pos(n, source, dtype):
    return (np.arange(n) / n).astype(dtype)[:, None]


def _node_source(n, source, dtype):
    x = np.zeros((n, 1), dtype=dtype)
    x[source, 0] = 1
    return x


# name -> (builder(n, source, dtype) -> (n, 1), needs_source)
NODE_FEATURES = {
    "id": (_node_id, False),      # integer node index (exact below 2**24 in float32)
    "pos": (_node_pos, False),    # CLRS's i / n
    "source": (_node_source, True),  # CLRS's `s` one-hot mask
}

# edge input name -> what it holds on an edge u -> v of the message graph (engine.model.message_graph)
EDGE_FEATURES = {
    "weight": "the input edge's weight (1 for an unweighted graph; 0 on a pair that is no input edge)",
    "adjacency": "1 where u -> v is an input edge or u == v (CLRS's `adj`), else 0",
}
# the graph messages and pointer candidates run over: the input graph's edges (plus a virtual
# self edge), or every ordered pair of nodes, self pairs included (CLRS's fully connected MPNN)
MESSAGE_GRAPHS = ("input", "complete")
MAX_COMPLETE_NODES = 46_340  # n^2 pairs must fit the graph's int32 edge count (2^31 - 1)


def node_inputs(names, n: int, source, dtype) -> np.ndarray:
    """The node input columns ``x`` (n x len(names)) of one graph, in ``names`` order."""
    cols = [NODE_FEATURES[name][0](n, source, dtype) for name in names]
    return np.hstack(cols) if cols else np.zeros((n, 0), dtype)


def needs_source(names) -> bool:
    """Whether any of the node input ``names`` reads the source node."""
    return any(NODE_FEATURES[name][1] for name in names)


def code(kind: str, allowed: tuple, what: str) -> int:
    if kind not in allowed:
        raise ModelError(f"unknown {what} {kind!r}; allowed: {list(allowed)}")
    return allowed.index(kind)
