"""Pretraining checkpoints: the run-directory layout that ``sc_eval.load_encoder`` relies on.

    <run>/checkpoints/step_<N>/model.safetensors   visual.* (timm tower), head.*, text.*, logit_scale
                               state.pt            optimizer, scheduler, scaler, IDF, RNG, data position
                               config.json         {"model": vit config, "objective", "tokenizer", ...}
    <run>/checkpoints/latest                       "step_<N>", replaced atomically after each save

A step directory is written under a temporary name and renamed into place, then ``latest`` is
replaced: a kill at any moment leaves the previous checkpoint intact and named by ``latest``.
``state.pt`` holds only tensors and plain Python values so it loads with ``weights_only=True``.
"""
from __future__ import annotations

import random
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from sc_eval.encoders.base import check_state_dict
from sc_eval.errors import CheckpointError
from sc_eval.io import (atomic_directory, atomic_save_safetensors, atomic_torch_save, atomic_write_json,
                        atomic_write_text, read_json)


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(ckpt_root: Path, step: int, model_state: dict, train_state: dict, config: dict) -> Path:
    """Write ``step_<step>`` atomically and point ``latest`` at it. Rank 0 only."""
    ckpt_root = Path(ckpt_root)
    final = ckpt_root / f"step_{step}"
    with atomic_directory(final) as tmp:  # a resumed run may re-save a step: replaced whole
        atomic_save_safetensors(tmp / "model.safetensors", model_state, metadata={"format": "pt", "step": str(step)})
        atomic_torch_save(tmp / "state.pt", train_state)
        atomic_write_json(tmp / "config.json", config)
    atomic_write_text(ckpt_root / "latest", f"step_{step}\n")
    return final


def find_checkpoint(run_dir: Path, spec: str) -> Path | None:
    """``--resume latest`` -> the step dir named by checkpoints/latest (None if there is none);
    ``--resume PATH`` -> that step directory."""
    if spec != "latest":
        p = Path(spec)
        if not (p / "state.pt").is_file():
            raise CheckpointError(f"--resume {spec}: not a checkpoint directory (needs state.pt, "
                                  "model.safetensors, config.json); use 'latest' or a checkpoints/step_<N> path")
        return p
    root = Path(run_dir) / "checkpoints"
    latest = root / "latest"
    if latest.is_file():
        name = latest.read_text(encoding="utf-8").strip()
        if (root / name / "state.pt").is_file():
            return root / name
        raise CheckpointError(f"{latest}: names {name!r}, which is missing; pass --resume "
                              f"{root}/step_<N> for an existing step or start over with --overwrite")
    return None


def load_checkpoint(step_dir: Path, model, config: dict) -> dict:
    """Load weights into ``model`` (names every mismatched key) and return the train state."""
    step_dir = Path(step_dir)
    saved = read_json(step_dir / "config.json", error=CheckpointError)
    if saved.get("objective") != config.get("objective"):
        raise CheckpointError(f"{step_dir}: trained with --objective {saved.get('objective')}, this run uses "
                              f"{config.get('objective')}; resume with the same objective or use a new --output-dir")
    try:
        state = load_file(str(step_dir / "model.safetensors"))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{step_dir / 'model.safetensors'}: cannot read ({e})") from None
    check_state_dict(model, state, str(step_dir / "model.safetensors"))
    model.load_state_dict(state, strict=True)
    try:
        return torch.load(step_dir / "state.pt", map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for truncated or foreign files
        raise CheckpointError(f"{step_dir / 'state.pt'}: cannot load ({e}); resume from an earlier "
                              "checkpoints/step_<N> directory") from None

