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
    tp, fp, tn, fn = _confusion(predictions, labels)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    n = tp + fp + tn + fn
    return {
        "accuracy": 100.0 * (tp + tn) / n,
        "precision": 100.0 * precision,
        "recall": 100.0 * recall,
        "f1": 100.0 * f1,
        "yes_ratio": 100.0 * (tp + fp) / n,
    }


def _confusion(predictions: Sequence[str], labels: Sequence[str]) -> tuple[int, int, int, int]:
    """(true positives, false positives, true negatives, false negatives), "yes" positive."""
    if len(predictions) != len(labels):
        raise DataError(f"POPE scoring: {len(predictions)} predictions for {len(labels)} labels")
    if not predictions:
        raise DataError("POPE scoring: no predictions to score")
    preds = [1 if pope_parse(p) == "yes" else 0 for p in predictions]
    gold = [_label(g, i) for i, g in enumerate(labels)]
    tp = sum(1 for p, g in zip(preds, gold) if p and g)
    fp = sum(1 for p, g in zip(preds, gold) if p and not g)
    tn = sum(1 for p, g in zip(preds, gold) if not p and not g)
    return tp, fp, tn, len(preds) - tp - fp - tn


def pope_stderr(per_split: Mapping[str, tuple[Sequence[str], Sequence[str]]], iters: int = 2000,
                seed: int = 0) -> dict[str, float]:
    """Standard errors of the headline ``f1`` and ``accuracy`` (means over the splits given as
    split -> (predictions, labels)), in percent.

    Accuracy is a mean of per-question scores: sample std over sqrt(n) per split. F1 is not, so
    its standard error is bootstrapped: each split's questions are resampled with replacement
    (``iters`` times, a fixed seed, so the number is reproducible) and the F1 recomputed.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    f1 = np.zeros(iters)
    acc_var = 0.0
    for preds, labels in per_split.values():
        tp, fp, tn, fn = _confusion(preds, labels)
        n = tp + fp + tn + fn
        # resampling n questions = drawing the four confusion counts from their observed shares
        draws = rng.multinomial(n, np.array([tp, fp, fn, tn], dtype=float) / n, size=iters)
        denom = 2 * draws[:, 0] + draws[:, 1] + draws[:, 2]
        f1 += np.where(denom > 0, 2 * draws[:, 0] / np.maximum(denom, 1), 0.0)
        acc = (tp + tn) / n
        acc_var += acc * (1 - acc) / (n - 1) if n > 1 else 0.0
    k = len(per_split)
    return {"f1": 100.0 * float((f1 / k).std(ddof=1)), "accuracy": 100.0 * acc_var ** 0.5 / k}


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
