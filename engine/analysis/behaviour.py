"""Behaviour against the reference, step by step (``../shared/COMPARISON.md``, Behaviour).

One definition used by ``engine.evaluate`` and ``engine.compare``: which node counts as right
for each CLRS hint type, per-step hint accuracy from step 1 (hint 0 is the initial state, an
input in CLRS), the first step at which a hint diverges, and how errors compound.
"""
from __future__ import annotations

import numpy as np

from ..algorithms import ALGORITHMS

SCALAR_TOLERANCE = (1e-2, 1e-2)  # a scalar hint is right within atol + rtol * |reference|


def right(kind: str, got, want) -> np.ndarray:
    """Per node (or per graph for a graph-level hint): whether ``got`` equals the reference
    ``want``; scalars within :data:`SCALAR_TOLERANCE`, every other type exactly."""
    got, want = np.asarray(got), np.asarray(want)
    if kind in ("scalar", "graph_scalar"):
        atol, rtol = SCALAR_TOLERANCE
        return np.abs(got.astype(np.float64) - want.astype(np.float64)) <= atol + rtol * np.abs(want.astype(np.float64))
    if got.ndim == 2 and got.shape[-1] > 1 and kind == "categorical":
        return np.all(got == want, axis=-1)
    return got == want


def trace_agreement(algo: str, got: dict, want: dict) -> dict:
    """Per hint of ``algo`` present in both traces (``(T, n)`` arrays, step 0 first): accuracy
    per step ``1 .. T-1``, the first step where the hint differs anywhere (-1: none) and the
    compounding counts over consecutive steps ``t, t+1`` (both from 1): ``pairs`` (node-steps),
    ``right_before``, ``right_after``, ``right_both``.

    Returns ``{"hints": {name: {...}}, "first_divergence_step": int}`` (-1: no hint differs)."""
    info = ALGORITHMS[algo]
    out, first = {}, -1
    for probe in info.hints:
        if probe.name not in got or probe.name not in want:
            continue
        T = min(len(got[probe.name]), len(want[probe.name]))
        ok = [right(probe.kind, got[probe.name][t], want[probe.name][t]).ravel() for t in range(1, T)]
        per_step = [float(o.mean()) for o in ok]
        bad = [t + 1 for t, o in enumerate(ok) if not o.all()]
        if bad and (first == -1 or bad[0] < first):
            first = bad[0]
        pairs = before = after = both = 0
        for a, b in zip(ok[:-1], ok[1:]):
            pairs += a.size
            before += int(a.sum())
            after += int(b.sum())
            both += int((a & b).sum())
        out[probe.name] = {"per_step": per_step, "first_divergence_step": bad[0] if bad else -1,
                           "pairs": pairs, "right_before": before, "right_after": after, "right_both": both}
    return {"hints": out, "first_divergence_step": first}


def compounding(counts: dict) -> dict:
    """From summed compounding counts: ``P(t+1 right | t right)``, ``P(t+1 right | t wrong)``
    and ``P(t+1 right)`` (NaN where the condition never holds)."""
    pairs, before, after, both = (counts[k] for k in ("pairs", "right_before", "right_after", "right_both"))
    nan = float("nan")
    return {"p_right_given_right": both / before if before else nan,
            "p_right_given_wrong": (after - both) / (pairs - before) if pairs > before else nan,
            "p_right": after / pairs if pairs else nan}
