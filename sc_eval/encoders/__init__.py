"""Load any vision tower behind one interface: ``load_encoder(spec) -> Encoder``.

Spec forms (``list_encoder_kinds`` lists them for ``sc-eval ls encoders``):

- a path: an sc-eval encoder directory, a pretraining run directory, a ``checkpoints/step_<N>``
  directory or its ``model.safetensors``, or an official SuperClass ``epoch_K.pt`` (with
  ``config=`` its open_clip model-config JSON);
- ``timm:NAME[.TAG][@FILE]``, ``open_clip:NAME@TAG`` or ``open_clip:NAME@FILE``, ``hf:DIR``: pretrained
  towers, their weights from a named file or the local caches, never downloaded (``foreign``);
- ``random:NAME`` (an sc-eval model, a timm name, ``random:open_clip:NAME``, ``random:timm:NAME``):
  the one way to ask for random weights.

Importing this package is cheap; torch and the backends load when a spec is resolved.
"""
from __future__ import annotations

import importlib
import warnings
from dataclasses import dataclass
from pathlib import Path

from sc_eval.errors import ConfigError, did_you_mean
from sc_eval.models import list_models


@dataclass(frozen=True)
class EncoderKind:
    """One form of encoder spec: what ``sc-eval ls encoders`` shows and how ``load_encoder``
    resolves it. ``prefix`` kinds (``timm:...``) are called ``loader(rest, spec, device)``;
    path kinds (``prefix=None``) ``loader(path, config, spec, device)``. ``loader`` names a
    function as ``"module:function"``, imported when a spec of that kind is loaded."""

    form: str
    description: str
    prefix: str | None
    loader: str


_REGISTRY: dict[str, EncoderKind] = {}


def register_encoder_kind(kind: EncoderKind) -> None:
    """Add a spec form (replacing one of the same ``form`` with a warning)."""
    if kind.form in _REGISTRY:
        warnings.warn(f"encoder kind {kind.form!r} registered again: the new one replaces it", stacklevel=2)
    _REGISTRY[kind.form] = kind


def encoder_kinds() -> list[EncoderKind]:
    """Every registered spec form, in registration order; no heavy import."""
    return list(_REGISTRY.values())


_PATHS = "sc_eval.encoders.superclass:load_superclass_path"
_FOREIGN = "sc_eval.encoders.foreign:"
for _kind in (
    EncoderKind("DIR", "sc-eval encoder directory (config.json + model.safetensors [+ head.safetensors])",
                None, _PATHS),
    EncoderKind("RUN_DIR", "pretraining run: its encoder/, else its latest checkpoints/step_<N>", None, _PATHS),
    EncoderKind("RUN_DIR/checkpoints/step_N[/model.safetensors]", "one pretraining checkpoint (visual.* keys)",
                None, _PATHS),
    EncoderKind("epoch_K.pt + config=MODEL.json",
                "official x-cls/superclass checkpoint with its open_clip model-config JSON", None, _PATHS),
    EncoderKind("timm:NAME[.TAG][@FILE]", "timm model, classifier removed; weights from FILE or timm's pretrained "
                "NAME.TAG in the local HF / torch hub cache (never downloaded)", "timm", _FOREIGN + "load_timm"),
    EncoderKind("open_clip:NAME@TAG|FILE", "open_clip visual tower (projection removed); a pretrained tag (e.g. "
                "ViT-B-16@openai) from the local HF cache or ~/.cache/clip, or a weights file",
                "open_clip", _FOREIGN + "load_open_clip"),
    EncoderKind("hf:DIR", "transformers CLIPVisionModel from a local directory", "hf", _FOREIGN + "load_hf"),
    EncoderKind("random:NAME", "untrained baseline, seed 0: an sc-eval model or timm name, random:open_clip:NAME, "
                "random:timm:NAME", "random", _FOREIGN + "load_random"),
):
    register_encoder_kind(_kind)


def list_encoder_kinds() -> list[tuple[str, str]]:
    """(spec form, description) pairs; no heavy import."""
    return [(k.form, k.description) for k in encoder_kinds()]


def _accepted() -> str:
    return "accepted specs: " + "; ".join(k.form for k in encoder_kinds())


def _loader(kind: EncoderKind):
    module, _, function = kind.loader.partition(":")
    return getattr(importlib.import_module(module), function)


def load_encoder(spec, config=None, device="cpu"):
    """Resolve ``spec`` to a frozen :class:`Encoder` on ``device``.

    ``config`` is only used by official checkpoints (``.pt``): a path to the open_clip model
    config JSON, a dict, or an sc-eval model name such as ``vit-b-16``.
    """
    if isinstance(spec, Path):
        spec = str(spec)
    if not isinstance(spec, str) or not spec:
        raise ConfigError(f"encoder spec must be a non-empty string, got {spec!r}; {_accepted()}")
    kinds = encoder_kinds()
    prefixes = {k.prefix: k for k in kinds if k.prefix}
    prefix, sep, rest = spec.partition(":")
    if sep and prefix in prefixes:
        if not rest:
            raise ConfigError(f"{spec}: missing a name after '{prefix}:'; {_accepted()}")
        return _loader(prefixes[prefix])(rest, spec, device)
    path = Path(spec).expanduser()
    if path.exists():
        path_kind = next((k for k in kinds if k.prefix is None), None)
        if path_kind is not None:
            return _loader(path_kind)(path, config, spec, device)
    if sep and len(prefix) > 1:  # a mistyped prefix, e.g. "openclip:ViT-B-16"
        raise ConfigError(f"unknown encoder spec prefix {prefix + ':'!r}{did_you_mean(prefix, list(prefixes))}; "
                          f"{_accepted()}")
    if spec in list_models():
        hint = f" (did you mean 'random:{spec}'? an untrained {spec})"
    elif path.parent.is_dir():
        hint = did_you_mean(path.name, [p.name for p in path.parent.iterdir()])
    else:
        hint = ""
    raise ConfigError(f"encoder {spec!r}: no such file or directory{hint}; {_accepted()}")


def __getattr__(name):
    # Lazy re-exports: the classes and savers import torch, so they load on first use only.
    if name in ("Encoder", "ImageTransform", "fingerprint_state"):
        from sc_eval.encoders import base

        return getattr(base, name)
    if name in ("save_encoder_dir", "checkpoint_filter_fn", "vit_config_from_open_clip"):
        from sc_eval.encoders import superclass

        return getattr(superclass, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Encoder", "EncoderKind", "ImageTransform", "checkpoint_filter_fn", "encoder_kinds", "list_encoder_kinds",
           "load_encoder", "register_encoder_kind", "save_encoder_dir", "vit_config_from_open_clip"]
