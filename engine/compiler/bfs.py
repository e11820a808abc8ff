"""Compiled BFS: one max/min message-passing layer per CLRS round, gated update.

Inputs: ``id`` (node index, integer-valued), ``source`` (one-hot). Self-messages on.

Hidden channels
===============

======  ==============================  =================================================
chan    meaning                         initial value (``init``)
======  ==============================  =================================================
``r``   reached (CLRS ``reach_h``)      ``source``
``p``   pointer, as a node id           ``id`` (CLRS starts with ``pi = arange(n)``)
======  ==============================  =================================================

Message ``u -> v`` (first layer only, identity activation; all terms integers < 2**24)
======================================================================================

=====  =====================================  ==========  ============================
chan   value                                  group       weights
=====  =====================================  ==========  ============================
0      ``r_u``                                max         ``src[r, 0] = 1``
1      ``id_u + BIG_ID * (1 - r_u)``          min         ``src[id, 1] = 1``,
                                                          ``src[r, 1] = -BIG_ID``,
                                                          ``bias[1] = BIG_ID``
=====  =====================================  ==========  ============================

So ``R_v = max`` over in-neighbours and self is the new reach, and ``P_v = min`` is the
lowest-index reached in-neighbour (a reached ``u`` sends ``id_u < BIG_ID``; unreached ones,
and ``v`` itself while unreached, send ``>= BIG_ID``).

Update and gate
===============

``new = [R_v, P_v]`` (``update.agg`` is the identity). Gate pre-activations:
``r``: ``+1024`` (always take ``R_v``); ``p``: ``2048 * (R_v - r_v) - 1024``, i.e. open
exactly when ``v`` is reached in this round, so ``p`` is written once, as CLRS does
(``pi[s] = s`` since the source is reached from the start).

Decoders
========

``reach_h`` mask ``2 r - 1 > 0``; ``pi``/``pi_h`` pointer selecting the ``u`` with
``id_u == p_v`` (see :func:`engine.compile.builder.id_pointer_decoder`).
Termination: fixed point of ``r`` and ``p`` (CLRS stops when reach stops changing; ``p``
changes only together with ``r``).
"""
from __future__ import annotations

from .builder import Builder, id_pointer_decoder, mask_decoder
from .constants import constants


def compile_bfs(dtype="float32"):
    c = constants(dtype)
    big, sat = c["BIG_ID"], c["SATURATE"]
    b = Builder("compiled-bfs", ["r", "p"], ["id", "source"], [], dtype)
    b.spec["layers"].append({
        "include_self": True,
        "message": {"widths": [2], "activations": ["identity"]},
        "groups": [{"kind": "max", "size": 1}, {"kind": "min", "size": 1}],
        "update": {"widths": [2], "activations": ["identity"]},
        "gate": {"widths": [2], "activations": ["identity"]},
    })
    mask_decoder(b, "reach", "r")
    id_pointer_decoder(b, "pi", "p")
    b.spec["outputs"] = {"pi": "pi"}
    b.spec["hints"] = {"reach_h": "reach", "pi_h": "pi"}
    b.spec["termination"] = {"rule": "fixed_point", "channels": [b.h("r"), b.h("p")]}
    b.spec["exact_domain"] = {"max_nodes": int(big)}
    # initial state
    b.set("init.weight", "source", "r", 1.0)
    b.set("init.weight", "id", "p", 1.0)
    # messages
    m = "layers.0.message"
    b.set(f"{m}.src", "r", 0, 1.0)
    b.set(f"{m}.src", "id", 1, 1.0)
    b.set(f"{m}.src", "r", 1, -big)
    b.set(f"{m}.bias", None, 1, big)
    # update: new = aggregates
    b.set("layers.0.update.agg", 0, "r", 1.0)
    b.set("layers.0.update.agg", 1, "p", 1.0)
    # gate
    g = "layers.0.gate"
    b.set(f"{g}.bias", None, "r", sat)
    b.set(f"{g}.agg", 0, "p", 2 * sat)
    b.set(f"{g}.node", "r", "p", -2 * sat)
    b.set(f"{g}.bias", None, "p", -sat)
    return b.model({"algorithm": "bfs", "channels": {"r": "reach", "p": "pointer (node id)"},
                    "construction": __doc__})
