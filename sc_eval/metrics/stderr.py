"""Standard errors: how far a score could move on another draw of the same number of questions.

A benchmark score is a mean over a sample of questions; its standard error is the sample
standard deviation of the per-question scores (n - 1 in the denominator) over sqrt(n), the
estimate lm-eval reports beside every mean metric. Two encoders measured on a few hundred
questions often differ by less than that, and a table without it invites reading noise as a
ranking.
"""
from __future__ import annotations

import itertools
import math

import numpy as np


def mean_stderr(values, scale: float = 100.0) -> float | None:
    """scale * stdev(values) / sqrt(n), or None for fewer than two values or a non-finite one."""
    vals = [float(v) for v in values]
    n = len(vals)
    if n < 2 or not all(math.isfinite(v) for v in vals):
        return None
    mean = sum(vals) / n
    var = sum((v - mean) ** 2 for v in vals) / (n - 1)
    return scale * math.sqrt(var / n)


def clustered_mean_stderr(values, clusters, scale: float = 100.0) -> float | None:
    """Standard error of the mean of ``values`` when rows of one cluster are not independent draws
    (MMBench's rotated copies of one question): the cluster-robust estimate, ``scale`` x
    sqrt(G / (G - 1) x sum over clusters of (cluster sum - its size x mean)^2) / n, over G
    clusters. With every row its own cluster it is :func:`mean_stderr`. None for fewer than two
    clusters."""
    vals = [float(v) for v in values]
    keys = list(clusters)
    if len(keys) != len(vals):
        raise ValueError("clustered_mean_stderr: one cluster key per value")
    if not vals or not all(math.isfinite(v) for v in vals):
        return None
    sums: dict = {}
    sizes: dict = {}
    for k, v in zip(keys, vals):
        sums[k] = sums.get(k, 0.0) + v
        sizes[k] = sizes.get(k, 0) + 1
    g, n = len(sums), len(vals)
    if g < 2:
        return None
    mean = sum(vals) / n
    spread = sum((sums[k] - sizes[k] * mean) ** 2 for k in sums)
    return scale * math.sqrt(g / (g - 1) * spread) / n


def paired_p_value(diffs, iters: int = 20000, seed: int = 0) -> float:
    """Two-sided p-value that paired differences (one per question, run A minus run B) have mean
    zero, by the sign-flip permutation test: under "no difference" each question's difference is
    as likely to have the other sign. Questions both runs scored alike carry no information.

    Exact (every sign pattern) for up to 16 differing questions, which is where a normal
    approximation misleads (7 wins to 1 reads as significant at 95% on 150 questions, p = 0.07);
    ``iters`` seeded random patterns up to 2,000; beyond that the normal approximation, which
    the central limit theorem makes accurate there.
    """
    d = [float(x) for x in diffs]
    if not all(math.isfinite(x) for x in d):
        raise ValueError("paired_p_value: the differences must be finite numbers")
    d = [x for x in d if x != 0]
    m = len(d)
    if m == 0:
        return 1.0
    obs = abs(sum(d)) - 1e-9 * sum(abs(x) for x in d)  # ties count as at least as extreme
    if m <= 16:
        hits = sum(1 for signs in itertools.product((1, -1), repeat=m)
                   if abs(sum(s * x for s, x in zip(signs, d))) >= obs)
        return hits / 2 ** m
    if m <= 2000:
        rng = np.random.default_rng(seed)
        x, hits = np.array(d), 0
        for start in range(0, iters, 1000):  # in chunks: at most 1000 x 2000 signs at a time
            signs = rng.integers(0, 2, size=(min(1000, iters - start), m), dtype=np.int8) * 2 - 1
            hits += int((np.abs(signs @ x) >= obs).sum())
        return (hits + 1) / (iters + 1)
    z = abs(sum(d)) / math.sqrt(sum(x * x for x in d))  # the sum's spread under random signs
    return math.erfc(z / math.sqrt(2))
