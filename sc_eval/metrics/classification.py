"""Classification metrics in the units papers print (percent).

``top5`` is only reported with at least five classes: with fewer it is trivially 100 and would
read as a result. Mean per-class recall averages over the classes present in the evaluated
labels, so a class absent from a split cannot drag the mean to zero.
"""
from __future__ import annotations

import statistics

import torch


def classification_metrics(scores, labels, num_classes: int | None = None) -> dict:
    """``scores`` [N, C] (any monotone score: logits, probabilities, similarities), ``labels`` [N].

    Tied scores rank the lower class index first, in top-1 and top-5 alike (so top-5 is never
    below top-1); a test with a hand-made confusion matrix pins the definitions.
    """
    scores = torch.as_tensor(scores, dtype=torch.float32)
    labels = torch.as_tensor(labels, dtype=torch.long)
    if scores.ndim != 2 or labels.ndim != 1 or scores.shape[0] != labels.shape[0]:
        raise ValueError(f"scores {list(scores.shape)} and labels {list(labels.shape)} do not match")
    n, c = scores.shape
    num_classes = int(num_classes or c)
    if n == 0:
        raise ValueError("no examples to score")
    pred = scores.argmax(dim=1)
    correct = pred == labels
    out = {"top1": 100.0 * correct.float().mean().item()}
    if num_classes >= 5:
        top5 = scores.argsort(dim=1, descending=True, stable=True)[:, :5]  # topk's tie order is unspecified
        out["top5"] = 100.0 * (top5 == labels[:, None]).any(dim=1).float().mean().item()
    recalls = []
    for k in labels.unique().tolist():
        mask = labels == k
        recalls.append(correct[mask].float().mean().item())
    out["mean_per_class_recall"] = 100.0 * sum(recalls) / len(recalls)
    return out


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value), as k-shot tables report."""
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return mean, std
