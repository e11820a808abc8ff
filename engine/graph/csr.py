"""The CSR graph every part of the engine reads.

Layout (docs/architecture.md, "Graphs"): compressed sparse rows *by destination*. The in-edges of
node ``v`` are ``indices[indptr[v]:indptr[v + 1]]`` (their sources), sorted ascending, with
``weights`` aligned to them. ``indptr`` is int64, ``indices`` int32, ``weights`` float32
(float64 on request) or ``None`` for an unweighted graph.

Two kinds of input, one rule each:

* **Matrices** (:meth:`Graph.from_dense`, :meth:`Graph.from_scipy`, Matrix Market files) are
  read as the matrix they represent, as CLRS reads its adjacency matrices: an edge ``u -> v``
  wherever ``A[u, v] != 0``, with weight ``A[u, v]``; entries stored twice in a sparse matrix
  are summed first, so ``from_scipy(A)`` is ``from_dense(A.toarray())`` (an entry summing to 0
  is no edge).
* **Edge lists** (:meth:`Graph.from_edges`, :meth:`Graph.from_networkx`, edge-list files) are
  edges: every listed edge exists, a weight of 0 included; repeated ``(u, v)`` pairs are kept
  as parallel edges (pass ``duplicates="min"``/``"sum"``/``"first"`` to merge them, or
  ``"error"`` to refuse them).

* Self-loops are ordinary edges (CLRS keeps them).
  Parallel edges count once each in sum and mean aggregation and do not change min/max
  aggregation; the references treat them as CLRS would treat the lightest one
  (Bellman-Ford) or as one edge (BFS, DFS).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import GraphError

MAX_NODES = 2**31 - 1  # node ids are int32
MAX_EDGES = 2**31 - 1
WEIGHT_DTYPES = {"float32": np.float32, "float64": np.float64}
DUPLICATE_POLICIES = ("keep", "first", "min", "sum", "error")


def _weight_dtype(dtype) -> np.dtype:
    key = np.dtype(dtype).name if dtype is not None else "float32"
    if key not in WEIGHT_DTYPES:
        raise GraphError(f"weight dtype {key!r} is not supported; allowed: {sorted(WEIGHT_DTYPES)}")
    return np.dtype(WEIGHT_DTYPES[key])


def _as_ids(name: str, arr) -> np.ndarray:
    a = np.asarray(arr)
    if a.ndim != 1:
        raise GraphError(f"{name} must be one-dimensional, got shape {a.shape}")
    if a.size and not np.issubdtype(a.dtype, np.integer):
        if (np.issubdtype(a.dtype, np.floating) and np.all(np.isfinite(a)) and np.all(a == np.round(a))
                and np.all(np.abs(a) < 2.0**62)):
            a = a.astype(np.int64)
        else:
            raise GraphError(f"{name} must hold integer node ids, got dtype {a.dtype}")
    return a.astype(np.int64, copy=False)


@dataclass(eq=False)
class Graph:
    """A directed graph in CSR-by-destination form.

    Parameters
    ----------
    num_nodes : int
        Number of nodes ``n``; node ids are ``0 .. n-1``.
    indptr : ndarray of int64, shape (n + 1,)
        Row pointers: in-edges of ``v`` are ``indptr[v]:indptr[v+1]``.
    indices : ndarray of int32, shape (m,)
        Source node of each in-edge, ascending within a row.
    weights : ndarray of float32 or float64, shape (m,), optional
        Edge weights aligned with ``indices``; ``None`` for an unweighted graph.
    directed : bool
        Whether the graph was built as directed (metadata; undirected graphs store both
        directions).
    meta : dict
        Free-form description (family, generator parameters, seed).

    Use the constructors :meth:`from_edges`, :meth:`from_dense`, :meth:`from_scipy`,
    :meth:`from_networkx` or the loaders in :mod:`engine.graph.io`; they validate. A graph
    owns its arrays: the constructor copies the ones it is given, and the copies are
    read-only, so changing the caller's arrays afterwards changes nothing here (the kernels
    trust a validated graph). Arrays made writeable again are checked by the kernels before
    use.
    """

    num_nodes: int
    indptr: np.ndarray
    indices: np.ndarray
    weights: np.ndarray | None = None
    directed: bool = True
    meta: dict = field(default_factory=dict)
    _out: tuple | None = field(default=None, repr=False)
    _own: bool = field(default=False, repr=False)  # internal: the arrays are already this graph's own
    # internal: set by the constructors that store every edge both ways with one weight
    # (engine.graph.generators' undirected families); see `symmetric`
    _symmetric: bool = field(default=False, repr=False)
    _out_adjacency: tuple | None = field(default=None, repr=False)

    # ------------------------------------------------------------------ construction
    def __post_init__(self):
        if not self._own:  # the caller keeps its arrays; the graph validates and freezes copies
            self.indptr = np.array(self.indptr, copy=True) if isinstance(self.indptr, np.ndarray) else self.indptr
            self.indices = np.array(self.indices, copy=True) if isinstance(self.indices, np.ndarray) else self.indices
            if isinstance(self.weights, np.ndarray):
                self.weights = np.array(self.weights, copy=True)
        self._own = True
        self.validate()
        # validated arrays are frozen: the kernels trust them, so they must not change later
        for arr in (self.indptr, self.indices, self.weights):
            if arr is not None:
                arr.flags.writeable = False

    @classmethod
    def _owning(cls, n, indptr, indices, weights=None, directed=True, meta=None, symmetric=False) -> "Graph":
        """Internal: a graph over arrays made for it (or frozen ones of another graph), not
        copied; ``symmetric`` only where the caller built every edge both ways with one weight."""
        return cls(n, indptr, indices, weights, directed, dict(meta or {}), _own=True, _symmetric=symmetric)

    def trusted(self) -> bool:
        """Whether the kernels may skip validating the CSR: its arrays are still frozen."""
        return not (self.indptr.flags.writeable or self.indices.flags.writeable)

    @property
    def symmetric(self) -> bool:
        """Whether the graph is known, by construction, to hold every edge ``u -> v`` also as
        ``v -> u`` with the same weight (the undirected families of
        :mod:`engine.graph.generators`; a graph from user arrays is not checked, and reports
        False). Then its CSR by destination is also its CSR by source, and nothing is
        transposed (:meth:`out_adjacency`, :meth:`out_csr`). False once its arrays are made
        writeable again."""
        frozen = self.trusted() and (self.weights is None or not self.weights.flags.writeable)
        return self._symmetric and frozen

    def validate(self) -> None:
        """Check the CSR invariants; raise :class:`GraphError` naming the first violation."""
        n = self.num_nodes
        if not isinstance(n, (int, np.integer)) or n < 0 or n > MAX_NODES:
            raise GraphError(f"num_nodes must be an integer in [0, {MAX_NODES}], got {n!r}")
        self.num_nodes = n = int(n)
        if not (isinstance(self.indptr, np.ndarray) and self.indptr.dtype == np.int64):
            raise GraphError("indptr must be an int64 array")
        if not (isinstance(self.indices, np.ndarray) and self.indices.dtype == np.int32):
            raise GraphError("indices must be an int32 array")
        if self.indptr.shape != (n + 1,):
            raise GraphError(f"indptr must have length num_nodes + 1 = {n + 1}, got {self.indptr.shape}")
        m = self.indices.shape[0]
        if self.indptr[0] != 0 or self.indptr[-1] != m:
            raise GraphError(f"indptr must start at 0 and end at len(indices) = {m}")
        if n and np.any(np.diff(self.indptr) < 0):
            raise GraphError("indptr must be non-decreasing")
        if m and (self.indices.min() < 0 or self.indices.max() >= n):
            raise GraphError(f"edge sources must lie in [0, {n}), got range "
                             f"[{self.indices.min()}, {self.indices.max()}]")
        if self.weights is not None:
            w = self.weights
            if not isinstance(w, np.ndarray) or w.dtype not in (np.float32, np.float64):
                raise GraphError("weights must be a float32 or float64 array")
            if w.shape != (m,):
                raise GraphError(f"weights must have one entry per edge ({m}), got shape {w.shape}")
            if not np.all(np.isfinite(w)):
                raise GraphError("weights must be finite (no NaN or inf)")

    @classmethod
    def from_edges(cls, src, dst, num_nodes: int, weights=None, *, dtype=None,
                   directed: bool = True, duplicates: str = "keep", meta: dict | None = None) -> "Graph":
        """Build a graph from parallel arrays of edges ``src[i] -> dst[i]``.

        Parameters
        ----------
        src, dst : array_like of int
            Edge endpoints, ids in ``[0, num_nodes)``.
        num_nodes : int
            Number of nodes.
        weights : array_like of float, optional
            One finite weight per edge.
        dtype : {"float32", "float64"}, optional
            Weight dtype; default float32 (float64 weights stay float64 only on request).
        directed : bool
            Metadata only: the caller supplies both directions for an undirected graph.
        duplicates : {"keep", "first", "min", "sum", "error"}
            What to do with repeated ``(src, dst)`` pairs.
        """
        if duplicates not in DUPLICATE_POLICIES:
            raise GraphError(f"duplicates={duplicates!r} is not allowed; choose one of {DUPLICATE_POLICIES}")
        if not isinstance(num_nodes, (int, np.integer)) or num_nodes < 0 or num_nodes > MAX_NODES:
            raise GraphError(f"num_nodes must be an integer in [0, {MAX_NODES}], got {num_nodes!r}")
        n = int(num_nodes)
        s = _as_ids("src", src)
        d = _as_ids("dst", dst)
        if s.shape != d.shape:
            raise GraphError(f"src and dst must have the same length, got {s.shape[0]} and {d.shape[0]}")
        m = s.shape[0]
        if m > MAX_EDGES:
            raise GraphError(f"at most {MAX_EDGES} edges are supported, got {m}")
        for name, a in (("src", s), ("dst", d)):
            if m and (a.min() < 0 or a.max() >= n):
                bad = a[(a < 0) | (a >= n)][0]
                raise GraphError(f"{name} contains node id {bad}, outside [0, {n}) for num_nodes={n}")
        w = None
        wdtype = _weight_dtype(dtype)
        if weights is not None:
            w = np.asarray(weights)
            if w.shape != (m,):
                raise GraphError(f"weights must have one entry per edge ({m}), got shape {w.shape}")
            if not np.issubdtype(w.dtype, np.number) or np.iscomplexobj(w):
                raise GraphError(f"weights must be real numbers, got dtype {w.dtype}")
            with np.errstate(over="ignore", invalid="ignore"):  # checked just below
                w = w.astype(wdtype, copy=False)
            if not np.all(np.isfinite(w)):
                raise GraphError("weights must be finite: found NaN or inf (or a value that overflows "
                                 f"{w.dtype})")
        keys = d * n + s if n else d
        order = None
        if m > 1 and np.any(keys[1:] < keys[:-1]):
            order = np.argsort(keys, kind="stable")
            keys = keys[order]
            if w is not None:
                w = w[order]
        if duplicates != "keep" and m > 1:
            new = np.empty(m, dtype=bool)
            new[0] = True
            np.not_equal(keys[1:], keys[:-1], out=new[1:])
            if not new.all():
                if duplicates == "error":
                    k = keys[np.flatnonzero(~new)[0]]
                    raise GraphError(f"duplicate edge {k % n} -> {k // n}; pass duplicates='keep', "
                                     "'first', 'min' or 'sum' to accept it")
                starts = np.flatnonzero(new)
                if w is not None:
                    if duplicates == "min":
                        w = np.minimum.reduceat(w, starts)
                    elif duplicates == "sum":
                        w = np.add.reduceat(w, starts)
                    else:
                        w = w[starts]
                keys = keys[starts]
        return cls._from_sorted_keys(keys, n, w, directed=directed, meta=meta)

    @classmethod
    def _from_sorted_keys(cls, keys: np.ndarray, n: int, weights=None, *, directed=True, meta=None,
                          symmetric: bool = False) -> "Graph":
        """Internal: ``keys = dst * n + src`` sorted ascending (the CSR order); ``symmetric``
        only where the caller made every key both ways with one weight."""
        if weights is not None and (weights.base is not None or not weights.flags.owndata):
            weights = weights.copy()  # possibly the caller's: the graph owns its arrays
        if n == 0:
            return cls._owning(0, np.zeros(1, np.int64), np.zeros(0, np.int32), weights, directed, meta)
        dst = keys // n
        indices = (keys - dst * n).astype(np.int32)
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(dst, minlength=n), out=indptr[1:])
        return cls._owning(n, indptr, indices, weights, directed, meta, symmetric)

    @classmethod
    def from_dense(cls, A, *, dtype=None, meta: dict | None = None) -> "Graph":
        """CLRS's reading of an adjacency matrix: an edge ``u -> v`` of weight ``A[u, v]``
        wherever ``A[u, v] != 0``."""
        A = np.asarray(A)
        if A.ndim != 2 or A.shape[0] != A.shape[1]:
            raise GraphError(f"A must be a square matrix, got shape {A.shape}")
        if not np.all(np.isfinite(A)):
            raise GraphError("A must be finite (no NaN or inf)")
        u, v = np.nonzero(A)
        directed = not np.array_equal(A, A.T)
        return cls.from_edges(u, v, A.shape[0], A[u, v], dtype=dtype, directed=directed, meta=meta)

    @classmethod
    def from_scipy(cls, matrix, *, dtype=None, meta: dict | None = None) -> "Graph":
        """From a ``scipy.sparse`` matrix/array read as the matrix it represents: ``A[u, v]``
        = weight of ``u -> v`` where nonzero. Entries stored twice are summed, then zeros
        (stored ones and sums to zero) dropped: the same graph as :meth:`from_dense` of
        ``A.toarray()``.
        """
        import scipy.sparse as sp

        if not sp.issparse(matrix):
            raise GraphError(f"expected a scipy.sparse matrix, got {type(matrix).__name__}")
        if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
            raise GraphError(f"matrix must be square, got shape {matrix.shape}")
        coo = sp.coo_array(matrix, copy=True)
        if coo.dtype == bool:
            coo = coo.astype(np.float32)
        if not np.issubdtype(coo.dtype, np.number) or np.iscomplexobj(coo.data):
            raise GraphError(f"matrix entries must be real numbers, got dtype {coo.dtype}")
        coo.sum_duplicates()
        keep = coo.data != 0
        return cls.from_edges(coo.row[keep], coo.col[keep], matrix.shape[0], np.asarray(coo.data[keep]),
                              dtype=dtype, directed=True, meta=meta)

    @classmethod
    def from_networkx(cls, G, *, weight: str = "weight", dtype=None) -> "Graph":
        """From a networkx graph; nodes are numbered in ``G``'s node order.

        Undirected graphs store both directions. Edges without ``weight`` get weight 1; a
        graph with no weighted edge at all becomes unweighted.
        """
        index = {node: i for i, node in enumerate(G.nodes())}
        src, dst, w = [], [], []
        any_weight = False
        for a, b, data in G.edges(data=True):
            val = data.get(weight, 1.0)
            any_weight |= weight in data
            src.append(index[a]); dst.append(index[b]); w.append(val)
            if not G.is_directed() and a != b:
                src.append(index[b]); dst.append(index[a]); w.append(val)
        return cls.from_edges(np.array(src, dtype=np.int64), np.array(dst, dtype=np.int64), len(index),
                              np.array(w, dtype=np.float64) if any_weight else None, dtype=dtype,
                              directed=G.is_directed(), meta={"family": "networkx"})

    # ------------------------------------------------------------------ views
    @property
    def num_edges(self) -> int:
        return int(self.indices.shape[0])

    @property
    def dtype(self) -> np.dtype:
        """Weight dtype (float32 for an unweighted graph)."""
        return self.weights.dtype if self.weights is not None else np.dtype(np.float32)

    def in_degree(self) -> np.ndarray:
        return np.diff(self.indptr)

    def edge_targets(self) -> np.ndarray:
        """Destination of each stored edge (int32), aligned with ``indices``."""
        return np.repeat(np.arange(self.num_nodes, dtype=np.int32), np.diff(self.indptr))

    def edge_weights(self, dtype=None) -> np.ndarray:
        """Weights aligned with ``indices``; all ones for an unweighted graph."""
        dt = _weight_dtype(dtype) if dtype is not None else self.dtype
        if self.weights is None:
            return np.ones(self.num_edges, dtype=dt)
        return self.weights.astype(dt, copy=False)

    def out_adjacency(self):
        """CSR by source without edge ids: ``(indptr, targets)``, targets ascending per row.

        A :attr:`symmetric` graph's own arrays (nothing built); otherwise the transpose, as
        :meth:`out_csr` builds it but without the edge ids (a third of its scattered
        writes), cached.
        """
        if self.symmetric:
            return self.indptr, self.indices
        if self._out is not None:
            return self._out[:2]
        if self._out_adjacency is None:
            self._out_adjacency = self._transposed(edge_ids=False)[:2]
        return self._out_adjacency

    def out_csr(self):
        """CSR by source: ``(indptr, targets, edge_ids)`` with targets ascending per row.

        ``edge_ids`` maps each out-edge to its position in :attr:`indices`. Built once in
        O(n + m) by a counting sort (the C++ one when the extension is built, else
        :func:`_transpose`, compiled by Numba when available), then cached. (On a
        :attr:`symmetric` graph the edge ids are each edge's reverse; a binary search per edge
        measured slower than this counting sort, so it is the same transpose.)
        """
        if self._out is None:
            self._out = self._transposed(edge_ids=True)
            self._out_adjacency = None
        return self._out

    def _transposed(self, edge_ids: bool):
        try:
            from .._native import transpose

            out = transpose(self.indptr, self.indices, edge_ids)
        except ImportError:
            from .._jit import jit

            out = jit(_transpose)(self.num_nodes, self.indptr, self.indices)
            out = out if edge_ids else (*out[:2], None)
        for arr in out:  # trusted like the graph's own arrays
            if arr is not None:
                arr.flags.writeable = False
        return out

    def check_node(self, node, what: str = "source") -> int:
        """``node`` as a node id of this graph; :class:`GraphError` for anything else (an id
        out of range, a bool, a float, a string)."""
        if (isinstance(node, (bool, np.bool_)) or not isinstance(node, (int, np.integer))
                or not 0 <= node < self.num_nodes):
            raise GraphError(f"{what} must be a node id in [0, {self.num_nodes}) (an integer), got {node!r}")
        return int(node)

    def message_index(self, include_self: bool, rows=None):
        """Every message of the given destination rows (all rows by default), grouped by row
        in ``rows`` order with the self message first: ``(src, pos, eid, rows)`` with ``src``
        each message's source, ``pos`` its row's position in ``rows`` and ``eid`` its edge's
        position in :attr:`indices` (-1 for the self message), all int64."""
        n = self.num_nodes
        rows = np.arange(n, dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
        starts, stops = self.indptr[rows], self.indptr[rows + 1]
        counts = stops - starts + (1 if include_self else 0)
        total = int(counts.sum())
        pos = np.repeat(np.arange(rows.size, dtype=np.int64), counts)
        offset = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
        if include_self:
            offset -= 1  # offset -1 is the self message
        eid = np.repeat(starts, counts) + offset
        is_self = offset < 0
        eid[is_self] = -1
        src = np.where(is_self, rows[pos], self.indices[np.maximum(eid, 0)] if self.num_edges else 0)
        return src.astype(np.int64), pos, eid, rows

    def to_scipy(self):
        """``scipy.sparse.csr_array`` ``A`` with ``A[u, v]`` = weight of ``u -> v``.

        Parallel edges are summed by scipy; use ``duplicates='min'`` upstream if that matters.
        """
        import scipy.sparse as sp

        n = self.num_nodes
        data = self.edge_weights()
        # CSR by destination of A is CSR of A.T, i.e. CSC of A.
        return sp.csc_array((data, self.indices, self.indptr), shape=(n, n)).tocsr()

    def with_dtype(self, dtype) -> "Graph":
        """The same graph with weights in ``dtype`` (float32 or float64)."""
        dt = _weight_dtype(dtype)
        w = self.weights.astype(dt) if self.weights is not None else None
        return Graph._owning(self.num_nodes, self.indptr, self.indices, w, self.directed, self.meta,
                             symmetric=self.symmetric)

    def nbytes(self) -> int:
        b = self.indptr.nbytes + self.indices.nbytes
        return b + (self.weights.nbytes if self.weights is not None else 0)

    def __repr__(self) -> str:
        fam = self.meta.get("family", "custom")
        w = f", weights={self.weights.dtype}" if self.weights is not None else ""
        return f"Graph(n={self.num_nodes}, m={self.num_edges}, family={fam!r}, directed={self.directed}{w})"


def _transpose(n, indptr, indices):
    """Counting sort of the in-edge CSR by source: (out_indptr, targets, edge_ids)."""
    out_indptr = np.zeros(n + 1, dtype=np.int64)
    for e in range(indices.shape[0]):
        out_indptr[indices[e] + 1] += 1
    for v in range(n):
        out_indptr[v + 1] += out_indptr[v]
    fill = out_indptr[:-1].copy()
    targets = np.empty(indices.shape[0], dtype=np.int32)
    edge_ids = np.empty(indices.shape[0], dtype=np.int64)
    for v in range(n):
        for e in range(indptr[v], indptr[v + 1]):
            u = indices[e]
            pos = fill[u]
            targets[pos] = v
            edge_ids[pos] = e
            fill[u] = pos + 1
    return out_indptr, targets, edge_ids
