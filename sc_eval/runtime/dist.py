"""torch.distributed helpers. torchrun sets RANK/WORLD_SIZE/LOCAL_RANK; one process needs none.

Nothing here creates a cluster: torchrun launches processes, we only join its process group.
"""
from __future__ import annotations

import os
import random

import numpy as np
import torch
import torch.distributed as dist


def world_size() -> int:
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def rank() -> int:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return 0


def is_main() -> bool:
    return rank() == 0


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1


def init_distributed(device: str = "cpu") -> bool:
    """Join torchrun's process group if launched by it (nccl on CUDA, gloo otherwise).

    Returns True when a group with more than one process exists.
    """
    if not launched_by_torchrun():
        return False
    if dist.is_initialized():
        return True
    backend = "nccl" if device.startswith("cuda") and torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group(backend=backend)
    return True


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def resolve_device(device: str | None) -> str:
    """'auto' (or None) -> cuda:LOCAL_RANK when available, else cpu."""
    if device in (None, "auto"):
        if torch.cuda.is_available():
            return f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
        return "cpu"
    return device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
