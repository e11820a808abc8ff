"""A learned model scored as CLRS scores it: CLRS-30's test split, under the model's protocol.

The test split is CLRS-30's (:func:`engine.algorithms.samplers.clrs_split`: 32 graphs of 64
nodes, ``p = 0.5``, sampler seed 3), positions ``i / n`` (CLRS randomises them for training
and validation only). The model runs in the torch module with its protocol's evaluation
(``spec.description.protocol``, written by :mod:`engine.learn.trainer`): CLRS's protocol
feeds the ground-truth hint 0 into the first step and soft hints after it
(``hint_repred_mode='soft'``); the sparse protocol decodes hint 0 from the initial state and
feeds hard hints, as the executor does. Either may be overridden. The score is CLRS's: the
output pointer's accuracy pooled over all test nodes, beside the best rule that runs no
algorithm (:mod:`engine.analysis.baselines`) on the same graphs.
"""
from __future__ import annotations

import numpy as np

from ..algorithms import algorithm, reference
from ..algorithms.samplers import clrs_split
from .baselines import pointer_baselines

SPARSE_EVALUATION = {"hint0": "decoded", "eval_feedback": "hard"}  # models trained before protocols existed


def test_data(algo: str) -> dict:
    """CLRS-30's test split of ``algo`` with its reference traces, as the trainer batches data."""
    info = algorithm(algo)
    graphs, sources, refs = [], [], []
    for _, g, s in clrs_split(algo, "test"):
        graphs.append(g)
        sources.append(s if info.has_source else None)
        refs.append(reference(algo, g, s, trace=True))
    return {"graphs": graphs, "sources": sources, "refs": refs, "pos": None}


def trivial_scores(algo: str, data: dict | None = None) -> tuple[dict, str]:
    """The rules that run no algorithm, scored on the test split as CLRS scores a model.

    Returns ``({rule: pointer accuracy pooled over the test nodes}, best rule)``.
    """
    data = data if data is not None else test_data(algo)
    name = algorithm(algo).primary_output
    nodes = sum(g.num_nodes for g in data["graphs"])
    trivial: dict = {}
    for g, ref in zip(data["graphs"], data["refs"]):
        for rule, acc in pointer_baselines(g, ref.outputs[name]).items():
            trivial[rule] = trivial.get(rule, 0.0) + acc * g.num_nodes / nodes
    return trivial, max(trivial, key=trivial.get)


def evaluation_of(model) -> dict:
    """How ``model`` is evaluated under its protocol: ``{"hint0", "eval_feedback"}``."""
    proto = (model.spec.get("description") or {}).get("protocol") or SPARSE_EVALUATION
    return {"hint0": proto["hint0"], "eval_feedback": proto["eval_feedback"]}


def test_score(model, algo: str | None = None, *, feedback: str | None = None, hint0: str | None = None,
               data: dict | None = None) -> dict:
    """CLRS's test score of a learned ``model`` (an :class:`engine.Model`).

    Returns ``{"score", "feedback", "hint0", "graphs", "nodes", "trivial": {rule: accuracy},
    "best_trivial"}``; ``feedback``/``hint0`` default to the model's protocol.
    """
    from ..learn.module import GNNModule
    from ..learn.trainer import pointer_accuracy

    algo = algo or model.spec["description"]["algorithm"]
    how = evaluation_of(model)
    feedback = feedback or how["eval_feedback"]
    hint0 = hint0 or how["hint0"]
    data = data if data is not None else test_data(algo)
    score = pointer_accuracy(GNNModule.from_model(model), data, feedback, hint0)
    trivial, best = trivial_scores(algo, data)
    nodes = sum(g.num_nodes for g in data["graphs"])
    return {"score": float(score), "feedback": feedback, "hint0": hint0, "graphs": len(data["graphs"]),
            "nodes": int(nodes), "trivial": trivial, "best_trivial": best}
