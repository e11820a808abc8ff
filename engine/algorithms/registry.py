"""The one list of algorithms: everything the engine knows about each one, in one entry.

An :class:`Algorithm` holds the reference (CLRS semantics), how CLRS samples its graphs,
its outputs and hints with their CLRS types, its compilers and the trace sizes. The command
lines' choices, the samplers, training, evaluation and the tests' parametrisation read it;
nothing above it names an output or a class count. Adding an algorithm: its reference
module, its compiler module, an entry here, and its tests (docs/architecture.md).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Callable

from ..errors import EngineError
from .bellman_ford import bellman_ford
from .bfs import bfs
from .bfs_seq import HINT_BYTES_PER_NODE as BFS_SEQ_HINT_BYTES, bfs_seq
from .dfs import LIGHT_HINTS, dfs, dfs_light

PROBE_KINDS = ("mask", "pointer", "scalar", "categorical", "mask_one", "graph_scalar")  # CLRS's types


@dataclass(frozen=True)
class Probe:
    """An output or hint as CLRS declares it: a name, a CLRS type (:data:`PROBE_KINDS`) and,
    for a categorical, its number of classes."""

    name: str
    kind: str
    classes: int = 1


@dataclass(frozen=True)
class Algorithm:
    """What the rest of the engine needs to know about an algorithm.

    Attributes
    ----------
    name : str
    run : callable
        The reference: ``run(graph, source, trace=...)`` (``run(graph, trace=...)`` without
        a source) returning a :class:`~engine.algorithms.result.ReferenceResult`.
    has_source : bool
        Whether it starts from a source node (CLRS input ``s``).
    weighted : bool
        Whether its graphs carry edge weights (CLRS samples weights; generators draw them).
    directed : bool
        Whether CLRS samples it on directed graphs (and the generators default to directed).
    outputs, hints : tuple of Probe
        CLRS's outputs and per-step hints, in CLRS order.
    bytes_per_hint_node : int
        Trace memory per step per node (float32), to bound recorded traces.
    steps_known : callable, optional
        ``n -> T`` when the trace length is fixed by ``n`` alone.
    compilers : dict
        Compiled forms, ``processor -> "module:function"`` (``"compact"``: the smallest exact
        spec; a learned processor such as ``"mpnn"``: the learned spec of that processor with
        analytic weights; ``"<processor>@complete"``: the same over every pair of nodes, CLRS's
        fully connected processor); the function takes ``dtype`` (and, for a learned
        processor, ``hidden`` and ``hint_mode``) and returns a :class:`~engine.Model`.
        Imported on first use.
    inexpressible : dict
        ``processor -> why`` for processors that provably cannot execute the algorithm
        exactly (the compiler refuses with that reason instead of "no compiler"); ``why`` is
        a string (every hint mode) or ``{hint_mode: why}`` (those hint modes only).
    unsettled : str
        What it means when a compiled model of it never reaches its fixed point (the command
        line says so).
    control_of : str, optional
        For a control: the algorithm it varies (same outputs, another trace), so that a
        comparison can set the two side by side.
    control_question : str
        For a control: what setting it beside ``control_of`` asks, phrased as the claim that
        it costs accuracy (the comparison report marks it supported or not).
    """

    name: str
    run: Callable
    has_source: bool
    weighted: bool
    directed: bool
    outputs: tuple
    hints: tuple
    bytes_per_hint_node: int
    steps_known: Callable | None = None
    compilers: dict = field(default_factory=dict)
    inexpressible: dict = field(default_factory=dict)
    unsettled: str = "the model did not reach its fixed point"
    control_of: str | None = None
    control_question: str = ""

    def output(self, name: str) -> Probe:
        return {p.name: p for p in self.outputs}[name]

    def hint(self, name: str) -> Probe:
        return {p.name: p for p in self.hints}[name]

    @property
    def primary_output(self) -> str:
        """The output that accuracy figures score (CLRS's algorithms here have one)."""
        return self.outputs[0].name

    def compiler(self, processor: str = "compact", hint_mode: str | None = None) -> Callable:
        """The compiler of form ``processor`` (for the learned spec of ``hint_mode``);
        :class:`EngineError` when there is none, with the reason where none can exist."""
        why = self.inexpressible.get(processor)
        if isinstance(why, dict):
            why = why.get(hint_mode)
        if why:
            mode = f" with hint mode {hint_mode!r}" if isinstance(self.inexpressible[processor], dict) else ""
            raise EngineError(f"{self.name!r} cannot be compiled into {processor!r}{mode}: {why}")
        if processor not in self.compilers:
            hint = (f"; over every pair of nodes there is one: message_graph='complete'"
                    if f"{processor}@complete" in self.compilers else "")
            raise EngineError(f"no {processor!r} compiler for {self.name!r}; available: {sorted(self.compilers)}{hint}")
        module, func = self.compilers[processor].split(":")
        return getattr(importlib.import_module(module), func)


# Why Bellman-Ford has no GATv2 construction (docs/compiled_in_learned.md, "Bellman-Ford is not
# expressible in GATv2").
GATV2_EDGE_VALUES = (
    "GATv2's values are read from the sender's state only (CLRS's gatv2: values = m(z)); an edge weight "
    "enters only the attention logits. Every state and decoder output is then, on each linear piece, a "
    "bounded analytic function of any one edge weight w (an affine map of softmax outputs), which cannot "
    "equal d_u + w on any interval of w: no weights execute Bellman-Ford exactly on an open set of edge "
    "weights. Use processor='mpnn' (exact) or the compact compiler (processor=None); see "
    "docs/compiled_in_learned.md")

# Why DFS has no construction in the learned specs over the input's edges when no one-node mask
# is fed back (docs/compiled_in_learned.md, "DFS over the input's edges").
DFS_LOCALITY = (
    "over the input's edges a node's state is, after any number of steps, a function of the inputs and "
    "in-edges of the nodes with a path to it (and of hints decoded from those nodes), while DFS's hints "
    "are not: on G1 = {0->2, 2->1, 2->3} and G2 = G1 + {0->1} nodes 0, 2 and 3 have the same in-edges and "
    "inputs, so every weight gives them the same states, yet node 2 is gray after step 2 in G1 and white "
    "in G2 (DFS discovers 1 from 0 first). Only a fed-back one-node mask (an argmax over all nodes: DFS's "
    "u, v, s and s_last, encoded_decoded mode) carries information past this, and whether that suffices "
    "is open. Use the compact compiler (processor=None); see docs/compiled_in_learned.md")
DFS_INEXPRESSIBLE = {"decoded_only": DFS_LOCALITY}

DFS_HINTS = (Probe("pi_h", "pointer"), Probe("color", "categorical", classes=3), Probe("d", "scalar"),
             Probe("f", "scalar"), Probe("s_prev", "pointer"), Probe("s", "mask_one"), Probe("u", "mask_one"),
             Probe("v", "mask_one"), Probe("s_last", "mask_one"), Probe("time", "graph_scalar"))

ALGORITHMS = {
    "bfs": Algorithm(
        "bfs", bfs, has_source=True, weighted=False, directed=False,
        outputs=(Probe("pi", "pointer"),), hints=(Probe("reach_h", "mask"), Probe("pi_h", "pointer")),
        bytes_per_hint_node=8, compilers={"compact": "engine.compiler.bfs:compile_bfs",
                                          "mpnn": "engine.compiler.bfs_mpnn:compile_bfs_mpnn",
                                          "gatv2": "engine.compiler.bfs_gatv2:compile_bfs_gatv2"}),
    "bellman_ford": Algorithm(
        "bellman_ford", bellman_ford, has_source=True, weighted=True, directed=False,
        outputs=(Probe("pi", "pointer"),),
        hints=(Probe("pi_h", "pointer"), Probe("d", "scalar"), Probe("msk", "mask")),
        bytes_per_hint_node=12, compilers={"compact": "engine.compiler.bellman_ford:compile_bellman_ford",
                   "mpnn": "engine.compiler.bellman_ford_mpnn:compile_bellman_ford_mpnn"},
        inexpressible={"gatv2": GATV2_EDGE_VALUES},
        unsettled="distances still fall: a negative-weight cycle is reachable from the source"),
    "dfs": Algorithm(
        "dfs", dfs, has_source=False, weighted=False, directed=True,
        outputs=(Probe("pi", "pointer"),),
        hints=DFS_HINTS,
        bytes_per_hint_node=64, steps_known=lambda n: 3 * n,
        compilers={"compact": "engine.compiler.dfs:compile_dfs",
                   "mpnn@complete": "engine.compiler.dfs_mpnn:compile_dfs_mpnn"},
        inexpressible={"mpnn": DFS_INEXPRESSIBLE, "gatv2": DFS_INEXPRESSIBLE}),
    # a control: BFS made sequential, one queue event per hint step (parallel against
    # sequential apart from the hints; DESIGN.md section 6)
    "bfs_seq": Algorithm(
        "bfs_seq", bfs_seq, has_source=True, weighted=False, directed=False,
        outputs=(Probe("pi", "pointer"),),
        hints=(Probe("reach_h", "mask"), Probe("pi_h", "pointer"), Probe("u", "mask_one"), Probe("v", "mask_one")),
        bytes_per_hint_node=BFS_SEQ_HINT_BYTES, compilers={"compact": "engine.compiler.bfs_seq:compile_bfs_seq"},
        control_of="bfs", control_question="A long sequential trace alone costs BFS accuracy"),
    # a control: DFS's trace with hints reduced to pi_h and color (hint richness apart from
    # the sequential trace; DESIGN.md section 6)
    "dfs_light": Algorithm(
        "dfs_light", dfs_light, has_source=False, weighted=False, directed=True,
        outputs=(Probe("pi", "pointer"),), hints=tuple(p for p in DFS_HINTS if p.name in LIGHT_HINTS),
        bytes_per_hint_node=16, steps_known=lambda n: 3 * n,
        compilers={"compact": "engine.compiler.dfs:compile_dfs_light"},
        # its fed-back hints (pi_h, colour) are read locally: no mode escapes the argument
        inexpressible={p: {"decoded_only": DFS_LOCALITY, "encoded_decoded": DFS_LOCALITY}
                       for p in ("mpnn", "gatv2")},
        control_of="dfs", control_question="Fewer hints cost DFS accuracy (rich hints help)"),
}


def algorithm(name: str) -> Algorithm:
    """The entry of ``name``; :class:`EngineError` naming the known ones otherwise."""
    if name not in ALGORITHMS:
        raise EngineError(f"unknown algorithm {name!r}; allowed: {sorted(ALGORITHMS)}")
    return ALGORITHMS[name]


def compilable() -> list:
    """Names of the algorithms with a compiler."""
    return sorted(name for name, a in ALGORITHMS.items() if a.compilers)
