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

from pathlib import Path

from sc_eval.errors import ConfigError, did_you_mean

_PREFIXES = ("timm", "open_clip", "hf", "random")

_KINDS = [
    ("DIR", "sc-eval encoder directory (config.json + model.safetensors [+ head.safetensors])"),
    ("RUN_DIR", "pretraining run: its encoder/, else its latest checkpoints/step_<N>"),
    ("RUN_DIR/checkpoints/step_N[/model.safetensors]", "one pretraining checkpoint (visual.* keys)"),
    ("epoch_K.pt + config=MODEL.json", "official x-cls/superclass checkpoint with its open_clip model-config JSON"),
    ("timm:NAME[.TAG][@FILE]", "timm model, classifier removed; weights from FILE or timm's pretrained NAME.TAG "
     "in the local HF / torch hub cache (never downloaded)"),
    ("open_clip:NAME@TAG|FILE", "open_clip visual tower (projection removed); a pretrained tag (e.g. ViT-B-16@openai) "
     "from the local HF cache or ~/.cache/clip, or a weights file"),
    ("hf:DIR", "transformers CLIPVisionModel from a local directory"),
    ("random:NAME", "untrained baseline, seed 0: an sc-eval model or timm name, random:open_clip:NAME, random:timm:NAME"),
]


def list_encoder_kinds() -> list[tuple[str, str]]:
    """(spec form, description) pairs; no heavy import."""
    return list(_KINDS)


def _accepted() -> str:
    return "accepted specs: " + "; ".join(form for form, _ in _KINDS)


def load_encoder(spec, config=None, device="cpu"):
    """Resolve ``spec`` to a frozen :class:`Encoder` on ``device``.

    ``config`` is only used by official checkpoints (``.pt``): a path to the open_clip model
    config JSON, a dict, or an sc-eval model name such as ``vit-b-16``.
    """
    from sc_eval.encoders import foreign
    from sc_eval.encoders.superclass import load_superclass_path

    if isinstance(spec, Path):
        spec = str(spec)
    if not isinstance(spec, str) or not spec:
        raise ConfigError(f"encoder spec must be a non-empty string, got {spec!r}; {_accepted()}")
    prefix, sep, rest = spec.partition(":")
    if sep and prefix in _PREFIXES:
        if not rest:
            raise ConfigError(f"{spec}: missing a name after '{prefix}:'; {_accepted()}")
        loader = {"timm": foreign.load_timm, "open_clip": foreign.load_open_clip,
                  "hf": foreign.load_hf, "random": foreign.load_random}[prefix]
        return loader(rest, spec, device)
    path = Path(spec).expanduser()
    if path.exists():
        return load_superclass_path(path, config, spec, device)
    if sep and len(prefix) > 1:  # a mistyped prefix, e.g. "openclip:ViT-B-16"
        raise ConfigError(f"unknown encoder spec prefix {prefix + ':'!r}{did_you_mean(prefix, _PREFIXES)}; {_accepted()}")
    from sc_eval.models import list_models

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


__all__ = ["Encoder", "ImageTransform", "checkpoint_filter_fn", "list_encoder_kinds", "load_encoder",
           "save_encoder_dir", "vit_config_from_open_clip"]
