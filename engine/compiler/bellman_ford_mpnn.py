"""Compiled Bellman-Ford inside the learned MPNN: the spec training produces, analytic weights.

The spec is ``learned_spec("bellman_ford", "mpnn", hidden)`` (hint mode ``encoded_decoded``):
node inputs ``pos = i / n`` and ``s``, edge input ``weight`` and the fed-back pointer column,
one layer per CLRS round with a message MLP ``W2 relu(z_u S + z_v D + e E + b1) + b2``, max
aggregation over in-neighbours and self and a ReLU update; a mask decoder for ``msk``, a
scalar decoder for ``d`` and pointer decoders for ``pi_h`` and ``pi``. No weight depends on
the graph size.

What one max layer can and cannot do
====================================

CLRS's round sets ``pi[v]`` to the lowest-index in-neighbour ``u`` minimising ``d[u] + w``
when that value is strictly below ``d[v]``, and keeps the old pointer otherwise. The *state*
after a max layer cannot hold that argmin: it is a continuous function of the distances (max,
ReLU and affine maps are continuous), while the argmin's identity jumps when two candidates'
values cross, so no choice of weights stores it (two candidates ``a_1 < a_2`` must give
pointer 1, ``a_1 > a_2`` pointer 2; at ``a_1 = a_2`` continuity forces both). The *pointer
decoder* is an argmax over the candidates (ties to the lowest index, as CLRS), so it can take
the argmin, reading the distances of the round before, which the state keeps. Keeping the old
pointer on a tie needs to know which candidate it is: the fed-back pointer column marks that
edge, so this construction needs the hints fed back (``encoded_decoded``); without them every
non-improving node ties between its old pointer and itself (``d[v] + 0``), and only a bonus
smaller than every gap between candidates could break that tie, which no fixed weight is for
real-valued weights.

Exactness in any summation order
================================

As in :mod:`engine.compiler.bfs_mpnn`, every value that passes a ReLU is the only nonzero
term of its matrix product (signed values live in two channels, ``x+`` and ``x-``, at most one
nonzero), blocked values are negative whatever the order, and the sums the kernels form
across parts, ``(z_u S + z_v D) + e E``, follow the fixed order of the message contract.
``d[u] + w`` is then one rounding of the same float32 sum the reference computes.

Hidden channels (the first eleven of ``hidden``; the others stay 0)
====================================================================

=======  ==================================================  ================
chan     meaning (after round t)                             initial value
=======  ==================================================  ================
``r``    reached (CLRS ``msk``)                              ``s``
``u``    not reached, ``1 - r``                              ``1 - s``
``dp``   ``max(d, 0)`` (CLRS ``d``: 0 while unreached)       0
``dn``   ``max(-d, 0)``                                      0
``ro``   ``r`` before the round                              0
``uo``   ``u`` before the round                              1
``op``   ``dp`` before the round                             0
``on``   ``dn`` before the round                             0
``nf``   the pointer before the round was not the node       0
``nr``   reached in this round (``r - ro``)                  0
``me``   the node's key ``1 - pos``                          ``1 - pos``
=======  ==================================================  ================

Message ``u -> v`` and its max over in-neighbours and self
===========================================================

First layer (relu): ``a_r = r_u``, ``a_p = relu(d_u + w - 4 u_u)``, ``a_n = relu(-d_u - w -
4 u_u)``, ``a_u = u_u``; the self-message has ``w = 0``. Channels: ``R = a_r``; ``M = a_n -
a_p - FAR a_u`` (``-(d_u + w)`` from a reached ``u``, ``-FAR`` from an unreached one), so
``-max M`` is ``min(d_v, min_u d_u + w)`` over reached candidates; ``Q = -FAR a_u`` (0 if any
candidate is reached, else ``-FAR``).

Update
======

``r' = relu(R)``, ``u' = relu(1 - R)``, ``dp' = relu(Q - M)``, ``dn' = relu(Q + M)`` (both 0
when nothing reached ``v``: ``-FAR + FAR`` is exactly 0), ``ro', uo', op', on' = r, u, dp,
dn``, ``nf' = relu(1 - 16 f_v)`` (``f_v``: the fed-back "points to itself" column), ``nr' =
relu(R - r)``, ``me' = me``.

Pointer decoders (``pi_h``, ``pi``)
===================================

First layer over candidates ``u`` of ``v`` (in-neighbours and self), with ``s_u = do_u +
w_uv`` (``do = op - on``, the distance before the round; the self-candidate has ``w = 0``):

* ``A = relu(s_u - 4 uo_u)``, ``B = relu(-s_u - 4 uo_u)``, ``U = uo_u``;
* ``G = relu(F_uv - K (do_v - d_v) - K' uo_v)``: 1 on the old pointer's edge (``F_uv``, the
  fed-back pointer column) when ``v`` was reached and did not improve, else 0 (an improvement
  is at least ``2**-53``, so ``K = 2**60`` makes it at least 128);
* ``Km, Kp = relu(+-(me_u - me_v) - 4 nf_v - 4 nr_v - K dn_v)``: ``|me_u - me_v|`` (0 only for
  ``u = v``) while ``v`` points to itself and keeps doing so (unreached, or the source until a
  negative path improves it).

Score ``SCALE (B - A + G - FAR U - KEY (Km + Kp))``: ``-s_u`` plus 1 for the kept pointer,
``-FAR`` for unreached candidates, the key penalty where ``v`` keeps pointing to itself. Its
argmax is CLRS's pointer: the lowest-index minimiser of ``s_u`` on an improvement or first
reach, the old pointer otherwise, ``v`` itself while unreached.

``msk``: logit ``64 (2 r - 1)``; ``d``: ``dp - dn``.

Exact domain: ``n <= 2**23`` (keys), ``|w| <= 2`` (so ``|d| < 2**24`` and ``-d + 1`` is exact),
nonzero ``|w| >= 2**-30`` (so distances are multiples of ``2**-53``); no negative cycle.
"""
from __future__ import annotations

from ..algorithms.specs import learned_spec
from ..errors import EngineError
from .builder import Builder
from .bfs_mpnn import MASK_SCALE

HIDDEN = ["r", "u", "dp", "dn", "ro", "uo", "op", "on", "nf", "nr", "me"]
MAX_NODES = 2**23  # fl(1 - fl(i / n)) is strictly decreasing in i, by at least 2**-24
MAX_ABS_WEIGHT = 2.0  # (n - 1) * 2 < 2**24: every distance below 2**24 in magnitude
MIN_ABS_WEIGHT = 2.0**-30  # every distance a multiple of 2**-53 (2**-30 times float32's 2**-23)
A_R, A_P, A_N, A_U = 0, 1, 2, 3  # message first-layer units
R, M, Q = 0, 1, 2  # message channels (max-aggregated)
BLOCK = 4.0  # larger than any |w| (<= 2), key (<= 1) or flag
FAR = 2.0**25  # beyond every |d + w| (< 2**24 + 2): the value of an unreached candidate
STEP = 2.0**60  # an improvement (>= 2**-53) times STEP is >= 128
OFF = 2.0**90  # beyond STEP * |d| (< 2**84): blocks the kept-pointer bonus until v is reached
KEY = 2.0**27  # KEY * |me_u - me_v| >= 8 > ulp(FAR) / 2 for u != v
# Pointer scores: the decisions depend on signs and exact ties only; the scale sets the training
# loss at the compiled point (a kept pointer wins by SCALE, a first choice by SCALE times the gap
# to the runner-up). With 2**24 the loss on CLRS training batches is 0 in float32, with 2**16 it
# was 1.6e-4 (candidates closer than ~1e-4); engine.analysis.compiled_point reports it.
SCALE = 2.0**24
# nf' = relu(1 - SELF_GAIN f): exactly 1 - f for f in {0, 1} (the executor's hard feedback); with
# CLRS's soft feedback the probability of "itself" is split between the self-candidate and any
# self-loop, and any share of at least 1 / SELF_GAIN still counts as pointing to itself
SELF_GAIN = 16.0
# decoder first-layer units
D_A, D_B, D_U, D_G, D_KM, D_KP = range(6)


def pointer_decoder(b: Builder, name: str) -> None:
    """The pointer decoder described in the module docstring, for decoder ``name``."""
    p = f"decoders.{name}"
    b.unit(f"{p}.src", D_A, {"op": 1.0, "on": -1.0, "uo": -BLOCK})
    b.set(f"{p}.edge", "weight", D_A, 1.0)
    b.unit(f"{p}.src", D_B, {"op": -1.0, "on": 1.0, "uo": -BLOCK})
    b.set(f"{p}.edge", "weight", D_B, -1.0)
    b.set(f"{p}.src", "uo", D_U, 1.0)
    b.unit(f"{p}.dst", D_G, {"op": -STEP, "on": STEP, "dp": STEP, "dn": -STEP, "uo": -OFF})
    b.set(f"{p}.edge", "f_hint_pi_h", D_G, 1.0)
    for unit, sign in ((D_KM, 1.0), (D_KP, -1.0)):
        b.set(f"{p}.src", "me", unit, sign)
        b.unit(f"{p}.dst", unit, {"me": -sign, "nf": -BLOCK, "nr": -BLOCK, "dn": -STEP})
    for unit, value in ((D_A, -1.0), (D_B, 1.0), (D_G, 1.0), (D_U, -FAR), (D_KM, -KEY), (D_KP, -KEY)):
        b.set(f"{p}.1.weight", unit, 0, SCALE * value)


def compile_bellman_ford_mpnn(dtype="float32", hidden: int = 128, hint_mode: str = "encoded_decoded"):
    """Compiled Bellman-Ford in the learned MPNN spec of width ``hidden`` (module docstring).

    Parameters
    ----------
    dtype : {"float32"}
        The exactness argument is made for float32.
    hidden : int
        The learned spec's width (at least 11 used channels).
    hint_mode : {"encoded_decoded"}
        The construction reads the fed-back pointer; the other modes feed nothing back and
        cannot keep CLRS's old pointer on a tie (see the module docstring).
    """
    if str(dtype) != "float32":
        raise EngineError(f"the MPNN construction of Bellman-Ford is made for float32, got {dtype!r}")
    if hidden < len(HIDDEN):
        raise EngineError(f"the MPNN construction of Bellman-Ford needs hidden >= {len(HIDDEN)}, got {hidden}")
    if hint_mode != "encoded_decoded":
        raise EngineError(f"the MPNN construction of Bellman-Ford needs the hints fed back (hint_mode="
                          f"'encoded_decoded'), got {hint_mode!r}: without the fed-back pointer a node that does "
                          "not improve ties between its old pointer and itself, and no fixed weight breaks that "
                          "tie for real-valued weights (see engine.compiler.bellman_ford_mpnn)")
    spec = learned_spec("bellman_ford", "mpnn", hidden, hint_mode=hint_mode)
    spec["name"] = "compiled-mpnn-bellman_ford"
    spec["exact_domain"] = {"max_nodes": MAX_NODES, "max_abs_weight": MAX_ABS_WEIGHT,
                            "min_abs_nonzero_weight": MIN_ABS_WEIGHT}
    b = Builder.for_spec(spec, HIDDEN)
    # initial state: r = s, u = 1 - s, uo = 1 (no round before: nothing was reached), me = 1 - pos
    b.set("init.weight", "source", "r", 1.0)
    b.set("init.weight", "source", "u", -1.0)
    b.set("init.bias", None, "u", 1.0)
    b.set("init.bias", None, "uo", 1.0)
    b.set("init.weight", "pos", "me", -1.0)
    b.set("init.bias", None, "me", 1.0)
    # message
    m = "layers.0.message"
    b.set(f"{m}.src", "r", A_R, 1.0)
    b.unit(f"{m}.src", A_P, {"dp": 1.0, "dn": -1.0, "u": -BLOCK})
    b.set(f"{m}.edge", "weight", A_P, 1.0)
    b.unit(f"{m}.src", A_N, {"dp": -1.0, "dn": 1.0, "u": -BLOCK})
    b.set(f"{m}.edge", "weight", A_N, -1.0)
    b.set(f"{m}.src", "u", A_U, 1.0)
    b.set(f"{m}.1.weight", A_R, R, 1.0)
    b.set(f"{m}.1.weight", A_P, M, -1.0)
    b.set(f"{m}.1.weight", A_N, M, 1.0)
    b.set(f"{m}.1.weight", A_U, M, -FAR)
    b.set(f"{m}.1.weight", A_U, Q, -FAR)
    # update
    u = "layers.0.update"
    b.set(f"{u}.agg", R, "r", 1.0)
    b.set(f"{u}.agg", R, "u", -1.0)
    b.set(f"{u}.bias", None, "u", 1.0)
    b.set(f"{u}.agg", M, "dp", -1.0)
    b.set(f"{u}.agg", Q, "dp", 1.0)
    b.set(f"{u}.agg", M, "dn", 1.0)
    b.set(f"{u}.agg", Q, "dn", 1.0)
    for old, new in (("r", "ro"), ("u", "uo"), ("dp", "op"), ("dn", "on"), ("me", "me")):
        b.set(f"{u}.node", old, new, 1.0)
    b.set(f"{u}.node", "f_hint_pi_h", "nf", -SELF_GAIN)
    b.set(f"{u}.bias", None, "nf", 1.0)
    b.set(f"{u}.agg", R, "nr", 1.0)
    b.set(f"{u}.node", "r", "nr", -1.0)
    # decoders
    for name, dec in spec["decoders"].items():
        if dec["type"] == "pointer":
            pointer_decoder(b, name)
    b.set("decoders.hint_msk.weight", "r", 0, 2.0 * MASK_SCALE)
    b.set("decoders.hint_msk.bias", None, 0, -MASK_SCALE)
    b.set("decoders.hint_d.weight", "dp", 0, 1.0)
    b.set("decoders.hint_d.weight", "dn", 0, -1.0)
    return b.model({"algorithm": "bellman_ford", "processor": "mpnn", "source": "compiled",
                    "channels": dict(zip(HIDDEN, ["reached", "not reached", "distance (positive part)",
                                                  "distance (negative part)", "reached before the round",
                                                  "not reached before the round", "distance before (positive)",
                                                  "distance before (negative)", "pointer was not the node itself",
                                                  "reached in this round", "key 1 - pos"])),
                    "construction": __doc__})
