"""ClipCap mappers: one pooled image feature -> K embeddings in the language model's input space.

Two designs from the ClipCap paper (arXiv 2111.09734):

- ``mlp``: Linear(D, H*K/2) -> Tanh -> Linear(H*K/2, H*K), reshaped to K tokens. The paper
  pairs it with a fine-tuned GPT-2 (the LM can adapt to a crude prefix).
- ``transformer``: Linear(D, C*H) makes C "clip" tokens, K learned constant tokens are appended,
  a pre-LN transformer (8 layers, 8 heads, MLP ratio 2) mixes them and the last K positions are the
  prefix. The paper pairs it with a frozen GPT-2; it is the setting SuperClass reported.

``MapperConfig`` is what the adapter directory's config.json records, so a saved mapper rebuilds
without the command line that trained it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
from torch import nn

from sc_eval.errors import ConfigError

MAPPERS = ("transformer", "mlp")


@dataclass
class MapperConfig:
    kind: str = "transformer"       # transformer (LM frozen) | mlp (LM fine-tuned)
    input_width: int = 768          # the encoder's pooled width
    lm_width: int = 768             # the LM's embedding width (GPT-2 small: 768)
    prefix_length: int = 40         # K: prefix tokens given to the LM (reference: 40 transformer, 10 mlp)
    clip_length: int = 40           # C: tokens made from the feature (transformer only)
    num_layers: int = 8             # transformer mapper depth (reference: 8)
    num_heads: int = 8              # reference: 8; must divide lm_width
    mlp_ratio: float = 2.0          # reference: 2
    normalize_prefix: bool = True   # L2-normalise the feature, identically in training and inference

    def __post_init__(self):
        if self.kind not in MAPPERS:
            raise ConfigError(f"unknown mapper {self.kind!r}: choose one of {', '.join(MAPPERS)}")
        if self.prefix_length < 1 or self.clip_length < 1:
            raise ConfigError(f"prefix length ({self.prefix_length}) and clip length "
                              f"({self.clip_length}) must be >= 1")
        if self.kind == "transformer" and self.lm_width % self.num_heads:
            raise ConfigError(f"mapper heads ({self.num_heads}) must divide the LM width "
                              f"({self.lm_width}); pass a different number of heads")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "MapperConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


class MLPMapper(nn.Module):
    def __init__(self, cfg: MapperConfig):
        super().__init__()
        self.cfg = cfg
        hidden = cfg.lm_width * cfg.prefix_length // 2
        self.net = nn.Sequential(
            nn.Linear(cfg.input_width, hidden),
            nn.Tanh(),
            nn.Linear(hidden, cfg.lm_width * cfg.prefix_length),
        )

    def forward(self, x):
        return self.net(x).view(x.shape[0], self.cfg.prefix_length, self.cfg.lm_width)


class Block(nn.Module):
    """Pre-LN self-attention block; no mask: every clip token sees every prefix token."""

    def __init__(self, cfg: MapperConfig):
        super().__init__()
        w = cfg.lm_width
        self.ln_1 = nn.LayerNorm(w)
        self.attn = nn.MultiheadAttention(w, cfg.num_heads, batch_first=True)
        self.ln_2 = nn.LayerNorm(w)
        hidden = int(w * cfg.mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(w, hidden), nn.ReLU(), nn.Linear(hidden, w))

    def forward(self, x):
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class TransformerMapper(nn.Module):
    def __init__(self, cfg: MapperConfig):
        super().__init__()
        self.cfg = cfg
        self.linear = nn.Linear(cfg.input_width, cfg.clip_length * cfg.lm_width)
        # The learned constant tokens the transformer writes the prefix into.
        self.prefix_const = nn.Parameter(torch.randn(cfg.prefix_length, cfg.lm_width))
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.num_layers))

    def forward(self, x):
        b, cfg = x.shape[0], self.cfg
        clip = self.linear(x).view(b, cfg.clip_length, cfg.lm_width)
        h = torch.cat([clip, self.prefix_const.unsqueeze(0).expand(b, -1, -1)], dim=1)
        for blk in self.blocks:
            h = blk(h)
        return h[:, cfg.clip_length:]


def build_mapper(cfg: MapperConfig):
    """The nn.Module for ``cfg``."""
    return MLPMapper(cfg) if cfg.kind == "mlp" else TransformerMapper(cfg)


def normalize_features(x, enabled: bool):
    """The one prefix normalisation used by training and decoding alike (the reference used it
    at inference only, so its trained mapper saw a different input scale than at test time)."""
    if not enabled:
        return x
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-6)
