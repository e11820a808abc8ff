"""Sequential BFS (the control ``bfs_seq``): CLRS's BFS with one hint per queue event.

The same search as :func:`engine.algorithms.bfs.bfs`, made sequential: nodes leave the queue
one at a time, by level and, within a level, by ascending index (CLRS's rounds visit a
frontier in index order), and each node's distinct out-neighbours are relaxed one at a time in
ascending index. Events:

* ``pop x``: ``x`` is taken from the queue and becomes the scanned node ``u`` (and ``v``);
* ``relax (u, y)``: if ``y`` is unreached, it is reached with ``pi[y] = u`` and queued one
  level below ``u``; either way ``v = y``.

A hint is recorded before each event, and one after the last (the step that finds the queue
empty changes nothing, as CLRS BFS's last round reaches nothing): ``T = E + 1`` for ``E``
events, i.e. one pop per reachable node plus one relaxation per distinct out-edge of a
reachable node, plus one. Hints: ``reach_h`` and ``pi_h`` as BFS, and ``u`` (the scanned
node) and ``v`` (the node of the last event) as one-node masks, both the source before the
first event. The output ``pi`` equals BFS's: the first in-neighbour to reach a node is its
lowest-index in-neighbour one level up.

This is our definition: the authors' own ``bfs_seq`` was not found. It keeps BFS's hints and
output and adds only where the sequential search stands (``u``, ``v``), so the trace is long
and sequential while the hints stay BFS's.
"""
from __future__ import annotations

import numpy as np

from .._jit import jit
from .._memory import require
from .result import ReferenceResult

POP, RELAX = 0, 1
HINT_BYTES_PER_NODE = 16  # reach_h, pi_h, u, v: 4 bytes each


def _bfs_seq_core(source, out_indptr, out_targets, reach, pi, events, nodes):
    """Run the queue; fill ``reach``, ``pi`` and the event list (kind, node); return its length."""
    e = 0
    frontier = np.empty(reach.shape[0], dtype=np.int64)
    nxt = np.empty(reach.shape[0], dtype=np.int64)
    frontier[0] = source
    size = 1
    while size > 0:
        count = 0
        for i in range(size):
            u = frontier[i]
            events[e] = POP
            nodes[e] = u
            e += 1
            last = -1
            for k in range(out_indptr[u], out_indptr[u + 1]):
                y = out_targets[k]
                if y == last:
                    continue  # a duplicate edge: one relaxation per distinct out-neighbour
                last = y
                events[e] = RELAX
                nodes[e] = y
                e += 1
                if not reach[y]:
                    reach[y] = True
                    pi[y] = u
                    nxt[count] = y
                    count += 1
        frontier[:count] = np.sort(nxt[:count])
        size = count
    return e


def _hints(source: int, n: int, events: np.ndarray, nodes: np.ndarray, reach_event: np.ndarray,
           pi: np.ndarray, dtype) -> dict:
    """Per-step hints from the event list: hint ``t`` is the state after events ``0 .. t-1``."""
    T = events.shape[0] + 1
    t = np.arange(T)[:, None]
    reached = reach_event[None, :] < t  # reach_event: the event that reaches the node (-1: the source)
    ids = np.arange(n, dtype=np.int32)
    touched = np.concatenate([[source], nodes])  # the node of the last event, the source first
    pops = np.where(np.concatenate([[True], events == POP]), np.arange(T), 0)
    scanned = touched[np.maximum.accumulate(pops)]
    rows = np.arange(T)

    def mask(cols):
        m = np.zeros((T, n), dtype=dtype)
        m[rows, cols] = 1
        return m

    return {"reach_h": reached.astype(dtype), "pi_h": np.where(reached, pi[None, :], ids[None, :]).astype(np.int32),
            "u": mask(scanned), "v": mask(touched)}


def bfs_seq(graph, source: int = 0, *, trace="auto", auto_bytes: int = 256 * 2**20) -> ReferenceResult:
    n = graph.num_nodes
    dtype = graph.dtype
    out_indptr, out_targets = graph.out_adjacency()  # each row ascending by target
    reach = np.zeros(n, dtype=np.bool_)
    pi = np.arange(n, dtype=np.int32)
    reach[source] = True
    capacity = n + out_targets.shape[0]
    events = np.empty(capacity, dtype=np.int8)
    nodes = np.empty(capacity, dtype=np.int64)
    E = jit(_bfs_seq_core)(source, out_indptr, out_targets, reach, pi, events, nodes)
    events, nodes = events[:E], nodes[:E]
    T = E + 1
    trace_bytes = HINT_BYTES_PER_NODE * n * T
    if trace == "auto":
        trace = trace_bytes <= auto_bytes
    elif trace:
        require(trace_bytes, f"a bfs_seq trace of {n} nodes and {T} steps", "pass trace=False (outputs only)")
    hints = None
    if trace:
        reach_event = np.full(n, T, dtype=np.int64)  # never reached: after every step
        relaxed = np.flatnonzero(events == RELAX)
        first = relaxed[np.unique(nodes[relaxed], return_index=True)[1]]  # each node's first relaxation
        newly = first[nodes[first] != source]  # reached it: only the source is reached before its first
        reach_event[nodes[newly]] = newly
        reach_event[source] = -1
        hints = _hints(source, n, events, nodes, reach_event, pi, dtype)
    s = np.zeros(n, dtype=dtype)
    s[source] = 1
    return ReferenceResult(
        algorithm="bfs_seq",
        outputs={"pi": pi},
        hints=hints,
        steps=T,
        inputs={"pos": (np.arange(n) / n).astype(dtype), "s": s},
        final={"reach": reach.astype(dtype)},
    )
