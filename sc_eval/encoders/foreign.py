"""Towers from other libraries, for side-by-side comparison: ``timm:``, ``open_clip:``,
``hf:`` and ``random:`` specs.

A tower named without ``random:`` is a pretrained tower, or an error: nothing here downloads
and nothing falls back to random weights (a random tower scored as if pretrained is the worst
kind of wrong number). Weights come from a file the user names
(``timm:NAME@/path/weights.safetensors``, ``open_clip:NAME@/path``), or, for a pretrained
name (``timm:vit_base_patch16_clip_224.openai``, ``open_clip:ViT-B-16@openai``), from the local
caches the libraries themselves fill: the Hugging Face hub cache (``$HF_HUB_CACHE``, else
``$HF_HOME/hub``, else ``~/.cache/huggingface/hub``), torch hub's ``checkpoints/`` folder
(timm's URL weights) and open_clip's ``~/.cache/clip`` (its URL weights). When they are not
there, the error says which file to put where. HF models load only from a local directory.
``random:NAME`` is the one way to ask for random weights; every random initialisation is
seeded (seed 0) so that an untrained baseline is reproducible and its fingerprint stable.
"""
from __future__ import annotations

import logging
import os
import posixpath
from pathlib import Path

import open_clip
import timm
import torch
from huggingface_hub import try_to_load_from_cache
from timm.models import get_pretrained_cfg
from transformers import CLIPVisionModel

from sc_eval.encoders.base import (HFClipEncoder, OpenClipEncoder, TimmEncoder, check_state_dict, fingerprint_state,
                                   seeded)
from sc_eval.encoders.superclass import wrap_sc_vit
from sc_eval.errors import CheckpointError, ConfigError, did_you_mean
from sc_eval.io import read_json
from sc_eval.models import list_models, vit_config
from sc_eval.models.vit import create_vit

log = logging.getLogger(__name__)

RANDOM_SEED = 0
OPEN_CLIP_URL_CACHE = "~/.cache/clip"  # where open_clip keeps weights it fetched by URL


def _split_weights(name: str) -> tuple[str, str | None]:
    """``NAME@WEIGHTS`` -> (NAME, WEIGHTS) (a file path or a pretrained tag); ``NAME`` -> (NAME, None)."""
    if "@" not in name:
        return name, None
    name, weights = name.split("@", 1)
    return name, weights


def _weights_file(weights: str, spec: str) -> Path:
    path = Path(weights).expanduser()
    if not path.is_file():
        raise ConfigError(f"{spec}: weights file {path} not found")
    return path


def hf_hub_cache() -> Path:
    """The Hugging Face hub cache folder, read from the environment at call time (the same
    precedence as huggingface_hub: HF_HUB_CACHE, HUGGINGFACE_HUB_CACHE, HF_HOME/hub,
    XDG_CACHE_HOME/huggingface/hub, ~/.cache/huggingface/hub)."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "huggingface" / "hub"


def _in_hf_cache(repo: str, filenames) -> Path | None:
    """The first of ``filenames`` that the local hub cache holds for ``repo`` (never downloads)."""
    for fname in filenames:
        found = try_to_load_from_cache(repo, fname, cache_dir=str(hf_hub_cache()))
        if isinstance(found, str) and Path(found).is_file():
            return Path(found)
    return None


def _hf_cache_hint(repo: str, fname: str) -> str:
    folder = hf_hub_cache() / f"models--{repo.replace('/', '--')}" / "snapshots" / "<revision>"
    return (f"{fname} of the Hugging Face repo {repo} at {folder / fname} (what `huggingface-cli download "
            f"{repo} {fname}` writes on a machine with network; copy that hub cache folder over)")


def _load_weights_file(path: Path) -> dict:
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


def _timm_weight_sources(name: str) -> tuple[Path | None, str]:
    """(local weights file of timm's pretrained ``name`` or None, where to put it if None)."""
    try:
        pcfg = get_pretrained_cfg(name)
    except Exception:  # noqa: BLE001 - a name timm has no pretrained config for
        pcfg = None
    if pcfg is None:
        return None, (f"timm has no pretrained weights named {name!r} (see timm.list_pretrained('{name.split('.')[0]}*'))")
    hints = []
    repo = getattr(pcfg, "hf_hub_id", None)
    if repo:
        fname = getattr(pcfg, "hf_hub_filename", None)
        names = [fname] if fname else ["model.safetensors", "pytorch_model.bin", "open_clip_model.safetensors"]
        found = _in_hf_cache(repo, names)
        if found:
            return found, ""
        hints.append(_hf_cache_hint(repo, names[0]))
    url = getattr(pcfg, "url", None)
    if url:
        cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url.split("?")[0])
        if cached.is_file():
            return cached, ""
        hints.append(f"{cached.name} (from {url}) at {cached}")
    if getattr(pcfg, "file", None) and Path(pcfg.file).is_file():
        return Path(pcfg.file), ""
    return None, "put " + ", or ".join(hints) if hints else f"timm lists no weights location for {name!r}"


def _check_timm_name(name: str, spec: str) -> None:
    base = name.split(".")[0]
    if not timm.is_model(base):
        raise ConfigError(f"{spec}: unknown timm model {base!r}{did_you_mean(base, timm.list_models())}")


def load_timm(name: str, spec: str, device="cpu"):
    """``timm:NAME[.TAG][@file]``: weights from the named file, else timm's pretrained weights for
    NAME[.TAG] from the local caches; neither is an error (random:NAME is the random tower)."""
    name, weights = _split_weights(name)
    _check_timm_name(name, spec)
    if weights is not None:
        path = _weights_file(weights, spec)
        with seeded(RANDOM_SEED):
            model = timm.create_model(name, pretrained=False, num_classes=0)
        state = _load_weights_file(path)
        try:
            from timm.models import vision_transformer as vt

            if isinstance(model, vt.VisionTransformer):
                state = vt.checkpoint_filter_fn(state, model)
        except Exception:  # noqa: BLE001 - keep the raw state; the key check below explains mismatches
            pass
        state = {k: v for k, v in state.items() if not k.startswith(("head.", "fc.", "classifier."))}

        check_state_dict(model, state, str(path))
        model.load_state_dict(state, strict=True)
    else:
        cached, where = _timm_weight_sources(name)
        if cached is None:
            # A silently random tower would be scored as if pretrained: refuse, say how to proceed.
            raise CheckpointError(f"{spec}: no local weights for timm model {name!r} (nothing is downloaded); "
                                  f"{where}; or pass timm:{name}@/path/weights.safetensors (or .bin/.pth); "
                                  f"or use random:{name.split('.')[0]} for a random-init tower")
        log.info("%s: weights from %s", spec, cached)
        with seeded(RANDOM_SEED):
            try:
                model = timm.create_model(name, pretrained=True, num_classes=0,
                                          pretrained_cfg_overlay={"file": str(cached)})
            except (RuntimeError, OSError, ValueError) as e:
                raise CheckpointError(f"{spec}: cannot load {cached} ({str(e).splitlines()[0]})") from None
    return _timm_encoder(model, spec, device, kind="timm")


def load_random(name: str, spec: str, device="cpu"):
    """``random:NAME``: seeded random init of an sc-eval vit config, a timm model or an open_clip
    tower (``random:timm:NAME`` and ``random:open_clip:NAME`` say which library outright)."""
    lib, sep, rest = name.partition(":")
    if sep and lib == "open_clip":
        return _open_clip_encoder(_open_clip_model(rest, spec), rest, spec, device, kind="random")
    if sep and lib == "timm":
        name = rest
    elif name in list_models():
        cfg = vit_config(name)
        with seeded(RANDOM_SEED):
            model = create_vit(cfg)
        return wrap_sc_vit(model, cfg, spec=spec, kind="random", device=device)

    if not timm.is_model(name):
        oc = _open_clip_names()
        if name in oc:
            return _open_clip_encoder(_open_clip_model(name, spec), name, spec, device, kind="random")
        raise ConfigError(f"{spec}: {name!r} is neither an sc-eval model ({', '.join(list_models())}), a timm model "
                          f"nor an open_clip model{did_you_mean(name, list(list_models()) + timm.list_models() + oc)}")
    with seeded(RANDOM_SEED):
        model = timm.create_model(name, pretrained=False, num_classes=0)
    return _timm_encoder(model, spec, device, kind="random")


def _open_clip_names() -> list[str]:
    return list(open_clip.list_models())


def _open_clip_model(name: str, spec: str, quick_gelu: bool = False):
    """open_clip's whole CLIP model ``name``, seeded random init (weights are loaded after)."""
    if name not in open_clip.list_models():
        raise ConfigError(f"{spec}: unknown open_clip model {name!r}{did_you_mean(name, open_clip.list_models())}")
    # open_clip warns that no pretrained weights were loaded: true, and said by the caller when it matters.
    quiet, logging.root.manager.disable = logging.root.manager.disable, max(logging.root.manager.disable, logging.WARNING)
    try:
        with seeded(RANDOM_SEED):
            return open_clip.create_model(name, pretrained=None, force_quick_gelu=quick_gelu)
    finally:
        logging.disable(quiet)


def _open_clip_tag_weights(name: str, tag: str, cfg: dict) -> tuple[Path | None, str]:
    """(local file of open_clip's pretrained (name, tag) or None, where to put it if None): the
    HF hub cache for the tag's hub repo, open_clip's URL cache for its URL."""
    hints = []
    hub = cfg.get("hf_hub") or ""
    if hub:
        repo, fname = posixpath.split(hub)  # "org/repo/" (default file names) or "org/repo/file"
        names = [fname] if fname else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
        if fname.endswith(".bin"):
            names.insert(0, fname[:-4] + ".safetensors")
        found = _in_hf_cache(repo, names)
        if found:
            return found, ""
        hints.append(_hf_cache_hint(repo, names[0]))
    url = cfg.get("url") or ""
    if url:
        cached = Path(OPEN_CLIP_URL_CACHE).expanduser() / os.path.basename(url)
        if cached.is_file():
            return cached, ""
        hints.append(f"{cached.name} (from {url}) at {cached}")
    return None, "put " + ", or ".join(hints) if hints else "open_clip lists no location for these weights"


def _visual_state(state: dict) -> dict:
    """The visual tower's part of an open_clip checkpoint (``visual.*``), or the whole state when
    it holds only the tower."""
    visual = {k[len("visual."):]: v for k, v in state.items() if k.startswith("visual.")}
    return visual or state


def load_open_clip(name: str, spec: str, device="cpu"):
    """``open_clip:NAME@TAG`` (a pretrained tag, from the local caches) or ``open_clip:NAME@/path``
    (a weights file): the visual tower, its contrastive projection removed. No weights named is
    an error: ``random:open_clip:NAME`` is the random tower."""
    name, weights = _split_weights(name)
    if weights is None:
        tags = _open_clip_tags(name, spec)
        example = f"open_clip:{name}@{tags[0]}" if tags else f"open_clip:{name}@/path/open_clip_model.safetensors"
        raise CheckpointError(f"{spec}: no weights named (nothing is downloaded, and a random tower would be scored "
                              f"as if pretrained); give a pretrained tag ({example}; {name}'s tags: "
                              f"{_some(tags)}) or a weights file (open_clip:{name}@/path/to/weights), "
                              f"or use random:open_clip:{name} for a random-init tower")
    path = Path(weights).expanduser()
    tag_cfg = {}
    if not path.is_file():
        tags = _open_clip_tags(name, spec)
        tag_cfg = open_clip.get_pretrained_cfg(name, weights) or {}
        if not tag_cfg:
            if os.sep in weights or weights.endswith((".pt", ".pth", ".bin", ".safetensors")):
                raise ConfigError(f"{spec}: weights file {path} not found")
            raise ConfigError(f"{spec}: {weights!r} is neither a file nor a pretrained tag of {name}"
                              f"{did_you_mean(weights, tags)} (its tags: {_some(tags)})")
        found, where = _open_clip_tag_weights(name, weights, tag_cfg)
        if found is None:
            raise CheckpointError(f"{spec}: the {weights} weights of {name} are not on this machine (nothing is "
                                  f"downloaded); {where}; or pass open_clip:{name}@/path/to/weights")
        path = found
        log.info("%s: weights from %s", spec, path)
    model = _open_clip_model(name, spec, quick_gelu=_trained_with_quick_gelu(weights, tag_cfg))
    state = _visual_state(_load_weights_file(path))
    if "proj" not in state and getattr(model.visual, "proj", None) is not None:
        model.visual.proj = None  # a tower saved without its projection: it is dropped below anyway

    check_state_dict(model.visual, state, str(path))
    model.visual.load_state_dict(state, strict=True)
    pre = {k: tag_cfg[k] for k in ("mean", "std", "interpolation") if tag_cfg.get(k)}
    return _open_clip_encoder(model, name, spec, device, kind="open_clip", preprocess=pre)


def _trained_with_quick_gelu(tag: str, cfg: dict) -> bool:
    """Whether a tag's weights were trained with QuickGELU: the tower must be built to match, or
    its features silently differ. open_clip's tag configs say so outright where they carry the
    field; where they do not, OpenAI's weights and the files named "quickgelu" are the ones."""
    if not cfg:
        return False
    if "quick_gelu" in cfg:
        return bool(cfg["quick_gelu"])
    return tag == "openai" or "quickgelu" in (cfg.get("url") or "")


def _some(names: list[str], n: int = 6) -> str:
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "") if names else "none"


def _open_clip_tags(name: str, spec: str) -> list[str]:
    if name not in open_clip.list_models():
        raise ConfigError(f"{spec}: unknown open_clip model {name!r}{did_you_mean(name, open_clip.list_models())}")
    return list(open_clip.list_pretrained_tags_by_model(name))


def _open_clip_encoder(model, name: str, spec: str, device, kind: str, preprocess: dict | None = None):
    """An Encoder around an open_clip model's visual tower (projection removed)."""
    visual = model.visual
    pre = {**open_clip.get_model_preprocess_cfg(model), **(preprocess or {})}
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
    if any(type(m).__name__ == "QuickGELU" for m in visual.modules()):
        meta["quick_gelu"] = True  # same weights, other activation: other features
    enc = OpenClipEncoder(
        visual, spec=spec, kind=kind, width=width, image_size=size, patch_size=patch, num_patches=n_patches,
        mean=pre["mean"], std=pre["std"], interpolation=interp,
        fingerprint=fingerprint_state(visual.state_dict(), meta), config=meta,
    )
    return enc.to(device)


def load_hf(directory: str, spec: str, device="cpu"):
    """``hf:DIR``: a transformers CLIP vision tower from a local directory (never the hub)."""
    path = Path(directory).expanduser()
    if not (path / "config.json").is_file():
        raise ConfigError(f"{spec}: {path} is not a Hugging Face model directory (no config.json); "
                          "download the model first and pass its local folder")

    try:
        model = CLIPVisionModel.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError, KeyError) as e:
        raise CheckpointError(f"{spec}: cannot load a CLIPVisionModel from {path} ({str(e).splitlines()[0]})") from None
    c = model.config
    mean, std = [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]
    size, interp = c.image_size, "bicubic"
    pre_path = path / "preprocessor_config.json"
    if pre_path.is_file():
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
