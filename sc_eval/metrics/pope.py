"""POPE (object hallucination) scoring, as LLaVA's ``eval_pope.py`` and as lmms-eval do it.

LLaVA (``accuracy, precision, recall, f1, yes_ratio``, per split and their mean over splits):
parsing is deliberately crude, and the published numbers depend on it: keep the text before
the first ".", delete commas, split on single spaces; the answer is "no" only when one of the
exact words "No", "no" or "not" occurs, otherwise "yes". So "No." and "not sure" are no, while
"NO", "Nope" and "No!" count as yes.

lmms-eval (``*_lmms``, every version; what the SuperClass paper ran): the stripped, lower-cased
output must be exactly "yes" or "no"; anything else ("No.", "yes, there is") is wrong and is
neither a positive nor a negative prediction (it lowers accuracy, not precision or recall). All
questions given are pooled into one confusion table: over the three splits, not a mean of
per-split scores. lmms-eval's own yes-ratio counts the labels (always 50 on POPE), so it has no
counterpart here.

Metrics treat "yes" as the positive class.
"""
from __future__ import annotations

from typing import Hashable, Mapping, Sequence

import numpy as np

from sc_eval.errors import DataError

_NO_WORDS = frozenset({"No", "no", "not"})
METRICS = ("accuracy", "precision", "recall", "f1", "yes_ratio")
LMMS_METRICS = ("accuracy_lmms", "precision_lmms", "recall_lmms", "f1_lmms")


def pope_parse(text: str) -> str:
    """'yes' or 'no' from a free-form answer, by LLaVA's rule."""
    if not isinstance(text, str):
        raise DataError(f"POPE scoring: prediction must be a string, got {text!r}")
    first = text.split(".")[0]  # no "." -> the whole text, as in the reference
    words = first.replace(",", "").split(" ")
    return "no" if _NO_WORDS.intersection(words) else "yes"


def pope_parse_lmms(text: str) -> str | None:
    """'yes' or 'no' when the stripped, lower-cased output is exactly that word, else None."""
    if not isinstance(text, str):
        raise DataError(f"POPE scoring: prediction must be a string, got {text!r}")
    said = text.strip().lower()
    return said if said in ("yes", "no") else None


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


def pope_metrics_lmms(predictions: Sequence[str], labels: Sequence[str]) -> dict[str, float]:
    """lmms-eval's accuracy, precision, recall and F1 over all the questions given, in percent.

    An answer other than exactly "yes"/"no" counts in accuracy's denominator only. Undefined
    ratios are 0, as in lmms-eval.
    """
    if len(predictions) != len(labels):
        raise DataError(f"POPE scoring: {len(predictions)} predictions for {len(labels)} labels")
    if not predictions:
        raise DataError("POPE scoring: no predictions to score")
    tp = fp = tn = fn = 0
    for i, (pred, label) in enumerate(zip(predictions, labels)):
        said, gold = pope_parse_lmms(pred), _label(label, i)
        if said == "yes":
            tp, fp = tp + gold, fp + (1 - gold)
        elif said == "no":
            fn, tn = fn + gold, tn + (1 - gold)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "accuracy_lmms": 100.0 * (tp + tn) / len(predictions),
        "precision_lmms": 100.0 * precision,
        "recall_lmms": 100.0 * recall,
        "f1_lmms": 100.0 * f1,
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


def _image_counts(questions, splits: list, images: list):
    """[images, splits, 4] confusion counts (tp, fp, fn, tn) of (split, image, prediction, label)."""
    col, row = {s: i for i, s in enumerate(splits)}, {im: i for i, im in enumerate(images)}
    counts = np.zeros((len(images), len(splits), 4))
    for k, (split, image, pred, label) in enumerate(questions):
        p, g = pope_parse(pred) == "yes", _label(label, k)
        counts[row[image], col[split], 0 if p and g else 1 if p else 2 if g else 3] += 1
    return counts


def _image_resamples(n: int, iters: int, seed: int):
    """``iters`` seeded resamples of ``n`` images with replacement, as [chunk, n] draw counts (in
    chunks of 500: the weights stay small); yields (first resample's index, weights)."""
    rng = np.random.default_rng(seed)
    for start in range(0, iters, 500):
        yield start, rng.multinomial(n, np.full(n, 1.0 / n), size=min(500, iters - start))


def _bootstrap_scores(counts_list, iters: int, seed: int):
    """Per resample of the images (the same draw for every counts array): the mean over splits of
    F1 and of accuracy, in percent, for each array; plus the full-data values. Arrays [images,
    splits, 4] share their image axis."""
    def scores(c):  # c: [..., splits, 4] -> (F1, accuracy) means over the splits drawn
        denom = 2 * c[..., 0] + c[..., 1] + c[..., 2]
        total = c.sum(-1)
        present = total > 0  # a resample may draw no image of a split (a --limit cut into it)
        f1 = np.where(denom > 0, 2 * c[..., 0] / np.maximum(denom, 1), 0.0)
        acc = (c[..., 0] + c[..., 3]) / np.maximum(total, 1)
        k = np.maximum(present.sum(-1), 1)
        return 100.0 * (f1 * present).sum(-1) / k, 100.0 * (acc * present).sum(-1) / k

    draws = [(np.zeros(iters), np.zeros(iters)) for _ in counts_list]
    for start, w in _image_resamples(counts_list[0].shape[0], iters, seed):
        for (f1, acc), counts in zip(draws, counts_list):
            f, a = scores(np.einsum("bi,isk->bsk", w, counts))
            f1[start:start + len(w)], acc[start:start + len(w)] = f, a
    full = [tuple(float(x) for x in scores(c.sum(0))) for c in counts_list]
    return draws, full


def pope_stderr(questions: Sequence[tuple[str, Hashable, str, str]], iters: int = 2000,
                seed: int = 0) -> dict[str, float]:
    """Standard errors of the headline ``f1`` and ``accuracy`` (means over the splits), in
    percent, from ``(split, image, prediction, label)`` per question.

    Bootstrapped over images, not questions: POPE asks the same "yes" questions about an image
    in all three splits (and several questions per image in each), so its questions are not
    independent draws and resampling them one by one understates the error. Each of ``iters``
    resamples (a fixed seed: the number is reproducible) draws images with replacement, keeps
    every question of a drawn image in every split, and recomputes each split's F1 and accuracy.
    """
    if not questions:
        raise DataError("POPE scoring: no predictions to score")
    splits = list(dict.fromkeys(q[0] for q in questions))
    images = list(dict.fromkeys(q[1] for q in questions))
    [(f1, acc)], _ = _bootstrap_scores([_image_counts(questions, splits, images)], iters, seed)
    return {"f1": float(f1.std(ddof=1)), "accuracy": float(acc.std(ddof=1))}


def pope_lmms_stderr(questions: Sequence[tuple[str, Hashable, str, str]], iters: int = 2000,
                     seed: int = 0) -> dict[str, float]:
    """Standard errors of lmms-eval's pooled ``accuracy_lmms``, ``precision_lmms``,
    ``recall_lmms`` and ``f1_lmms``, in percent, from ``(split, image, prediction, label)``.

    Bootstrapped over images as :func:`pope_stderr` is (an image's questions recur across the
    splits), with lmms-eval's strict parse: each resample pools every question of the images
    drawn into one confusion table, where an answer other than "yes"/"no" counts in accuracy's
    denominator only. An undefined ratio in a resample is 0, as in the metric itself.
    """
    if not questions:
        raise DataError("POPE scoring: no predictions to score")
    images = {im: i for i, im in enumerate(dict.fromkeys(q[1] for q in questions))}
    counts = np.zeros((len(images), 5))  # tp, fp, fn, tn, neither yes nor no
    for k, (_, image, pred, label) in enumerate(questions):
        said, gold = pope_parse_lmms(pred), _label(label, k)
        cell = 4 if said is None else (0 if gold else 1) if said == "yes" else (2 if gold else 3)
        counts[images[image], cell] += 1
    out = {name: np.zeros(iters) for name in LMMS_METRICS}
    for start, w in _image_resamples(len(images), iters, seed):
        c = w @ counts  # [draws, 5]
        tp, fp, fn, tn = c[:, 0], c[:, 1], c[:, 2], c[:, 3]
        precision = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1), 0.0)
        recall = np.where(tp + fn > 0, tp / np.maximum(tp + fn, 1), 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0)
        sl = slice(start, start + len(w))
        out["accuracy_lmms"][sl] = 100.0 * (tp + tn) / c.sum(1)
        out["precision_lmms"][sl] = 100.0 * precision
        out["recall_lmms"][sl] = 100.0 * recall
        out["f1_lmms"][sl] = 100.0 * f1
    return {name: float(v.std(ddof=1)) for name, v in out.items()}


def pope_paired(questions_a, questions_b, iters: int = 2000, seed: int = 0) -> dict[str, tuple]:
    """Run A against run B on the same POPE questions: {"f1" | "accuracy": (A - B, its standard
    error, two-sided p-value)}, in points.

    A paired bootstrap over images: both runs are rescored on the same resampled images; the
    p-value counts resamples whose difference strays from the observed one by at least the
    observed difference (the paired bootstrap test common in NLP evaluation), plus one.
    ``questions_*``: (split, image, prediction, label), the same questions in both.
    """
    if len(questions_a) != len(questions_b) or not questions_a:
        raise DataError("POPE comparison: the two runs must answer the same, non-empty set of questions")
    splits = list(dict.fromkeys(q[0] for q in questions_a))
    images = list(dict.fromkeys(q[1] for q in questions_a))
    counts = [_image_counts(questions_a, splits, images), _image_counts(questions_b, splits, images)]
    (da, db), (fa, fb) = _bootstrap_scores(counts, iters, seed)
    out = {}
    for k, name in enumerate(("f1", "accuracy")):
        d = da[k] - db[k]
        obs = fa[k] - fb[k]
        p = (1 + int((np.abs(d - obs) >= abs(obs) - 1e-9).sum())) / (iters + 1) if obs else 1.0
        out[name] = (obs, float(d.std(ddof=1)), min(1.0, p))
    return out


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
