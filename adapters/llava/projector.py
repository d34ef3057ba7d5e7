"""The vision-to-language projector and its LLaVA-compatible export.

The spec strings are LLaVA's (`linear`, `mlp2x_gelu`, `mlpNx_gelu`, `identity`) and the module
layout is chosen so that ``state_dict()`` keys are exactly the suffixes LLaVA writes under
``model.mm_projector.``: an ``nn.Linear`` for `linear` (keys ``weight``/``bias``) and an
``nn.Sequential`` of Linear/GELU pairs for the MLPs (keys ``0.*``, ``2.*``, ...). That way an
exported ``mm_projector.bin`` can be dropped into LLaVA's ``--pretrain_mm_mlp_adapter`` and back.
"""
from __future__ import annotations

import re

import torch
import torch.nn as nn

from sc_eval.errors import CheckpointError, ConfigError
from sc_eval.io import atomic_torch_save

PROJECTOR_SPECS = ("linear", "identity", "mlp2x_gelu", "mlp{N}x_gelu")
LLAVA_PREFIX = "model.mm_projector."
_MLP = re.compile(r"^mlp(\d+)x_gelu$")


def build_projector(spec: str, in_dim: int, out_dim: int):
    """Return the projector module for ``spec`` mapping ``in_dim`` features to ``out_dim``."""
    if spec == "linear":
        return nn.Linear(in_dim, out_dim)
    if spec == "identity":
        if in_dim != out_dim:
            raise ConfigError(f"projector 'identity' needs equal widths, got encoder {in_dim} vs LLM {out_dim}; "
                              "use 'linear' or 'mlp2x_gelu'")
        return nn.Identity()
    m = _MLP.match(spec)
    if m is None or int(m.group(1)) < 1:
        raise ConfigError(f"unknown projector {spec!r}; choose one of {', '.join(PROJECTOR_SPECS)} "
                          "(e.g. mlp2x_gelu)")
    depth = int(m.group(1))
    layers = [nn.Linear(in_dim, out_dim)]
    for _ in range(depth - 1):
        layers += [nn.GELU(), nn.Linear(out_dim, out_dim)]
    return nn.Sequential(*layers)


def llava_state_dict(projector) -> dict:
    """The projector's weights under LLaVA's key names (``model.mm_projector.0.weight`` ...)."""
    return {LLAVA_PREFIX + k: v.detach().cpu().contiguous() for k, v in projector.state_dict().items()}


def from_llava_state_dict(state: dict) -> dict:
    """Strip LLaVA's prefix (also accepts an already-bare dict); used to load ``mm_projector.bin``."""
    out = {}
    for k, v in state.items():
        out[k[len(LLAVA_PREFIX):] if k.startswith(LLAVA_PREFIX) else k] = v
    return out


def export_mm_projector(projector, path) -> None:
    """Write LLaVA's ``mm_projector.bin``: torch.save of a plain {name: tensor} dict."""
    atomic_torch_save(path, llava_state_dict(projector))


def load_mm_projector(projector, path) -> None:
    """Load an ``mm_projector.bin`` (ours or LLaVA's) into ``projector``, checking every key."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt file, or one holding more than tensors
        raise CheckpointError(f"{path}: cannot read projector weights ({e}); re-export it with sc-eval llava") from None
    state = from_llava_state_dict(state)
    own = projector.state_dict()
    bad = [f"{k}: file {tuple(state[k].shape) if k in state else 'missing'} vs model {tuple(v.shape)}"
           for k, v in own.items() if k not in state or state[k].shape != v.shape]
    extra = sorted(set(state) - set(own))
    if bad or extra:
        raise CheckpointError(f"{path}: projector does not match ({'; '.join(bad + [f'unexpected {k}' for k in extra])}); "
                              "check --projector and the encoder/LLM widths")
    projector.load_state_dict(state)
