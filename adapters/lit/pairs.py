"""Image-text pairs for LiT, as frozen-encoder features plus captions.

Accepted ``--pairs``:

- a ``.jsonl`` file of ``{"image": path relative to the file, "caption": text}`` lines (the
  embedded world's ``pretrain/pairs.jsonl``; ``"text"`` or a ``"captions"`` list also work: the
  first caption is used, so one image counts once);
- webdataset shards: a ``.tar`` file, a directory of them or a brace pattern
  (``dir/{00000..00009}.tar``; img2dataset layout: ``KEY.jpg`` beside ``KEY.txt``), read by the
  one shard reader, ``sc_eval.data.shards``.

Path-based pairs go through the shared feature cache; shard images are encoded in memory.
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch

from sc_eval.data.shards import decode_rgb, expand_shards, image_and_caption, iter_samples
from sc_eval.encoders.features import encode_images
from sc_eval.errors import DataError
from sc_eval.evaluation.classification import encode_pil
from sc_eval.io import iter_jsonl
from sc_eval.world.build import ensure_world

log = logging.getLogger(__name__)


def default_pairs(seed: int = 0) -> Path:
    return Path(ensure_world(seed=seed)) / "pretrain" / "pairs.jsonl"


def read_jsonl_pairs(path: Path, limit: int | None = None) -> tuple[list[str], list[str]]:
    images, captions = [], []
    for n, rec in enumerate(iter_jsonl(path), 1):
        image = rec.get("image")
        caption = rec.get("caption", rec.get("text"))
        if caption is None and isinstance(rec.get("captions"), list) and rec["captions"]:
            caption = rec["captions"][0]
        if not isinstance(image, str) or not isinstance(caption, str):
            raise DataError(f"{path}:{n}: expected {{\"image\": path, \"caption\": text}}, got keys {sorted(rec)}")
        p = Path(image)
        p = p if p.is_absolute() else path.parent / p
        images.append(str(p))
        captions.append(caption)
        if limit is not None and len(images) >= limit:
            break
    if not images:
        raise DataError(f"{path}: no image-text pairs")
    return images, captions


def iter_shard_pairs(shards, limit: int | None = None):
    """Yield (PIL image, caption) from webdataset shards, in shard then member order.

    Samples are grouped by webdataset's key rule (``sc_eval.data.shards``). A sample holding
    only a ``.json`` is an img2dataset failure record and is passed over; any other without an
    image and a caption (truncated shard, undecodable image, missing half, a name whose first
    dot is not its extension's) is reported with its shard and key and skipped."""
    count = 0
    for sample in iter_samples([str(s) for s in shards]):
        if "__error__" not in sample and [k for k in sample if not k.startswith("__")] == ["json"]:
            continue
        try:
            raw, caption = image_and_caption(sample)
            image = decode_rgb(raw, f"{sample['__url__']}: sample {sample['__key__']!r}")
        except DataError as e:
            log.warning("LiT pairs: skipping damaged sample: %s", e)
            continue
        yield image, caption
        count += 1
        if limit is not None and count >= limit:
            return


def pair_features(encoder, spec=None, seed: int = 0, batch_size: int = 64, limit: int | None = None,
                  precision: str = "fp32"):
    """(features [N, D] float32, captions) for ``--pairs`` (default: the embedded world's)."""
    if spec is not None and ("{" in str(spec) or any(ch in str(spec) for ch in "*?[")):
        return _shard_features(encoder, expand_shards(str(spec), "--pairs"), str(spec), batch_size, limit, precision)
    path = Path(spec).expanduser() if spec is not None else default_pairs(seed)
    if not path.exists():
        raise DataError(f"--pairs {path}: no such file or directory (a .jsonl of image/caption pairs, "
                        "a webdataset .tar, a directory of .tar shards or a pattern such as 'dir/{00000..00009}.tar')")
    if path.is_file() and path.suffix == ".jsonl":
        images, captions = read_jsonl_pairs(path, limit)
        feats = encode_images(encoder, images, f"pairs:{path.resolve()}", "train", kind="pooled",
                              batch_size=batch_size, precision=precision)
        return torch.as_tensor(feats).float().cpu().clone(), captions
    tars = [path] if path.is_file() else sorted(path.glob("*.tar"))
    if not tars or any(t.suffix != ".tar" for t in tars):
        raise DataError(f"--pairs {path}: expected a .jsonl file, a .tar shard or a directory of .tar shards")
    return _shard_features(encoder, [str(t) for t in tars], str(path), batch_size, limit, precision)


def _shard_features(encoder, shards: list[str], spec: str, batch_size: int, limit: int | None,
                    precision: str = "fp32"):
    captions: list[str] = []

    def images():
        for image, caption in iter_shard_pairs(shards, limit):
            captions.append(caption)
            yield image

    feats = encode_pil(encoder, images(), batch_size, precision)
    if not captions:
        raise DataError(f"--pairs {spec}: no image + .txt pairs in {len(shards)} shard(s)")
    log.info("LiT pairs: %d from %d shard(s)", len(captions), len(shards))
    return feats, captions
