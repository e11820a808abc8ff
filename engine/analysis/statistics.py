"""Streaming statistics for the comparison (``../shared/COMPARISON.md``): linear CKA, ridge
probes and bootstrap intervals.

Hidden states at 10^6 nodes x 128 channels x T steps are never all kept: CKA and probes reduce
to sums over nodes, accumulated chunk by chunk in float64 (:class:`CKAMoments`,
:class:`RidgeMoments`, :class:`ProbeScore`), equal to the in-memory computations
(:func:`linear_cka`) up to float64 rounding.
"""
from __future__ import annotations

import numpy as np

from ..errors import EngineError


def linear_cka(X: np.ndarray, Y: np.ndarray, *, standardise: bool = False) -> float:
    """Linear CKA (Kornblith et al., 2019) between ``X`` (samples x p) and ``Y`` (samples x q),
    in memory: ``||Xc^T Yc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F)`` with column-centred
    ``Xc, Yc``; with ``standardise``, every column is also divided by its standard deviation
    (constant columns dropped). NaN when either side is constant."""
    m = CKAMoments(X.shape[1], Y.shape[1])
    m.add(X, Y)
    return m.cka(standardise=standardise)


class CKAMoments:
    """The sums linear CKA needs over samples: ``n``, ``sum x``, ``sum y``, ``X^T X``, ``Y^T Y``,
    ``X^T Y`` (float64), added chunk by chunk."""

    def __init__(self, p: int, q: int):
        self.n = 0
        self.sx, self.sy = np.zeros(p), np.zeros(q)
        self.xx, self.yy, self.xy = np.zeros((p, p)), np.zeros((q, q)), np.zeros((p, q))

    def add(self, X: np.ndarray, Y: np.ndarray) -> None:
        if X.shape[0] != Y.shape[0]:
            raise EngineError(f"CKA needs the same samples on both sides, got {X.shape[0]} and {Y.shape[0]} rows")
        X, Y = np.asarray(X, dtype=np.float64), np.asarray(Y, dtype=np.float64)
        self.n += X.shape[0]
        self.sx += X.sum(axis=0)
        self.sy += Y.sum(axis=0)
        self.xx += X.T @ X
        self.yy += Y.T @ Y
        self.xy += X.T @ Y

    def merge(self, other: "CKAMoments") -> None:
        self.n += other.n
        for name in ("sx", "sy", "xx", "yy", "xy"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def cka(self, *, standardise: bool = False) -> float:
        if self.n < 2:
            return float("nan")
        mx, my = self.sx / self.n, self.sy / self.n
        cxx = self.xx - self.n * np.outer(mx, mx)
        cyy = self.yy - self.n * np.outer(my, my)
        cxy = self.xy - self.n * np.outer(mx, my)
        if standardise:
            # a column whose spread is at float64 rounding of its sums is constant
            vx, vy = np.diag(cxx).copy(), np.diag(cyy).copy()
            kx = vx > 1e-12 * np.maximum(np.diag(self.xx), 1e-300)
            ky = vy > 1e-12 * np.maximum(np.diag(self.yy), 1e-300)
            ix, iy = 1.0 / np.sqrt(vx[kx]), 1.0 / np.sqrt(vy[ky])
            cxx = cxx[np.ix_(kx, kx)] * np.outer(ix, ix)
            cyy = cyy[np.ix_(ky, ky)] * np.outer(iy, iy)
            cxy = cxy[np.ix_(kx, ky)] * np.outer(ix, iy)
        den = np.linalg.norm(cxx) * np.linalg.norm(cyy)
        if not den > 0:
            return float("nan")
        return float(np.sum(cxy * cxy) / den)


class RidgeMoments:
    """The sums a ridge probe's fit needs: ``n``, ``sum x``, ``X^T X``, ``X^T y``, ``sum y``
    (float64; ``y`` one or more target columns)."""

    def __init__(self, p: int, k: int = 1):
        self.n = 0
        self.sx, self.xx = np.zeros(p), np.zeros((p, p))
        self.sy, self.xy = np.zeros(k), np.zeros((p, k))

    def add(self, X: np.ndarray, y: np.ndarray) -> None:
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64).reshape(X.shape[0], -1)
        self.n += X.shape[0]
        self.sx += X.sum(axis=0)
        self.xx += X.T @ X
        self.sy += y.sum(axis=0)
        self.xy += X.T @ y

    def fit(self, alpha: float = 1e-3) -> "RidgeProbe":
        """Ridge regression on inputs standardised with these samples' mean and standard
        deviation (constant inputs get weight 0), with an unpenalised intercept: minimises
        ``sum (y - b - Xs w)^2 + alpha * n * ||w||^2``."""
        if self.n < 2:
            raise EngineError("a probe needs at least two samples to fit")
        mx, my = self.sx / self.n, self.sy / self.n
        cxx = self.xx - self.n * np.outer(mx, mx)
        cxy = self.xy - self.n * np.outer(mx, my)
        var = np.diag(cxx) / self.n
        keep = var > 1e-12 * np.maximum(np.diag(self.xx) / self.n, 1e-300)
        sd = np.where(keep, np.sqrt(np.where(keep, var, 1.0)), 1.0)
        A = cxx / np.outer(sd, sd)
        b = cxy / sd[:, None]
        A = A[np.ix_(keep, keep)] + alpha * self.n * np.eye(int(keep.sum()))
        w = np.zeros_like(cxy)
        w[keep] = np.linalg.solve(A, b[keep]) if keep.any() else 0.0
        return RidgeProbe(mean=mx, scale=sd, weights=w, intercept=my)


class RidgeProbe:
    """A fitted linear read-out ``y = b + ((x - mean) / scale) W``."""

    def __init__(self, mean, scale, weights, intercept):
        self.mean, self.scale, self.weights, self.intercept = mean, scale, weights, intercept

    def predict(self, X: np.ndarray) -> np.ndarray:
        return ((np.asarray(X, dtype=np.float64) - self.mean) / self.scale) @ self.weights + self.intercept


class ProbeScore:
    """Streaming score of a fitted probe on held-out samples: for scalars ``R^2 = 1 - SSE /
    SST`` (from ``n``, ``sum y``, ``sum y^2`` and ``SSE``); for masks the share of samples
    whose read-out falls on the right side of 0.5."""

    def __init__(self, k: int = 1):
        self.n = 0
        self.sy, self.syy, self.sse = np.zeros(k), np.zeros(k), np.zeros(k)
        self.right = np.zeros(k)

    def add(self, predicted: np.ndarray, y: np.ndarray) -> None:
        y = np.asarray(y, dtype=np.float64).reshape(predicted.shape)
        self.n += y.shape[0]
        self.sy += y.sum(axis=0)
        self.syy += (y * y).sum(axis=0)
        self.sse += ((y - predicted) ** 2).sum(axis=0)
        self.right += ((predicted > 0.5) == (y > 0.5)).sum(axis=0)

    def r2(self) -> np.ndarray:
        """``1 - SSE/SST`` per target; NaN where the target is constant on these samples (R^2
        is undefined; see :meth:`rmse`)."""
        if self.n == 0:
            return np.full(self.sy.shape, np.nan)
        sst = self.syy - self.sy ** 2 / self.n
        ok = sst > 1e-12 * np.maximum(self.syy, 1e-300)
        return np.where(ok, 1.0 - self.sse / np.where(ok, sst, 1.0), np.nan)

    def rmse(self) -> np.ndarray:
        return np.sqrt(self.sse / max(self.n, 1))

    def accuracy(self) -> np.ndarray:
        return self.right / max(self.n, 1)


def bootstrap_ci(groups, statistic=np.mean, *, resamples: int = 2000, level: float = 0.95, seed: int = 0):
    """Percentile bootstrap over two levels: ``groups`` is a list (training seeds) of arrays of
    per-graph values; each resample draws seeds with replacement, then graphs with replacement
    within each drawn seed, and applies ``statistic`` to the pooled values. Returns ``(low,
    high)``; ``(nan, nan)`` without values. One group: graphs only."""
    groups = [np.asarray(g, dtype=np.float64) for g in groups if len(g)]
    if not groups:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    stats = np.empty(resamples)
    for i in range(resamples):
        picked = rng.integers(len(groups), size=len(groups)) if len(groups) > 1 else [0]
        pooled = np.concatenate([groups[j][rng.integers(len(groups[j]), size=len(groups[j]))] for j in picked])
        stats[i] = statistic(pooled)
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(stats, [tail, 100.0 - tail])
    return float(low), float(high)
