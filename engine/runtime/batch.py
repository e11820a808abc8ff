"""``execute_batch``: run one model on many graphs at once, as disjoint unions.

A test set of CLRS-sized graphs (thousands of graphs of 16 to 64 nodes) run one
:func:`~engine.runtime.executor.execute` call at a time spends most of its time in the
per-call setup, not in the steps. Here the graphs are bound as one disjoint union (their
message graphs side by side, each graph's node inputs its own) and stepped together, so a
step is one pass over every graph's nodes. Graphs that run a given number of steps
(``steps=``, CLRS's trace lengths) are grouped by that number, one union per group; a
fixed-point run steps its union until every graph has settled (a settled graph's steps
leave it unchanged, so its result is its own fixed point, bit for bit). Unions are split
where their message edges would exceed :data:`MAX_UNION_EDGES`.

Each graph's results equal those of its own ``execute`` call: node for node, with pointers
as node ids within the graph. Compiled models agree bit for bit (every row's arithmetic is
the same); learned ones within the backends' parity bound, because a dense layer wider than
:data:`~engine.backends.numpy_ops.SMALL_WEIGHTS` is a BLAS product whose blocking may depend
on the number of rows.
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np

from ..backends import get_backend
from ..errors import EngineError, ModelError
from ..model import registry as R
from ..model.message_graph import message_graph
from ..model.plan import build_plan
from ..model.spec import Model, step_bound
from .bound import BoundModel
from .executor import MODES, ExecutionResult, _first_feedback, check_count, check_domain, run_bound

MAX_UNION_EDGES = 1 << 26  # message edges per union (int32 edge ids, and bounded buffers)


def execute_batch(model: Model, graphs, sources=None, *, steps=None, backend: str | None = None,
                  trace: bool = False, max_steps: int | None = None, threads: int | None = None,
                  mode: str = "auto", first_hints=None) -> list:
    """Run ``model`` on each of ``graphs``, stepping them together as disjoint unions.

    Parameters
    ----------
    model : Model
        Compiled or learned; a model with a graph state (readouts and a graph update) keeps
        one state per run, so it is refused here: run such a model with :func:`execute`.
    graphs : sequence of Graph
    sources : sequence of int or None, optional
        One source per graph, for models that read the ``source`` input (default 0 each).
    steps : int or sequence of int, optional
        The number of steps each graph runs (one number for all, or one per graph), instead
        of the model's termination rule.
    backend, threads, mode, max_steps
        As for :func:`execute`; ``max_steps`` bounds a fixed-point union as a whole (default:
        the largest bound of its graphs).
    trace : bool
        Decode every hint at every step; needs ``steps=`` (a fixed-point union runs until its
        slowest graph settles, so other graphs' traces would run past their own ends).
    first_hints : sequence of dict, optional
        Each graph's fed-back hint 0, as for :func:`execute` (``None`` entries: decoded).

    Returns
    -------
    list of ExecutionResult
        One per graph, in order. ``outputs``, ``hints`` and ``final_state`` are the graph's
        own (pointers are node ids within it). ``steps`` is the graph's step count where
        ``steps=`` was given, else the steps its union ran (each graph is then at its own
        fixed point); ``converged``, ``mode``, ``node_updates``, ``aggregates_reused`` and
        ``seconds`` are those of the union the graph ran in.
    """
    if not isinstance(model, Model):
        raise ModelError(f"expected an engine.Model, got {type(model).__name__}")
    from ..graph import Graph

    graphs = list(graphs)
    if not graphs:
        raise EngineError("execute_batch needs at least one graph")
    for i, g in enumerate(graphs):
        if not isinstance(g, Graph):
            raise EngineError(f"graphs[{i}] is not an engine.Graph but a {type(g).__name__}")
        if g.num_nodes == 0:
            raise EngineError(f"graphs[{i}] has no nodes")
    count = len(graphs)
    sources = _per_graph(sources, count, "sources")
    if R.needs_source(model.spec.get("node_inputs", [])):
        sources = [g.check_node(0 if s is None else s) for g, s in zip(graphs, sources)]
    else:
        for g, s in zip(graphs, sources):
            if s is not None:
                g.check_node(s)
    if mode not in MODES:
        raise EngineError(f"mode must be one of {list(MODES)}, got {mode!r}")
    plan = build_plan(model.spec, model.weights.__getitem__)
    if plan.layout.dg:
        raise EngineError(f"model {model.name!r} has a graph state (readouts and a graph update), one per run; "
                          "execute_batch runs many graphs as one, so run it graph by graph with engine.execute")
    if steps is None and model.spec["termination"]["rule"] == "steps":
        raise EngineError(f"model {model.name!r} runs a given number of steps; pass steps=")
    if isinstance(steps, (list, tuple, np.ndarray)):
        if len(steps) != count:
            raise EngineError(f"steps must give one count per graph ({count}), got {len(steps)}")
        steps = [check_count(s, f"steps[{i}]") for i, s in enumerate(steps)]
    elif steps is not None:
        steps = [check_count(steps, "steps")] * count
    if trace and steps is None:
        raise EngineError("trace in execute_batch needs steps= (each graph's trace length): a fixed-point "
                          "union runs until its slowest graph settles")
    if max_steps is not None:
        max_steps = check_count(max_steps, "max_steps", minimum=1)
    first_hints = _per_graph(first_hints, count, "first_hints")
    for g in graphs:
        check_domain(model, g)
    given = [_first_feedback(model, plan, fh, g.num_nodes) for g, fh in zip(graphs, first_hints)]
    be = get_backend(backend, threads)

    groups = defaultdict(list)  # step count (None: fixed point) -> graph indices
    for i in range(count):
        groups[None if steps is None else steps[i]].append(i)
    results = [None] * count
    for group_steps, members in groups.items():
        for chunk in _chunks(model, graphs, members):
            for i, res in zip(chunk, _run_union(model, plan, be, [graphs[i] for i in chunk],
                                                [sources[i] for i in chunk], [given[i] for i in chunk],
                                                group_steps, trace, max_steps, mode)):
                results[i] = res
    return results


def _per_graph(values, count: int, what: str) -> list:
    if values is None:
        return [None] * count
    values = list(values)
    if len(values) != count:
        raise EngineError(f"{what} must give one entry per graph ({count}), got {len(values)}")
    return values


def _message_edges(model: Model, graph) -> int:
    if model.spec.get("message_graph", "input") == "complete":
        return graph.num_nodes ** 2
    return graph.num_edges


def _chunks(model: Model, graphs, members: list):
    """``members`` in runs whose message edges stay within :data:`MAX_UNION_EDGES`."""
    chunk, edges = [], 0
    for i in members:
        m = _message_edges(model, graphs[i])
        if chunk and edges + m > MAX_UNION_EDGES:
            yield chunk
            chunk, edges = [], 0
        chunk.append(i)
        edges += m
    if chunk:
        yield chunk


def _run_union(model, plan, be, graphs, sources, given, steps, trace, max_steps, mode) -> list:
    """Bind ``graphs`` as one disjoint union, run it and split the result by graph."""
    from ..graph import Graph

    dtype = model.dtype
    lay = plan.layout
    sizes = np.array([g.num_nodes for g in graphs], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    total = int(sizes.sum())
    indptrs, indices, statics, xs = [], [], [], []
    edge_offset = 0
    symmetric = True
    for g, s, start in zip(graphs, sources, starts):
        messages, static = message_graph(model.spec, g, dtype)
        indptrs.append(messages.indptr[1:].astype(np.int64) + edge_offset)
        indices.append(messages.indices.astype(np.int32) + np.int32(start))
        statics.append(static)
        xs.append(R.node_inputs(lay.node_inputs, g.num_nodes, s, dtype))
        edge_offset += messages.num_edges
        symmetric &= bool(messages.symmetric)
    union = Graph._owning(total, np.concatenate([np.zeros(1, np.int64)] + indptrs), np.concatenate(indices),
                          None, True, {"family": "disjoint union", "graphs": len(graphs)}, symmetric=symmetric)
    run = BoundModel(plan, union, None, be, np.ascontiguousarray(np.vstack(statics)), x=np.vstack(xs),
                     node_start=starts)
    bound = max(step_bound(model.spec, g.num_nodes, g.num_edges) for g in graphs)
    res = run_bound(model, run, _stack_given(plan, given, starts), bound, trace=trace, steps=steps,
                    max_steps=max_steps, mode=mode)
    pointers = {name for name, dec in plan.decoders.items() if dec.kind == "pointer"}
    out = []
    for k, (start, n) in enumerate(zip(starts, sizes)):
        rows = slice(int(start), int(start + n))
        outputs = {name: _local(v[rows], start, plan.outputs[name] in pointers) for name, v in res.outputs.items()}
        hints = None if res.hints is None else {
            name: _local(v[:, rows], start, plan.hints[name] in pointers) for name, v in res.hints.items()}
        out.append(ExecutionResult(
            outputs=outputs, hints=hints, steps=res.steps, converged=res.converged, backend=res.backend,
            threads=res.threads, mode=res.mode, node_updates=res.node_updates,
            aggregates_reused=res.aggregates_reused, seconds=res.seconds, final_state=res.final_state[rows].copy()))
    return out


def _local(values: np.ndarray, start, is_pointer: bool) -> np.ndarray:
    """A graph's slice of a union's decoded values: pointers as node ids within the graph."""
    return values - values.dtype.type(start) if is_pointer else values.copy()


def _stack_given(plan, given: list, starts: np.ndarray) -> dict:
    """The union's first hints from each graph's (checked) ones: all graphs give a hint or none
    does, since a hint given for some graphs and decoded for others cannot be fed as one."""
    names = {name for gv in given for name in gv}
    stacked = {}
    for name in sorted(names):
        if not all(name in gv for gv in given):
            raise EngineError(f"first_hints: hint decoder {name!r} is given for some graphs and not others; "
                              "give it for every graph of the batch or for none")
        is_pointer = plan.decoders[name].kind == "pointer"
        stacked[name] = np.concatenate([gv[name] + (start if is_pointer else 0) for gv, start in zip(given, starts)])
    return stacked

