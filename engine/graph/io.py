"""Graph file loaders: whitespace edge lists and Matrix Market."""
from __future__ import annotations

import os

import numpy as np

from ..errors import GraphError
from .csr import Graph


def load_edge_list(path, *, num_nodes: int | None = None, base: int = 0, directed: bool = True,
                   dtype=None, duplicates: str = "keep") -> Graph:
    """Read ``src dst [weight]`` lines (``#`` and ``%`` start comments).

    Parameters
    ----------
    path : str or path-like
    num_nodes : int, optional
        Defaults to the largest id + 1.
    base : {0, 1}
        Id of the first node in the file.
    directed : bool
        If False, every line adds both directions.
    """
    if base not in (0, 1):
        raise GraphError(f"base must be 0 or 1, got {base!r}")
    if not os.path.exists(path):
        raise GraphError(f"edge list {path!s} does not exist")
    try:
        data = np.loadtxt(path, comments=("#", "%"), ndmin=2, dtype=np.float64)
    except ValueError as exc:
        raise GraphError(f"{path!s}: not a whitespace-separated edge list of numbers ({exc})") from None
    if data.size == 0:
        data = np.zeros((0, 2))
    if data.shape[1] not in (2, 3):
        raise GraphError(f"{path!s}: each line needs 2 or 3 columns (src dst [weight]), got {data.shape[1]}")
    ids = data[:, :2]
    if np.any(ids != np.round(ids)):
        raise GraphError(f"{path!s}: node ids must be integers")
    src = ids[:, 0].astype(np.int64) - base
    dst = ids[:, 1].astype(np.int64) - base
    if src.size and min(src.min(), dst.min()) < 0:
        raise GraphError(f"{path!s}: node id below the base {base}")
    w = data[:, 2] if data.shape[1] == 3 else None
    if not directed:
        loop = src == dst
        src, dst = np.concatenate([src, dst[~loop]]), np.concatenate([dst, src[~loop]])
        if w is not None:
            w = np.concatenate([w, w[~loop]])
    n = num_nodes if num_nodes is not None else (int(max(src.max(), dst.max())) + 1 if src.size else 0)
    return Graph.from_edges(src, dst, n, w, dtype=dtype, directed=directed, duplicates=duplicates,
                            meta={"family": "file", "path": str(path)})


def load_matrix_market(path, *, dtype=None) -> Graph:
    """Read a Matrix Market coordinate file as ``A[u, v]`` = weight of ``u -> v``.

    Symmetric files give both directions; pattern files give an unweighted graph.
    """
    import scipy.io

    if not os.path.exists(path):
        raise GraphError(f"Matrix Market file {path!s} does not exist")
    try:
        info = scipy.io.mminfo(path)
        A = scipy.io.mmread(path)
    except Exception as exc:  # noqa: BLE001 - scipy raises several types for bad files
        raise GraphError(f"{path!s}: not a readable Matrix Market file ({exc})") from None
    import scipy.sparse as sp

    if not sp.issparse(A):
        A = sp.coo_array(A)
    g = Graph.from_scipy(A, dtype=dtype, meta={"family": "file", "path": str(path)})
    return Graph(g.num_nodes, g.indptr, g.indices, None if info[4] == "pattern" else g.weights,
                 directed=info[5] not in ("symmetric", "hermitian", "skew-symmetric"), meta=g.meta)


def load(path, **kw) -> Graph:
    """Load by extension: ``.mtx`` as Matrix Market, anything else as an edge list."""
    if str(path).endswith(".mtx"):
        return load_matrix_market(path, **kw)
    return load_edge_list(path, **kw)
