"""The pretraining loader alone, sc-eval vs open_clip's webdataset pipeline, on the same shards.

Writes ``--n-shards`` shards in the img2dataset layout (``NNNNN.tar`` holding ``KEY.jpg`` +
``KEY.txt``) of ``--image-px`` photo-like JPEGs (smooth colour fields plus fine noise: about
20 KB at 224 px, like resized web photos), or reads ``--data``. Then, for each worker count in
``--workers``, every contender loads batches of ``--batch-size`` with the same transform
(RandomResizedCrop(224, scale (0.9, 1)), bicubic, CLIP mean/std, no flip) and the same CLIP
tokenizer; after ``--warmup`` batches per worker (worker start-up, shuffle buffers filling) the
next ``--batches`` batches per worker are timed. Contenders:

- ``open_clip``: ``open_clip_train.data.get_wds_dataset`` (its training pipeline, with
  ``--dataset-resampled`` so that it never runs dry), or, where open_clip_train is not
  installed, the same webdataset stages rebuilt here: shards resampled, tar to samples, buffer
  shuffle (5,000, initial 1,000), select, ``decode("pilrgb")``, the transform, tokenizer,
  ``batched``. Its batches are normalised float32.
- ``sc_eval``: ``sc-eval pretrain``'s loader with ``--decode cpu``: uint8 crops and token ids,
  what a GPU trainer receives (it converts and normalises on the GPU).
- ``sc_eval_float``: the same plus ``to_device`` on the CPU (float conversion and
  normalisation in the training process): everything a CPU-only trainer pays.
- with ``--device cuda``: ``sc_eval_cuda`` (``--decode cpu`` then ``to_device`` on the GPU:
  pinned, non-blocking) and ``sc_eval_gpu_decode`` (``--decode gpu``: workers hand JPEG bytes,
  nvjpeg decodes the batch, crop/resize/normalise on the GPU), each batch synchronised before
  the clock stops; and ``gpu_vs_cpu_mean_abs_levels``, how far nvjpeg's crops are from the CPU
  path's (0-255 units).

Prints ONE JSON object: ``<name>_w<N>_images_per_s``, ``<name>_w<N>_per_worker`` and the ratios
``sc_eval_over_open_clip_w<N>`` / ``sc_eval_float_over_open_clip_w<N>`` (target: >= 1.3 per
worker on a CPU). ``--rounds`` repeats the sequence (order alternating) and reports each ratio's
range, which is what to quote on a shared machine.

    python benchmarks/loader.py --workers 1,2 --batch-size 128
    python benchmarks/loader.py --device cuda --workers 14 --batch-size 256 --n-shards 112
"""
from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

CAPTION_WORDS = ("a photo of the red blue green small large round square dog cat car tree house on near "
                 "beside under with two three people street city beach sunset at night").split()


def _shard(args):
    """Write one shard (run in a process pool) with webdataset's writer, as img2dataset does."""
    import numpy as np
    from PIL import Image
    from webdataset import TarWriter

    path, index, per, px = args
    rng = np.random.default_rng(index)
    with TarWriter(path, encoder=False, user="", group="", mode=0o644, mtime=0) as tar:
        for i in range(per):
            low = rng.normal(size=(px // 16 + 1, px // 16 + 1, 3))
            base = Image.fromarray(((low - low.min()) / np.ptp(low) * 255).astype(np.uint8)).resize((px, px), Image.BICUBIC)
            a = np.asarray(base).astype(np.float32) + rng.normal(0, 10, size=(px, px, 3))
            buf = io.BytesIO()
            Image.fromarray(a.clip(0, 255).astype(np.uint8)).save(buf, "JPEG", quality=90)
            words = rng.choice(CAPTION_WORDS, size=int(rng.integers(6, 16)))
            tar.write({"__key__": f"{index:05d}{i:04d}", "jpg": buf.getvalue(), "txt": " ".join(words).encode()})


def write_shards(folder: Path, n_shards: int, per_shard: int, px: int, processes: int = 1) -> str:
    """img2dataset-style shards; returns their brace pattern. Reuses a folder written alike."""
    from multiprocessing import Pool

    folder.mkdir(parents=True, exist_ok=True)
    stamp = folder / "shards.json"
    spec = {"n_shards": n_shards, "per_shard": per_shard, "px": px}
    if not (stamp.exists() and json.loads(stamp.read_text()) == spec):
        jobs = [(str(folder / f"{s:05d}.tar"), s, per_shard, px) for s in range(n_shards)]
        with Pool(max(1, processes)) as pool:
            pool.map(_shard, jobs)
        stamp.write_text(json.dumps(spec))
    return str(folder) + "/{00000..%05d}.tar" % (n_shards - 1)


# -- contenders: each returns an iterator of batches and a "finish" for the timed work ---------
def open_clip_loader(data: str, workers: int, batch: int, seed: int):
    import open_clip
    from sc_eval.pretrain.data import CLIP_MEAN, CLIP_STD

    preprocess = open_clip.image_transform(224, is_train=True, mean=CLIP_MEAN, std=CLIP_STD,
                                           interpolation="bicubic", aug_cfg={"scale": (0.9, 1.0)})
    tokenizer = open_clip.get_tokenizer("ViT-B-16")
    it = None
    try:
        from open_clip_train.data import get_wds_dataset

        ns = argparse.Namespace(train_data=data, val_data=None, train_num_samples=10**9, dataset_resampled=True,
                                train_data_upsampling_factors=None, seed=seed, batch_size=batch, workers=workers,
                                world_size=1)
        it = iter(get_wds_dataset(ns, preprocess, is_train=True, epoch=0, tokenizer=tokenizer).dataloader)
        first = next(it)
        return _chain(first, it), "open_clip_train.data.get_wds_dataset"
    except Exception as e:  # not installed, or its pipeline fails with this webdataset version
        lines = str(e).strip().splitlines()
        why = (lines[-1] if lines and ":" in lines[-1] else f"{type(e).__name__}: {str(e)}")[:200]
        it = None  # shut its workers down here, not in a later contender's forked worker
        import gc

        gc.collect()
        return (_open_clip_stages(data, workers, batch, preprocess, tokenizer),
                f"webdataset stages as open_clip_train builds them (open_clip_train.data itself: {why})")


def _chain(first, it):
    yield first
    yield from it


def _open_clip_stages(data, workers, batch, preprocess, tokenizer):
    """open_clip's training pipeline from webdataset stages (for when open_clip_train is absent)."""
    import webdataset as wds
    from webdataset.handlers import warn_and_continue

    def has_pair(s):
        return "txt" in s and any(k in s for k in ("png", "jpg", "jpeg", "webp"))

    pipeline = wds.DataPipeline(
        wds.ResampledShards(data), wds.tarfile_to_samples(handler=warn_and_continue),
        wds.shuffle(5000, initial=1000), wds.select(has_pair), wds.decode("pilrgb", handler=warn_and_continue),
        wds.rename(image="jpg;png;jpeg;webp", text="txt"),
        wds.map_dict(image=preprocess, text=lambda t: tokenizer(t)[0]), wds.to_tuple("image", "text"),
        wds.batched(batch, partial=False))
    return iter(wds.WebLoader(pipeline, batch_size=None, shuffle=False, num_workers=workers,
                              persistent_workers=workers > 0))


def sc_eval_loader(data: str, workers: int, batch: int, seed: int, decode: str = "cpu", pin: bool = False):
    from sc_eval.pretrain.data import BatchLoader, PretrainStream, open_source
    from sc_eval.pretrain.tokenize import build_tokenizer

    stream = PretrainStream(open_source(data), build_tokenizer("clip"), 224, batch, seed=seed, decode=decode)
    return iter(BatchLoader(stream, workers, pin=pin))


def measure(make, finish, workers: int, warmup: int, batches: int) -> float:
    """images/s over ``batches`` x workers batches after ``warmup`` x workers (or at least 2)."""
    it = make()
    for _ in range(max(2, warmup * max(1, workers))):
        finish(next(it))
    n, t0 = 0, time.perf_counter()
    for _ in range(batches * max(1, workers)):
        n += finish(next(it))
    rate = n / (time.perf_counter() - t0)
    if hasattr(it, "close"):
        it.close()  # stop this contender's workers before the next one starts
    del it
    import gc

    gc.collect()
    return rate


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--batches", type=int, default=6, help="timed batches per worker")
    p.add_argument("--warmup", type=int, default=2, help="untimed batches per worker first")
    p.add_argument("--rounds", type=int, default=1, help="repeat the sequence of contenders (order alternates)")
    p.add_argument("--data", default=None, help="existing shards (brace pattern); default: write them")
    p.add_argument("--shards-dir", default=None, help="where to write (and reuse) shards; default: a temp folder")
    p.add_argument("--n-shards", type=int, default=32)
    p.add_argument("--per-shard", type=int, default=128)
    p.add_argument("--image-px", type=int, default=224, help="side of the JPEGs written")
    p.add_argument("--device", default="cpu", help="cpu, or cuda to add the GPU contenders")
    p.add_argument("--only", default=None, help="comma-separated subset of contenders")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    import torch

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    counts = [int(x) for x in args.workers.split(",")]
    tmp = None
    if args.data:
        data = args.data
    else:
        folder = Path(args.shards_dir) if args.shards_dir else Path(tmp := tempfile.mkdtemp(prefix="sc-eval-loader-"))
        t0 = time.perf_counter()
        data = write_shards(folder, args.n_shards, args.per_shard, args.image_px, processes=max(counts))
        written_s = time.perf_counter() - t0
    cuda = args.device.startswith("cuda")

    from sc_eval.pretrain.data import to_device

    def images(b):
        return len(b[0]) if isinstance(b, (list, tuple)) else len(b["tokens"])

    def to_float(b):
        x, _, _ = to_device(b, "cpu", args.seed)
        return len(x)

    def on_gpu(b):
        x, _, _ = to_device(b, args.device, args.seed)
        torch.cuda.synchronize()
        return len(x)

    oc_source = {}

    def oc_make(w):
        it, source = open_clip_loader(data, w, args.batch_size, args.seed)
        oc_source["v"] = source
        return it

    contenders = {
        "open_clip": (oc_make, images),
        "sc_eval": (lambda w: sc_eval_loader(data, w, args.batch_size, args.seed), images),
        "sc_eval_float": (lambda w: sc_eval_loader(data, w, args.batch_size, args.seed), to_float),
    }
    if cuda:
        contenders["sc_eval_cuda"] = (lambda w: sc_eval_loader(data, w, args.batch_size, args.seed, pin=True), on_gpu)
        contenders["sc_eval_gpu_decode"] = (lambda w: sc_eval_loader(data, w, args.batch_size, args.seed, "gpu", True),
                                            on_gpu)
    names = args.only.split(",") if args.only else list(contenders)
    out = {"device": args.device, "batch_size": args.batch_size, "image_px": args.image_px, "data": data,
           "cpu_cores": os.cpu_count(), "rounds": args.rounds}
    if not args.data:
        out["shards_written_s"] = round(written_s, 1)
    rates = {(n, w): [] for n in names for w in counts}
    for r in range(args.rounds):
        for w in counts:
            for name in (names if r % 2 == 0 else names[::-1]):
                make, finish = contenders[name]
                rates[(name, w)].append(measure(lambda: make(w), finish, w, args.warmup, args.batches))
    for (name, w), rs in rates.items():
        out[f"{name}_w{w}_images_per_s"] = round(statistics.median(rs), 1)
        out[f"{name}_w{w}_per_worker"] = round(statistics.median(rs) / max(1, w), 1)
    for w in counts:
        for name in ("sc_eval", "sc_eval_float", "sc_eval_cuda", "sc_eval_gpu_decode"):
            if (name, w) in rates and ("open_clip", w) in rates:
                out[f"{name}_over_open_clip_w{w}"] = round(
                    out[f"{name}_w{w}_images_per_s"] / out[f"open_clip_w{w}_images_per_s"], 3)
                if args.rounds > 1:
                    rs = [a / b for a, b in zip(rates[(name, w)], rates[("open_clip", w)])]
                    out[f"{name}_over_open_clip_w{w}_range"] = [round(min(rs), 3), round(max(rs), 3)]
    out["open_clip_pipeline"] = oc_source.get("v")
    if cuda:
        out["gpu_vs_cpu_mean_abs_levels"] = _gpu_vs_cpu(data, args.seed, args.device)
    print(json.dumps(out))
    if tmp:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def _gpu_vs_cpu(data: str, seed: int, device: str) -> float:
    """Mean |nvjpeg path - CPU path| of the same crops of 64 images, in 0-255 units."""
    from sc_eval.data.shards import expand_shards, image_and_caption, iter_samples
    from sc_eval.pretrain.data import cpu_crop, device_crops, sample_generator

    raws = []
    for s in iter_samples(expand_shards(data)[:1]):
        raws.append(image_and_caption(s)[0])
        if len(raws) == 64:
            break
    gpu = device_crops(raws, [sample_generator(seed, i) for i in range(len(raws))], 224, device)
    diffs = [(g.cpu() - cpu_crop(r, 224, sample_generator(seed, i)).float()).abs().mean().item()
             for i, (g, r) in enumerate(zip(gpu, raws))]
    return round(sum(diffs) / len(diffs), 3)


if __name__ == "__main__":
    sys.exit(main())
