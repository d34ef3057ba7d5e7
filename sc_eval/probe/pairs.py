"""Image-text pairs for LiT, as frozen-encoder features plus captions.

Accepted ``--pairs``:

- a ``.jsonl`` file of ``{"image": path relative to the file, "caption": text}`` lines (the
  embedded world's ``pretrain/pairs.jsonl``; ``"text"`` or a ``"captions"`` list also work: the
  first caption is used, so one image counts once);
- webdataset shards: a ``.tar`` file, or a directory of them (img2dataset layout: ``KEY.jpg``
  beside ``KEY.txt``).

Path-based pairs go through the shared feature cache; shard images are encoded in memory.
"""
from __future__ import annotations

import io
import logging
import tarfile
from pathlib import Path

from sc_eval.errors import DataError

log = logging.getLogger(__name__)

_IMAGE_EXT = (".jpg", ".jpeg", ".png", ".webp")


def default_pairs(seed: int = 0) -> Path:
    from sc_eval.world import ensure_world

    return Path(ensure_world(seed=seed)) / "pretrain" / "pairs.jsonl"


def read_jsonl_pairs(path: Path, limit: int | None = None) -> tuple[list[str], list[str]]:
    from sc_eval.io import iter_jsonl

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


def iter_shard_pairs(tars: list[Path], limit: int | None = None):
    """Yield (PIL image, caption) from webdataset tars, in shard then member order."""
    from PIL import Image

    count = 0
    for tar in tars:
        try:
            with tarfile.open(tar) as tf:
                groups: dict[str, dict[str, tarfile.TarInfo]] = {}
                for m in tf.getmembers():
                    if m.isfile():
                        key, dot, ext = m.name.rpartition(".")
                        groups.setdefault(key, {})["." + ext.lower()] = m
                for key, members in groups.items():
                    img = next((members[e] for e in _IMAGE_EXT if e in members), None)
                    if img is None or ".txt" not in members:
                        continue
                    caption = tf.extractfile(members[".txt"]).read().decode("utf-8").strip()
                    image = Image.open(io.BytesIO(tf.extractfile(img).read())).convert("RGB")
                    yield image, caption
                    count += 1
                    if limit is not None and count >= limit:
                        return
        except tarfile.TarError as e:
            raise DataError(f"{tar}: unreadable webdataset shard ({e})") from None


def pair_features(encoder, spec=None, seed: int = 0, batch_size: int = 64, limit: int | None = None,
                  precision: str = "fp32"):
    """(features [N, D] float32, captions) for ``--pairs`` (default: the embedded world's)."""
    import torch

    path = Path(spec).expanduser() if spec is not None else default_pairs(seed)
    if not path.exists():
        raise DataError(f"--pairs {path}: no such file or directory (a .jsonl of image/caption pairs, "
                        "a webdataset .tar, or a directory of .tar shards)")
    if path.is_file() and path.suffix == ".jsonl":
        from sc_eval.cache import encode_images

        images, captions = read_jsonl_pairs(path, limit)
        feats = encode_images(encoder, images, f"pairs:{path.resolve()}", "train", kind="pooled",
                              batch_size=batch_size, precision=precision)
        return torch.as_tensor(feats).float().cpu().clone(), captions
    tars = [path] if path.is_file() else sorted(path.glob("*.tar"))
    if not tars or any(t.suffix != ".tar" for t in tars):
        raise DataError(f"--pairs {path}: expected a .jsonl file, a .tar shard or a directory of .tar shards")
    from sc_eval.probe.datasets import encode_pil

    captions: list[str] = []

    def images():
        for image, caption in iter_shard_pairs(tars, limit):
            captions.append(caption)
            yield image

    feats = encode_pil(encoder, images(), batch_size, precision)
    if not captions:
        raise DataError(f"--pairs {path}: no image + .txt pairs in {len(tars)} shard(s)")
    log.info("LiT pairs: %d from %d shard(s)", len(captions), len(tars))
    return feats, captions
