"""The text tower of the CLIP baseline and of LiT: CLIP's causal text transformer.

Pre-LN blocks with ``F.scaled_dot_product_attention`` (causal) and the memory-lean Functions of
:mod:`sc_eval.models.lean` (the same maths as LayerNorm -> Linear, GELU -> Linear and
merge-heads -> Linear, without saving what is cheap to recompute); open_clip's scaled
initialisation; the feature is the projected output at the end-of-text token.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from sc_eval.models.lean import gelu_linear, heads_linear, norm_linear, split_heads


class TextBlock(nn.Module):
    """Pre-LN causal transformer block."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.ln_1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def forward(self, x):
        q, k, v = split_heads(norm_linear(x, self.ln_1, self.qkv), self.heads)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + heads_linear(a, self.out)
        return x + gelu_linear(norm_linear(x, self.ln_2, self.mlp[0]), self.mlp[2])


class TextTower(nn.Module):
    """token ids [B, L] -> text features [B, embed_dim]: the output at the first ``eot_id`` of
    each row (the last position when a row has none, or when ``eot_id`` is None)."""

    def __init__(self, vocab_size: int, width: int, layers: int, heads: int, embed_dim: int,
                 context_length: int = 77, eot_id: int | None = 49407):
        super().__init__()
        self.eot_id = eot_id
        self.grad_checkpointing = False
        self.token_embedding = nn.Embedding(vocab_size, width)
        self.positional_embedding = nn.Parameter(torch.empty(context_length, width))
        self.blocks = nn.ModuleList(TextBlock(width, heads) for _ in range(layers))
        self.ln_final = nn.LayerNorm(width)
        self.proj = nn.Linear(width, embed_dim, bias=False)
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)
        for blk in self.blocks:  # open_clip's scaled init
            nn.init.normal_(blk.qkv.weight, std=width ** -0.5)
            nn.init.normal_(blk.out.weight, std=(width ** -0.5) * (2 * layers) ** -0.5)
            nn.init.normal_(blk.mlp[0].weight, std=(2 * width) ** -0.5)
            nn.init.normal_(blk.mlp[2].weight, std=(width ** -0.5) * (2 * layers) ** -0.5)
        nn.init.normal_(self.proj.weight, std=width ** -0.5)

    def forward(self, ids):
        x = self.token_embedding(ids) + self.positional_embedding[: ids.shape[1]]
        for blk in self.blocks:
            x = checkpoint(blk, x, use_reentrant=False) if self.grad_checkpointing and self.training else blk(x)
        x = self.ln_final(x)
        if self.eot_id is not None:
            is_eot = ids == self.eot_id
            pos = torch.where(is_eot.any(1), is_eot.int().argmax(1), torch.full_like(ids[:, 0], ids.shape[1] - 1))
        else:
            pos = torch.full_like(ids[:, 0], ids.shape[1] - 1)
        return self.proj(x[torch.arange(ids.shape[0], device=ids.device), pos])
