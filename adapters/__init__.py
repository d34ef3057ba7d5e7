"""Adapters: what turns a frozen encoder into something a task can score. ClipCap and LLaVA make
it a text generator (captions, answers); the linear probe, k-shot and LiT make it a classifier.

``ADAPTERS`` is the one list of them (``sc-eval ls adapters`` prints it); each names the command
that trains and evaluates it. Importing this package imports nothing heavy.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass


@dataclass(frozen=True)
class AdapterKind:
    name: str
    output: str       # what it makes of the encoder: captions, answers or class scores
    command: str      # the command line that runs it
    description: str


ADAPTERS: dict[str, AdapterKind] = {}


def register_adapter(kind: AdapterKind) -> None:
    """Add an adapter to the list (replacing one of the same name with a warning)."""
    if kind.name in ADAPTERS:
        warnings.warn(f"adapter {kind.name!r} registered again: the new one replaces it", stacklevel=2)
    ADAPTERS[kind.name] = kind


for _kind in (
    AdapterKind("clipcap", "captions", "sc-eval caption",
                "ClipCap mapper (transformer | mlp): image features -> a prefix of a causal LM (GPT-2), trained on captions"),
    AdapterKind("llava", "answers", "sc-eval llava",
                "LLaVA projector (linear | mlpNx_gelu) into a causal LM with LoRA, two-stage training"),
    AdapterKind("linear", "class scores", "sc-eval probe --tasks linear",
                "BatchNorm + linear classifier on frozen features (MAE's probe recipe)"),
    AdapterKind("logreg", "class scores", "sc-eval probe --tasks logreg",
                "L-BFGS logistic regression on frozen features, weight decay chosen on a validation split"),
    AdapterKind("kshot", "class scores", "sc-eval probe --tasks fewshot",
                "logistic regression on k labelled images per class, mean over seeds"),
    AdapterKind("lit", "class scores", "sc-eval zeroshot",
                "LiT: a text tower and a projection trained on image-text pairs, zero-shot by class-name prompts"),
):
    register_adapter(_kind)
