"""Compiled Bellman-Ford: one max/argmin message-passing layer per CLRS round, gated update.

Inputs: ``id``, ``source``; edge input ``weight``. Self-messages on (zero edge features).

Hidden channels
===============

=======  ===========================================  ====================================
chan     meaning                                      initial value (``init``)
=======  ===========================================  ====================================
``msk``  reached (CLRS ``msk``)                       ``source``
``dd``   distance, ``BIG_DIST`` while unreached       ``BIG_DIST - BIG_DIST * source``
``d``    distance as CLRS shows it (0 if unreached)   0
``p``    pointer, as a node id                        ``id``
=======  ===========================================  ====================================

Message ``u -> v`` (first layer, identity activation)
=====================================================

=====  ==================  ============================  ====================================
chan   value               group                         weights
=====  ==================  ============================  ====================================
0      ``msk_u``           max                           ``src[msk, 0] = 1``
1      ``dd_u + w_uv``     argmin key (group of 2)       ``src[dd, 1] = 1``, ``edge[w, 1] = 1``
2      ``id_u``            argmin payload                ``src[id, 2] = 1``
=====  ==================  ============================  ====================================

``dd_u + w_uv`` is one rounding of the same sum the reference computes (``d[u] + w``); an
unreached ``u`` sends ``BIG_DIST + w == BIG_DIST``; the self-message sends ``dd_v``. The
argmin gives ``D_v = min(dd_v, min_u dd_u + w_uv)`` and ``P_v``, the lowest-index source
achieving it (the reference's strict ``<`` in ascending ``u``).

Update and gate
===============

``new = [M_v, D_v, D_v, P_v]`` for ``[msk, dd, d, p]``. The gate MLP has a hidden layer
``[t, M]`` with ``t = relu(dd_v - D_v)`` (``t > 0`` exactly when ``v`` strictly improves; a
single rounding of two distances, zero only when they are equal) and ``M = relu(M_v)``.
Gate pre-activations: ``msk``, ``dd``: ``+1024``; ``d``: ``2048 M - 1024`` (``d`` is
written once ``v`` is reached, and stays 0 before, as in CLRS); ``p``: ``STEP_GAIN * t -
1024`` (write the new pointer only on strict improvement, keep it on ties).

Decoders and termination
========================

``msk`` mask, ``d`` scalar (reads channel ``d``), ``pi``/``pi_h`` the id pointer decoder.
Termination: fixed point of channel ``d`` (CLRS stops when ``d`` stops changing, even if
``msk`` changed). Exact domain: nonzero ``|w|`` in ``[2**-60, 2**40]`` and fewer than
``BIG_ID`` nodes (see :mod:`engine.compile.constants`).
"""
from __future__ import annotations

from .builder import Builder, id_pointer_decoder, mask_decoder, scalar_decoder
from .constants import MAX_ABS_WEIGHT, MIN_ABS_WEIGHT, constants


def compile_bellman_ford(dtype="float32"):
    c = constants(dtype)
    sat = c["SATURATE"]
    b = Builder("compiled-bellman_ford", ["msk", "dd", "d", "p"], ["id", "source"], ["weight"], dtype)
    b.spec["layers"].append({
        "include_self": True,
        "message": {"widths": [3], "activations": ["identity"]},
        "groups": [{"kind": "max", "size": 1}, {"kind": "argmin", "size": 2}],
        "update": {"widths": [4], "activations": ["identity"]},
        "gate": {"widths": [2, 4], "activations": ["relu", "identity"]},
    })
    mask_decoder(b, "msk", "msk")
    scalar_decoder(b, "d", "d")
    id_pointer_decoder(b, "pi", "p")
    b.spec["outputs"] = {"pi": "pi"}
    b.spec["hints"] = {"pi_h": "pi", "d": "d", "msk": "msk"}
    b.spec["termination"] = {"rule": "fixed_point", "channels": [b.h("d")]}
    b.spec["exact_domain"] = {"max_nodes": int(c["BIG_ID"]), "max_abs_weight": MAX_ABS_WEIGHT,
                              "min_abs_nonzero_weight": MIN_ABS_WEIGHT}
    # initial state
    b.set("init.weight", "source", "msk", 1.0)
    b.set("init.weight", "source", "dd", -c["BIG_DIST"])
    b.set("init.bias", None, "dd", c["BIG_DIST"])
    b.set("init.weight", "id", "p", 1.0)
    # messages
    m = "layers.0.message"
    b.set(f"{m}.src", "msk", 0, 1.0)
    b.set(f"{m}.src", "dd", 1, 1.0)
    b.set(f"{m}.edge", "weight", 1, 1.0)
    b.set(f"{m}.src", "id", 2, 1.0)
    # update: msk <- M, dd <- D, d <- D, p <- P
    u = "layers.0.update.agg"
    b.set(u, 0, "msk", 1.0)
    b.set(u, 1, "dd", 1.0)
    b.set(u, 1, "d", 1.0)
    b.set(u, 2, "p", 1.0)
    # gate: hidden [t = relu(dd_v - D_v), M = relu(M_v)]
    g = "layers.0.gate"
    b.set(f"{g}.node", "dd", 0, 1.0)
    b.set(f"{g}.agg", 1, 0, -1.0)
    b.set(f"{g}.agg", 0, 1, 1.0)
    b.set(f"{g}.1.bias", None, "msk", sat)
    b.set(f"{g}.1.bias", None, "dd", sat)
    b.set(f"{g}.1.weight", 1, "d", 2 * sat)
    b.set(f"{g}.1.bias", None, "d", -sat)
    b.set(f"{g}.1.weight", 0, "p", c["STEP_GAIN"])
    b.set(f"{g}.1.bias", None, "p", -sat)
    return b.model({"algorithm": "bellman_ford",
                    "channels": {"msk": "reached", "dd": "distance (BIG_DIST if unreached)",
                                 "d": "distance (CLRS hint)", "p": "pointer (node id)"},
                    "construction": __doc__})
