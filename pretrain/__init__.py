"""The SuperClass pretraining app (installed as sc_eval.pretrain).

Modules: ``loss`` (SuperClassLoss: labels + online IDF + loss), ``tokenize`` (CLIP BPE or a local
HF tokenizer), ``models`` (tower + head, and the CLIP baseline), ``data`` (webdataset shards,
jsonl, HF datasets, exact-resume streaming), ``parallel`` (DDP / FSDP wrapping and full-state
checkpoints), ``checkpoint`` (run-directory layout), ``trainer`` (the loop, in parts),
``progress`` (metrics.jsonl, TensorBoard, the bar) and ``command`` (`sc-eval pretrain`).
Importing this package imports no torch: names are resolved on first use.
"""
from importlib import import_module

_LAZY = {
    "SuperClassLoss": "sc_eval.pretrain.loss",
    "SuperClassModel": "sc_eval.pretrain.models",
    "ClipModel": "sc_eval.pretrain.models",
}

__all__ = sorted(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sc_eval.pretrain' has no attribute {name!r}")
