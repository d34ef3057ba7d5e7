"""Data orders that are pure functions of (seed, epoch): a run resumed at any step draws the
batches an uninterrupted one draws, whatever ran before in the process."""
from __future__ import annotations

import torch


def epoch_order(n: int, seed: int, epoch: int):
    """The permutation of ``range(n)`` for ``epoch`` of a run seeded ``seed`` (a LongTensor), from
    a generator of its own: the global random state is neither read nor changed."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
