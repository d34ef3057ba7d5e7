"""The SuperClass / open_clip vision tower, built as a timm ``VisionTransformer``.

Why timm: its ViT already has every switch the official tower needs (``pre_norm`` gives the
bias-free patch conv and ``ln_pre``; ``global_pool='avg'`` averages the patch tokens only,
after the final norm), and it gives us ``forward_intermediates`` for LLaVA-style penultimate
tokens, SDPA attention, gradient checkpointing and ``local-dir:`` loading for free. Building
through one registered timm architecture (``TIMM_ARCHITECTURE``) with explicit keyword
arguments means the tower we train, the tower we export and the tower timm re-creates from an
exported ``config.json`` are the same object, down to LayerNorm's eps (1e-5, as open_clip).
The configs themselves are ``configs``'s.
"""
from __future__ import annotations

import timm
import torch

from sc_eval.models.configs import TIMM_ARCHITECTURE, resolve_config, timm_model_args, timm_pretrained_cfg


def create_vit(cfg_or_name, **overrides):
    """A randomly initialised tower (timm ``VisionTransformer``) for a config dict or name.

    ``overrides`` go to timm (e.g. ``drop_path_rate``); they must not change the layout.
    """
    cfg = resolve_config(cfg_or_name)
    args = {**timm_model_args(cfg), **overrides}
    model = timm.create_model(
        TIMM_ARCHITECTURE,
        pretrained=False,
        pretrained_cfg_overlay=timm_pretrained_cfg(cfg),
        **args,
    )
    model.sc_config = cfg
    return model


def _meta_vit(cfg_or_name):
    """The tower on the meta device (no memory, no random init), or None where timm cannot
    build it there: releases that read a tensor's value while building a ViT (its drop-path
    schedule) fail on the meta device, and are then built for real instead."""
    try:
        with torch.device("meta"):
            return create_vit(cfg_or_name)
    except (RuntimeError, NotImplementedError) as e:
        if "meta" not in str(e):
            raise
        return None


def create_vit_for_loading(cfg_or_name):
    """A CPU tower whose weights are about to be overwritten by a checkpoint: uninitialised
    storage where timm builds on the meta device (no wasted random init), else a plain tower
    whose random init leaves the caller's random state as it was."""
    model = _meta_vit(cfg_or_name)
    if model is not None:
        return model.to_empty(device="cpu")
    with torch.random.fork_rng(devices=[]):
        return create_vit(cfg_or_name)


def count_params(cfg_or_name) -> int:
    """Tower parameter count, built on the meta device where timm can (no memory, fast even for
    ViT-L)."""
    model = _meta_vit(cfg_or_name)
    if model is None:
        model = create_vit(cfg_or_name)
    return sum(p.numel() for p in model.parameters())
