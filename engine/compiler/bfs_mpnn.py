"""Compiled BFS inside the learned MPNN: the very spec training produces, with analytic weights.

The spec is ``learned_spec("bfs", "mpnn", hidden, hint_mode=...)``: node inputs CLRS's
``pos = i / n`` and ``s``, edge input ``weight``, one layer per step with a message MLP
``W2 relu(z_u S + z_v D + e E + b1) + b2``, max aggregation over in-neighbours and self and a
ReLU update ``h' = relu(z_v U + agg A + b)`` (no gate), a mask decoder for ``reach_h`` and
pointer decoders for ``pi_h`` and ``pi``; hints fed back as CLRS does (the weights ignore the
fed-back columns). No weight depends on the graph size: nodes are told apart by their
position, and a pointer is stored as the key ``me = 1 - pos`` of the node it points at
(``fl(1 - pos_i)`` is strictly decreasing in ``i`` for ``n < 2**25 / 3``).

Exactness in any summation order
================================

An update is one ReLU layer, so it cannot multiply a value by a flag; it selects with
penalties: ``relu(value - penalty)``, the penalty an integer that is 0 (every term of it 0)
where the value must pass and at least the value's bound where it must not. Where the value
passes, it is the only nonzero term of its sum, so the result is exact whatever order a
matrix product adds its terms in (the native kernels, NumPy's and torch's BLAS, with or
without FMA); where it is blocked, rounding does not matter, the sum is negative. The same
holds for every first layer of the messages and decoders. A pointer is kept in three
channels of which at most one is nonzero (``pa``: set in the last round, ``pb``: kept,
``pc``: the node itself, while unreached), so their sum is exact too.

Hidden channels (the first six of ``hidden``; the others stay 0)
================================================================

=======  ==========================================  =====================================
chan     meaning                                      initial value
=======  ==========================================  =====================================
``r``    reached (CLRS ``reach_h``)                   ``s``
``u``    not reached, ``1 - r``                       ``1 - s``
``me``   the node's key ``1 - pos`` (in (0, 1])       ``1 - pos``
``pa``   the pointer's key, if set in the last round  0
``pb``   the pointer's key, if set earlier            0
``pc``   the pointer's key while unreached: ``me``    ``1 - pos``
=======  ==========================================  =====================================

CLRS ``pi[v]`` is the node whose key is ``p_v = pa + pb + pc``.

Message ``u -> v`` and its max over in-neighbours and self
===========================================================

First layer (relu): ``a_r = r_u``, ``a_p = me_u - 4 u_u`` (``me_u`` if ``u`` is reached, else
blocked to 0). Channels: ``R = a_r`` (1 if ``v`` or an in-neighbour is reached) and
``P = a_p``: the largest key among the reached candidates, i.e. the key of the lowest-index
one (keys decrease with the index), or 0 if none is reached (keys are positive).

Update
======

* ``r' = relu(R)``, ``u' = relu(1 - R)``, ``me' = relu(me)``;
* ``pa' = relu(P - 4 r)``: ``P`` when ``v`` was unreached (0 when nothing reached it either);
* ``pb' = relu(pa + pb + pc - 4 u)``: the pointer, kept once ``v`` is reached;
* ``pc' = relu(pc - 4 R)``: ``v``'s own key while ``v`` and its in-neighbours are unreached.

CLRS sets ``pi[v]`` once, to the lowest-index in-neighbour reached in the previous round, when
``v`` is reached; the source points to itself.

Decoders
========

``reach_h``: logit ``64 (2 r - 1)``. ``pi``, ``pi_h``: edge score ``-1024 (relu(me_u - p_v) +
relu(p_v - me_u))``, exactly 0 at the candidate whose key is ``p_v`` (a difference of two floats
is 0 only when they are equal) and negative at every other; the argmax over in-neighbours and
self finds it. The scales make the training loss at the compiled point vanish at CLRS's
training sizes (``POINTER_SCALE``). Exact domain: ``n <= 2**23``.
"""
from __future__ import annotations

from ..algorithms.specs import learned_spec
from ..errors import EngineError
from .builder import Builder

HIDDEN = ["r", "u", "me", "pa", "pb", "pc"]
POINTER = ("pa", "pb", "pc")  # the pointer's key is their sum (at most one is nonzero)
MAX_NODES = 2**23  # fl(1 - fl(i / n)) is strictly decreasing in i for n < 2**25 / 3
A_R, A_P = 0, 1  # the message's first-layer units
R, P = 0, 1  # its channels (max-aggregated)
BLOCK = 4.0  # a penalty: larger than any key (<= 1) or flag


# Logit scales: the decisions do not depend on them (signs and an exact 0), but the training
# loss at the compiled point does: at CLRS's training sizes (n <= 16, so two positions differ
# by at least 1/16) a wrong candidate's pointer score is at most -POINTER_SCALE / 16 = -64 and
# a mask logit is +-MASK_SCALE, so each softmax or sigmoid puts at most ~e^-64 on a wrong
# answer: the loss there is ~1e-27 (see engine.analysis.compiled_point).
POINTER_SCALE = 1024.0
MASK_SCALE = 64.0


def key_pointer_decoder(b: Builder, name: str, key: str, pointer: tuple, scale: float = POINTER_SCALE) -> None:
    """Pointer decoder selecting the candidate ``u`` whose ``key`` channel equals the sum of
    ``v``'s ``pointer`` channels: score ``-scale (relu(key_u - p_v) + relu(p_v - key_u))``,
    exactly 0 there and negative elsewhere (``scale`` a power of two: the products are exact)."""
    p = f"decoders.{name}"
    b.set(f"{p}.src", key, 0, 1.0)
    b.set(f"{p}.src", key, 1, -1.0)
    for ch in pointer:
        b.set(f"{p}.dst", ch, 0, -1.0)
        b.set(f"{p}.dst", ch, 1, 1.0)
    b.set(f"{p}.1.weight", 0, 0, -scale)
    b.set(f"{p}.1.weight", 1, 0, -scale)


def initial_state(b: Builder) -> None:
    """The initial state: ``r = s``, ``u = 1 - s``, ``me = pc = 1 - pos``."""
    b.set("init.weight", "source", "r", 1.0)
    b.set("init.weight", "source", "u", -1.0)
    b.set("init.bias", None, "u", 1.0)
    for ch in ("me", "pc"):
        b.set("init.weight", "pos", ch, -1.0)
        b.set("init.bias", None, ch, 1.0)


def bfs_decoders(b: Builder, spec: dict) -> None:
    """Every decoder of the spec: pointers by key (:func:`key_pointer_decoder`), ``reach_h``
    as the logit ``MASK_SCALE (2 r - 1)``."""
    for name, dec in spec["decoders"].items():
        if dec["type"] == "pointer":
            key_pointer_decoder(b, name, "me", POINTER)
        else:
            b.set(f"decoders.{name}.weight", "r", 0, 2.0 * MASK_SCALE)
            b.set(f"decoders.{name}.bias", None, 0, -MASK_SCALE)


def compile_bfs_mpnn(dtype="float32", hidden: int = 128, hint_mode: str = "encoded_decoded"):
    """Compiled BFS in the learned MPNN spec of width ``hidden`` (see the module docstring).

    Parameters
    ----------
    dtype : {"float32"}
        The construction's exactness argument is made for float32 positions.
    hidden : int
        The learned spec's width (at least 5 used channels).
    hint_mode : {"encoded_decoded", "decoded_only", "none"}
        As the learned spec's.
    """
    if str(dtype) != "float32":
        raise EngineError(f"the MPNN construction of BFS is made for float32, got {dtype!r}")
    if hidden < len(HIDDEN):
        raise EngineError(f"the MPNN construction of BFS needs hidden >= {len(HIDDEN)}, got {hidden}")
    spec = learned_spec("bfs", "mpnn", hidden, hint_mode=hint_mode)
    spec["name"] = f"compiled-mpnn-bfs"
    spec["exact_domain"] = {"max_nodes": MAX_NODES}
    b = Builder.for_spec(spec, HIDDEN)
    initial_state(b)
    # message: first-layer units, then the channels R and P
    m = "layers.0.message"
    b.set(f"{m}.src", "r", A_R, 1.0)
    b.set(f"{m}.src", "me", A_P, 1.0)
    b.set(f"{m}.src", "u", A_P, -BLOCK)
    b.set(f"{m}.1.weight", A_R, R, 1.0)
    b.set(f"{m}.1.weight", A_P, P, 1.0)
    # update
    u = "layers.0.update"
    b.set(f"{u}.agg", R, "r", 1.0)
    b.set(f"{u}.agg", R, "u", -1.0)
    b.set(f"{u}.bias", None, "u", 1.0)
    b.set(f"{u}.node", "me", "me", 1.0)
    b.set(f"{u}.agg", P, "pa", 1.0)
    b.set(f"{u}.node", "r", "pa", -BLOCK)
    for ch in POINTER:
        b.set(f"{u}.node", ch, "pb", 1.0)
    b.set(f"{u}.node", "u", "pb", -BLOCK)
    b.set(f"{u}.node", "pc", "pc", 1.0)
    b.set(f"{u}.agg", R, "pc", -BLOCK)
    bfs_decoders(b, spec)
    return b.model({"algorithm": "bfs", "processor": "mpnn", "source": "compiled",
                    "channels": dict(zip(HIDDEN, ["reach", "not reached", "key 1 - pos", "pointer key (set this round)",
                                                  "pointer key (kept)", "pointer key (self, unreached)"])),
                    "construction": __doc__})
