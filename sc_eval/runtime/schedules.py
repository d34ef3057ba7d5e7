"""Learning-rate schedules: the multipliers of the base learning rate that every training loop
of this project hands to ``torch.optim.lr_scheduler.LambdaLR``.

Both warm up linearly from ``lr / warmup`` (step 0 already trains, at ``(0 + 1) / warmup`` of the
peak) and reach the peak at step ``warmup - 1``; transformers' ``get_*_schedule_with_warmup``
start from 0 instead, which would move every run's first step. The returned functions are plain
closures, so ``LambdaLR.state_dict()`` stores none of them: a checkpoint holds the step count only,
and a resumed run rebuilds the same schedule from its flags.
"""
from __future__ import annotations

import math
from typing import Callable


def _warm(step: int, warmup: int) -> float:
    return (step + 1) / warmup


def warmup_cosine(warmup: int, total: int, floor: float = 0.0) -> Callable[[int], float]:
    """Linear warm-up over ``warmup`` steps, then a half cosine from 1 down to ``floor`` at step
    ``total`` (held there after it)."""
    def factor(step: int) -> float:
        if step < warmup:
            return _warm(step, warmup)
        t = min(1.0, (step - warmup) / max(1, total - warmup))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))
    return factor


def warmup_linear(warmup: int, total: int) -> Callable[[int], float]:
    """Linear warm-up over ``warmup`` steps, then a straight line from 1 down to 0 at step
    ``total`` (held at 0 after it)."""
    def factor(step: int) -> float:
        if step < warmup:
            return _warm(step, warmup)
        return max(0.0, (total - step) / max(1, total - warmup))
    return factor
