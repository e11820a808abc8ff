"""Compiled DFS inside CLRS's fully connected MPNN: the spec training uses, analytic weights.

The spec is ``learned_spec("dfs", "mpnn", hidden, message_graph="complete", graph_hints=True,
message_depth=2)``: every ordered pair of nodes exchanges a message (the input graph seen
through the edge input ``adjacency``), CLRS's message MLP ``W3 relu(W2 relu(z_u S + z_v D +
e E + b1) + b2) + b3``, max aggregation, a ReLU update, every node-level hint decoded and fed
back (``encoded_decoded``; pointers over all nodes), and DFS's graph-level ``time`` decoded
from a graph state (a max readout and a ReLU graph update). No layer norm: it divides every
channel by a data-dependent deviation, so no channel could carry DFS's times ``d``, ``f``
exactly (see ``docs/compiled_in_learned.md``). No weight depends on the graph size; nodes are
told apart by their key ``me = 1 - pos`` (strictly decreasing in the index).

Why the fully connected processor can, where the input's edges cannot
=====================================================================

Over the input's edges a node's state depends only on the nodes with a path to it, and DFS's
hints do not (``docs/compiled_in_learned.md``). Here every node hears every node at every
step, so two global questions take one max each: "is any node a candidate?" and "what is the
largest key among the candidates?" (the lowest-index candidate, as CLRS scans). That is all a
DFS event needs, given three integers kept per node: ``S``, the stack size (the number of
gray nodes, the same at every node), ``DEP``, the node's depth on the stack when it was
pushed, and ``K``, the largest depth among its in-neighbours. Gray nodes are the stack, so the
scanned node is the gray node of depth ``S``, and a white node is one of its out-neighbours
exactly when ``K == S`` (a black node has no white out-neighbour: it finished only when it had
none). ``K`` is taken one step ahead: at the hint that pushes a node (or starts a root), the
node is ``s_last`` and its depth is pending (``S``, or 1), and its out-neighbours' keys take
it from there, ready when the node is scanned two steps later.

Exactness in any summation order
================================

As in :mod:`engine.compiler.bfs_mpnn`: flags, depths and counts are small integers, exact in
any order of summation. A real value (a time, a key) passes a ReLU only as the one nonzero
term of its sum, every penalty that blocks it elsewhere being a product of a weight with an
input that is exactly 0 where the value must pass (an event flag, a candidacy violation, a
mask complement that the message computes for its destination and the max hands back). Times
are ``max_u fl(d_u + 0.01)`` (and the same of ``f``): one rounding of the reference's own
float32 addition, since rounding is monotone. Which of the two is the clock is the flag ``L``
(the last tick was a finish).

Hidden channels (the first ones of ``hidden``; the others stay 0), as left after step t
========================================================================================

``ROOT DISC PUSH FINR FINC``: the event of hint t (one-hot; ``FINR``/``FINC``: a finish of a
root / of a pushed node; all 0 after the last root finished). ``S``, ``DEP1 + DEP2`` (the
depth: ``DEP2`` set at the discovery, then moved to ``DEP1``), ``K``, ``me``. The push of
this step: ``CAND`` (candidate) and ``GAP`` (0 at the lowest-index candidate, at least 2 at
every other, 0 off the candidates); the root started at this step: ``CR``, ``GAPR`` alike.
``SCN`` (the node scanned at this step), ``XD`` (discovered), ``FN`` (finished), ``RST``
(popped at the last step: its ``s_prev`` returns to itself). ``L = La +
Lb`` and ``NL = NLa + NLb = 1 - L``; ``Dd Df`` (the new ``d``, from the ``d`` or the ``f``
clock), ``Fd Ff`` (the new ``f``); ``INIT`` and ``POSI`` (``pos``), nonzero only in the
initial state.

Message ``u -> v`` (first layer relu, second relu, third identity; max over all u)
==================================================================================

``AD = max fl(d_u + 0.01)``, ``AF = max fl(f_u + 0.01)``; ``HC`` any push candidate, ``MAXKEY``
the largest candidate key (``relu(me_u - nc_u)``, ``nc_u >= 1`` off the
candidates), ``HW``/``MAXKEYR`` the same for root
candidates (white nodes, after a root finished); ``SGE2 = [S >= 2]`` (``relu(S-1) -
relu(S-2)``); ``KNEW`` the largest depth among in-neighbours (``adjacency`` gates it), set or
pending (the ``s_last`` of a PUSH or ROOT hint); and, computed for the destination alone: ``NLM = 1 - s_last``, ``NSCAN = S - DEP +
BIG (1 - gray)`` (0 exactly at the scanned node), ``NCD``/``NCRD`` (0 exactly at a candidate).

Update (relu of ``z U + agg A + b``)
====================================

``DISC' = ROOT + PUSH``, ``PUSH' = DISC + FINC + HC - 1``, ``FINR' = DISC + FINC - HC - SGE2``,
``FINC' = DISC + FINC - HC + SGE2 - 1``, ``ROOT' = HW``; ``S' = S + ROOT + 2 HC - DISC - FINC``;
``DEP2' = S + ROOT - BIG (2 - ROOT - PUSH - s_last)``, ``DEP1' = DEP1 + DEP2``; ``K' = KNEW``;
``CAND' = K - S + 1 - BIG (1 - white) - BIG (1 - DISC - FINC)``, ``GAP' = BIG MAXKEY - BIG
me - BIG NCD`` (roots: ``CR' = white + FINR - 1``, ``GAPR'`` alike); ``SCN' = DISC + FINC -
NSCAN``, ``XD' = ROOT + PUSH + s_last - 1``, ``FN' = DISC + FINC - HC - NSCAN``, ``RST' = FINC
+ u - 1``; ``La' = L - ROOT - PUSH - DISC - FINC + HC``, ``Lb' = DISC + FINC - HC`` (a finish
ticks), ``NLa'`` alike, ``NLb' = ROOT + PUSH`` (a discovery ticks); ``Dd' = AD - BIG (DISC +
FINR + FINC + NLM + L)``, ``Df' = AF - BIG (... + NL)``, ``Fd' = AD - BIG (ROOT + PUSH + FINR +
HC + NSCAN + L)``, ``Ff'`` alike.

Decoders (read ``[h_{t+1}, pos, hints t]``)
===========================================

Logits in units of ``s = MASK_SCALE``: ``color``: white ``W + INIT - 4 XD - 4 P``, gray ``G
+ 4 XD + 4 P - 8 FN``, black ``B + 8 FN`` with ``P = CAND - 2 GAP`` (1 at the pushed node, 0
or below -1 elsewhere). ``d = d + Dd + Df``, ``f = f + Fd + Ff`` (exact). ``u``: ``4 (R + XD
+ SCN) - 16 POSI`` with ``R = CR - 2 GAPR``; ``v``: ``16 pos - 32 POSI + 64 (R + XD + P)`` (no
event node after a finish: the largest index, CLRS's ``n - 1``); ``s_last``: ``4 (R + XD + P
+ FN) - 16 POSI``; ``s``: ``s + 4 R - 16 POSI`` (``POSI``: hint 0 at node 0). ``pi_h`` and
``pi``, in units of ``POINTER_SCALE``: ``relu(e_pi - CAND_v + 2 GAP_v) + 2 relu(SCN_u + CAND_v
- 2 GAP_v - 1) - |me_u - me_v| INIT_v`` (the fed-back pointer, the scanned node for the
pushed node, the node itself at hint 0); ``s_prev`` the same with its own column, the popped
node pointing to itself. ``time``: the graph state keeps ``T1 = max_v (Dd + Df + Fd + Ff)``
(the new time on a tick) and ``T2 = T1 + T2`` blocked on a tick; ``time = T1 + T2``.
"""
from __future__ import annotations

from ..algorithms.specs import learned_spec
from ..errors import EngineError
from .builder import Builder

EVENTS = ["ROOT", "DISC", "PUSH", "FINR", "FINC"]
HIDDEN = EVENTS + ["S", "DEP1", "DEP2", "K", "me", "CAND", "GAP", "CR", "GAPR", "SCN", "XD", "FN",
                   "RST", "La", "Lb", "NLa", "NLb", "Dd", "Df", "Fd", "Ff", "INIT", "POSI"]
# The exact domain: at most MAX_NODES nodes (a fully connected model is scored up to 4,096
# nodes, engine.learn.trainer.COMPLETE_EVAL_LIMIT). BIG, the penalty that blocks a value, must
# exceed every time (3n * 0.01 < 123), depth and count (<= n), and make a non-selected
# candidate's GAP = BIG (key gap) >= BIG / n at least 2; integer sums stay below 2^24. It is
# kept that small because the training loss's gradient at the compiled point passes a factor
# of up to BIG per step back through the gates (engine.analysis.compiled_point).
MAX_NODES = 2 ** 12
BIG = 2.0 * MAX_NODES
TICK = 0.01
# logit scales: the decisions do not depend on them, the training loss at the compiled point
# does (soft hints fed back): at CLRS's training sizes (n <= 16) every wrong class, node or
# candidate is at least 64 below the right one, and the soft hints are then one-hot to ~e^-64
POINTER_SCALE = 1024.0
MASK_SCALE = 64.0

# message units (first layer; the second and third layers carry the channels below)
M1 = ["ad", "af", "c", "nc", "key", "cr", "ncr", "s1", "s2", "kA", "kB", "kC", "nlm", "nscan", "ncd", "ncrd"]
# message channels, max-aggregated (second layer = third layer = these)
AGG = ["AD", "AF", "HC", "MAXKEY", "HW", "MAXKEYR", "SGE2", "KNEW", "NLM", "NSCAN", "NCD", "NCRD"]
GRAPH = ["T1", "T2"]
READOUT = ["RT", "RLb", "RNLb"]

F = "f_hint_"  # fed-back hint columns of z (and pointer edge columns)
WHITE, GRAY, BLACK = f"{F}color_0", f"{F}color_1", f"{F}color_2"


def _m1(name):
    return M1.index(name)


def _agg(name):
    return AGG.index(name)


def _not_candidate():
    """``(terms, constant)`` of ``S - K + BIG (1 - white) + BIG (1 - DISC - FINC)``: 0 at a push
    candidate (a white node whose in-neighbour depth is the stack's, in a scanning step), at
    least 1 elsewhere."""
    return {"S": 1.0, "K": -1.0, WHITE: -BIG, "DISC": -BIG, "FINC": -BIG}, 2 * BIG


def compile_dfs_mpnn(dtype="float32", hidden: int = 128, hint_mode: str = "encoded_decoded",
                     message_graph: str = "complete"):
    """Compiled DFS in CLRS's fully connected MPNN (module docstring), exact bit for bit.

    Parameters
    ----------
    dtype : {"float32"}
    hidden : int
        The learned spec's width (at least as many channels as the construction uses).
    hint_mode : {"encoded_decoded"}
        The construction reads the fed-back hints (the colours, masks, times and pointers).
    message_graph : {"complete"}
        Over the input's edges DFS is not expressible without the one-node masks, and a
        construction there is open (``docs/compiled_in_learned.md``).
    """
    if str(dtype) != "float32":
        raise EngineError(f"the MPNN construction of DFS is made for float32, got {dtype!r}")
    if message_graph != "complete":
        raise EngineError("DFS compiles into the MPNN over every pair of nodes (message_graph='complete', CLRS's "
                          "processor); over the input's edges a node cannot find the top of the stack in one step "
                          "(docs/compiled_in_learned.md, 'DFS over the input's edges')")
    if hint_mode != "encoded_decoded":
        raise EngineError(f"the MPNN construction of DFS reads the fed-back hints (hint_mode='encoded_decoded'), "
                          f"got {hint_mode!r}")
    width = max(len(HIDDEN), len(M1), len(AGG))
    if hidden < width:
        raise EngineError(f"the MPNN construction of DFS needs hidden >= {width}, got {hidden}")
    spec = learned_spec("dfs", "mpnn", hidden, hint_mode=hint_mode, message_graph="complete", graph_hints=True,
                        message_depth=2)
    spec["name"] = "compiled-mpnn-dfs"
    spec["exact_domain"] = {"max_nodes": MAX_NODES}
    b = Builder.for_spec(spec, HIDDEN)
    _initial_state(b)
    _message(b)
    _update(b)
    _graph_state(b)
    _decoders(b)
    return b.model({"algorithm": "dfs", "processor": "mpnn", "message_graph": "complete", "source": "compiled",
                    "channels": HIDDEN, "construction": __doc__})


def _initial_state(b: Builder) -> None:
    """Hint 0 is ROOT(0): ``ROOT = 1``; ``NL = 1``; ``me = 1 - pos``; ``INIT = 1``, ``POSI =
    pos``."""
    b.set("init.bias", None, "ROOT", 1.0)
    b.set("init.weight", "pos", "me", -1.0)
    b.set("init.bias", None, "me", 1.0)
    b.set("init.bias", None, "NLa", 1.0)
    b.set("init.bias", None, "INIT", 1.0)
    b.set("init.weight", "pos", "POSI", 1.0)


def _message(b: Builder) -> None:
    m = "layers.0.message"
    src, dst, edge, bias = f"{m}.src", f"{m}.dst", f"{m}.edge", f"{m}.bias"
    # times, one rounding each: fl(d_u + 0.01)
    b.set(src, f"{F}d", _m1("ad"), 1.0)
    b.set(bias, None, _m1("ad"), TICK)
    b.set(src, f"{F}f", _m1("af"), 1.0)
    b.set(bias, None, _m1("af"), TICK)
    # push candidacy of the sender: c = K - S + 1 - BIG (1 - white) - BIG (1 - DISC - FINC)
    b.unit(src, _m1("c"), {"K": 1.0, "S": -1.0, WHITE: BIG, "DISC": BIG, "FINC": BIG}, bias, 1.0 - 2 * BIG)
    terms, const = _not_candidate()
    b.unit(src, _m1("nc"), terms, bias, const)
    b.set(src, "me", _m1("key"), 1.0)
    # root candidacy: white after a root finished
    b.unit(src, _m1("cr"), {WHITE: 1.0, "FINR": 1.0}, bias, -1.0)
    b.unit(src, _m1("ncr"), {WHITE: -1.0, "FINR": -BIG}, bias, 1.0 + BIG)
    b.unit(src, _m1("s1"), {"S": 1.0}, bias, -1.0)
    b.unit(src, _m1("s2"), {"S": 1.0}, bias, -2.0)
    # depths reaching v along input edges: set (DEP1 + DEP2), or pending at the node just pushed
    # (hint PUSH, its s_last: S) or just started as a root (hint ROOT, its s_last: 1)
    b.unit(src, _m1("kA"), {"DEP1": 1.0, "DEP2": 1.0}, bias, -BIG)
    b.set(edge, "adjacency", _m1("kA"), BIG)
    b.unit(src, _m1("kB"), {"S": 1.0, "PUSH": BIG, f"{F}s_last": BIG}, bias, -3 * BIG)
    b.set(edge, "adjacency", _m1("kB"), BIG)
    b.unit(src, _m1("kC"), {"ROOT": 1.0, f"{F}s_last": 1.0}, bias, -2.0)
    b.set(edge, "adjacency", _m1("kC"), 1.0)
    # for the destination alone (every sender computes the same; the max returns it)
    b.unit(dst, _m1("nlm"), {f"{F}s_last": -1.0}, bias, 1.0)
    b.unit(dst, _m1("nscan"), {"S": 1.0, "DEP1": -1.0, "DEP2": -1.0, GRAY: -BIG}, bias, BIG)
    terms, const = _not_candidate()
    b.unit(dst, _m1("ncd"), terms, bias, const)
    b.unit(dst, _m1("ncrd"), {WHITE: -1.0, "FINR": -BIG}, bias, 1.0 + BIG)
    # second layer (relu): the channels; third layer (identity): the same channels
    l2, l3 = f"{m}.1.weight", f"{m}.2.weight"
    for a, u in (("AD", "ad"), ("AF", "af"), ("HC", "c"), ("HW", "cr"), ("NLM", "nlm"), ("NSCAN", "nscan"),
                 ("NCD", "ncd"), ("NCRD", "ncrd")):
        b.set(l2, _m1(u), _agg(a), 1.0)
    b.set(l2, _m1("key"), _agg("MAXKEY"), 1.0)
    b.set(l2, _m1("nc"), _agg("MAXKEY"), -1.0)  # nc >= 1 where not a candidate, key <= 1
    b.set(l2, _m1("key"), _agg("MAXKEYR"), 1.0)
    b.set(l2, _m1("ncr"), _agg("MAXKEYR"), -1.0)
    b.set(l2, _m1("s1"), _agg("SGE2"), 1.0)
    b.set(l2, _m1("s2"), _agg("SGE2"), -1.0)
    for u in ("kA", "kB", "kC"):
        b.set(l2, _m1(u), _agg("KNEW"), 1.0)
    for a in AGG:
        b.set(l3, _agg(a), _agg(a), 1.0)


def _update(b: Builder) -> None:
    u = "layers.0.update"
    node, agg, bias = f"{u}.node", f"{u}.agg", f"{u}.bias"

    def unit(ch, z_terms=None, agg_terms=None, const=0.0):
        for row, w in (z_terms or {}).items():
            b.set(node, row, ch, w)
        for row, w in (agg_terms or {}).items():
            b.set(agg, _agg(row), ch, w)
        if const:
            b.set(bias, None, ch, const)

    scan = {"DISC": 1.0, "FINC": 1.0}
    unit("ROOT", agg_terms={"HW": 1.0})
    unit("DISC", {"ROOT": 1.0, "PUSH": 1.0})
    unit("PUSH", scan, {"HC": 1.0}, -1.0)
    unit("FINR", scan, {"HC": -1.0, "SGE2": -1.0})
    unit("FINC", scan, {"HC": -1.0, "SGE2": 1.0}, -1.0)
    unit("S", {"S": 1.0, "ROOT": 1.0, "DISC": -1.0, "FINC": -1.0}, {"HC": 2.0})
    unit("DEP2", {"S": 1.0, "ROOT": 1.0 + BIG, "PUSH": BIG, f"{F}s_last": BIG}, None, -2 * BIG)
    unit("DEP1", {"DEP1": 1.0, "DEP2": 1.0})
    unit("K", None, {"KNEW": 1.0})
    unit("me", {"me": 1.0})
    unit("CAND", {"K": 1.0, "S": -1.0, WHITE: BIG, "DISC": BIG, "FINC": BIG}, None, 1.0 - 2 * BIG)
    unit("GAP", {"me": -BIG}, {"MAXKEY": BIG, "NCD": -BIG})
    unit("CR", {WHITE: 1.0, "FINR": 1.0}, None, -1.0)
    unit("GAPR", {"me": -BIG}, {"MAXKEYR": BIG, "NCRD": -BIG})
    unit("SCN", scan, {"NSCAN": -1.0})
    unit("XD", {"ROOT": 1.0, "PUSH": 1.0, f"{F}s_last": 1.0}, None, -1.0)
    unit("FN", scan, {"HC": -1.0, "NSCAN": -1.0})
    unit("RST", {"FINC": 1.0, f"{F}u": 1.0}, None, -1.0)
    every_event = {e: -1.0 for e in ("ROOT", "PUSH", "DISC", "FINC")}
    unit("La", {"La": 1.0, "Lb": 1.0, **every_event}, {"HC": 1.0})
    unit("Lb", scan, {"HC": -1.0})
    unit("NLa", {"NLa": 1.0, "NLb": 1.0, **every_event}, {"HC": 1.0})
    unit("NLb", {"ROOT": 1.0, "PUSH": 1.0})
    # the new times: each the one nonzero term of its sum where it passes
    disc_blocks = {"DISC": -BIG, "FINR": -BIG, "FINC": -BIG}
    fin_blocks = {"ROOT": -BIG, "PUSH": -BIG, "FINR": -BIG}
    unit("Dd", {**disc_blocks, "La": -BIG, "Lb": -BIG}, {"AD": 1.0, "NLM": -BIG})
    unit("Df", {**disc_blocks, "NLa": -BIG, "NLb": -BIG}, {"AF": 1.0, "NLM": -BIG})
    unit("Fd", {**fin_blocks, "La": -BIG, "Lb": -BIG}, {"AD": 1.0, "HC": -BIG, "NSCAN": -BIG})
    unit("Ff", {**fin_blocks, "NLa": -BIG, "NLb": -BIG}, {"AF": 1.0, "HC": -BIG, "NSCAN": -BIG})


def _graph_state(b: Builder) -> None:
    """Readout ``RT = Dd + Df + Fd + Ff``, ``RLb = Lb``, ``RNLb = NLb`` (max over nodes); graph
    update ``T1 = RT``, ``T2 = T1 + T2 - BIG (RLb + RNLb)``; ``time = T1 + T2``."""
    r = "layers.0.readout"
    for ch in ("Dd", "Df", "Fd", "Ff"):
        b.set(f"{r}.node", b.h(ch), READOUT.index("RT"), 1.0)
    b.set(f"{r}.node", b.h("Lb"), READOUT.index("RLb"), 1.0)
    b.set(f"{r}.node", b.h("NLb"), READOUT.index("RNLb"), 1.0)
    g = "layers.0.graph_update"
    t1, t2 = GRAPH.index("T1"), GRAPH.index("T2")
    b.set(f"{g}.readout", READOUT.index("RT"), t1, 1.0)
    b.set(f"{g}.graph", t1, t2, 1.0)
    b.set(f"{g}.graph", t2, t2, 1.0)
    b.set(f"{g}.readout", READOUT.index("RLb"), t2, -BIG)
    b.set(f"{g}.readout", READOUT.index("RNLb"), t2, -BIG)
    b.set("decoders.hint_time.weight", t1, 0, 1.0)
    b.set("decoders.hint_time.weight", t2, 0, 1.0)


def _pointer(b: Builder, name: str, column: str, reset: bool) -> None:
    """Score ``relu(e_p - CAND_v + 2 GAP_v [- 2 RST_v]) + 2 relu(SCN_u + CAND_v - 2 GAP_v - 1)
    - relu(me_u - me_v - 4 + 4 (INIT_v [+ RST_v])) - relu(me_v - me_u - ...)``, scaled."""
    p = f"decoders.{name}"
    src, dst, edge, bias = f"{p}.src", f"{p}.dst", f"{p}.edge", f"{p}.bias"
    b.set(edge, column, 0, 1.0)
    b.unit(dst, 0, {"CAND": -1.0, "GAP": 2.0, **({"RST": -2.0} if reset else {})})
    b.set(src, "SCN", 1, 1.0)
    b.unit(dst, 1, {"CAND": 1.0, "GAP": -2.0}, bias, -1.0)
    self_terms = {"INIT": 4.0, **({"RST": 4.0} if reset else {})}
    b.set(src, "me", 2, 1.0)
    b.unit(dst, 2, {"me": -1.0, **self_terms}, bias, -4.0)
    b.set(src, "me", 3, -1.0)
    b.unit(dst, 3, {"me": 1.0, **self_terms}, bias, -4.0)
    for unit, w in ((0, 1.0), (1, 2.0), (2, -1.0), (3, -1.0)):
        b.set(f"{p}.1.weight", unit, 0, POINTER_SCALE * w)


def _decoders(b: Builder) -> None:
    def logit(name, terms, col=0):
        for row, w in terms.items():
            b.set(f"decoders.{name}.weight", row, col, w)

    s = MASK_SCALE
    pushed = {"CAND": 4.0 * s, "GAP": -8.0 * s}   # 4 s P
    rooted = {"CR": 4.0 * s, "GAPR": -8.0 * s}    # 4 s R
    first = {"POSI": -16.0 * s}  # hint 0 (ROOT of node 0): node 0 by a margin of s at n = 16
    logit("hint_color", {WHITE: s, "INIT": s, "XD": -4.0 * s, "CAND": -4.0 * s, "GAP": 8.0 * s}, 0)
    logit("hint_color", {GRAY: s, "XD": 4.0 * s, "FN": -8.0 * s, **pushed}, 1)
    logit("hint_color", {BLACK: s, "FN": 8.0 * s}, 2)
    logit("hint_d", {f"{F}d": 1.0, "Dd": 1.0, "Df": 1.0})
    logit("hint_f", {f"{F}f": 1.0, "Fd": 1.0, "Ff": 1.0})
    logit("hint_u", {**rooted, "XD": 4.0 * s, "SCN": 4.0 * s, **first})
    big = {k: 16.0 * w for k, w in {**rooted, **pushed, "XD": 4.0 * s}.items()}  # above 16 s pos
    logit("hint_v", {"pos": 16.0 * s, "POSI": -32.0 * s, **big})
    logit("hint_s_last", {**rooted, "XD": 4.0 * s, **pushed, "FN": 4.0 * s, **first})
    logit("hint_s", {f"{F}s": s, **rooted, **first})
    _pointer(b, "hint_pi_h", f"{F}pi_h", reset=False)
    _pointer(b, "output_pi", f"{F}pi_h", reset=False)
    _pointer(b, "hint_s_prev", f"{F}s_prev", reset=True)
