"""Copies of a block of columns of a row-major state buffer, fast and bit for bit.

NumPy copies ``z[:, a:b]`` of an ``(n, f)`` array row by row with one ``memcpy`` per row; for
the narrow blocks of compiled models at 10^6 nodes that costs ~10 ms a copy, more than some
whole steps. Viewing each row's block as one opaque element (a ``V{bytes}`` dtype) makes it
one strided element copy, which NumPy runs without a call per row for elements of 1, 2, 4, 8
and 16 bytes (~1-2.5 ms for 2-4 float32 channels); other widths copy an element with a
``memcpy`` call too (no faster than slicing, and slower for wide rows), so they slice. The
bytes move unchanged, so the values are those of the slicing copy, bit for bit.
"""
from __future__ import annotations

import numpy as np

# row blocks of these many bytes copy as single elements without a call per row
_FAST_WIDTHS = (1, 2, 4, 8, 16)


def _row_blocks(a: np.ndarray, start: int, stop: int) -> np.ndarray | None:
    """Columns ``[start, stop)`` of 2-D ``a`` as a 1-D array of one opaque element per row (a
    view), or None where that copies no faster than slicing (not row-major, an empty block, a
    width outside ``_FAST_WIDTHS``)."""
    if a.ndim != 2 or not a.flags.c_contiguous or not 0 <= start < stop <= a.shape[1] or a.shape[0] == 0:
        return None
    width = (stop - start) * a.itemsize
    if width not in _FAST_WIDTHS:
        return None
    return np.ndarray((a.shape[0],), dtype=np.dtype(f"V{width}"), buffer=a, offset=start * a.itemsize,
                      strides=(a.strides[0],))


def set_columns(dst: np.ndarray, start: int, values: np.ndarray) -> None:
    """``dst[:, start:start + w] = values`` for ``values`` of shape ``(n, w)`` and dst's dtype."""
    w = values.shape[1] if values.ndim == 2 else 0
    blocks = _row_blocks(dst, start, start + w)
    src = _row_blocks(values, 0, w) if values.dtype == dst.dtype and values.shape[0] == dst.shape[0] else None
    if blocks is None or src is None:
        dst[:, start:start + w] = values
        return
    blocks[...] = src


def get_columns(src: np.ndarray, start: int, stop: int) -> np.ndarray:
    """A new row-major array holding ``src[:, start:stop]``."""
    out = np.empty((src.shape[0], stop - start), dtype=src.dtype)
    blocks = _row_blocks(src, start, stop)
    dst = _row_blocks(out, 0, stop - start)
    if blocks is None or dst is None:
        out[...] = src[:, start:stop]
    else:
        dst[...] = blocks
    return out
