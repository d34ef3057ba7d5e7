"""Feature cache: encode a list of images once per (encoder, data, preprocessing), reuse after.

Probes, few-shot runs and ClipCap training all read frozen-encoder features many times; a
ViT-L pass over COCO takes far longer than the linear layer trained on it. The cache file is
``<cache_dir>/<key>.safetensors`` with ``key = sha256(encoder fingerprint, dataset key, split,
transform description, kind, layer, precision, image paths with each file's size and modification
time)``:
anything that could change a feature changes the key (a re-downloaded or rewritten image too), so
nothing needs invalidating by hand.
Files are written atomically (temp file + rename): a killed run leaves no half file behind.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from tqdm.auto import tqdm

from sc_eval.data.images import load_image
from sc_eval.errors import ConfigError
from sc_eval.io import atomic_save_safetensors
from sc_eval.runtime import home
from sc_eval.runtime.dist import is_main
from sc_eval.runtime.fingerprint import Hasher, precision_fields
from sc_eval.runtime.precision import autocast

log = logging.getLogger(__name__)

KINDS = ("pooled", "tokens")
CACHE_VERSION = 2  # 2: file size and mtime in the key


def _transform_description(encoder) -> str:
    t = getattr(encoder, "transform", None)
    return getattr(t, "description", None) or repr(t)


def cache_key(encoder, image_paths, dataset_key: str, split: str, kind: str, layer: int,
              precision: str = "fp32") -> str:
    """The fingerprint naming the cache file (see the module docstring for what it covers)."""
    head = {
        "version": CACHE_VERSION,
        "encoder": encoder.fingerprint,
        "dataset": str(dataset_key),
        "split": str(split),
        "transform": _transform_description(encoder),
        "kind": kind,
        "layer": int(layer) if kind == "tokens" else None,
        **precision_fields(precision),
    }
    h = Hasher().json(head)
    for p in image_paths:
        path = Path(p).absolute()
        try:
            st = path.stat()
            stamp = f"{st.st_size}:{st.st_mtime_ns}"
        except OSError:  # a missing image: encoding it names the file
            stamp = "missing"
        h.bytes(b"\0" + os.fspath(path).encode() + b"\0" + stamp.encode())
    return h.hex()


def _read_cached(path: Path, n: int):
    try:
        feats = load_file(str(path))["features"]
    except (SafetensorError, OSError, KeyError, ValueError) as e:
        log.warning("%s: unreadable feature cache (%s); re-encoding", path, e)
        return None
    if feats.shape[0] != n:
        log.warning("%s: cached %d rows for %d images; re-encoding", path, feats.shape[0], n)
        return None
    return feats


def encode_images(encoder, image_paths, dataset_key: str, split: str, kind: str = "pooled",
                  batch_size: int = 64, cache_dir=None, layer: int = -2, progress: bool = True,
                  precision: str = "fp32"):
    """Features of ``image_paths`` in order: ``[N, D]`` (pooled) or ``[N, N_patches, D]`` (tokens).

    The first call encodes and writes the cache; later calls with the same inputs load it and
    never run the encoder. Repeated paths are encoded once. The encoder runs under autocast in
    ``precision`` (``--precision``; part of the key). Returns float32 CPU tensors.
    """
    if kind not in KINDS:
        raise ConfigError(f"unknown feature kind {kind!r}; use one of {', '.join(KINDS)}")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    paths = [os.fspath(p) for p in image_paths]
    amp = autocast(getattr(encoder, "device", "cpu"), precision)  # checks the precision before any work
    key = cache_key(encoder, paths, dataset_key, split, kind, layer, precision)
    path = Path(cache_dir) if cache_dir is not None else home.cache_dir("features")
    path = path / f"{key}.safetensors"
    if path.is_file():
        feats = _read_cached(path, len(paths))
        if feats is not None:
            log.info("features for %s/%s (%d images) from cache %s", dataset_key, split, len(paths), path)
            return feats

    unique = list(dict.fromkeys(paths))
    index = {p: i for i, p in enumerate(unique)}
    batches = [unique[i:i + batch_size] for i in range(0, len(unique), batch_size)]
    it = batches
    if progress and len(batches) > 1 and is_main():
        it = tqdm(batches, desc=f"encode {dataset_key}/{split}", unit="batch")
    chunks = []
    with torch.inference_mode(), amp:
        for batch in it:
            x = torch.stack([encoder.transform(load_image(p)) for p in batch])
            out = encoder.forward_pooled(x) if kind == "pooled" else encoder.forward_tokens(x, layer=layer)
            chunks.append(out.float().cpu())
    if chunks:
        feats = torch.cat(chunks)
    else:
        feats = torch.zeros((0, encoder.width) if kind == "pooled" else (0, encoder.num_patches or 0, encoder.width))
    if len(unique) != len(paths):
        feats = feats[torch.tensor([index[p] for p in paths], dtype=torch.long)]
    feats = feats.contiguous()

    meta = {"encoder": encoder.fingerprint, "spec": str(getattr(encoder, "spec", "")), "dataset": str(dataset_key),
            "split": str(split), "kind": kind, "layer": str(layer), "n": str(len(paths)),
            "precision": precision}
    atomic_save_safetensors(path, {"features": feats}, metadata=meta)
    log.info("cached features for %s/%s (%s) at %s", dataset_key, split, tuple(feats.shape), path)
    return feats
