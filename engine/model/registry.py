"""The one Python list of what the architecture family is built from.

The C++ kernels keep the same lists (csrc/engine/registry.h); a test checks they agree.
Codes are the list positions.
"""
from __future__ import annotations

import numpy as np

from ..errors import ModelError

REDUCE_KINDS = ("sum", "mean", "max", "min", "argmax", "argmin", "softmax")
ARG_REDUCE_KINDS = ("argmax", "argmin")
ACTIVATIONS = ("identity", "relu")
READOUT_KINDS = ("min", "max", "argmin", "argmax")  # readout groups; arg groups: key, then payload
READOUT_CHANNELS = READOUT_KINDS + ("payload",)  # per-channel codes: an arg group's key, then payload
DECODER_TYPES = ("mask", "scalar", "categorical", "pointer", "mask_one", "graph_scalar")
TERMINATION_RULES = ("fixed_point", "steps")
PROCESSOR_KINDS = ("mpnn", "gatv2")  # parametrisations of learned layers (engine.learn)
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

EDGE_FEATURES = ("weight",)  # the edge weight (1 for an unweighted graph)


def code(kind: str, allowed: tuple, what: str) -> int:
    if kind not in allowed:
        raise ModelError(f"unknown {what} {kind!r}; allowed: {list(allowed)}")
    return allowed.index(kind)
