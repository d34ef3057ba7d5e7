"""Data-parallel wrapping for the pretraining loop: DDP (default) or FSDP for large towers.

Why both: DDP keeps a full copy of the weights, gradients and AdamW moments on every process,
which is what a ViT-B needs and the fastest choice; a ViT-L SuperClass model (303M tower + 51M
head) with fp32 AdamW states is ~5.7 GB before activations, so on many GPUs it pays to shard
weights, gradients and optimizer states across ranks. ``--strategy fsdp`` uses FSDP2
(``torch.distributed.fsdp.fully_shard``), one unit per transformer block plus the root (the
patch embedding, norms, SuperClass head or CLIP text embedding), so only a block or two hold
full weights at any time. 0-d parameters (CLIP's logit_scale) cannot be sharded: they stay
replicated and their gradients are averaged explicitly. It runs on gloo (CPU) as well as NCCL, which is how the
tests check it.

Checkpoints stay in ONE format whatever the strategy: ``full_model_state`` gathers the full
state dict on rank 0 and ``full_optimizer_state`` converts FSDP's name-keyed optimizer state
into torch's usual index-keyed layout (index = position in the AdamW param groups), so a run
may be resumed with another strategy or number of processes, and export is unchanged.
"""
from __future__ import annotations

import contextlib

import torch.distributed as dist
from torch.distributed.checkpoint.state_dict import (StateDictOptions, get_model_state_dict, get_optimizer_state_dict,
                                                     set_optimizer_state_dict)
from torch.distributed.fsdp import fully_shard
from torch.nn.parallel import DistributedDataParallel as DDP

STRATEGIES = ("ddp", "fsdp")


def shard_units(model):
    """The transformer blocks that become their own FSDP units (vision tower, CLIP text tower)."""
    units = list(getattr(model.visual, "blocks", []))
    text = getattr(model, "text", None)
    if text is not None:
        units += list(getattr(text, "blocks", []))
    return units


def wrap(model, strategy: str, device, world: int):
    """Wrap ``model`` for ``world`` processes; returns the module to call (the same object for
    FSDP, whose parameters become sharded DTensors in place)."""
    if world <= 1:
        return model
    if strategy == "fsdp":
        for block in shard_units(model):
            fully_shard(block)
        # FSDP2 cannot shard 0-d parameters (CLIP's logit_scale): they stay replicated and
        # their gradients are averaged by ``reduce_replicated_grads`` before each step.
        scalars = [p for p in model.parameters() if p.ndim == 0]
        fully_shard(model, ignored_params=set(scalars) or None)
        model._sc_replicated = scalars
        return model

    return DDP(model, device_ids=[device.index] if device.type == "cuda" else None)


def reduce_replicated_grads(model, world: int) -> None:
    """Average over ranks the gradients of the parameters FSDP left replicated (DDP's job for
    every other parameter is done by FSDP's reduce-scatter)."""
    params = getattr(model, "_sc_replicated", None)
    if not params or world <= 1:
        return

    for p in params:
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad.div_(world)


def is_sharded(model) -> bool:
    return any(type(p).__name__ == "DTensor" for p in model.parameters())


def no_sync(model, skip_sync: bool):
    """Skip the gradient all-reduce / reduce-scatter on accumulation micro-steps."""
    if not skip_sync:
        return contextlib.nullcontext()
    if hasattr(model, "no_sync"):  # DDP
        return model.no_sync()
    if hasattr(model, "set_requires_gradient_sync"):  # FSDP2

        @contextlib.contextmanager
        def _off():
            model.set_requires_gradient_sync(False)
            try:
                yield
            finally:
                model.set_requires_gradient_sync(True)
        return _off()
    return contextlib.nullcontext()


def full_tensor(t):
    """A plain tensor from a parameter that may be a sharded DTensor (a collective under FSDP)."""
    return t.full_tensor() if hasattr(t, "full_tensor") else t


def _options():
    return StateDictOptions(full_state_dict=True, cpu_offload=True)


def full_model_state(model) -> dict:
    """The unsharded state dict (on rank 0; other ranks get {} under FSDP). Collective when
    sharded: every rank must call it."""
    if not is_sharded(model):
        return model.state_dict()

    return get_model_state_dict(model, options=_options())


def full_optimizer_state(model, optimizer, group_names) -> dict:
    """torch's index-keyed optimizer state dict, gathered from shards when FSDP is on.

    ``group_names``: the parameter names of each AdamW group, in order (``named_param_groups``).
    """
    if not is_sharded(model):
        return optimizer.state_dict()

    named = get_optimizer_state_dict(model, optimizer, options=_options())
    if not named:  # ranks other than 0
        return {}
    index = {name: i for i, name in enumerate(n for group in group_names for n in group)}
    groups = []
    for g in named["param_groups"]:
        groups.append({**g, "params": [index[n] for n in g["params"]]})
    return {"state": {index[n]: s for n, s in named["state"].items()}, "param_groups": groups}


def load_optimizer_state(model, optimizer, state: dict, group_names) -> None:
    """Load an index-keyed (full) optimizer state dict, resharding it when FSDP is on."""
    if not is_sharded(model):
        optimizer.load_state_dict(state)
        return

    names = [n for group in group_names for n in group]
    groups = [{**g, "params": [names[i] for i in g["params"]]} for g in state["param_groups"]]
    named = {"state": {names[int(i)]: s for i, s in state["state"].items()}, "param_groups": groups}
    set_optimizer_state_dict(model, optimizer, named, options=StateDictOptions(full_state_dict=True))
