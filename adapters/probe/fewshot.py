"""k-shot classification (the paper's Table 2: 10-shot, mean and std over 3 seeds).

For each seed, the train split is shuffled with that seed and the first k examples of every
class are kept; a regularised logistic regression (``linear.fit_logreg``) is fitted on their
cached features and scored on the evaluation split. The fit itself is deterministic, so the
same seed gives identical numbers and different seeds differ only through the chosen shots.
"""
from __future__ import annotations

import logging

import torch

from sc_eval.adapters.probe import DEFAULT_FEWSHOT_WD
from sc_eval.adapters.probe.linear import fit_logreg
from sc_eval.errors import ConfigError
from sc_eval.metrics.classification import classification_metrics, mean_std
from sc_eval.metrics.stderr import mean_stderr

log = logging.getLogger(__name__)

# L2 strength for k-shot fits on standardised features. With 10 examples per class there is no
# room for a validation split; a fixed, fairly strong penalty is what keeps 10-shot fits stable.


def select_kshot(labels, k: int, seed: int, classes: list[str]) -> list[int]:
    """Indices of the first ``k`` examples per class after a ``seed``-ed shuffle, sorted.

    Raises ConfigError naming every class with fewer than ``k`` examples (and its count).
    """
    if k < 1:
        raise ConfigError(f"--shots must be at least 1 (got {k})")
    labels = torch.as_tensor(labels, dtype=torch.long)
    counts = torch.bincount(labels, minlength=len(classes)).tolist()
    short = [(classes[c], n) for c, n in enumerate(counts) if n < k]
    if short:
        shown = ", ".join(f"{name!r} has {n}" for name, n in short[:5])
        more = f" (+{len(short) - 5} more)" if len(short) > 5 else ""
        raise ConfigError(f"--shots {k}: {len(short)} class(es) of the train split have fewer than {k} "
                          f"examples: {shown}{more}; lower --shots to at most {min(counts)}")
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(int(seed))).tolist()
    taken = [0] * len(classes)
    chosen = []
    for i in order:
        c = int(labels[i])
        if taken[c] < k:
            taken[c] += 1
            chosen.append(i)
    return sorted(chosen)


def run_fewshot(train_x, train_y, test_x, test_y, classes: list[str], k: int, seeds,
                weight_decay: float = DEFAULT_FEWSHOT_WD) -> dict:
    """Fit and score one classifier per seed. Returns the results entry's ``metrics`` and
    ``per_seed`` (each seed's own metrics), means in percent and the sample std of top-1 over the
    seeds; ``stderr`` holds top-1's standard error over the test images (each image scored by
    the share of seeds that classify it right, ``share_right``), which the seeds' std does not
    cover; ``votes`` counts, per test image and class, the seeds that chose that class."""
    train_x = torch.as_tensor(train_x, dtype=torch.float32)
    train_y = torch.as_tensor(train_y, dtype=torch.long)
    per_seed, right = [], torch.zeros(len(test_y))
    votes = torch.zeros(len(test_y), len(classes))
    test_y = torch.as_tensor(test_y, dtype=torch.long)
    for seed in seeds:
        idx = torch.tensor(select_kshot(train_y, k, seed, classes))
        model = fit_logreg(train_x[idx], train_y[idx], len(classes), weight_decay)
        scores = model.scores(test_x)
        right += (scores.argmax(1) == test_y).float()
        votes[torch.arange(len(test_y)), scores.argmax(1)] += 1
        m = classification_metrics(scores, test_y, len(classes))
        log.info("%d-shot seed %d: top1 %.2f", k, seed, m["top1"])
        per_seed.append({"seed": int(seed), **m})
    metrics = {}
    for name in per_seed[0]:
        if name == "seed":
            continue
        mean, std = mean_std([r[name] for r in per_seed])
        metrics[name] = mean
        if name == "top1":
            metrics["top1_std"] = std
    share = (right / len(per_seed)).tolist()
    se = mean_stderr(share)
    return {"metrics": metrics, "per_seed": per_seed, "weight_decay": weight_decay,
            "stderr": {"top1": se} if se is not None else {}, "votes": votes.tolist(), "share_right": share}
