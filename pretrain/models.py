"""Trainable models: the SuperClass ViT (tower + classification head) and the CLIP baseline.

Both share the vision tower (``sc_eval.models.vit.create_vit``: a timm ViT built like open_clip's,
SDPA attention, mean over patch tokens after the final norm) so SuperClass-vs-CLIP runs differ
only in the objective. State-dict names follow the checkpoint contract: the tower under
``visual.``, the SuperClass head (or CLIP's image projection) under ``head.``, CLIP's text tower
and projection under ``text.``, and ``logit_scale``.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from open_clip.loss import ClipLoss
from torch import nn

from sc_eval.models.lean import lean_blocks
from sc_eval.models.text import TextTower
from sc_eval.models.vit import create_vit

# Text towers for the CLIP baseline, keyed by the vision width (open_clip's pairings for
# S/B/L; the tiny ones mirror the vision tower so a laptop run stays balanced).
TEXT_DEFAULTS = {32: (32, 2, 2), 128: (128, 4, 4), 384: (384, 12, 6), 768: (512, 12, 8), 1024: (768, 12, 12)}
EMBED_DEFAULTS = {32: 32, 128: 128, 384: 384, 768: 512, 1024: 768}


class SuperClassHead(nn.Module):
    """LayerNorm(width) -> Linear(width, V); weight ~ N(0, width^-0.5), bias 0 (the official init)."""

    def __init__(self, width: int, vocab_size: int):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.fc = nn.Linear(width, vocab_size)
        nn.init.normal_(self.fc.weight, std=width ** -0.5)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x):
        return self.fc(self.norm(x))


class SuperClassModel(nn.Module):
    """images [B, 3, H, W] -> subword logits [B, V]."""

    objective = "superclass"

    def __init__(self, vit_cfg, vocab_size: int = 49408, lean: bool = True):
        super().__init__()

        self.visual = create_vit(vit_cfg)
        if lean:  # same maths and gradients, ~40% fewer saved activations (see sc_eval/models/lean.py)

            lean_blocks(self.visual)
        self.vit_cfg = self.visual.sc_config
        width = self.vit_cfg["width"]
        self.head = SuperClassHead(width, vocab_size)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.visual.set_grad_checkpointing(enable)

    def forward(self, images, token_ids=None):
        return self.head(self.visual(images))


class ClipModel(nn.Module):
    """The CLIP baseline on the same tower: returns (image_features, text_features, scale)."""

    objective = "clip"

    def __init__(self, vit_cfg, vocab_size: int = 49408, eot_id: int | None = 49407, text_cfg=None,
                 lean: bool = True):
        super().__init__()

        self.visual = create_vit(vit_cfg)
        if lean:
            lean_blocks(self.visual)
        self.vit_cfg = self.visual.sc_config
        width = self.vit_cfg["width"]
        tw, tl, th = TEXT_DEFAULTS.get(width, (max(64, min(width, 512)), 4, max(1, min(width, 512) // 64)))
        embed = EMBED_DEFAULTS.get(width, min(width, 512))
        cfg = {"width": tw, "layers": tl, "heads": th, "embed_dim": embed, **(text_cfg or {})}
        self.text_cfg = cfg
        self.head = nn.Module()
        self.head.proj = nn.Linear(width, cfg["embed_dim"], bias=False)
        nn.init.normal_(self.head.proj.weight, std=width ** -0.5)
        self.text = TextTower(vocab_size, cfg["width"], cfg["layers"], cfg["heads"], cfg["embed_dim"], eot_id=eot_id)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.visual.set_grad_checkpointing(enable)
        self.text.grad_checkpointing = enable

    def forward(self, images, token_ids):
        img = F.normalize(self.head.proj(self.visual(images)), dim=-1)
        txt = F.normalize(self.text(token_ids), dim=-1)
        return img, txt, self.logit_scale.clamp(max=math.log(100)).exp()


def clip_criterion(rank: int = 0, world: int = 1) -> nn.Module:
    """The CLIP baseline's loss: open_clip's symmetric InfoNCE (``ClipLoss``). Under a process
    group, features are gathered from every rank WITH gradients and each rank scores its own
    rows against all columns (``local_loss + gather_with_grad``): DDP's gradient averaging then
    equals the full-batch loss. Called as ``criterion(image_features, text_features, scale)``."""
    return ClipLoss(local_loss=True, gather_with_grad=True, rank=rank, world_size=world)


def build_model(objective: str, vit_cfg, tokenizer, lean: bool = True):
    if objective == "clip":
        return ClipModel(vit_cfg, tokenizer.vocab_size, eot_id=tokenizer.eot_id, lean=lean)
    return SuperClassModel(vit_cfg, tokenizer.vocab_size, lean=lean)


def named_param_groups(model: nn.Module) -> tuple[list[str], list[str]]:
    """(decayed names, not-decayed names): the official recipe puts no decay on 1-D params
    (norms, biases, class token, scale). The order is the optimizer's parameter index order,
    which sharded (FSDP) checkpoints are converted to."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        # timm stores the class token as [1, 1, D]; open_clip's is 1-D and so never decayed.
        skip = p.ndim < 2 or name.endswith((".bias", "cls_token")) or "norm" in name or name == "logit_scale"
        (no_decay if skip else decay).append(name)
    return decay, no_decay


def param_groups(model: nn.Module, weight_decay: float):
    """AdamW groups as the official recipe (see ``named_param_groups``)."""
    params = dict(model.named_parameters())
    decay, no_decay = named_param_groups(model)
    return [{"params": [params[n] for n in decay], "weight_decay": weight_decay},
            {"params": [params[n] for n in no_decay], "weight_decay": 0.0}]
