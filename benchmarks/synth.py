"""Synthetic pretraining data at real image size, for throughput checks of the whole input path.

``write_jpeg_shards`` writes webdataset shards in img2dataset's layout (``NNNNN.tar`` holding
``<key>.jpg``, ``<key>.txt``, ``<key>.json``), the layout of DataComp / LAION shards, with
224-px JPEGs whose size and decode cost are those of small photos (a smooth background, a few
shapes, sensor-like noise; about 24 KB each at quality 95, img2dataset's default), and short
captions. It measures the loader (JPEG decode, crop, tokenisation), which the embedded world's
64-px images do not stress.

Shards are written in parallel, one per task, each from (seed, shard index) alone: the same
arguments give the same bytes however many processes write them.

    python benchmarks/synth.py OUT_DIR [--images 4096] [--size 224] [--per-shard 256]
"""
from __future__ import annotations

import argparse
import io
import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

COLOURS = ["red", "green", "blue", "yellow", "purple", "orange", "white", "black", "grey", "pink"]
THINGS = ["circle", "square", "triangle", "star", "ring", "bar", "cross", "dot"]
PLACES = ["on a field", "in a room", "near the sea", "under a tree", "on a table", "in the street"]


def _shard(out_dir: str, index: int, first: int, count: int, size: int, seed: int) -> tuple[str, int]:
    """Write shard ``index`` (samples ``first .. first + count - 1``); returns (path, JPEG bytes)."""
    import numpy as np
    import webdataset as wds
    from PIL import Image, ImageDraw

    rng = np.random.default_rng([seed, index])
    path = Path(out_dir) / f"{index:05d}.tar"
    tmp = path.with_suffix(".tar.tmp")
    jpeg_bytes = 0
    with wds.TarWriter(str(tmp)) as sink:
        for k in range(first, first + count):
            top, bottom = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
            ramp = np.linspace(0.0, 1.0, size)[:, None, None]
            img = (top * (1 - ramp) + bottom * ramp).repeat(size, axis=1).astype(np.uint8)
            pil = Image.fromarray(img)
            draw = ImageDraw.Draw(pil)
            words = []
            for _ in range(int(rng.integers(2, 6))):
                c = int(rng.integers(len(COLOURS)))
                x0, y0 = rng.integers(0, size - size // 4, 2)
                w, h = rng.integers(size // 8, size // 3, 2)
                box = [int(x0), int(y0), int(x0 + w), int(y0 + h)]
                fill = tuple(int(v) for v in rng.integers(0, 256, 3))
                (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=fill)
                words.append(f"{COLOURS[c]} {THINGS[int(rng.integers(len(THINGS)))]}")
            noisy = np.asarray(pil).astype(np.int16) + rng.normal(0, 8, (size, size, 3)).astype(np.int16)
            buf = io.BytesIO()
            Image.fromarray(noisy.clip(0, 255).astype(np.uint8)).save(buf, format="JPEG", quality=95)
            caption = f"a {' and a '.join(words)} {PLACES[int(rng.integers(len(PLACES)))]}"
            key = f"{k:09d}"
            sink.write({"__key__": key, "jpg": buf.getvalue(), "txt": caption,
                        "json": json.dumps({"key": key, "caption": caption, "width": size, "height": size})})
            jpeg_bytes += buf.tell()
    os.replace(tmp, path)  # a killed run leaves no shard that looks complete
    return str(path), jpeg_bytes


def write_jpeg_shards(out_dir, n_images: int, size: int = 224, per_shard: int = 256, seed: int = 0,
                      processes: int | None = None) -> dict:
    """Write ``n_images`` synthetic (JPEG, caption) pairs as webdataset shards under ``out_dir``.

    Returns {"shards": [paths], "images", "mean_jpeg_bytes"}; ``processes`` (default: the CPU
    count, at most one per shard) write shards in parallel.
    """
    if n_images < 1 or per_shard < 1 or size < 16:
        raise ValueError(f"need n_images >= 1, per_shard >= 1 and size >= 16 (got {n_images}, {per_shard}, {size})")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(str(out), i, first, min(per_shard, n_images - first), size, seed)
            for i, first in enumerate(range(0, n_images, per_shard))]
    workers = max(1, min(processes or os.cpu_count() or 1, len(jobs)))
    if workers == 1:
        done = [_shard(*j) for j in jobs]
    else:
        with ProcessPoolExecutor(workers) as pool:
            done = list(pool.map(_shard, *zip(*jobs)))
    return {"shards": [p for p, _ in done], "images": n_images,
            "mean_jpeg_bytes": round(sum(b for _, b in done) / n_images)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out_dir")
    p.add_argument("--images", type=int, default=4096)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--per-shard", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    info = write_jpeg_shards(args.out_dir, args.images, args.size, args.per_shard, args.seed)
    print(json.dumps({"shards": len(info["shards"]), "images": info["images"],
                      "mean_jpeg_bytes": info["mean_jpeg_bytes"], "out_dir": args.out_dir}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
