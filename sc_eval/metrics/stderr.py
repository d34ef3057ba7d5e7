"""Standard errors: how far a score could move on another draw of the same number of questions.

A benchmark score is a mean over a sample of questions; its standard error is the sample
standard deviation of the per-question scores (n - 1 in the denominator) over sqrt(n), the
estimate lm-eval reports beside every mean metric. Two encoders measured on a few hundred
questions often differ by less than that, and a table without it invites reading noise as a
ranking.
"""
from __future__ import annotations

import math


def mean_stderr(values, scale: float = 100.0) -> float | None:
    """scale * stdev(values) / sqrt(n), or None for fewer than two values."""
    vals = [float(v) for v in values]
    n = len(vals)
    if n < 2:
        return None
    mean = sum(vals) / n
    var = sum((v - mean) ** 2 for v in vals) / (n - 1)
    return scale * math.sqrt(var / n)
