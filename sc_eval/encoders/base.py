"""The one interface every vision tower is used through, whatever its origin.

An :class:`Encoder` is a frozen ``nn.Module`` in eval mode that knows its own preprocessing:

- ``forward_pooled(x) -> [B, D]``: the tower's image-level feature (SuperClass: mean of the
  final-normed patch tokens; CLIP: its pooled token *before* the contrastive projection, so
  ``D == width`` for every kind),
- ``forward_tokens(x, layer=-2) -> [B, N_patches, D]``: the output of transformer block
  ``layer`` (Python indexing over blocks, penultimate by default as LLaVA's select_layer=-2),
  prefix tokens (class, registers) dropped, no final norm.
- ``transform``: PIL image -> normalised float tensor [3, H, W], as the tower was trained.
- ``fingerprint``: a sha256 of the architecture and weights; the feature cache and the
  prediction logs key on it, so two loads of the same weights agree and any change differs.

Backends (timm towers, open_clip towers, HF CLIPVisionModel) subclass it and implement
``_pooled`` and ``_tokens``.
"""
from __future__ import annotations

import contextlib
import json

import torch
from PIL import Image
from torch import nn
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as F

from sc_eval.errors import CheckpointError, ConfigError, DataError
from sc_eval.runtime.fingerprint import Hasher

_INTERPOLATIONS = ("bicubic", "bilinear", "nearest", "lanczos", "box", "hamming")


class ImageTransform:
    """Resize the short side, centre-crop, scale to [0, 1], normalise. Picklable for workers.

    ``description`` is a canonical string of every parameter; the feature cache keys on it.
    """

    def __init__(self, image_size: int, mean, std, interpolation: str = "bicubic"):
        if interpolation not in _INTERPOLATIONS:
            raise ConfigError(f"unknown interpolation {interpolation!r}; use one of {', '.join(_INTERPOLATIONS)}")
        self.image_size = int(image_size)
        self.mean = [float(m) for m in mean]
        self.std = [float(s) for s in std]
        self.interpolation = interpolation

    @property
    def description(self) -> str:
        return json.dumps(
            {"resize_short": self.image_size, "center_crop": self.image_size, "interpolation": self.interpolation,
             "mean": self.mean, "std": self.std},
            sort_keys=True,
        )

    def __repr__(self) -> str:
        return f"ImageTransform({self.description})"

    def __call__(self, image) -> torch.Tensor:
        if not isinstance(image, Image.Image):
            raise DataError(f"transform expects a PIL image, got {type(image).__name__}")
        image = image.convert("RGB")
        mode = InterpolationMode(self.interpolation)
        image = F.resize(image, self.image_size, interpolation=mode)
        image = F.center_crop(image, [self.image_size, self.image_size])
        x = F.to_tensor(image)
        return F.normalize(x, self.mean, self.std)


def fingerprint_state(state: dict, meta: dict) -> str:
    """The encoder's fingerprint: the whole sha256 over a JSON description of the architecture
    and every tensor (name, dtype, shape, bytes), in sorted key order: the same weights give the
    same hash however they were loaded."""
    return Hasher().json(meta).tensors(state).hex(length=None)


@contextlib.contextmanager
def seeded(seed: int = 0):
    """Random init that does not depend on, or disturb, the caller's RNG state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def check_state_dict(model: nn.Module, state: dict, source: str, ignore_prefixes=()) -> None:
    """Raise CheckpointError naming every missing, unexpected and mis-shaped key.

    torch's own message on a wrong architecture is a wall of text with no hint of the fix;
    this one says which keys differ, their shapes, and what to check.
    """
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items() if not k.startswith(tuple(ignore_prefixes))}
    # Embedding keys first: they tell the size story (patch, image, width) in one line.
    order = lambda k: (k.startswith("blocks."), k)  # noqa: E731
    missing = sorted(set(expected) - set(got), key=order)
    unexpected = sorted(set(got) - set(expected), key=order)
    mismatched = sorted((k for k in set(expected) & set(got) if expected[k] != got[k]), key=order)
    if not (missing or unexpected or mismatched):
        return

    def show(keys, fmt):
        head = [fmt(k) for k in keys[:8]]
        more = f" (+{len(keys) - 8} more)" if len(keys) > 8 else ""
        return "; ".join(head) + more

    parts = []
    if mismatched:
        parts.append("shape mismatch: " + show(mismatched, lambda k: f"{k} checkpoint {list(got[k])} vs model {list(expected[k])}"))
    if missing:
        parts.append("missing: " + show(missing, lambda k: f"{k} {list(expected[k])}"))
    if unexpected:
        parts.append("unexpected: " + show(unexpected, lambda k: f"{k} {list(got[k])}"))
    raise CheckpointError(
        f"{source}: weights do not match the model config ({' | '.join(parts)}); "
        "check that the config (width, layers, patch size, image size) is the one the checkpoint was trained with"
    )


class Encoder(nn.Module):
    """A frozen vision tower plus its preprocessing. See the module docstring."""

    def __init__(self, model: nn.Module, *, spec: str, kind: str, width: int, image_size: int,
                 patch_size: int | None, num_patches: int | None, mean, std, interpolation: str = "bicubic",
                 fingerprint: str, config: dict | None = None, head: nn.Module | None = None,
                 head_state: dict | None = None):
        super().__init__()
        self.model = model
        self.spec = str(spec)
        self.kind = kind
        self.width = int(width)
        self.image_size = int(image_size)
        self.patch_size = patch_size
        self.num_patches = num_patches
        self.mean = list(mean)
        self.std = list(std)
        self.interpolation = interpolation
        self.transform = ImageTransform(image_size, mean, std, interpolation)
        self.fingerprint = fingerprint
        self.config = config or {}
        self.objective: str | None = None  # what an sc-eval checkpoint was pretrained with, when recorded
        # The pretraining head (SuperClass LayerNorm + Linear), kept out of the forward path.
        self.head = head
        self.head_state = head_state
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True):
        """Always eval: a frozen tower must not switch on dropout when its parent trains."""
        return super().train(False)

    @property
    def device(self) -> torch.device:
        for p in self.parameters():
            return p.device
        return torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        for p in self.parameters():
            return p.dtype
        return torch.float32

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 3:
            x = x.unsqueeze(0)
        if x.ndim != 4 or x.shape[1] != 3:
            raise DataError(f"{self.spec}: expected images [B, 3, H, W], got {list(x.shape)}")
        return x.to(device=self.device, dtype=self.dtype)

    def forward_pooled(self, x: torch.Tensor) -> torch.Tensor:
        return self._pooled(self._prepare(x))

    def forward_tokens(self, x: torch.Tensor, layer: int = -2) -> torch.Tensor:
        self.check_layer(layer)
        return self._tokens(self._prepare(x), layer)

    @property
    def depth(self) -> int | None:
        """How many transformer blocks ``forward_tokens`` indexes (None where the tower hides them)."""
        return _num_blocks(self.model)

    def check_layer(self, layer, flag: str = "layer") -> None:
        """Refuse a block index this tower does not have, naming ``flag`` (e.g. ``--select-layer``),
        so that a command fails before it loads anything large rather than at its first image."""
        if isinstance(layer, bool) or not isinstance(layer, int):
            raise ConfigError(f"{self.spec}: {flag} must be an int block index, got {layer!r}")
        depth = self.depth
        if depth is not None and not -depth <= layer < depth:
            raise ConfigError(f"{self.spec}: {flag} {layer} is out of range: this tower has {depth} blocks, "
                              f"so pass an index from {-depth} to {depth - 1} (-2, the penultimate block, is LLaVA's)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_pooled(x)

    def describe(self) -> dict:
        """A JSON-able summary for run logs and results.json."""
        out = {"spec": self.spec, "kind": self.kind, "width": self.width, "image_size": self.image_size,
               "patch_size": self.patch_size, "num_patches": self.num_patches, "fingerprint": self.fingerprint}
        if self.objective:
            out["objective"] = self.objective
        return out

    def _pooled(self, x):  # pragma: no cover - abstract
        raise NotImplementedError

    def _check_intermediates(self, what: str) -> None:
        """Tokens come from forward_intermediates."""
        if not hasattr(self.model, "forward_intermediates"):
            raise ConfigError(f"{self.spec}: this {what} has no forward_intermediates; tokens are unavailable")

    def _tokens(self, x, layer):  # pragma: no cover - abstract
        raise NotImplementedError


class TimmEncoder(Encoder):
    """A timm model: every sc-eval tower, timm: and random: specs."""

    def _pooled(self, x):
        return self.model(x)

    def _tokens(self, x, layer):
        self._check_intermediates("timm model")
        try:
            out = self.model.forward_intermediates(x, indices=[layer], intermediates_only=True, output_fmt="NLC")
        except TypeError:  # CNN-style models only speak NCHW
            out = self.model.forward_intermediates(x, indices=[layer], intermediates_only=True)
        t = out[0]
        if t.ndim == 4:  # NCHW -> [B, HW, C]
            t = t.flatten(2).transpose(1, 2)
        return t


class OpenClipEncoder(Encoder):
    """An open_clip visual tower; its contrastive projection is removed (``proj = None``)."""

    def _pooled(self, x):
        return self.model(x)

    def _tokens(self, x, layer):
        self._check_intermediates("open_clip tower")
        out = self.model.forward_intermediates(x, indices=[layer], intermediates_only=True, output_fmt="NLC")
        return out["image_intermediates"][0]


class HFClipEncoder(Encoder):
    """transformers CLIPVisionModel: pooled = pooler_output, tokens = hidden_states[...][:, 1:]."""

    def _pooled(self, x):
        return self.model(pixel_values=x).pooler_output

    @property
    def depth(self) -> int:
        return int(self.model.config.num_hidden_layers)

    def _tokens(self, x, layer):
        hidden = self.model(pixel_values=x, output_hidden_states=True).hidden_states
        # hidden_states[0] is the embedding output, so block i's output is hidden_states[i + 1].
        idx = layer if layer < 0 else layer + 1
        return hidden[idx][:, 1:]


def _num_blocks(model) -> int | None:
    if hasattr(model, "blocks"):
        return len(model.blocks)
    tr = getattr(model, "transformer", None)
    if tr is not None and hasattr(tr, "resblocks"):
        return len(tr.resblocks)
    return None
