"""Compiled DFS: CLRS's event machine as two processor layers per step plus a graph state.

CLRS's DFS makes one event per hint step: start a root (ROOT), discover the top of the
stack (DISC), push its lowest-index white out-neighbour (PUSH), or finish it (FINISH, after
which the next step pops). The graph state ``g`` holds the stack top and CLRS's registers
(pointers, i.e. node ids) and the phase; nodes see ``g`` only where a pointer addresses them.
Each discovered node carries a stamp (its discovery rank), and a white node's candidacy is
the largest stamp among its in-neighbours, so a stamp reaches the out-neighbours once, when
the node is discovered: a step touches the addressed nodes, and the out-neighbours of a node
only at its discovery.

Inputs: ``id``. Sentinel ``BIG`` = 2**21 (float32; 2**40 in float64): every sum below is an
integer below 2**24, so exact. Times are ``time + 0.01`` rounded once, as the reference does.

Graph channels (``g``)
======================

=============  ==============================================  ===============================
channel        meaning                                          pointer / broadcast
=============  ==============================================  ===============================
``top``        CLRS ``s_last``, top of the stack                pointer
``u``, ``v``   CLRS ``u`` and ``v``                             pointers
``s``          current root                                     pointer
``scan``       node whose out-neighbours are scanned next       pointer, broadcast (its id)
``cand``       lowest white out-neighbour of ``scan``, or BIG   pointer
``time``       CLRS ``time``                                    broadcast
``DISC``       phase: discover ``top`` next                     broadcast
``SCAN``       phase: scan ``scan`` (== ``top``) next           broadcast
``POP``        phase: pop the finished ``top``, scan ``scan``   broadcast
``ROOT``       phase: start the next root                       --
``has_cand``   ``cand < BIG``                                   broadcast
``next_root``  lowest white node or BIG (readout)               --
``nmax``       ``n - 1`` (readout; CLRS's ``v`` after a failed scan)  --
``parent``     ``s_prev`` of ``scan`` (readout)                 --
``ndisc``      nodes discovered so far                          broadcast
=============  ==============================================  ===============================

Node channels (``h``): ``white``, ``gray``, ``black`` (CLRS ``color`` one-hot), ``d``, ``f``,
``pi``, ``sp`` (``s_prev``) as node ids, ``st`` (stamp: 1 + the number of nodes discovered
before it, 0 while undiscovered), and the scratch channels ``key`` (``F`` below if white,
else 0), ``ssel`` (``st`` at the ``scan`` node, 0 elsewhere) and ``psel`` (``sp`` at the
``scan`` node, 0 elsewhere).

Layer A (find the candidate)
============================

Message ``u -> v``: ``st(u)``, reduced by max: ``F_v`` is the largest stamp among the
in-neighbours (and ``v``). Update (gate open on ``key`` and ``ssel``):
``key = relu(F + BIG white - BIG)``, ``ssel = relu(st + BIG a_scan - BIG)``. Readouts:
``argmax`` of ``key`` with payload ``id`` (``R_key``, ``R_id``: the lowest-index node with the
largest key), ``R_scan = max ssel``. Why this finds the candidate: a black node has no white
out-neighbour (it finished only after scanning them all), so a white node's ``F`` is the
largest stamp among its gray in-neighbours, and the gray nodes are the stack, stamped in push
order, with ``scan`` the deepest of them whenever a scan happens (``SCAN``: the top; ``POP``:
the parent of the finished top). So ``R_key <= R_scan``, with equality exactly when ``scan``
has a white out-neighbour, and then ``R_id`` is the lowest such. Graph update (integers):
``q1 = relu(1 + R_key - R_scan)``, ``q2 = relu(1 - R_key)``; ``has_cand = relu(q1 - q2)``,
``cand = relu(R_id - BIG (1 - q1) - BIG q2) + BIG - BIG has_cand`` (``R_id``, or exactly BIG).

Layer B (commit the event)
==========================

No message (a zero message). Per node, from its address features and the broadcast:
``disc = relu(a_top + DISC - 1)``, ``push = relu(a_cand + has_cand + SCAN + POP - 2)``,
``fin = relu(a_scan + SCAN + POP - has_cand - 1)``, ``popr = relu(a_top + POP - 1)``;
values ``spv = relu(scan - BIG (3 - a_cand - has_cand - SCAN - POP))`` (the scanned node's
id when pushed) and ``idv = relu(id - BIG (2 - a_top - POP))``. Gated writes:
``white = 0`` on push or disc, ``gray = 1 - fin`` on push, disc or fin, ``black = 1`` on fin,
``d = time + 0.01`` on disc, ``f = time + 0.01`` on fin, ``pi = spv`` on push,
``sp = spv + idv`` on push or popr, ``st = ndisc + 1`` on disc;
``psel = relu(sp - BIG (1 - a_scan))`` always; ``key = ssel = 0`` always (layer A rewrites
them from its inputs, so clearing them here keeps their changes from making those rows
active again in the next step's layer A).

Readouts: ``next_root = min(id + BIG - BIG white)``, ``nmax = max id``, ``parent = max psel``.
Graph update (conditions from ``g``): ``push = relu(SCAN + POP + has_cand - 1)``,
``fin = relu(SCAN + POP - has_cand)``, ``eq = relu(1 - |scan - s|)``,
``fin_root = relu(fin + eq - 1)``, ``fin_child = relu(fin - eq)``,
``rnext = relu(ROOT - relu(1 - BIG + next_root))``. Writes (gated, the events exclude each
other): ``top = cand | scan | next_root`` on push | fin | rnext; ``u = top | scan | scan |
next_root`` on DISC | push | fin | rnext; ``v = cand | nmax | next_root`` on push | fin |
rnext; ``s = next_root`` on rnext; ``scan = top | parent`` on DISC | fin_child;
``time += 0.01`` on DISC or fin; ``ndisc += 1`` on DISC; phase ``DISC = push + rnext``, ``SCAN = DISC``,
``POP = fin_child``, ``ROOT = fin_root`` on any event; ``next_root``, ``nmax``, ``parent``
always. A choice ``x | y`` is ``relu(x - BIG (1 - c_x)) + relu(y - BIG (1 - c_y))``.

Decoders: ``color`` categorical ``[white, gray, black]``; ``d``, ``f`` scalar; ``pi_h``,
``pi``, ``s_prev`` id pointers; ``s``, ``u``, ``v``, ``s_last`` one-node masks from the
address features; ``time`` a graph scalar. The initial state is CLRS's first hint (root 0
started). Termination: fixed point of the hint channels, so exactly ``3 n`` steps.
"""
from __future__ import annotations

import numpy as np

from ..model.spec import FORMAT, VERSION, Model, expected_shapes
from .constants import SATURATE

G = ["top", "u", "v", "s", "scan", "cand", "time", "DISC", "SCAN", "POP", "ROOT", "has_cand", "next_root",
     "nmax", "parent", "ndisc"]
POINTERS = ["top", "u", "v", "s", "scan", "cand"]
BROADCAST = ["scan", "time", "DISC", "SCAN", "POP", "has_cand", "ndisc"]
H = ["white", "gray", "black", "d", "f", "pi", "sp", "st", "key", "ssel", "psel"]
BIG = {"float32": 2.0**21, "float64": 2.0**40}


class _Net:
    """Weight matrices addressed by input and output names, zero by default."""

    def __init__(self, dtype):
        self.weights = {}
        self.dtype = dtype

    def dense(self, name, rows, cols):
        self.weights[f"{name}"] = (np.zeros((len(rows), len(cols))), list(rows), list(cols))

    def bias(self, name, cols):
        self.weights[f"{name}"] = (np.zeros(len(cols)), None, list(cols))

    def unit(self, W, col, terms: dict, bias_name=None, bias=0.0):
        """Output ``col`` of matrix ``W`` = sum of ``terms`` (input -> weight) (+ bias)."""
        M, rows, cols = self.weights[W]
        for inp, w in terms.items():
            M[rows.index(inp), cols.index(col)] = w
        if bias_name is not None:
            b, _, bcols = self.weights[bias_name]
            b[bcols.index(col)] = bias

    def arrays(self):
        return {k: v[0].astype(self.dtype) for k, v in self.weights.items()}


def compile_dfs(dtype="float32"):
    name = np.dtype(dtype).name
    big = BIG[name]
    sat = SATURATE
    tick = 0.01
    Z = H + ["id"] + [f"a_{p}" for p in POINTERS] + [f"b_{b}" for b in BROADCAST]
    HX = H + ["id"]
    net = _Net(np.dtype(dtype))
    spec = {
        "format": FORMAT, "version": VERSION, "name": "compiled-dfs", "dtype": name,
        "node_inputs": ["id"], "edge_inputs": [], "hidden": len(H),
        "graph_hidden": len(G), "graph_pointers": [G.index(p) for p in POINTERS],
        "graph_broadcast": [G.index(b) for b in BROADCAST],
        "layers": [], "decoders": {}, "outputs": {}, "hints": {},
    }

    # ---------------------------------------------------------------- initial state
    net.dense("init.weight", ["id"], H)
    net.bias("init.bias", H)
    net.unit("init.weight", "pi", {"id": 1.0})
    net.unit("init.weight", "sp", {"id": 1.0})
    net.weights["init.bias"][0][H.index("white")] = 1.0
    net.bias("graph_init.bias", G)
    g0 = net.weights["graph_init.bias"][0]
    for ch, val in {"scan": big, "cand": big, "DISC": 1.0, "next_root": big}.items():
        g0[G.index(ch)] = val

    # ---------------------------------------------------------------- layer A
    A = "layers.0"
    spec["layers"].append({
        "include_self": True,
        "message": {"widths": [1], "activations": ["identity"]},
        "groups": [{"kind": "max", "size": 1}],
        "update": {"widths": [2, len(H)], "activations": ["relu", "identity"]},
        "gate": {"widths": [len(H)], "activations": ["identity"]},
        "readout": {"widths": [3], "activations": ["identity"],
                    "groups": [{"kind": "argmax", "size": 2}, {"kind": "max", "size": 1}]},
        "graph_update": {"widths": [3, 2, len(G)], "activations": ["relu", "relu", "identity"]},
        "graph_gate": {"widths": [len(G)], "activations": ["identity"]},
    })
    net.dense(f"{A}.message.src", Z, ["m"])
    net.dense(f"{A}.message.dst", Z, ["m"])
    net.dense(f"{A}.message.edge", [], ["m"])
    net.bias(f"{A}.message.bias", ["m"])
    net.unit(f"{A}.message.src", "m", {"st": 1.0})
    # update: kp = relu(F + BIG white - BIG), ss = relu(st + BIG a_scan - BIG)
    net.dense(f"{A}.update.node", Z, ["kp", "ss"])
    net.dense(f"{A}.update.agg", ["F"], ["kp", "ss"])
    net.bias(f"{A}.update.bias", ["kp", "ss"])
    net.unit(f"{A}.update.node", "kp", {"white": big}, f"{A}.update.bias", -big)
    net.unit(f"{A}.update.agg", "kp", {"F": 1.0})
    net.unit(f"{A}.update.node", "ss", {"st": 1.0, "a_scan": big}, f"{A}.update.bias", -big)
    net.dense(f"{A}.update.1.weight", ["kp", "ss"], H)
    net.bias(f"{A}.update.1.bias", H)
    net.unit(f"{A}.update.1.weight", "key", {"kp": 1.0})
    net.unit(f"{A}.update.1.weight", "ssel", {"ss": 1.0})
    net.dense(f"{A}.gate.node", Z, H)
    net.dense(f"{A}.gate.agg", ["F"], H)
    net.bias(f"{A}.gate.bias", H)
    for ch in H:
        net.weights[f"{A}.gate.bias"][0][H.index(ch)] = sat if ch in ("key", "ssel") else -sat
    net.dense(f"{A}.readout.node", HX, ["rk", "rid", "rs"])
    net.bias(f"{A}.readout.bias", ["rk", "rid", "rs"])
    net.unit(f"{A}.readout.node", "rk", {"key": 1.0})
    net.unit(f"{A}.readout.node", "rid", {"id": 1.0})
    net.unit(f"{A}.readout.node", "rs", {"ssel": 1.0})
    # graph update A: q1 = relu(1 + R_key - R_scan), q2 = relu(1 - R_key) (integers, R_key <=
    # R_scan); has_cand = hc = relu(q1 - q2), rsel = relu(R_id - BIG (1 - q1) - BIG q2) (R_id
    # if hc, else 0), cand = rsel + BIG - BIG hc (R_id, or exactly BIG)
    RA = ["R_key", "R_id", "R_scan"]
    net.dense(f"{A}.graph_update.graph", G, ["q1", "q2", "rid"])
    net.dense(f"{A}.graph_update.readout", RA, ["q1", "q2", "rid"])
    net.bias(f"{A}.graph_update.bias", ["q1", "q2", "rid"])
    net.unit(f"{A}.graph_update.readout", "q1", {"R_key": 1.0, "R_scan": -1.0}, f"{A}.graph_update.bias", 1.0)
    net.unit(f"{A}.graph_update.readout", "q2", {"R_key": -1.0}, f"{A}.graph_update.bias", 1.0)
    net.unit(f"{A}.graph_update.readout", "rid", {"R_id": 1.0})
    net.dense(f"{A}.graph_update.1.weight", ["q1", "q2", "rid"], ["hc", "rsel"])
    net.bias(f"{A}.graph_update.1.bias", ["hc", "rsel"])
    net.unit(f"{A}.graph_update.1.weight", "hc", {"q1": 1.0, "q2": -1.0})
    net.unit(f"{A}.graph_update.1.weight", "rsel", {"q1": big, "q2": -big, "rid": 1.0}, f"{A}.graph_update.1.bias",
             -big)
    net.dense(f"{A}.graph_update.2.weight", ["hc", "rsel"], G)
    net.bias(f"{A}.graph_update.2.bias", G)
    net.unit(f"{A}.graph_update.2.weight", "cand", {"rsel": 1.0, "hc": -big}, f"{A}.graph_update.2.bias", big)
    net.unit(f"{A}.graph_update.2.weight", "has_cand", {"hc": 1.0})
    net.dense(f"{A}.graph_gate.graph", G, G)
    net.dense(f"{A}.graph_gate.readout", RA, G)
    net.bias(f"{A}.graph_gate.bias", G)
    for ch in G:
        net.weights[f"{A}.graph_gate.bias"][0][G.index(ch)] = sat if ch in ("cand", "has_cand") else -sat

    # ---------------------------------------------------------------- layer B
    B = "layers.1"
    U1 = ["disc", "push", "fin", "popr", "spv", "idv", "t", "psel", "stv"]
    GC = ["disc", "push", "fin", "popr"]
    spec["layers"].append({
        "include_self": True,
        "message": {"widths": [1], "activations": ["identity"]},
        "groups": [{"kind": "max", "size": 1}],
        "update": {"widths": [len(U1), len(H)], "activations": ["relu", "identity"]},
        "gate": {"widths": [len(GC), len(H)], "activations": ["relu", "identity"]},
        "readout": {"widths": [3], "activations": ["identity"],
                    "groups": [{"kind": "min", "size": 1}, {"kind": "max", "size": 2}]},
        "graph_update": {"widths": [len(G) + 3, len(G) + 8, len(G) + 8, 24, len(G)],
                         "activations": ["relu", "relu", "relu", "relu", "identity"]},
        "graph_gate": {"widths": [len(G) + 3, len(G) + 8, 10, len(G)],
                       "activations": ["relu", "relu", "relu", "identity"]},
    })
    net.dense(f"{B}.message.src", Z, ["m"])
    net.dense(f"{B}.message.dst", Z, ["m"])
    net.dense(f"{B}.message.edge", [], ["m"])
    net.bias(f"{B}.message.bias", ["m"])

    def conditions(prefix, cols):
        net.dense(f"{prefix}.node", Z, cols)
        net.dense(f"{prefix}.agg", ["m"], cols)
        net.bias(f"{prefix}.bias", cols)
        net.unit(f"{prefix}.node", "disc", {"a_top": 1.0, "b_DISC": 1.0}, f"{prefix}.bias", -1.0)
        net.unit(f"{prefix}.node", "push", {"a_cand": 1.0, "b_has_cand": 1.0, "b_SCAN": 1.0, "b_POP": 1.0},
                 f"{prefix}.bias", -2.0)
        net.unit(f"{prefix}.node", "fin", {"a_scan": 1.0, "b_SCAN": 1.0, "b_POP": 1.0, "b_has_cand": -1.0},
                 f"{prefix}.bias", -1.0)
        net.unit(f"{prefix}.node", "popr", {"a_top": 1.0, "b_POP": 1.0}, f"{prefix}.bias", -1.0)

    conditions(f"{B}.update", U1)
    net.unit(f"{B}.update.node", "spv", {"b_scan": 1.0, "a_cand": big, "b_has_cand": big, "b_SCAN": big,
                                          "b_POP": big}, f"{B}.update.bias", -3 * big)
    net.unit(f"{B}.update.node", "idv", {"id": 1.0, "a_top": big, "b_POP": big}, f"{B}.update.bias", -2 * big)
    net.unit(f"{B}.update.node", "t", {"b_time": 1.0})
    net.unit(f"{B}.update.node", "psel", {"sp": 1.0, "a_scan": big}, f"{B}.update.bias", -big)
    net.unit(f"{B}.update.node", "stv", {"b_ndisc": 1.0}, f"{B}.update.bias", 1.0)
    W1, b1 = f"{B}.update.1.weight", f"{B}.update.1.bias"
    net.dense(W1, U1, H)
    net.bias(b1, H)
    net.unit(W1, "gray", {"fin": -1.0}, b1, 1.0)
    net.unit(W1, "black", {}, b1, 1.0)
    net.unit(W1, "d", {"t": 1.0}, b1, tick)
    net.unit(W1, "f", {"t": 1.0}, b1, tick)
    net.unit(W1, "pi", {"spv": 1.0})
    net.unit(W1, "sp", {"spv": 1.0, "idv": 1.0})
    net.unit(W1, "psel", {"psel": 1.0})
    net.unit(W1, "st", {"stv": 1.0})
    conditions(f"{B}.gate", GC)
    W1, b1 = f"{B}.gate.1.weight", f"{B}.gate.1.bias"
    net.dense(W1, GC, H)
    net.bias(b1, H)
    opens = {"white": ["push", "disc"], "gray": ["push", "disc", "fin"], "black": ["fin"], "d": ["disc"],
             "f": ["fin"], "pi": ["push"], "sp": ["push", "popr"], "st": ["disc"],
             "key": None, "ssel": None, "psel": None}
    for ch, conds in opens.items():
        if conds is None:
            net.unit(W1, ch, {}, b1, sat)
        else:
            net.unit(W1, ch, {c: 2 * sat for c in conds}, b1, -sat)
    RO = ["nr", "nmax", "parent"]
    net.dense(f"{B}.readout.node", HX, RO)
    net.bias(f"{B}.readout.bias", RO)
    net.unit(f"{B}.readout.node", "nr", {"id": 1.0, "white": -big}, f"{B}.readout.bias", big)
    net.unit(f"{B}.readout.node", "nmax", {"id": 1.0})
    net.unit(f"{B}.readout.node", "parent", {"psel": 1.0})

    # graph update B: L1 passes g and readouts (all >= 0) and |scan - s| parts, q_nr
    P1 = G + ["R_nr", "R_nmax", "R_parent", "a1", "a2", "q_nr"]
    spec["layers"][1]["graph_update"]["widths"][0] = len(P1)
    spec["layers"][1]["graph_gate"]["widths"][0] = len(P1)
    P2 = G + ["R_nr", "R_nmax", "R_parent", "eq", "push", "fin", "rnext", "DISCc"]
    spec["layers"][1]["graph_update"]["widths"][1] = len(P2)
    spec["layers"][1]["graph_gate"]["widths"][1] = len(P2)
    P3 = G + ["R_nr", "R_nmax", "R_parent", "push", "fin", "rnext", "fin_root", "fin_child", "DISCc"]
    spec["layers"][1]["graph_update"]["widths"][2] = len(P3)
    # L4 (relu): the choices x | y as relu(x - BIG (1 - c))
    CH = {"top": [("cand", "push"), ("scan", "fin"), ("R_nr", "rnext")],
          "u": [("top", "DISCc"), ("scan", "push"), ("scan", "fin"), ("R_nr", "rnext")],
          "v": [("cand", "push"), ("R_nmax", "fin"), ("R_nr", "rnext")],
          "s": [("R_nr", "rnext")],
          "scan": [("top", "DISCc"), ("R_parent", "fin_child")]}
    P4 = [f"{ch}:{x}:{c}" for ch, alts in CH.items() for x, c in alts] + [
        "time", "ndisc", "push", "fin", "rnext", "fin_root", "fin_child", "DISCc", "R_nr", "R_nmax", "R_parent"]
    spec["layers"][1]["graph_update"]["widths"][3] = len(P4)

    def graph_front(prefix):
        W0, Wr, b0 = f"{prefix}.graph", f"{prefix}.readout", f"{prefix}.bias"
        net.dense(W0, G, P1)
        net.dense(Wr, RO, P1)
        net.bias(b0, P1)
        for ch in G:
            net.unit(W0, ch, {ch: 1.0})
        for r, col in zip(RO, ["R_nr", "R_nmax", "R_parent"]):
            net.unit(Wr, col, {r: 1.0})
        net.unit(W0, "a1", {"scan": 1.0, "s": -1.0})
        net.unit(W0, "a2", {"s": 1.0, "scan": -1.0})
        net.unit(Wr, "q_nr", {"nr": 1.0}, b0, 1.0 - big)
        Wm, bm = f"{prefix}.1.weight", f"{prefix}.1.bias"
        net.dense(Wm, P1, P2)
        net.bias(bm, P2)
        for ch in G + ["R_nr", "R_nmax", "R_parent"]:
            net.unit(Wm, ch, {ch: 1.0})
        net.unit(Wm, "eq", {"a1": -1.0, "a2": -1.0}, bm, 1.0)
        net.unit(Wm, "push", {"SCAN": 1.0, "POP": 1.0, "has_cand": 1.0}, bm, -1.0)
        net.unit(Wm, "fin", {"SCAN": 1.0, "POP": 1.0, "has_cand": -1.0})
        net.unit(Wm, "rnext", {"ROOT": 1.0, "q_nr": -1.0})
        net.unit(Wm, "DISCc", {"DISC": 1.0})

    gu = f"{B}.graph_update"
    graph_front(gu)
    W2, b2 = f"{gu}.2.weight", f"{gu}.2.bias"
    net.dense(W2, P2, P3)
    net.bias(b2, P3)
    for ch in G + ["R_nr", "R_nmax", "R_parent", "push", "fin", "rnext", "DISCc"]:
        net.unit(W2, ch, {ch: 1.0})
    net.unit(W2, "fin_root", {"fin": 1.0, "eq": 1.0}, b2, -1.0)
    net.unit(W2, "fin_child", {"fin": 1.0, "eq": -1.0})
    W3, b3 = f"{gu}.3.weight", f"{gu}.3.bias"
    net.dense(W3, P3, P4)
    net.bias(b3, P4)
    for col in P4:
        if ":" in col:
            _, x, c = col.split(":")
            net.unit(W3, col, {x: 1.0, c: big}, b3, -big)
        else:
            net.unit(W3, col, {col: 1.0})
    W4, b4 = f"{gu}.4.weight", f"{gu}.4.bias"
    net.dense(W4, P4, G)
    net.bias(b4, G)
    for ch, alts in CH.items():
        net.unit(W4, ch, {f"{ch}:{x}:{c}": 1.0 for x, c in alts})
    net.unit(W4, "time", {"time": 1.0}, b4, tick)
    net.unit(W4, "ndisc", {"ndisc": 1.0}, b4, 1.0)
    net.unit(W4, "DISC", {"push": 1.0, "rnext": 1.0})
    net.unit(W4, "SCAN", {"DISCc": 1.0})
    net.unit(W4, "POP", {"fin_child": 1.0})
    net.unit(W4, "ROOT", {"fin_root": 1.0})
    for ch, col in (("next_root", "R_nr"), ("nmax", "R_nmax"), ("parent", "R_parent")):
        net.unit(W4, ch, {col: 1.0})

    gg = f"{B}.graph_gate"
    graph_front(gg)
    GG3 = ["e_top", "e_u", "e_v", "e_s", "e_scan", "e_time", "e_phase", "fin_child_c", "DISC_c", "one"]
    W2, b2 = f"{gg}.2.weight", f"{gg}.2.bias"
    net.dense(W2, P2, GG3)
    net.bias(b2, GG3)
    net.unit(W2, "e_top", {"push": 1.0, "fin": 1.0, "rnext": 1.0})
    net.unit(W2, "e_u", {"DISCc": 1.0, "push": 1.0, "fin": 1.0, "rnext": 1.0})
    net.unit(W2, "e_v", {"push": 1.0, "fin": 1.0, "rnext": 1.0})
    net.unit(W2, "e_s", {"rnext": 1.0})
    # fin_child = relu(fin - eq): needs its own unit here (one relu layer from P2)
    net.unit(W2, "fin_child_c", {"fin": 1.0, "eq": -1.0})
    net.unit(W2, "DISC_c", {"DISCc": 1.0})
    net.unit(W2, "e_time", {"DISCc": 1.0, "fin": 1.0})
    net.unit(W2, "e_phase", {"DISCc": 1.0, "push": 1.0, "fin": 1.0, "rnext": 1.0})
    net.unit(W2, "one", {}, b2, 1.0)
    W3, b3 = f"{gg}.3.weight", f"{gg}.3.bias"
    net.dense(W3, GG3, G)
    net.bias(b3, G)
    opens = {"top": ["e_top"], "u": ["e_u"], "v": ["e_v"], "s": ["e_s"], "scan": ["DISC_c", "fin_child_c"],
             "time": ["e_time"], "ndisc": ["DISC_c"], "DISC": ["e_phase"], "SCAN": ["e_phase"], "POP": ["e_phase"],
             "ROOT": ["e_phase"], "next_root": ["one"], "nmax": ["one"], "parent": ["one"]}
    for ch in G:
        conds = opens.get(ch, [])
        net.unit(W3, ch, {c: 2 * sat for c in conds}, b3, -sat)

    # ---------------------------------------------------------------- decoders
    dec = spec["decoders"]

    def linear_decoder(dname, kind, terms: dict, classes=1):
        dec[dname] = {"type": kind} if kind != "categorical" else {"type": kind, "classes": classes}
        net.dense(f"decoders.{dname}.weight", Z, list(range(classes)))
        net.bias(f"decoders.{dname}.bias", list(range(classes)))
        for col, inp in terms.items():
            net.unit(f"decoders.{dname}.weight", col, {inp: 1.0})

    linear_decoder("color", "categorical", {0: "white", 1: "gray", 2: "black"}, classes=3)
    linear_decoder("d", "scalar", {0: "d"})
    linear_decoder("f", "scalar", {0: "f"})
    for p, dname in (("s", "s"), ("u", "u"), ("v", "v"), ("top", "s_last")):
        linear_decoder(dname, "mask_one", {0: f"a_{p}"})
    for dname, ch in (("pi", "pi"), ("s_prev", "sp")):
        dec[dname] = {"type": "pointer", "widths": [2, 1], "activations": ["relu", "identity"]}
        p = f"decoders.{dname}"
        net.dense(f"{p}.src", Z, ["x", "y"])
        net.dense(f"{p}.dst", Z, ["x", "y"])
        net.dense(f"{p}.edge", [], ["x", "y"])
        net.bias(f"{p}.bias", ["x", "y"])
        net.unit(f"{p}.src", "x", {"id": 1.0})
        net.unit(f"{p}.dst", "x", {ch: -1.0})
        net.unit(f"{p}.src", "y", {"id": -1.0})
        net.unit(f"{p}.dst", "y", {ch: 1.0})
        net.dense(f"{p}.1.weight", ["x", "y"], ["score"])
        net.bias(f"{p}.1.bias", ["score"])
        net.unit(f"{p}.1.weight", "score", {"x": -1.0, "y": -1.0})
    dec["time"] = {"type": "graph_scalar"}
    net.dense("decoders.time.weight", G, [0])
    net.bias("decoders.time.bias", [0])
    net.unit("decoders.time.weight", 0, {"time": 1.0})
    spec["outputs"] = {"pi": "pi"}
    spec["hints"] = {"pi_h": "pi", "color": "color", "d": "d", "f": "f", "s_prev": "s_prev", "s": "s", "u": "u",
                     "v": "v", "s_last": "s_last", "time": "time"}
    spec["termination"] = {"rule": "fixed_point",
                           "channels": [H.index(c) for c in ("white", "gray", "black", "d", "f", "pi", "sp")],
                           "graph_channels": [G.index(c) for c in ("top", "u", "v", "s", "time", "DISC", "SCAN",
                                                                   "POP", "ROOT")]}
    spec["exact_domain"] = {"max_nodes": int(big)}
    spec["description"] = {"algorithm": "dfs", "channels": {"node": H, "graph": G}, "construction": __doc__}
    weights = net.arrays()
    shapes = expected_shapes(spec)
    missing = set(shapes) - set(weights)
    assert not missing, missing
    return Model(spec, weights)
