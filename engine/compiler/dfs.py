"""Compiled DFS: CLRS's event machine as one processor layer per step plus a graph state.

CLRS's DFS makes one event per hint step: start a root (ROOT), discover the top of the
stack (DISC), push the lowest-index white out-neighbour of the scanned node (PUSH), or
finish it (FINISH; the next step pops it and scans the node below). One application of the
layer is one event: its node update commits the event that the graph state ``g`` decided at
the previous step, its readouts find what the next event needs, and its graph update
decides that event. ``g`` holds the stack top and CLRS's registers (pointers, i.e. node ids)
and the phase; nodes see ``g`` only where a pointer addresses them.

Each pushed node (and each root, when it is started) gets a stamp, the number of nodes
stamped so far, so stamps grow with the stack. A white node's key is the largest stamp among
its in-neighbours, which it learns from its messages once, one step after the stamp is set:
a step touches the addressed nodes, and the out-neighbours of a node only at the step after
its push. The gray nodes are the stack, so the deepest gray node (the largest gray stamp) is
the node scanned next, and a white node whose key equals that stamp is one of its white
out-neighbours.

Inputs: ``id``. Sentinel ``BIG`` = ``BIG_TERM`` (2**21 in float32, 2**40 in float64; see
:mod:`engine.compiler.constants`): every sum below is an integer of magnitude below 2**24, so
exact. Times are ``time + 0.01`` rounded once, as the
reference does.

Graph channels (``g``), as left by step ``t`` for the event of step ``t + 1``
===========================================================================

=============  ================================================  =========================
channel        meaning                                            pointer / broadcast
=============  ================================================  =========================
``top``        CLRS ``s_last``, top of the stack                  pointer
``u``          CLRS ``u``                                         pointer
``v``          CLRS ``v``; BIG (no node) after a failed scan,     pointer
               where CLRS's ``v`` is ``n - 1``
``scan``       node whose out-neighbours are scanned next         pointer, broadcast (its id)
``cand``       ``scan``'s lowest white out-neighbour, or BIG;     pointer
               in phase ROOT the next root (BIG: none left)
``time``       CLRS ``time``                                      broadcast
``DISC``       phase: discover ``top``                            broadcast
``SCAN``       phase: scan ``scan`` (== ``top``)                  broadcast
``POP``        phase: pop the finished ``top``, scan ``scan``     broadcast
``ROOT``       phase: start the root ``cand``                     broadcast
``has_cand``   ``cand`` is a white out-neighbour of ``scan``      broadcast
``nst``        stamps given so far                                broadcast
=============  ================================================  =========================

Node channels (``h``): ``white``, ``gray``, ``black`` (CLRS ``color`` one-hot), ``d``, ``f``,
``pi``, ``sp`` (``s_prev``) as node ids, ``st`` (stamp: ``1 - id`` <= 0 until the node is
pushed or started as a root, then the stamp >= 1), ``rs`` (the same, set only when the node
is started as a root: the current root is the node with the largest ``rs``), and the scratch
channel ``key`` (the largest in-neighbour stamp ``F`` if white, else 0). Initially root 0 is started: ``st = rs = 1 - id`` (stamp
1 at node 0), ``nst = 1``, phase DISC, ``top = u = v = 0``. The current root and CLRS's ``v``
after a failed scan are not pointers, so that no node sees the graph state for them alone:
their nodes would be recomputed at every step.

The layer
=========

Message ``u -> v``: ``st(u)``, reduced by max over the in-neighbours and ``v``: ``F_v``.
A white node's in-neighbours are gray or white (a black node has no white out-neighbour: it
finished only after scanning them all), and white ones hold stamps <= 0, so ``F_v`` is the
largest stamp among ``v``'s gray in-neighbours, or <= 0.

Update, first layer (relu), from the address and broadcast features (events exclude each
other; at a node no pointer addresses, every feature below is 0):
``disc = a_top + DISC - 1``, ``push = a_cand + has_cand + SCAN + POP - 2``,
``fin = a_scan + SCAN + POP - has_cand - 1``, ``popr = a_top + POP - 1``,
``rst = a_cand + ROOT - 1``; values ``spv = scan - BIG (3 - a_cand - has_cand - SCAN - POP)``
(the scanned node's id when pushed), ``idv = id - BIG (2 - a_top - POP)``, ``t = time``,
``stv = nst + 1``, ``kp = F + BIG white - BIG a_top - BIG``
(``F`` if white and not the top; the top is white only at its root's discovery).
Second layer and gate (writes gated by the conditions): ``white = 0`` on push or disc,
``gray = 1 - fin`` on push, disc or fin, ``black = 1`` on fin, ``d = t + 0.01`` on disc,
``f = t + 0.01`` on fin, ``pi = spv`` on push, ``sp = spv + idv`` on push or popr (the
popped node's ``s_prev`` returns to itself), ``st = stv`` on push or rst, ``rs = stv`` on
rst; ``key = kp`` always.

Readouts (relu, on ``[h', id]``): ``argmax`` of ``key`` with payload ``id`` (``R_key``,
``R_id``: the lowest-index node with the largest key), ``argmax`` of ``relu(st + BIG gray -
BIG)`` with payload ``id`` (``R_scan``, ``R_gid``: the deepest gray node's stamp and id; 0
if the stack is empty) and ``R_nr = min (id + BIG - BIG white)`` (the lowest white node, or
exactly BIG: node 0 is never white again). After a discovery or a finish, the deepest gray
node is the node scanned next (the discovered node; the finished node's parent, i.e. its
``s_prev``), and its stamp reached its out-neighbours' keys one step after it was set, so
``R_key <= R_scan``, with equality exactly when that node has a white out-neighbour, and
then ``R_id`` is the lowest one.

Graph update (relu, relu, relu, identity). First layer, from ``g`` and the readouts:
``push = SCAN + POP + has_cand - 1``, ``fin = SCAN + POP - has_cand`` (the event just
committed), ``q_nr = 1 - BIG + cand``, ``q1 = 1 + R_key - R_scan``, ``q2 = 1 - R_key``,
``q3 = 1 - R_scan`` (integers: each is 1 where its test holds, else <= 0 or >= 2 only where
it does not matter), and the inputs it passes on. Second layer: ``rnext = ROOT - q_nr`` (a
root is left to start), ``fin_root = fin + q3 - 1`` (the stack is now empty: a root
finished), ``fin_child = fin - q3``, ``hc = q1 - q2`` (``R_key == R_scan > 0``), ``rsel =
R_id - BIG (1 - q1) - BIG q2`` (``R_id`` if hc, else 0). Third and fourth layers, the writes
(gated; the events exclude each other): ``top = cand | scan | cand`` on push | fin | rnext;
``u = top | scan | scan | cand`` on DISC | push | fin | rnext; ``v = cand | BIG | cand``
on push | fin | rnext; ``scan = top | R_gid`` on DISC | fin_child;
``time += 0.01`` on DISC or fin; ``nst += 1`` on push or rnext; phase ``DISC = push +
rnext``, ``SCAN = DISC``, ``POP = fin_child``, ``ROOT = fin_root`` on any event; always
``has_cand = hc`` and ``cand = rsel | BIG | R_nr`` on hc | (neither) | fin_root. A choice
``x | y`` is ``relu(x - BIG (1 - c_x)) + relu(y - BIG (1 - c_y))``.

Decoders: ``color`` categorical ``[white, gray, black]``; ``d``, ``f`` scalar; ``pi_h``,
``pi``, ``s_prev`` id pointers; ``u``, ``s_last`` one-node masks from the address features,
``v`` from ``BIG a_v + id`` (the node ``v`` addresses, else the largest id, ``n - 1``), ``s``
from ``rs``; ``time`` a graph scalar. Termination: fixed point of the hint channels
(after the last root finishes, ``cand`` is BIG and nothing changes), so exactly ``3 n``
steps.
"""
from __future__ import annotations

import copy

from .builder import Builder, block, gate_opens, id_pointer_decoder, linear_decoder, scalar_decoder
from .constants import constants
from ..model.spec import Model

G = ["top", "u", "v", "scan", "cand", "time", "DISC", "SCAN", "POP", "ROOT", "has_cand", "nst"]
POINTERS = ["top", "u", "v", "scan", "cand"]
BROADCAST = ["scan", "time", "DISC", "SCAN", "POP", "ROOT", "has_cand", "nst"]
H = ["white", "gray", "black", "d", "f", "pi", "sp", "st", "rs", "key"]
# Names of the units of the layer's MLPs (see the module docstring)
CONDS = ["disc", "push", "fin", "popr", "rst"]  # the node update's events (also the gate's first layer)
U1 = CONDS + ["spv", "idv", "t", "stv", "kp"]  # the node update's first layer
RO = ["rk", "rid", "rg", "gid", "nr"]  # readout channels
R = ["R_key", "R_id", "R_scan", "R_gid", "R_nr"]  # their reductions
C1 = ["push", "fin", "q_nr", "q1", "q2", "q3", "DISCc", "ROOTc"]  # the graph update's tests
# what the later layers read of g and the readouts (all >= 0: relu passes them on)
P1 = ["top", "scan", "cand", "time", "nst", "R_id", "R_gid", "R_nr"] + C1
C2 = ["push", "fin", "DISCc", "rnext", "fin_root", "fin_child", "hc", "rsel"]
P2 = ["top", "scan", "cand", "time", "nst", "R_gid", "R_nr"] + C2
# the pointer writes: channel -> [(value, condition)]
CHOICES = {"top": [("cand", "push"), ("scan", "fin"), ("cand", "rnext")],
           "u": [("top", "DISCc"), ("scan", "push"), ("scan", "fin"), ("cand", "rnext")],
           "v": [("cand", "push"), ("BIG", "fin"), ("cand", "rnext")],
           "scan": [("top", "DISCc"), ("R_gid", "fin_child")]}
P3 = [f"{ch}:{x}:{c}" for ch, alts in CHOICES.items() for x, c in alts] + [
    "cand:rsel", "cand:BIG", "cand:R_nr", "time", "nst", "push", "rnext", "DISCc", "fin_child", "fin_root", "hc"]
EVENTS = ["push", "fin", "DISCc", "rnext", "fin_child", "one"]  # the graph gate's second layer
L = "layers.0"


def _layer() -> dict:
    return {
        "include_self": True,
        "message": {"widths": [1], "activations": ["identity"]},
        "groups": [{"kind": "max", "size": 1}],
        "update": block([U1, H]),
        "gate": block([CONDS, H]),
        "readout": {"widths": [len(RO)], "activations": ["relu"],
                    "groups": [{"kind": "argmax", "size": 2}, {"kind": "argmax", "size": 2},
                               {"kind": "min", "size": 1}]},
        "graph_update": block([P1, P2, P3, G]),
        "graph_gate": block([C1, EVENTS, G]),
    }


def _initial_state(net: Builder, big: float) -> None:
    net.dense("init.weight", ["id"], H)
    net.bias("init.bias", H)
    net.bias("graph_init.bias", G)
    net.unit("init.weight", "pi", {"id": 1.0})
    net.unit("init.weight", "sp", {"id": 1.0})
    net.unit("init.weight", "st", {"id": -1.0}, "init.bias", 1.0)
    net.unit("init.weight", "rs", {"id": -1.0}, "init.bias", 1.0)
    net.set("init.bias", None, "white", 1.0)
    for ch, val in {"scan": big, "cand": big, "DISC": 1.0, "nst": 1.0}.items():
        net.set("graph_init.bias", None, ch, val)


def _node_layer(net: Builder, big: float, sat: float, tick: float) -> None:
    """The message st(u) (max) and the node update and gate."""
    Z = net.z_names
    net.mlp(f"{L}.message", {"src": Z, "dst": Z, "edge": []}, [["m"]])
    net.unit(f"{L}.message.src", "m", {"st": 1.0})
    upd, gate = f"{L}.update", f"{L}.gate"
    net.mlp(upd, {"node": Z, "agg": ["F"]}, [U1, H])
    net.mlp(gate, {"node": Z, "agg": ["F"]}, [CONDS, H])
    for prefix in (upd, gate):
        node, b0 = f"{prefix}.node", f"{prefix}.bias"
        net.unit(node, "disc", {"a_top": 1.0, "b_DISC": 1.0}, b0, -1.0)
        net.unit(node, "push", {"a_cand": 1.0, "b_has_cand": 1.0, "b_SCAN": 1.0, "b_POP": 1.0}, b0, -2.0)
        net.unit(node, "fin", {"a_scan": 1.0, "b_SCAN": 1.0, "b_POP": 1.0, "b_has_cand": -1.0}, b0, -1.0)
        net.unit(node, "popr", {"a_top": 1.0, "b_POP": 1.0}, b0, -1.0)
        net.unit(node, "rst", {"a_cand": 1.0, "b_ROOT": 1.0}, b0, -1.0)
    node, b0 = f"{upd}.node", f"{upd}.bias"
    net.unit(node, "spv", {"b_scan": 1.0, "a_cand": big, "b_has_cand": big, "b_SCAN": big, "b_POP": big},
             b0, -3 * big)
    net.unit(node, "idv", {"id": 1.0, "a_top": big, "b_POP": big}, b0, -2 * big)
    net.unit(node, "t", {"b_time": 1.0})
    net.unit(node, "stv", {"b_nst": 1.0}, b0, 1.0)
    net.unit(node, "kp", {"white": big, "a_top": -big}, b0, -big)
    net.unit(f"{upd}.agg", "kp", {"F": 1.0})
    W1, b1 = f"{upd}.1.weight", f"{upd}.1.bias"
    net.unit(W1, "gray", {"fin": -1.0}, b1, 1.0)
    net.unit(W1, "black", {}, b1, 1.0)
    net.unit(W1, "d", {"t": 1.0}, b1, tick)
    net.unit(W1, "f", {"t": 1.0}, b1, tick)
    net.unit(W1, "pi", {"spv": 1.0})
    net.unit(W1, "sp", {"spv": 1.0, "idv": 1.0})
    net.unit(W1, "st", {"stv": 1.0})
    net.unit(W1, "rs", {"stv": 1.0})
    net.unit(W1, "key", {"kp": 1.0})
    W1, b1 = f"{gate}.1.weight", f"{gate}.1.bias"
    opens = {"white": ["push", "disc"], "gray": ["push", "disc", "fin"], "black": ["fin"], "d": ["disc"],
             "f": ["fin"], "pi": ["push"], "sp": ["push", "popr"], "st": ["push", "rst"], "rs": ["rst"], "key": None}
    gate_opens(net, W1, b1, opens, sat)


def _readout(net: Builder, big: float) -> None:
    net.mlp(f"{L}.readout", {"node": H + ["id"]}, [RO])
    node, b0 = f"{L}.readout.node", f"{L}.readout.bias"
    net.unit(node, "rk", {"key": 1.0})
    net.unit(node, "rid", {"id": 1.0})
    net.unit(node, "rg", {"st": 1.0, "gray": big}, b0, -big)
    net.unit(node, "nr", {"id": 1.0, "white": -big}, b0, big)
    net.unit(node, "gid", {"id": 1.0})


def _graph_tests(net: Builder, prefix: str, cols: list, big: float) -> None:
    """The first layer of the graph update or gate: the tests of C1 and the values passed on."""
    W0, Wr, b0 = f"{prefix}.graph", f"{prefix}.readout", f"{prefix}.bias"
    for ch in G:
        if ch in cols:
            net.unit(W0, ch, {ch: 1.0})
    for ch in R[1:]:
        if ch in cols:
            net.unit(Wr, ch, {ch: 1.0})
    net.unit(W0, "push", {"SCAN": 1.0, "POP": 1.0, "has_cand": 1.0}, b0, -1.0)
    net.unit(W0, "fin", {"SCAN": 1.0, "POP": 1.0, "has_cand": -1.0})
    net.unit(W0, "q_nr", {"cand": 1.0}, b0, 1.0 - big)
    net.unit(Wr, "q1", {"R_key": 1.0, "R_scan": -1.0}, b0, 1.0)
    net.unit(Wr, "q2", {"R_key": -1.0}, b0, 1.0)
    net.unit(Wr, "q3", {"R_scan": -1.0}, b0, 1.0)
    net.unit(W0, "DISCc", {"DISC": 1.0})
    net.unit(W0, "ROOTc", {"ROOT": 1.0})


def _graph_events(net: Builder, W: str, b: str, cols: list, big: float) -> None:
    """The second layer of the graph update or gate: the events of C2 and the values passed on."""
    for ch in cols:
        if ch in P1:
            net.unit(W, ch, {ch: 1.0})
    defs = {"rnext": ({"ROOTc": 1.0, "q_nr": -1.0}, 0.0), "fin_root": ({"fin": 1.0, "q3": 1.0}, -1.0),
            "fin_child": ({"fin": 1.0, "q3": -1.0}, 0.0), "hc": ({"q1": 1.0, "q2": -1.0}, 0.0),
            "rsel": ({"R_id": 1.0, "q1": big, "q2": -big}, -big)}
    for ch, (terms, bias) in defs.items():
        if ch in cols:
            net.unit(W, ch, terms, b, bias)


def _graph_update(net: Builder, big: float, tick: float) -> None:
    gu = f"{L}.graph_update"
    net.mlp(gu, {"graph": G, "readout": R}, [P1, P2, P3, G])
    _graph_tests(net, gu, P1, big)
    _graph_events(net, f"{gu}.1.weight", f"{gu}.1.bias", P2, big)
    W3, b3 = f"{gu}.2.weight", f"{gu}.2.bias"
    for col in P3:
        parts = col.split(":")
        if len(parts) == 3 and parts[1] == "BIG":  # relu(BIG - BIG (1 - c)) = BIG c
            net.unit(W3, col, {parts[2]: big})
        elif len(parts) == 3:  # relu(x - BIG (1 - c))
            _, x, c = parts
            net.unit(W3, col, {x: 1.0, c: big}, b3, -big)
        elif col == "cand:rsel":
            net.unit(W3, col, {"rsel": 1.0, "fin_root": -big})
        elif col == "cand:BIG":
            net.unit(W3, col, {"hc": -big, "fin_root": -big}, b3, big)
        elif col == "cand:R_nr":
            net.unit(W3, col, {"R_nr": 1.0, "fin_root": big}, b3, -big)
        else:
            net.unit(W3, col, {col: 1.0})
    W4, b4 = f"{gu}.3.weight", f"{gu}.3.bias"
    for ch, alts in CHOICES.items():
        net.unit(W4, ch, {f"{ch}:{x}:{c}": 1.0 for x, c in alts})
    net.unit(W4, "cand", {"cand:rsel": 1.0, "cand:BIG": 1.0, "cand:R_nr": 1.0})
    net.unit(W4, "has_cand", {"hc": 1.0})
    net.unit(W4, "time", {"time": 1.0}, b4, tick)
    net.unit(W4, "nst", {"nst": 1.0}, b4, 1.0)
    net.unit(W4, "DISC", {"push": 1.0, "rnext": 1.0})
    net.unit(W4, "SCAN", {"DISCc": 1.0})
    net.unit(W4, "POP", {"fin_child": 1.0})
    net.unit(W4, "ROOT", {"fin_root": 1.0})


def _graph_gate(net: Builder, big: float, sat: float) -> None:
    """relu(tests), relu(events), identity(2 sat e - sat): each channel written on its events."""
    gg = f"{L}.graph_gate"
    net.mlp(gg, {"graph": G, "readout": R}, [C1, EVENTS, G])
    _graph_tests(net, gg, C1, big)
    _graph_events(net, f"{gg}.1.weight", f"{gg}.1.bias", EVENTS, big)
    net.unit(f"{gg}.1.weight", "one", {}, f"{gg}.1.bias", 1.0)
    opens = {"top": ["push", "fin", "rnext"], "u": ["DISCc", "push", "fin", "rnext"], "v": ["push", "fin", "rnext"],
             "scan": ["DISCc", "fin_child"], "cand": ["one"], "has_cand": ["one"],
             "time": ["DISCc", "fin"], "nst": ["push", "rnext"]}
    for ch in ("DISC", "SCAN", "POP", "ROOT"):
        opens[ch] = ["DISCc", "push", "fin", "rnext"]
    gate_opens(net, f"{gg}.2.weight", f"{gg}.2.bias", {ch: opens[ch] for ch in G}, sat)


def _decoders(net: Builder, big: float) -> None:
    spec = net.spec
    linear_decoder(net, "color", "categorical", {k: {ch: 1.0} for k, ch in enumerate(("white", "gray", "black"))},
                   classes=3)
    scalar_decoder(net, "d", "d")
    scalar_decoder(net, "f", "f")
    for p, dname in (("u", "u"), ("top", "s_last")):
        linear_decoder(net, dname, "mask_one", {0: {f"a_{p}": 1.0}})
    linear_decoder(net, "s", "mask_one", {0: {"rs": 1.0}})  # the latest root started
    linear_decoder(net, "v", "mask_one", {0: {"a_v": big, "id": 1.0}})  # v at no node: node n - 1 (largest id)
    id_pointer_decoder(net, "pi", "pi")
    id_pointer_decoder(net, "s_prev", "sp")
    spec["decoders"]["time"] = {"type": "graph_scalar"}
    net.dense("decoders.time.weight", G, [0])
    net.unit("decoders.time.weight", 0, {"time": 1.0})
    spec["outputs"] = {"pi": "pi"}
    spec["hints"] = {"pi_h": "pi", "color": "color", "d": "d", "f": "f", "s_prev": "s_prev", "s": "s", "u": "u",
                     "v": "v", "s_last": "s_last", "time": "time"}


def compile_dfs(dtype="float32"):
    """Compiled CLRS DFS (see the module docstring for the construction).

    Parameters
    ----------
    dtype : {"float32", "float64"}
        Weights and states; float64 reproduces CLRS's float64 times bit for bit.

    Returns
    -------
    Model
        One processor layer with a graph state; exact for up to ``BIG`` nodes.
    """
    c = constants(dtype)
    big, sat, tick = c["BIG_TERM"], c["SATURATE"], 0.01
    net = Builder("compiled-dfs", H, ["id"], [], dtype, graph=G, pointers=POINTERS, broadcast=BROADCAST)
    net.spec["layers"] = [_layer()]
    _initial_state(net, big)
    _node_layer(net, big, sat, tick)
    _readout(net, big)
    _graph_update(net, big, tick)
    _graph_gate(net, big, sat)
    _decoders(net, big)
    watched = ("white", "gray", "black", "d", "f", "pi", "sp", "rs")
    watched_graph = ("top", "u", "v", "time", "DISC", "SCAN", "POP", "ROOT")
    net.spec["termination"] = {"rule": "fixed_point", "channels": [H.index(ch) for ch in watched],
                               "graph_channels": [G.index(ch) for ch in watched_graph]}
    net.spec["exact_domain"] = {"max_nodes": int(big)}
    return net.model({"algorithm": "dfs", "channels": {"node": H, "graph": G}, "construction": __doc__})


def compile_dfs_light(dtype="float32"):
    """Compiled ``dfs_light`` (DFS with hints ``pi_h`` and ``color`` only): the DFS construction
    with the other hints' decoders dropped; the same states, steps and outputs.

    Parameters
    ----------
    dtype : {"float32", "float64"}
    """
    from ..algorithms.dfs import LIGHT_HINTS

    model = compile_dfs(dtype)
    spec = copy.deepcopy(model.spec)
    spec["name"] = "compiled-dfs_light"
    spec["hints"] = {name: spec["hints"][name] for name in LIGHT_HINTS}
    used = set(spec["outputs"].values()) | set(spec["hints"].values())
    dropped = set(spec["decoders"]) - used
    spec["decoders"] = {name: dec for name, dec in spec["decoders"].items() if name in used}
    spec["description"] = {**spec["description"], "algorithm": "dfs_light"}
    weights = {name: w for name, w in model.weights.items()
               if not (name.startswith("decoders.") and name.split(".")[1] in dropped)}
    return Model(spec, weights)
