"""POPE (object hallucination) scoring, as LLaVA's ``eval_pope.py`` does it.

Parsing is deliberately crude, and the published numbers depend on it: keep the text before
the first ".", delete commas, split on single spaces; the answer is "no" only when one of the
exact words "No", "no" or "not" occurs, otherwise "yes". So "No." and "not sure" are no, while
"NO", "Nope" and "No!" count as yes. Metrics treat "yes" as the positive class.
"""
from __future__ import annotations

from typing import Mapping, Sequence

from sc_eval.errors import DataError

_NO_WORDS = frozenset({"No", "no", "not"})
METRICS = ("accuracy", "precision", "recall", "f1", "yes_ratio")


def pope_parse(text: str) -> str:
    """'yes' or 'no' from a free-form answer, by LLaVA's rule."""
    if not isinstance(text, str):
        raise DataError(f"POPE scoring: prediction must be a string, got {text!r}")
    first = text.split(".")[0]  # no "." -> the whole text, as in the reference
    words = first.replace(",", "").split(" ")
    return "no" if _NO_WORDS.intersection(words) else "yes"


def _label(value, index: int) -> int:
    if not isinstance(value, str) or value.strip().lower() not in ("yes", "no"):
        raise DataError(f"POPE scoring: label #{index} is {value!r}; labels must be 'yes' or 'no'")
    return 1 if value.strip().lower() == "yes" else 0


def pope_metrics(predictions: Sequence[str], labels: Sequence[str]) -> dict[str, float]:
    """Accuracy, precision, recall, F1 and yes-ratio (of predictions), all in percent.

    Undefined ratios (no positive prediction, no positive label) are 0 instead of a crash; the
    reference divides by zero there.
    """
    if len(predictions) != len(labels):
        raise DataError(f"POPE scoring: {len(predictions)} predictions for {len(labels)} labels")
    if not predictions:
        raise DataError("POPE scoring: no predictions to score")
    preds = [1 if pope_parse(p) == "yes" else 0 for p in predictions]
    gold = [_label(g, i) for i, g in enumerate(labels)]
    tp = sum(1 for p, g in zip(preds, gold) if p and g)
    fp = sum(1 for p, g in zip(preds, gold) if p and not g)
    tn = sum(1 for p, g in zip(preds, gold) if not p and not g)
    fn = sum(1 for p, g in zip(preds, gold) if not p and g)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    n = len(preds)
    return {
        "accuracy": 100.0 * (tp + tn) / n,
        "precision": 100.0 * precision,
        "recall": 100.0 * recall,
        "f1": 100.0 * f1,
        "yes_ratio": 100.0 * sum(preds) / n,
    }


def pope_summary(per_split: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """Flatten per-split metrics to ``<split>_<metric>`` and add each metric's mean over splits.

    The headline POPE number is the mean F1 of the random, popular and adversarial splits
    (``f1`` here), each split scored on its own.
    """
    if not per_split:
        raise DataError("POPE scoring: no split was scored")
    out: dict[str, float] = {}
    for split, metrics in per_split.items():
        for name in METRICS:
            out[f"{split}_{name}"] = metrics[name]
    for name in METRICS:
        out[name] = sum(m[name] for m in per_split.values()) / len(per_split)
    return out
