"""Compiled ``bfs_seq``: a queue machine, one processor layer per event, plus a graph state.

The events of :mod:`engine.algorithms.bfs_seq` (pop the queue's head; relax one out-edge of
the scanned node) are committed one per step, as the DFS construction commits its events
(:mod:`engine.compiler.dfs`): the graph state ``g`` holds the event decided at the previous
step and the node it commits at (``tgt``); the node update commits it where ``tgt``
addresses a node; the readouts find what the next event needs; the graph update decides it.
Nodes see ``g`` only where a pointer addresses them.

The queue needs no stored order: its head is the reached, not yet popped node of lowest level,
lowest index on ties (an ``argmin`` readout), because every node of level ``k`` is reached
before the first of them is popped. The scanned node's out-neighbours learn that they are to
be relaxed from one message, sent by the node being popped in the step that pops it (its
address feature changed, so active execution recomputes its out-neighbours); each keeps a
flag ``pend`` until it is relaxed, and the lowest-index pending node is relaxed next (an
``argmax`` readout, lowest index on ties). Self-messages are off, so a node is its own
out-neighbour only through a self-loop; duplicate edges send the same message twice.

Inputs: ``id``, ``source``. Sentinel ``BIG`` = ``BIG_TERM`` (2**21 in float32): every sum
below is an integer of magnitude below 2**24, so exact.

Node channels (``h``)
=====================

=========  ====================================================  ===========================
channel    meaning                                                initial value
=========  ====================================================  ===========================
``r``      reached (``reach_h``)                                  ``source``
``p``      parent as a node id (``pi_h``)                         ``id``
``lv``     level (distance from the source) once reached          0
``done``   popped from the queue                                  0
``pend``   an out-neighbour of the scanned node, not relaxed yet  0
``pp``     popped in the step just made (1 for one step)          0
``q0``     the source before the first step (its pop is the       ``source``
           first event, which ``g`` cannot name: it holds no
           input)
=========  ====================================================  ===========================

Graph channels (``g``): ``uh`` (scanned node; pointer, broadcast: its id is the parent of
what it reaches), ``vh`` (node of the last event; pointer), ``tgt`` (node the next event
commits at, ``BIG`` for none; pointer), ``ulv`` (the scanned node's level; broadcast),
``POP`` / ``REL`` (the next event's kind; broadcast). Initially ``tgt = uh = vh = BIG`` and
no event: the source's ``q0`` makes the first pop.

The layer
=========

Message ``u -> v`` (relu, then the sum): ``relu(a_tgt + b_POP - 1) + relu(q0)``, 1 from the
node popped in this step, else 0; ``F_v`` its max over the in-neighbours (0 without any).

Update, first layer (relu): ``popc = a_tgt + b_POP - 1``, ``q0``, ``relc = a_tgt + b_REL - 1``,
``nr = a_tgt + b_REL - 1 - r`` (relaxed and unreached), ``pv = b_uh``, ``lvv = b_ulv``,
``Fu = F``. Second layer and gate: ``r = 1``, ``p = pv``, ``lv = lvv + 1`` on ``nr``;
``done = 1`` on ``popc + q0``; ``pend = Fu`` on ``Fu + relc`` (set when the node's
in-neighbour is popped, cleared when it is relaxed); always ``pp = popc + q0`` and ``q0 = 0``.

Readouts (relu, on ``[h', id, source]``): ``argmax`` of ``pp`` with payloads ``id``, ``lv``
(``R_pp``: whether a node was popped, ``R_pid``, ``R_plv``: which, at which level);
``argmax`` of ``pend`` with payload ``id`` (``R_pend``, ``R_cid``: the lowest pending node);
``argmin`` of ``lv + BIG (1 - r) + BIG done`` with payload ``id`` (``R_q``, ``R_qid``: the
queue's head, ``R_q >= BIG`` when the queue is empty).

Graph update (relu, relu, relu, identity). First layer: ``pop = R_pp`` (the event just
committed was a pop), ``rel = REL``, ``hc = R_pend``, ``qa = relu(BIG - R_q)``, ``qb = relu(BIG
- 1 - R_q)`` (``qa - qb`` is 1 exactly when the queue is not empty), and the values passed on.
Second layer: ``popn = relu(qa - qb - hc)`` (pop next: nothing left to relax, the queue not
empty). Third layer, choices ``x | y`` = ``relu(x - BIG (1 - c_x)) + relu(y - BIG (1 - c_y))``:
``vh = R_pid | tgt`` on ``pop | rel``, ``tgt = R_cid | R_qid | BIG`` on ``hc | popn |
neither``. Fourth layer: ``uh = R_pid``, ``ulv = R_plv``, ``vh``, ``tgt``, ``REL = hc``,
``POP = popn``. Graph gate: ``uh``, ``ulv`` written on ``pop``, ``vh`` on ``pop + rel``, the
rest always. When the queue is empty and nothing is pending, no event is decided and the
next step changes nothing: the fixed point, after exactly ``T = E + 1`` steps.

Decoders: ``reach_h`` mask of ``r``; ``pi``, ``pi_h`` id pointers of ``p``; ``u``, ``v``
one-node masks from ``a_uh + q0`` and ``a_vh + q0`` (the source before the first step).
"""
from __future__ import annotations

from .builder import Builder, block, gate_opens, id_pointer_decoder, linear_decoder, mask_decoder
from .constants import constants

H = ["r", "p", "lv", "done", "pend", "pp", "q0"]
INPUTS = ["id", "source"]
G = ["uh", "vh", "tgt", "ulv", "POP", "REL"]
POINTERS = ["uh", "vh", "tgt"]
BROADCAST = ["uh", "ulv", "POP", "REL"]
M1 = ["m_pop", "m_q0"]  # the message's first layer
U1 = ["popc", "q0", "relc", "nr", "pv", "lvv", "Fu"]  # the node update's first layer
CONDS = ["popc", "q0", "relc", "nr", "Fu"]  # the gate's first layer
RO = ["rpp", "rpid", "rplv", "rpend", "rcid", "rq", "rqid"]  # readout channels
R = ["R_pp", "R_pid", "R_plv", "R_pend", "R_cid", "R_q", "R_qid"]  # their reductions
PASS = ["tgt", "R_pid", "R_plv", "R_cid", "R_qid"]  # values the graph update passes on (all >= 0)
P1 = PASS + ["pop", "rel", "hc", "qa", "qb"]
P2 = PASS + ["pop", "rel", "hc", "popn"]
CHOICES = {"vh": [("R_pid", "pop"), ("tgt", "rel")], "tgt": [("R_cid", "hc"), ("R_qid", "popn")]}
P3 = [f"{ch}:{x}:{c}" for ch, alts in CHOICES.items() for x, c in alts] + ["tgt:BIG", "R_pid", "R_plv", "hc", "popn"]
GATE1 = ["pop", "rel"]
L = "layers.0"


def _layer() -> dict:
    return {
        "include_self": False,
        "message": {"widths": [len(M1), 1], "activations": ["relu", "identity"]},
        "groups": [{"kind": "max", "size": 1}],
        "update": block([U1, H]),
        "gate": block([CONDS, H]),
        "readout": {"widths": [len(RO)], "activations": ["relu"],
                    "groups": [{"kind": "argmax", "size": 3}, {"kind": "argmax", "size": 2},
                               {"kind": "argmin", "size": 2}]},
        "graph_update": block([P1, P2, P3, G]),
        "graph_gate": block([GATE1, G]),
    }


def _initial_state(net: Builder, big: float) -> None:
    net.set("init.weight", "source", "r", 1.0)
    net.set("init.weight", "id", "p", 1.0)
    net.set("init.weight", "source", "q0", 1.0)
    for ch in ("uh", "vh", "tgt"):
        net.set("graph_init.bias", None, ch, big)


def _node_layer(net: Builder, sat: float) -> None:
    """The message (1 from the node popped now) and the node update and gate."""
    Z = net.z_names
    msg = f"{L}.message"
    net.mlp(msg, {"src": Z, "dst": Z, "edge": []}, [M1, ["F"]])
    net.unit(f"{msg}.src", "m_pop", {"a_tgt": 1.0, "b_POP": 1.0}, f"{msg}.bias", -1.0)
    net.unit(f"{msg}.src", "m_q0", {"q0": 1.0})
    net.unit(f"{msg}.1.weight", "F", {"m_pop": 1.0, "m_q0": 1.0})
    upd, gate = f"{L}.update", f"{L}.gate"
    net.mlp(upd, {"node": Z, "agg": ["F"]}, [U1, H])
    net.mlp(gate, {"node": Z, "agg": ["F"]}, [CONDS, H])
    for prefix in (upd, gate):
        node, b0 = f"{prefix}.node", f"{prefix}.bias"
        net.unit(node, "popc", {"a_tgt": 1.0, "b_POP": 1.0}, b0, -1.0)
        net.unit(node, "q0", {"q0": 1.0})
        net.unit(node, "relc", {"a_tgt": 1.0, "b_REL": 1.0}, b0, -1.0)
        net.unit(node, "nr", {"a_tgt": 1.0, "b_REL": 1.0, "r": -1.0}, b0, -1.0)
        net.unit(f"{prefix}.agg", "Fu", {"F": 1.0})
    node = f"{upd}.node"
    net.unit(node, "pv", {"b_uh": 1.0})
    net.unit(node, "lvv", {"b_ulv": 1.0})
    W1, b1 = f"{upd}.1.weight", f"{upd}.1.bias"
    net.unit(W1, "r", {}, b1, 1.0)
    net.unit(W1, "p", {"pv": 1.0})
    net.unit(W1, "lv", {"lvv": 1.0}, b1, 1.0)
    net.unit(W1, "done", {}, b1, 1.0)
    net.unit(W1, "pend", {"Fu": 1.0})
    net.unit(W1, "pp", {"popc": 1.0, "q0": 1.0})  # q0 stays 0: its column is left zero
    opens = {"r": ["nr"], "p": ["nr"], "lv": ["nr"], "done": ["popc", "q0"], "pend": ["Fu", "relc"],
             "pp": None, "q0": None}
    gate_opens(net, f"{gate}.1.weight", f"{gate}.1.bias", opens, sat)


def _readout(net: Builder, big: float) -> None:
    net.mlp(f"{L}.readout", {"node": H + INPUTS}, [RO])
    node, b0 = f"{L}.readout.node", f"{L}.readout.bias"
    net.unit(node, "rpp", {"pp": 1.0})
    net.unit(node, "rpid", {"id": 1.0})
    net.unit(node, "rplv", {"lv": 1.0})
    net.unit(node, "rpend", {"pend": 1.0})
    net.unit(node, "rcid", {"id": 1.0})
    net.unit(node, "rq", {"lv": 1.0, "r": -big, "done": big}, b0, big)
    net.unit(node, "rqid", {"id": 1.0})


def _graph_update(net: Builder, big: float) -> None:
    gu = f"{L}.graph_update"
    net.mlp(gu, {"graph": G, "readout": R}, [P1, P2, P3, G])
    W0, Wr, b0 = f"{gu}.graph", f"{gu}.readout", f"{gu}.bias"
    net.unit(W0, "tgt", {"tgt": 1.0})
    for ch in PASS[1:]:
        net.unit(Wr, ch, {ch: 1.0})
    net.unit(Wr, "pop", {"R_pp": 1.0})
    net.unit(W0, "rel", {"REL": 1.0})
    net.unit(Wr, "hc", {"R_pend": 1.0})
    net.unit(Wr, "qa", {"R_q": -1.0}, b0, big)
    net.unit(Wr, "qb", {"R_q": -1.0}, b0, big - 1.0)
    W, b = f"{gu}.1.weight", f"{gu}.1.bias"
    for ch in PASS + ["pop", "rel", "hc"]:
        net.unit(W, ch, {ch: 1.0})
    net.unit(W, "popn", {"qa": 1.0, "qb": -1.0, "hc": -1.0})
    W, b = f"{gu}.2.weight", f"{gu}.2.bias"
    for ch, alts in CHOICES.items():
        for x, c in alts:  # relu(x - BIG (1 - c))
            net.unit(W, f"{ch}:{x}:{c}", {x: 1.0, c: big}, b, -big)
    net.unit(W, "tgt:BIG", {"hc": -big, "popn": -big}, b, big)
    for ch in ("R_pid", "R_plv", "hc", "popn"):
        net.unit(W, ch, {ch: 1.0})
    W = f"{gu}.3.weight"
    net.unit(W, "uh", {"R_pid": 1.0})
    net.unit(W, "ulv", {"R_plv": 1.0})
    net.unit(W, "vh", {f"vh:{x}:{c}": 1.0 for x, c in CHOICES["vh"]})
    net.unit(W, "tgt", {**{f"tgt:{x}:{c}": 1.0 for x, c in CHOICES["tgt"]}, "tgt:BIG": 1.0})
    net.unit(W, "REL", {"hc": 1.0})
    net.unit(W, "POP", {"popn": 1.0})


def _graph_gate(net: Builder, sat: float) -> None:
    """relu(pop, rel), then identity(2 sat e - sat): each channel written on its events."""
    gg = f"{L}.graph_gate"
    net.mlp(gg, {"graph": G, "readout": R}, [GATE1, G])
    net.unit(f"{gg}.readout", "pop", {"R_pp": 1.0})
    net.unit(f"{gg}.graph", "rel", {"REL": 1.0})
    opens = {"uh": ["pop"], "ulv": ["pop"], "vh": ["pop", "rel"], "tgt": None, "POP": None, "REL": None}
    gate_opens(net, f"{gg}.1.weight", f"{gg}.1.bias", opens, sat)


def compile_bfs_seq(dtype="float32"):
    """Compiled ``bfs_seq`` (see the module docstring for the construction).

    Parameters
    ----------
    dtype : {"float32", "float64"}

    Returns
    -------
    Model
        One processor layer with a graph state; exact for up to ``BIG`` nodes.
    """
    c = constants(dtype)
    big, sat = c["BIG_TERM"], c["SATURATE"]
    net = Builder("compiled-bfs_seq", H, INPUTS, [], dtype, graph=G, pointers=POINTERS, broadcast=BROADCAST)
    net.spec["layers"] = [_layer()]
    _initial_state(net, big)
    _node_layer(net, sat)
    _readout(net, big)
    _graph_update(net, big)
    _graph_gate(net, sat)
    mask_decoder(net, "reach", "r")
    id_pointer_decoder(net, "pi", "p")
    linear_decoder(net, "u", "mask_one", {0: {"a_uh": 1.0, "q0": 1.0}})
    linear_decoder(net, "v", "mask_one", {0: {"a_vh": 1.0, "q0": 1.0}})
    net.spec["outputs"] = {"pi": "pi"}
    net.spec["hints"] = {"reach_h": "reach", "pi_h": "pi", "u": "u", "v": "v"}
    watched = ("r", "p", "done", "pend")
    net.spec["termination"] = {"rule": "fixed_point", "channels": [H.index(ch) for ch in watched],
                               "graph_channels": [G.index(ch) for ch in ("uh", "vh", "tgt", "POP", "REL")],
                               # T = E + 1 <= n + m + 1 (one pop per node, one relaxation per edge)
                               "max_steps": {"per_node": 1, "per_edge": 1, "constant": 1}}
    net.spec["exact_domain"] = {"max_nodes": int(big)}
    return net.model({"algorithm": "bfs_seq", "channels": {"node": H, "graph": G}, "construction": __doc__})
