"""Attention of a learned GATv2 against the compiled model's hard attention
(``../shared/COMPARISON.md``, Attention; the seed paper's internal similarity measure).

For node ``v`` at step ``t`` the compiled GATv2 (:mod:`engine.compiler.bfs_gatv2`) puts all
of its head's weight on one sender ``u*``. For the learned model (its heads averaged) this
module reports, over the nodes with more than one candidate (a node whose only candidate is
itself agrees by construction and is left out): the attention mass on ``u*``, top-1 agreement
(the learned argmax is ``u*``; a tie counts as the lowest index) and the Jensen-Shannon
divergence (bits) between the learned distribution and the one-hot on ``u*``. Computed with
the torch module's rollout (hints fed back hard, as the executor does), so it is meant for
graphs up to ~10^4 nodes; larger cells leave it out.
"""
from __future__ import annotations

import numpy as np

from ..errors import EngineError


def head_weights(module, batch, ro, t: int) -> np.ndarray:
    """``(messages, heads)`` softmax weights of a GATv2 module's heads at step ``t`` (messages
    in the batch's order: in-neighbours and self of every node)."""
    import torch

    from ..model.factory import gatv2_columns
    from .alignment import layer_messages

    proc = module.spec.get("processor") or {}
    if proc.get("kind") != "gatv2":
        raise EngineError(f"attention needs a GATv2 model, got processor {proc.get('kind', 'mpnn')!r}")
    heads, d = int(proc.get("heads", 1)), module.spec["hidden"]
    _, messages, src, pos = layer_messages(module, batch, ro, t)
    score_col, _ = gatv2_columns(d, heads)
    scores = messages[:, torch.as_tensor(np.unique(score_col))].double()
    n = batch.num_nodes
    top = torch.full((n, heads), -torch.inf, dtype=scores.dtype).scatter_reduce(
        0, pos[:, None].expand(-1, heads), scores, "amax", include_self=True)
    w = torch.exp(scores - top[pos])
    den = torch.zeros((n, heads), dtype=scores.dtype).index_add(0, pos, w)
    return (w / den[pos]).numpy(), src.numpy(), pos.numpy()


def selected_sender(weights: np.ndarray, src: np.ndarray, pos: np.ndarray, n: int) -> np.ndarray:
    """Per node, the sender of largest weight (the lowest index among equal weights)."""
    order = np.lexsort((src, -weights, pos))  # by node, weight descending, then sender ascending
    first = np.ones(order.size, dtype=bool)
    first[1:] = pos[order][1:] != pos[order][:-1]
    out = np.full(n, -1, dtype=np.int64)
    out[pos[order][first]] = src[order][first]
    return out


def agreement(learned: np.ndarray, selected: np.ndarray, src: np.ndarray, pos: np.ndarray, n: int) -> dict:
    """Mass on the selected sender, top-1 agreement and JS divergence (bits), averaged over
    the nodes with more than one candidate; ``nodes``: how many."""
    counts = np.bincount(pos, minlength=n)
    on = src == selected[pos]
    mass = np.bincount(pos, weights=np.where(on, learned, 0.0), minlength=n)
    top = selected_sender(learned, src, pos, n)
    m = 0.5 * (learned + on)
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_p = np.bincount(pos, weights=np.where(learned > 0, learned * np.log2(learned / m), 0.0), minlength=n)
    m_sel = 0.5 * (mass + 1.0)
    js = 0.5 * kl_p + 0.5 * np.log2(1.0 / m_sel)
    keep = counts > 1
    if not keep.any():
        return {"nodes": 0, "mass": float("nan"), "top1": float("nan"), "js": float("nan")}
    return {"nodes": int(keep.sum()), "mass": float(mass[keep].mean()), "top1": float((top == selected)[keep].mean()),
            "js": float(np.clip(js[keep], 0.0, 1.0).mean())}


def attention_steps(learned, compiled, graph, source, steps: int) -> list:
    """Per step ``1 .. steps-1``: :func:`agreement` of ``learned``'s head-averaged attention
    with ``compiled``'s selection (the head named in its ``description.attention``)."""
    import torch

    from ..learn.module import GNNModule, GraphBatch

    head = ((compiled.spec.get("description") or {}).get("attention") or {}).get("head")
    if head is None:
        raise EngineError(f"{compiled.name!r} does not say which head selects (description.attention.head)")
    out = []
    with torch.no_grad():
        ml, mc = GNNModule.from_model(learned), GNNModule.from_model(compiled)
        bl, bc = GraphBatch(graph, source, learned.spec), GraphBatch(graph, source, compiled.spec)
        rl, rc = ml.rollout(bl, steps), mc.rollout(bc, steps)
        for t in range(1, steps):
            wl, src, pos = head_weights(ml, bl, rl, t)
            wc, src_c, pos_c = head_weights(mc, bc, rc, t)
            if not (np.array_equal(src, src_c) and np.array_equal(pos, pos_c)):
                raise EngineError("the two models read different messages (include_self differs)")
            selected = selected_sender(wc[:, head], src, pos, graph.num_nodes)
            out.append(agreement(wl.mean(axis=1), selected, src, pos, graph.num_nodes))
    return out
