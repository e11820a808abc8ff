"""Compiled BFS inside the learned GATv2: the spec training produces, analytic weights.

The spec is ``learned_spec("bfs", "gatv2", hidden, heads=H, hint_mode=...)``: the same
inputs, decoders and feedback as the MPNN's, one GATv2 layer per step
(:mod:`engine.learn.gatv2`): for each message ``u -> v`` (in-neighbours and self) and head
``h``, a score ``a_h . leaky_relu(z_u A_src + z_v A_dst + e A_edge + b_att)``, a value
``z_u V + b_val``, and the update ``h'_v = relu(z_v W + b + sum_u softmax_u(score) value_u)``
where value channel ``c`` feeds hidden unit ``c`` (a fixed selection). Only head 0 is used;
the other heads' scores and values are 0 (uniform attention over zero values adds exactly 0).
Every weight GATv2 fixes (the value rows, the aggregate selection) is as GATv2 builds it,
so ``GNNModule.from_model`` accepts the model as a GATv2.

Saturated attention, one weight set for every size up to ``MAX_NODES``
========================================================================

Head 0 reads two attention channels, ``P_0 = r_u`` and ``P_1 = me_u = 1 - pos_u`` (both
non-negative, so ``leaky_relu`` is the identity), with head weights ``K1 = 2**30`` and
``K2 = 2**29``: the score is ``K1 r_u + K2 me_u``, the products exact (powers of two). A
reached candidate scores at least ``K1``, an unreached one at most ``K2``: a gap of ``2**29``.
Among candidates of one kind the highest key (the lowest index) wins: for ``n <= 2**20`` two
keys differ by at least ``1/n - 2**-23`` (``fl(1 - fl(i/n))`` is within ``2**-24`` of
``1 - i/n``), so after rounding the sum (at most ``2**-22 K2``) the winner leads by at least
``5 * 2**6 = 320``. Every loser's weight ``exp(-gap)`` is then exactly 0 in float32 (it
underflows below ``exp(-104)``), in the two-pass softmax (reference, torch) and in the
one-pass one (native, numba: a rescale by ``exp(M - s) = 0``), so the aggregate is exactly the
winner's value. CLRS's tie rule (the lowest-index reached in-neighbour) is the winner.

Hidden channels (the first six; the others 0) and the values that feed them
===========================================================================

=======  =====================================  ===============================  =========================
chan     meaning                                value of candidate ``u``         update
=======  =====================================  ===============================  =========================
``r``    reached (``reach_h``)                   ``r_u``                          ``relu(A_r)``
``u``    not reached                             ``-r_u``                         ``relu(1 + A_u)``
``me``   key ``1 - pos``                         0                                ``relu(me)``
``pa``   pointer key, set this round             ``me_u - 4 u_u``                 ``relu(A_pa - 4 r)``
``pb``   pointer key, kept                       0                                ``relu(pa + pb + pc - 4 u)``
``pc``   pointer key while unreached (``me``)    ``-4 r_u``                       ``relu(pc + A_pc)``
=======  =====================================  ===============================  =========================

``A_x`` is the winner's value. The winner is reached exactly when a candidate is, so these are
the MPNN construction's updates (:mod:`engine.compiler.bfs_mpnn`) with its max aggregates
replaced by the winner's values; every sum that must pass a value has that value as its only
nonzero term (the penalty terms are exact zeros there), so the state is exact in any
summation order. Decoders as in the MPNN construction. Exact domain: ``n <= 2**20``.
"""
from __future__ import annotations

from ..algorithms.specs import learned_spec
from ..errors import EngineError
from ..model.factory import gatv2_columns
from .bfs_mpnn import BLOCK, HIDDEN, POINTER, bfs_decoders, initial_state
from .builder import Builder

MAX_NODES = 2**20
K_REACHED, K_KEY = 2.0**30, 2.0**29  # head weights of the attention channels r_u and me_u
NEGATIVE_SLOPE = 0.2  # the learned spec's leaky_relu slope (unused: the pre-activations are >= 0)


def gatv2_fixed_weights(b: Builder, hidden: int, heads: int) -> None:
    """The weights GATv2 fixes whatever its parameters: the value rows of the message's second
    layer (+1 and -1 at each value channel's column) and the update's aggregate selection."""
    _, value_col = gatv2_columns(hidden, heads)
    m = "layers.0.message.1.weight"
    for c in range(hidden):
        b.set(m, 2 * hidden + c, int(value_col[c]), 1.0)
        b.set(m, 3 * hidden + c, int(value_col[c]), -1.0)
        b.set("layers.0.update.agg", int(value_col[c]), c, 1.0)


def attention_channel(b: Builder, hidden: int, heads: int, slope: float, k: int, head_weight: float,
                      src_terms: dict) -> None:
    """Attention channel ``k``: pre-activation ``sum src_terms`` (from the sender's state) and
    head weight ``head_weight`` (with GATv2's negated copy for the leaky part)."""
    score_col, _ = gatv2_columns(hidden, heads)
    for row, w in src_terms.items():
        b.set("layers.0.message.src", row, k, w)
        b.set("layers.0.message.src", row, hidden + k, -w)
    b.set("layers.0.message.1.weight", k, int(score_col[k]), head_weight)
    b.set("layers.0.message.1.weight", hidden + k, int(score_col[k]), -slope * head_weight)


def value_channel(b: Builder, hidden: int, channel: str, src_terms: dict) -> None:
    """Value channel of hidden unit ``channel``: ``sum src_terms`` of the sender's state."""
    c = HIDDEN.index(channel)
    for row, w in src_terms.items():
        b.set("layers.0.message.src", row, 2 * hidden + c, w)
        b.set("layers.0.message.src", row, 3 * hidden + c, -w)


def compile_bfs_gatv2(dtype="float32", hidden: int = 128, hint_mode: str = "encoded_decoded", heads: int = 1):
    """Compiled BFS in the learned GATv2 spec of width ``hidden`` with ``heads`` heads (see the
    module docstring).

    Parameters
    ----------
    dtype : {"float32"}
        The construction's exactness argument is made for float32.
    hidden : int
        The learned spec's width (at least 6 used channels, all in head 0).
    hint_mode : {"encoded_decoded", "decoded_only", "none"}
    heads : int
        Attention heads (dividing ``hidden``; head 0 must hold the six channels).
    """
    if str(dtype) != "float32":
        raise EngineError(f"the GATv2 construction of BFS is made for float32, got {dtype!r}")
    if heads < 1 or hidden % heads or hidden // heads < len(HIDDEN):
        raise EngineError(f"the GATv2 construction of BFS needs heads dividing hidden with at least "
                          f"{len(HIDDEN)} channels per head, got hidden={hidden}, heads={heads}")
    spec = learned_spec("bfs", "gatv2", hidden, heads=heads, hint_mode=hint_mode)
    slope = float(spec["processor"]["negative_slope"])
    spec["name"] = "compiled-gatv2-bfs"
    spec["exact_domain"] = {"max_nodes": MAX_NODES}
    b = Builder.for_spec(spec, HIDDEN)
    initial_state(b)  # as the MPNN construction's
    gatv2_fixed_weights(b, hidden, heads)
    attention_channel(b, hidden, heads, slope, 0, K_REACHED, {"r": 1.0})
    attention_channel(b, hidden, heads, slope, 1, K_KEY, {"me": 1.0})
    value_channel(b, hidden, "r", {"r": 1.0})
    value_channel(b, hidden, "u", {"r": -1.0})
    value_channel(b, hidden, "pa", {"me": 1.0, "u": -BLOCK})
    value_channel(b, hidden, "pc", {"r": -BLOCK})
    u = "layers.0.update"
    b.set(f"{u}.bias", None, "u", 1.0)
    b.set(f"{u}.node", "me", "me", 1.0)
    b.set(f"{u}.node", "r", "pa", -BLOCK)
    for ch in POINTER:
        b.set(f"{u}.node", ch, "pb", 1.0)
    b.set(f"{u}.node", "u", "pb", -BLOCK)
    b.set(f"{u}.node", "pc", "pc", 1.0)
    bfs_decoders(b, spec)
    return b.model({"algorithm": "bfs", "processor": "gatv2", "source": "compiled",
                    "channels": dict(zip(HIDDEN, ["reach", "not reached", "key 1 - pos", "pointer key (set this round)",
                                                  "pointer key (kept)", "pointer key (self, unreached)"])),
                    "attention": {"head": 0, "selects": "the lowest-index reached candidate, else the lowest-index "
                                                        "candidate"},
                    "construction": __doc__})
