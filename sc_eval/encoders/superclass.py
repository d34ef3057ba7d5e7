"""SuperClass towers: sc-eval encoder directories, pretraining runs, official x-cls checkpoints.

Three on-disk forms hold the same tower and all load into the timm model of
:func:`sc_eval.models.vit.create_vit`:

1. encoder directory (what sc-eval exports, and what timm's ``local-dir:`` reads)::

       config.json        {"architecture", "num_classes": 0, "num_features", "model_args",
                           "pretrained_cfg", "sc_eval": {"format_version", "vit", "source", ...}}
       model.safetensors  tower state dict in timm key names
       head.safetensors   optional SuperClass head: norm.{weight,bias}, fc.{weight,bias}

2. pretraining checkpoint ``<run>/checkpoints/step_<N>/`` (``model.safetensors`` with
   ``visual.*`` / ``head.*`` keys + ``config.json`` whose "model" is the vit config);
3. official x-cls/superclass ``epoch_K.pt`` (open_clip names under ``module.``) plus the
   open_clip model-config JSON it was trained with; converted by :func:`checkpoint_filter_fn`.
"""
from __future__ import annotations

import pickle
import re
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from sc_eval.encoders.base import Encoder, TimmEncoder, check_state_dict, fingerprint_state
from sc_eval.errors import CheckpointError, ConfigError, DataError
from sc_eval.io import atomic_directory, atomic_save_safetensors, atomic_write_json, read_json
from sc_eval.models import (TIMM_ARCHITECTURE, normalize_config, num_patches, resolve_config, timm_model_args,
                            timm_pretrained_cfg, vit_config)
from sc_eval.models.vit import create_vit_for_loading

FORMAT_VERSION = 1
HEAD_FILE = "head.safetensors"

# open_clip block names -> timm block names (inside ``visual.transformer.resblocks.<i>.``)
_BLOCK_RENAMES = (
    ("ln_1.", "norm1."),
    ("ln_2.", "norm2."),
    ("attn.in_proj_weight", "attn.qkv.weight"),
    ("attn.in_proj_bias", "attn.qkv.bias"),
    ("attn.out_proj.", "attn.proj."),
    ("mlp.c_fc.", "mlp.fc1."),
    ("mlp.c_proj.", "mlp.fc2."),
)
_HEAD_RENAMES = (("text_decoder.ln_mlp.", "norm."), ("text_decoder.text_projection.", "fc."))
# Online-IDF state buffers of the official model: kept with the head for inspection.
_IDF_BUFFERS = ("cap_fq", "num_samples")


def checkpoint_filter_fn(state_dict: dict) -> tuple[dict, dict]:
    """Convert an official SuperClass state dict (open_clip names, optional ``module.``) into
    ``(tower_state, head_state)`` in timm / sc-eval names. Pure: the input is not modified.

    Keys under ``visual.`` that have no timm counterpart (e.g. an attention pooler) are kept
    with their open_clip names so that loading reports them as unexpected instead of dropping
    them. ``visual.proj`` (unused by SuperClass, which pools before it) goes to the head state.
    """
    tower, head = {}, {}
    for key, value in state_dict.items():
        k = key[len("module."):] if key.startswith("module.") else key
        if k.startswith("visual."):
            k = k[len("visual."):]
            if k == "conv1.weight":
                tower["patch_embed.proj.weight"] = value
            elif k == "class_embedding":
                tower["cls_token"] = value.reshape(1, 1, -1)
            elif k == "positional_embedding":
                tower["pos_embed"] = value.unsqueeze(0) if value.ndim == 2 else value
            elif k.startswith("ln_pre."):
                tower["norm_pre." + k[len("ln_pre."):]] = value
            elif k.startswith("ln_post."):
                tower["norm." + k[len("ln_post."):]] = value
            elif k == "proj":
                # open_clip towers always carry a projection; SuperClass pools before it and never
                # uses it, so it is kept with the head for inspection, not loaded into the tower.
                head["visual_proj"] = value
            elif (m := re.match(r"transformer\.resblocks\.(\d+)\.(.+)$", k)):
                rest = m.group(2)
                for old, new in _BLOCK_RENAMES:
                    if rest.startswith(old):
                        rest = new + rest[len(old):]
                        break
                tower[f"blocks.{m.group(1)}.{rest}"] = value
            else:
                tower[k] = value
            continue
        for old, new in _HEAD_RENAMES:
            if k.startswith(old):
                head[new + k[len(old):]] = value
                break
        else:
            if k in _IDF_BUFFERS:
                head[k] = value
    return tower, head


def vit_config_from_open_clip(model_cfg: dict, source: str) -> dict:
    """The sc-eval vit config equivalent to an open_clip model config's ``vision_cfg``."""
    vc = model_cfg.get("vision_cfg") if isinstance(model_cfg, dict) else None
    if not isinstance(vc, dict):
        raise ConfigError(f"{source}: not an open_clip model config (no 'vision_cfg' object)")
    if vc.get("timm_model_name") or isinstance(vc.get("layers"), (list, tuple)):
        raise ConfigError(f"{source}: only plain ViT towers are SuperClass towers (got a timm/ResNet vision_cfg)")
    width = vc.get("width", 768)
    head_width = vc.get("head_width", 64)
    cfg = {
        "image_size": vc.get("image_size", 224),
        "patch_size": vc.get("patch_size", 16),
        "width": width,
        "layers": vc.get("layers", 12),
        "heads": width // head_width,
        "mlp_ratio": vc.get("mlp_ratio", 4.0),
    }
    for ours, theirs in (("mean", "image_mean"), ("std", "image_std"), ("interpolation", "image_interpolation")):
        if vc.get(theirs) is not None:
            cfg[ours] = vc[theirs]
    return normalize_config(cfg, source=source)


def _resolve_official_config(config, ckpt: Path) -> dict:
    """``config`` for an official checkpoint: an open_clip JSON path or dict, or a vit config
    name/dict of sc-eval."""
    if config is None:
        raise ConfigError(
            f"{ckpt}: an official SuperClass checkpoint needs its model config: pass config=<open_clip "
            "model-config JSON> (e.g. ViT-B-16.json from the training code) or an sc-eval model name (vit-b-16)"
        )
    if isinstance(config, dict):
        if "vision_cfg" in config:
            return vit_config_from_open_clip(config, source=f"config for {ckpt.name}")
        return normalize_config(config, source=f"config for {ckpt.name}")
    path = Path(str(config))
    if path.suffix == ".json" or path.exists():
        if not path.is_file():
            raise ConfigError(f"{path}: model config file not found")
        data = read_json(path, error=ConfigError)
        if "vision_cfg" in data:
            return vit_config_from_open_clip(data, source=str(path))
        return normalize_config(data.get("model", data) if isinstance(data.get("model"), dict) else data, source=str(path))
    return vit_config(str(config))


# ----------------------------------------------------------------------------------------------
# building Encoders
# ----------------------------------------------------------------------------------------------

def build_head(head_state: dict | None):
    """LayerNorm(width) -> Linear(width, vocab) from ``norm.*``/``fc.*`` keys, or None."""
    if not head_state or not {"norm.weight", "fc.weight"} <= set(head_state):
        return None

    width = head_state["norm.weight"].shape[0]
    vocab = head_state["fc.weight"].shape[0]
    head = nn.Module()
    head.norm = nn.LayerNorm(width, eps=1e-5)
    head.fc = nn.Linear(width, vocab, bias="fc.bias" in head_state)
    head.load_state_dict({k: v for k, v in head_state.items() if k.split(".")[0] in ("norm", "fc")}, strict=False)
    return head


def wrap_sc_vit(model, cfg: dict, *, spec: str, kind: str, head_state=None, device="cpu"):
    """An Encoder around an sc-eval tower; the fingerprint covers layout, preprocessing, weights."""
    model.sc_config = cfg
    meta = {"arch": "sc-vit", "model_args": timm_model_args(cfg), "mean": cfg["mean"], "std": cfg["std"],
            "interpolation": cfg["interpolation"]}
    enc = TimmEncoder(
        model, spec=spec, kind=kind, width=cfg["width"], image_size=cfg["image_size"],
        patch_size=cfg["patch_size"], num_patches=num_patches(cfg), mean=cfg["mean"], std=cfg["std"],
        interpolation=cfg["interpolation"], fingerprint=fingerprint_state(model.state_dict(), meta), config=cfg,
        head=build_head(head_state), head_state=head_state,
    )
    return enc.to(device)


def encoder_from_state(cfg: dict, tower_state: dict, *, spec: str, source: str, head_state=None, device="cpu"):
    """Build the tower of ``cfg``, load ``tower_state`` (CheckpointError on mismatch), wrap it."""
    model = create_vit_for_loading(cfg)  # every tensor comes from the checkpoint
    check_state_dict(model, tower_state, source)
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in tower_state.items()}, strict=True)
    return wrap_sc_vit(model, cfg, spec=spec, kind="superclass", head_state=head_state, device=device)


def _load_safetensors(path: Path) -> dict:
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: cannot read safetensors file ({e}); re-export or re-download it") from None


def load_encoder_dir(path: Path, spec: str, device="cpu"):
    """An sc-eval encoder directory."""
    cfg_json = read_json(path / "config.json", error=CheckpointError)
    meta = cfg_json.get("sc_eval") or {}
    if meta.get("format_version", FORMAT_VERSION) > FORMAT_VERSION:
        raise CheckpointError(f"{path}: encoder format {meta['format_version']} is newer than this sc-eval "
                              f"({FORMAT_VERSION}); upgrade sc-eval")
    cfg = normalize_config(meta.get("vit") or {}, source=str(path / "config.json"))
    weights = path / "model.safetensors"
    if not weights.is_file():
        raise CheckpointError(f"{path}: model.safetensors is missing; re-export the encoder")
    head_path = path / HEAD_FILE
    head_state = _load_safetensors(head_path) if head_path.is_file() else None
    enc = encoder_from_state(cfg, _load_safetensors(weights), spec=spec, source=str(weights),
                             head_state=head_state, device=device)
    enc.objective = meta.get("objective")  # `kind` names the checkpoint format, this the training
    return enc


def load_pretrain_checkpoint(step_dir: Path, spec: str, device="cpu"):
    """A ``checkpoints/step_<N>`` directory of a pretraining run."""
    cfg_path = step_dir / "config.json"
    weights = step_dir / "model.safetensors"
    if not cfg_path.is_file() or not weights.is_file():
        raise CheckpointError(f"{step_dir}: a checkpoint directory needs config.json and model.safetensors")
    cfg_json = read_json(cfg_path, error=CheckpointError)
    if "model" not in cfg_json:
        raise CheckpointError(f"{cfg_path}: no 'model' entry (the vit config); is this a pretraining checkpoint?")
    cfg = resolve_config(cfg_json["model"])
    state = _load_safetensors(weights)
    tower = {k[len("visual."):]: v for k, v in state.items() if k.startswith("visual.")}
    head = {k[len("head."):]: v for k, v in state.items() if k.startswith("head.")}
    if not tower:
        raise CheckpointError(f"{weights}: no 'visual.*' keys; found e.g. {sorted(state)[:5]}")
    enc = encoder_from_state(cfg, tower, spec=spec, source=str(weights), head_state=head or None, device=device)
    enc.objective = cfg_json.get("objective")
    return enc


def latest_checkpoint(run: Path) -> Path | None:
    """The step directory named by ``checkpoints/latest``, else the highest ``step_<N>``."""
    ckpts = run / "checkpoints"
    latest = ckpts / "latest"
    if latest.is_file():
        name = latest.read_text().strip()
        if (ckpts / name).is_dir():
            return ckpts / name
    steps = [(int(m.group(1)), p) for p in ckpts.glob("step_*") if p.is_dir() and (m := re.fullmatch(r"step_(\d+)", p.name))]
    return max(steps)[1] if steps else None


def load_official_checkpoint(path: Path, config, spec: str, device="cpu"):
    """An official x-cls/superclass ``epoch_K.pt`` + its model config."""
    cfg = _resolve_official_config(config, path)
    try:
        try:  # mmap: an L/16 checkpoint with its optimizer state is several GB; read lazily
            ckpt = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as e:
            if "mmap" not in str(e):
                raise
            ckpt = torch.load(str(path), map_location="cpu", weights_only=True)  # legacy format
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as e:
        raise CheckpointError(f"{path}: cannot load as a weights-only torch checkpoint ({str(e).splitlines()[0]})") from None
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or not any(str(k).endswith("visual.conv1.weight") for k in state):
        raise CheckpointError(f"{path}: no open_clip vision tower in this checkpoint (expected 'state_dict' with "
                              "'module.visual.conv1.weight'...)")
    tower, head = checkpoint_filter_fn(state)
    return encoder_from_state(cfg, tower, spec=spec, source=str(path), head_state=head or None, device=device)


# ----------------------------------------------------------------------------------------------
# saving
# ----------------------------------------------------------------------------------------------

def _plain_keys(state: dict) -> dict:
    """Drop wrapper prefixes (DDP ``module.``, torch.compile ``_orig_mod.``) from key names."""
    out = {}
    for k, v in state.items():
        for prefix in ("module.", "_orig_mod."):
            while k.startswith(prefix):
                k = k[len(prefix):]
        out[k] = v
    return out


def save_encoder_dir(tower, cfg, out_dir, head=None, extra: dict | None = None) -> Path:
    """Export a tower as an encoder directory that ``load_encoder`` and timm ``local-dir:`` read.

    ``tower`` is the timm model (or an Encoder wrapping one, or a state dict); ``head`` an
    ``nn.Module`` or state dict with ``norm.*``/``fc.*`` keys. The directory is assembled in a
    sibling temp dir and renamed into place, so a reader never sees half of it.
    """
    cfg = resolve_config(cfg)
    if isinstance(tower, Encoder):
        tower = tower.model
    state = _plain_keys(tower if isinstance(tower, dict) else tower.state_dict())
    head_state = head if (head is None or isinstance(head, dict)) else head.state_dict()
    head_state = _plain_keys(head_state) if head_state else None
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    config = {
        "architecture": TIMM_ARCHITECTURE,
        "num_classes": 0,
        "num_features": cfg["width"],
        "global_pool": "avg",
        "model_args": timm_model_args(cfg),
        "pretrained_cfg": timm_pretrained_cfg(cfg),
        "sc_eval": {
            "format_version": FORMAT_VERSION,
            "vit": cfg,
            "source": (extra or {}).get("source", "sc-eval"),
            "head": HEAD_FILE if head_state else None,
            **{k: v for k, v in (extra or {}).items() if k != "source"},
        },
    }
    with atomic_directory(out) as tmp:
        atomic_save_safetensors(tmp / "model.safetensors", state, metadata={"format": "pt"})
        if head_state:
            atomic_save_safetensors(tmp / HEAD_FILE, head_state, metadata={"format": "pt"})
        atomic_write_json(tmp / "config.json", config)
    return out


def is_encoder_dir(path: Path) -> bool:
    cfg = path / "config.json"
    if not cfg.is_file():
        return False
    try:
        return "sc_eval" in read_json(cfg, error=CheckpointError)
    except (CheckpointError, OSError):
        return False


def load_superclass_path(path: Path, config, spec: str, device="cpu"):
    """Dispatch a filesystem path to the right loader, or raise with what was expected."""
    if path.is_dir():
        if is_encoder_dir(path):
            return load_encoder_dir(path, spec, device)
        if (path / "encoder").is_dir() and is_encoder_dir(path / "encoder"):
            return load_encoder_dir(path / "encoder", spec, device)
        if (path / "checkpoints").is_dir():
            step = latest_checkpoint(path)
            if step is None:
                raise CheckpointError(f"{path}: a run directory with no encoder/ and no checkpoints/step_<N>; "
                                      "train longer or point at an encoder directory")
            return load_pretrain_checkpoint(step, spec, device)
        if (path / "model.safetensors").is_file() and (path / "config.json").is_file():
            return load_pretrain_checkpoint(path, spec, device)
        raise ConfigError(f"{path}: not an encoder directory, run directory or checkpoint directory "
                          "(expected config.json + model.safetensors, encoder/ or checkpoints/)")
    if path.suffix == ".safetensors":
        if is_encoder_dir(path.parent):
            return load_encoder_dir(path.parent, spec, device)
        return load_pretrain_checkpoint(path.parent, spec, device)
    if path.suffix in (".pt", ".pth", ".bin"):
        return load_official_checkpoint(path, config, spec, device)
    raise DataError(f"{path}: unknown checkpoint file type {path.suffix!r} (expected .safetensors or .pt)")
