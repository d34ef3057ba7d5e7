"""Vision tower configs: small JSON dicts (``configs/<name>.json``), and the timm arguments and
pretrained-config (preprocessing) they stand for. JSON only, no torch: ``sc-eval ls models`` and
``--model`` read these; ``vit`` builds the towers::

    {"image_size": 224, "patch_size": 16, "width": 768, "layers": 12, "heads": 12,
     "mlp_ratio": 4.0, "mean": [...], "std": [...], "interpolation": "bicubic"}
"""
from __future__ import annotations

import json
from pathlib import Path

from sc_eval.errors import ConfigError, did_you_mean

CONFIG_DIR = Path(__file__).parent / "configs"

# A timm CLIP ViT architecture: pre_norm=True and LayerNorm(eps=1e-5) come with it; every size
# argument is overridden by ``timm_model_args`` so the name's "base/16/224" means nothing here.
TIMM_ARCHITECTURE = "vit_base_patch16_clip_224"

REQUIRED_KEYS = ("image_size", "patch_size", "width", "layers", "heads")
DEFAULTS = {
    "mlp_ratio": 4.0,
    "mean": [0.48145466, 0.4578275, 0.40821073],  # OpenAI CLIP statistics, used by SuperClass
    "std": [0.26862954, 0.26130258, 0.27577711],
    "interpolation": "bicubic",
}


def list_models() -> list[str]:
    """Names of the bundled tower configs (reads the folder only)."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.json"))


def vit_config(name: str) -> dict:
    """The config dict of a bundled tower; unknown names raise ConfigError with a suggestion."""
    path = CONFIG_DIR / f"{name}.json"
    if not path.is_file():
        known = list_models()
        raise ConfigError(
            f"unknown vision model {name!r}{did_you_mean(name, known)}; known models: {', '.join(known)}"
        )
    with open(path, encoding="utf-8") as f:
        cfg = json.load(f)
    cfg = normalize_config(cfg, source=str(path))
    cfg.setdefault("name", name)
    return cfg


def normalize_config(cfg: dict, source: str = "config") -> dict:
    """Validate a tower config and fill optional keys, so every consumer sees the same fields."""
    if not isinstance(cfg, dict):
        raise ConfigError(f"{source}: a vision config must be a JSON object, got {type(cfg).__name__}")
    missing = [k for k in REQUIRED_KEYS if k not in cfg]
    if missing:
        raise ConfigError(f"{source}: vision config lacks {', '.join(missing)} (needs {', '.join(REQUIRED_KEYS)})")
    out = {**DEFAULTS, **cfg}
    for k in REQUIRED_KEYS:
        if not isinstance(out[k], int) or out[k] <= 0:
            raise ConfigError(f"{source}: {k} must be a positive integer, got {out[k]!r}")
    if out["width"] % out["heads"]:
        raise ConfigError(f"{source}: width {out['width']} is not divisible by heads {out['heads']}")
    if out["image_size"] % out["patch_size"]:
        raise ConfigError(f"{source}: image_size {out['image_size']} is not a multiple of patch_size {out['patch_size']}")
    out["mlp_ratio"] = float(out["mlp_ratio"])
    return out


def resolve_config(cfg_or_name) -> dict:
    """Accept a config name or a config dict."""
    if isinstance(cfg_or_name, str):
        return vit_config(cfg_or_name)
    return normalize_config(dict(cfg_or_name))


def num_patches(cfg: dict) -> int:
    return (cfg["image_size"] // cfg["patch_size"]) ** 2


def timm_model_args(cfg: dict) -> dict:
    """JSON-serialisable keyword arguments for ``timm.create_model(TIMM_ARCHITECTURE, ...)``.

    These are also written as ``model_args`` into exported ``config.json`` files, so timm's
    ``local-dir:`` loader rebuilds exactly this tower.
    """
    return {
        "img_size": cfg["image_size"],
        "patch_size": cfg["patch_size"],
        "embed_dim": cfg["width"],
        "depth": cfg["layers"],
        "num_heads": cfg["heads"],
        "mlp_ratio": cfg["mlp_ratio"],
        "class_token": True,
        "pre_norm": True,  # ln_pre, and no bias on the patch conv
        "global_pool": "avg",  # mean over patch tokens only (prefix tokens skipped)
        "fc_norm": False,  # so the final norm is applied to every token before pooling
        "num_classes": 0,  # no projection, no head
    }


def timm_pretrained_cfg(cfg: dict) -> dict:
    """The preprocessing part of a timm pretrained_cfg (crop_pct 1.0: resize short side, crop)."""
    return {
        "input_size": [3, cfg["image_size"], cfg["image_size"]],
        "mean": list(cfg["mean"]),
        "std": list(cfg["std"]),
        "interpolation": cfg["interpolation"],
        "crop_pct": 1.0,
        "crop_mode": "center",
        "num_classes": 0,
        "fixed_input_size": True,
    }
