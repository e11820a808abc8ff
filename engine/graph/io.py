"""Graph file loaders: whitespace edge lists and Matrix Market (plain, .gz or .bz2).

:func:`load` tells the formats apart by content (a Matrix Market file starts with
``%%MatrixMarket``), and refuses a file whose name says ``.mtx`` when its content is not one.
"""
from __future__ import annotations

import bz2
import gzip
import os
import warnings

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
    _check_file(path, "edge list")
    try:
        with warnings.catch_warnings():  # an empty file is a graph without edges, not a problem
            warnings.filterwarnings("ignore", message="loadtxt: input contained no data")
            data = np.loadtxt(path, comments=("#", "%"), ndmin=2, dtype=np.float64)
    except (ValueError, OSError, EOFError, UnicodeDecodeError) as exc:
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

    _check_file(path, "Matrix Market file")
    try:
        info = scipy.io.mminfo(path)
        A = scipy.io.mmread(path)
    except Exception as exc:  # noqa: BLE001 - scipy raises several types for bad files
        raise GraphError(f"{path!s}: not a readable Matrix Market file ({type(exc).__name__}: {exc})") from None
    import scipy.sparse as sp

    if not sp.issparse(A):
        A = sp.coo_array(A)
    g = Graph.from_scipy(A, dtype=dtype, meta={"family": "file", "path": str(path)})
    return Graph._owning(g.num_nodes, g.indptr, g.indices, None if info[4] == "pattern" else g.weights,
                         directed=info[5] not in ("symmetric", "hermitian", "skew-symmetric"), meta=g.meta)


def _check_file(path, what: str) -> None:
    if not os.path.exists(path):
        raise GraphError(f"{what} {path!s} does not exist")
    if not os.path.isfile(path):
        raise GraphError(f"{what} {path!s} is not a regular file (a directory?)")


def _first_line(path) -> bytes:
    """The first line of a file, decompressed if it is gzip or bzip2 ('' if unreadable)."""
    with open(path, "rb") as fh:
        magic = fh.read(3)
    opener = gzip.open if magic[:2] == b"\x1f\x8b" else bz2.open if magic == b"BZh" else open
    try:
        with opener(path, "rb") as fh:
            return fh.readline(256)
    except (OSError, EOFError):
        return b""


def load(path, **kw) -> Graph:
    """Load a graph file: Matrix Market when its content says so (``%%MatrixMarket``, also
    compressed), else a whitespace edge list. A name ending in ``.mtx`` (any case, optionally
    ``.gz``/``.bz2``) must hold Matrix Market; otherwise :class:`GraphError`."""
    _check_file(path, "graph file")
    is_mm = _first_line(path).lstrip().lower().startswith(b"%%matrixmarket")
    name = str(path).lower()
    says_mm = name.endswith((".mtx", ".mtx.gz", ".mtx.bz2"))
    if says_mm and not is_mm:
        raise GraphError(f"{path!s}: named as Matrix Market (.mtx) but it does not start with %%MatrixMarket")
    if is_mm:
        return load_matrix_market(path, **kw)
    return load_edge_list(path, **kw)
