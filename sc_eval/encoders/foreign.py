"""Towers from other libraries, for side-by-side comparison: ``timm:``, ``open_clip:``,
``hf:`` and ``random:`` specs.

Nothing here downloads: timm weights load only from a file the user names
(``timm:NAME@/path/weights.safetensors``) or from the local Hugging Face cache; open_clip
weights only from ``open_clip:NAME@/path``; HF models only from a local directory. Every
random initialisation is seeded (seed 0) so that an untrained baseline is reproducible and its
fingerprint stable.
"""
from __future__ import annotations

import logging
from pathlib import Path

from sc_eval.errors import CheckpointError, ConfigError, MissingDependencyError

log = logging.getLogger(__name__)

RANDOM_SEED = 0


def _split_weights(name: str, spec: str) -> tuple[str, Path | None]:
    if "@" not in name:
        return name, None
    name, weights = name.split("@", 1)
    path = Path(weights).expanduser()
    if not path.is_file():
        raise ConfigError(f"{spec}: weights file {path} not found")
    return name, path


def _load_weights_file(path: Path) -> dict:
    import torch

    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any reader failure is a corrupt/foreign file to the user
        raise CheckpointError(f"{path}: cannot read weights ({str(e).splitlines()[0]})") from None
    for key in ("state_dict", "model", "module"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a state dict of tensors")
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in obj.items()}


def _timm_encoder(model, spec: str, device, kind: str):
    from sc_eval.encoders.base import TimmEncoder, fingerprint_state

    cfg = dict(getattr(model, "pretrained_cfg", {}) or {})
    input_size = cfg.get("input_size", (3, 224, 224))
    image_size = int(input_size[-1])
    pe = getattr(model, "patch_embed", None)
    patch = pe.patch_size[0] if pe is not None and hasattr(pe, "patch_size") else None
    n_patches = getattr(pe, "num_patches", None) if pe is not None else None
    mean = cfg.get("mean", (0.485, 0.456, 0.406))
    std = cfg.get("std", (0.229, 0.224, 0.225))
    interp = cfg.get("interpolation", "bicubic") or "bicubic"
    meta = {"arch": "timm", "name": cfg.get("architecture"), "mean": list(mean), "std": list(std),
            "input_size": list(input_size), "interpolation": interp}
    enc = TimmEncoder(
        model, spec=spec, kind=kind, width=model.num_features, image_size=image_size, patch_size=patch,
        num_patches=n_patches, mean=mean, std=std, interpolation=interp,
        fingerprint=fingerprint_state(model.state_dict(), meta), config=meta,
    )
    return enc.to(device)


def _cached_timm_weights(name: str) -> str | None:
    """Path of ``name``'s weights if they already sit in the local HF cache (never downloads)."""
    try:
        from huggingface_hub import try_to_load_from_cache
        from timm.models import get_pretrained_cfg

        pcfg = get_pretrained_cfg(name)
    except Exception:  # noqa: BLE001 - no cfg, no hub: simply no cached weights
        return None
    repo = getattr(pcfg, "hf_hub_id", None) if pcfg is not None else None
    if not repo:
        return None
    for fname in ("model.safetensors", "open_clip_model.safetensors", "pytorch_model.bin"):
        found = try_to_load_from_cache(repo, fname)
        if isinstance(found, str):
            return found
    return None


def _check_timm_name(name: str, spec: str) -> None:
    import timm

    base = name.split(".")[0]
    if not timm.is_model(base):
        from sc_eval.errors import did_you_mean

        raise ConfigError(f"{spec}: unknown timm model {base!r}{did_you_mean(base, timm.list_models())}")


def load_timm(name: str, spec: str, device="cpu"):
    """``timm:NAME[@weights]``: local weights if given or cached; neither is an error (random:NAME is the
    explicit random tower)."""
    import timm

    name, weights = _split_weights(name, spec)
    _check_timm_name(name, spec)
    from sc_eval.encoders.base import seeded

    with seeded(RANDOM_SEED):
        model = timm.create_model(name, pretrained=False, num_classes=0)
    if weights is not None:
        state = _load_weights_file(weights)
        try:
            from timm.models import vision_transformer as vt

            if isinstance(model, vt.VisionTransformer):
                state = vt.checkpoint_filter_fn(state, model)
        except Exception:  # noqa: BLE001 - keep the raw state; the key check below explains mismatches
            pass
        state = {k: v for k, v in state.items() if not k.startswith(("head.", "fc.", "classifier."))}
        from sc_eval.encoders.base import check_state_dict

        check_state_dict(model, state, str(weights))
        model.load_state_dict(state, strict=True)
    else:
        cached = _cached_timm_weights(name)
        if cached:
            with seeded(RANDOM_SEED):
                model = timm.create_model(name, pretrained=True, num_classes=0,
                                          pretrained_cfg_overlay={"file": cached})
        else:
            # A silently random tower would be scored as if pretrained: refuse, say how to proceed.
            raise CheckpointError(f"{spec}: no local weights for timm model {name!r} (nothing is downloaded); "
                                  f"pass timm:{name}@/path/weights.safetensors (or .bin/.pth), put them in the "
                                  f"Hugging Face cache, or use random:{name} for a random-init tower")
    return _timm_encoder(model, spec, device, kind="timm")


def load_random(name: str, spec: str, device="cpu"):
    """``random:NAME``: an sc-eval vit config or a timm model name, seeded random init."""
    from sc_eval.models import list_models

    if name in list_models():
        from sc_eval.encoders.base import seeded
        from sc_eval.encoders.superclass import wrap_sc_vit
        from sc_eval.models import create_vit, vit_config

        cfg = vit_config(name)
        with seeded(RANDOM_SEED):
            model = create_vit(cfg)
        return wrap_sc_vit(model, cfg, spec=spec, kind="random", device=device)
    import timm

    from sc_eval.encoders.base import seeded

    if not timm.is_model(name):
        from sc_eval.errors import did_you_mean

        raise ConfigError(f"{spec}: {name!r} is neither an sc-eval model ({', '.join(list_models())}) nor a timm "
                          f"model{did_you_mean(name, list(list_models()) + timm.list_models())}")
    with seeded(RANDOM_SEED):
        model = timm.create_model(name, pretrained=False, num_classes=0)
    return _timm_encoder(model, spec, device, kind="random")


def load_open_clip(name: str, spec: str, device="cpu"):
    """``open_clip:NAME[@weights]``: the visual tower, its contrastive projection removed."""
    try:
        import open_clip
    except ImportError:
        raise MissingDependencyError(f"{spec}: open_clip is not installed; pip install open-clip-torch") from None
    from sc_eval.encoders.base import OpenClipEncoder, fingerprint_state, seeded

    name, weights = _split_weights(name, spec)
    if name not in open_clip.list_models():
        from sc_eval.errors import did_you_mean

        raise ConfigError(f"{spec}: unknown open_clip model {name!r}{did_you_mean(name, open_clip.list_models())}")
    with seeded(RANDOM_SEED):
        try:
            model = open_clip.create_model(name, pretrained=str(weights) if weights else None)
        except RuntimeError as e:
            raise CheckpointError(f"{spec}: cannot load {weights}: {str(e).splitlines()[0]}") from None
    visual = model.visual
    pre = open_clip.get_model_preprocess_cfg(model)
    del model
    if getattr(visual, "proj", None) is not None:
        visual.proj = None  # pooled features in the tower's own width, like CLIPVisionModel's
    size = pre.get("size", getattr(visual, "image_size", 224))
    size = int(size[0] if isinstance(size, (tuple, list)) else size)
    patch = getattr(visual, "patch_size", None)
    patch = int(patch[0]) if isinstance(patch, (tuple, list)) else patch
    grid = getattr(visual, "grid_size", None)
    n_patches = int(grid[0] * grid[1]) if grid else None
    width = getattr(getattr(visual, "transformer", None), "width", None) or getattr(visual, "output_dim")
    interp = pre.get("interpolation", "bicubic")
    meta = {"arch": "open_clip", "name": name, "mean": list(pre.get("mean", ())), "std": list(pre.get("std", ())),
            "size": size, "interpolation": interp}
    enc = OpenClipEncoder(
        visual, spec=spec, kind="open_clip", width=width, image_size=size, patch_size=patch, num_patches=n_patches,
        mean=pre["mean"], std=pre["std"], interpolation=interp,
        fingerprint=fingerprint_state(visual.state_dict(), meta), config=meta,
    )
    if weights is None:
        log.warning("%s: no weights given (open_clip:%s@/path/weights); using RANDOM init", spec, name)
    return enc.to(device)


def load_hf(directory: str, spec: str, device="cpu"):
    """``hf:DIR``: a transformers CLIP vision tower from a local directory (never the hub)."""
    from sc_eval.encoders.base import HFClipEncoder, fingerprint_state

    path = Path(directory).expanduser()
    if not (path / "config.json").is_file():
        raise ConfigError(f"{spec}: {path} is not a Hugging Face model directory (no config.json); "
                          "download the model first and pass its local folder")
    from transformers import CLIPVisionModel

    try:
        model = CLIPVisionModel.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError, KeyError) as e:
        raise CheckpointError(f"{spec}: cannot load a CLIPVisionModel from {path} ({str(e).splitlines()[0]})") from None
    c = model.config
    mean, std = [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]
    size, interp = c.image_size, "bicubic"
    pre_path = path / "preprocessor_config.json"
    if pre_path.is_file():
        from sc_eval.io import read_json

        pre = read_json(pre_path)
        mean, std = pre.get("image_mean", mean), pre.get("image_std", std)
        crop = pre.get("crop_size", size)
        size = int(crop.get("height", size) if isinstance(crop, dict) else crop)
        interp = {0: "nearest", 2: "bilinear", 3: "bicubic"}.get(pre.get("resample", 3), "bicubic")
    meta = {"arch": "hf-clip", "config": c.to_dict(), "mean": list(mean), "std": list(std), "size": size,
            "interpolation": interp}
    meta["config"].pop("_name_or_path", None)
    meta["config"].pop("transformers_version", None)
    enc = HFClipEncoder(
        model, spec=spec, kind="hf", width=c.hidden_size, image_size=size, patch_size=c.patch_size,
        num_patches=(c.image_size // c.patch_size) ** 2, mean=mean, std=std, interpolation=interp,
        fingerprint=fingerprint_state(model.state_dict(), meta), config=meta,
    )
    return enc.to(device)
