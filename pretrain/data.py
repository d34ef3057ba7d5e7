"""Image-caption streams for pretraining, with an exact, world-size-independent data position.

Sources (``open_source``): webdataset tar shards in the img2dataset layout (``NNNNN.jpg`` +
``.txt`` [+ ``.json``], brace-expanded paths such as ``dir/{00000..00003}.tar``, a folder of
tars, or a glob), a jsonl of ``{"image", "caption"}`` records next to an image folder, a local
Hugging Face dataset directory (``datasets.load_from_disk``) with image and text columns, and the
embedded world's shards by default.

Why the stream is defined the way it is: every epoch visits the samples in an order that depends
only on the seed and epoch (shards shuffled per epoch for tars, a full permutation for
map-style sources). Samples get a global index ``g`` that runs on across epochs; global batch
``k`` is samples ``[k*B, (k+1)*B)``; rank ``r`` takes the ``r``-th slice of ``B / world`` of it, and
the ``k``-th batch (counted from the resume point) goes to DataLoader worker ``k % workers``,
which is the order the DataLoader hands batches back in. So a run on 1 or N processes sees the
same global batches, and resuming at batch ``k`` is exact. Each worker walks the whole stream but
decodes only its own samples (tar headers are cheap to skip). Augmentation randomness is seeded
per sample from (seed, g), so it does not depend on workers either.

Corrupt samples (unreadable image, missing image or caption, a truncated shard) are skipped,
logged and counted (``n_corrupt`` in each batch); the batch is then smaller by that many.
"""
from __future__ import annotations

import glob
import io
import logging
import math
import os
import random
import tarfile
from pathlib import Path

from sc_eval.errors import DataError

log = logging.getLogger(__name__)

IMAGE_EXTS = ("jpg", "jpeg", "png", "webp")
TEXT_EXTS = ("txt", "caption")
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


# -- sources -------------------------------------------------------------------------------
class TarSource:
    """webdataset shards; members grouped by key (file name up to the first dot)."""

    def __init__(self, shards: list[str]):
        self.shards = shards
        self.describe = f"{len(shards)} webdataset shard(s) ({shards[0]} ...)"

    def epoch_items(self, epoch: int, seed: int):
        order = list(self.shards)
        random.Random(seed * 7919 + epoch).shuffle(order)
        for shard in order:
            yield from self._shard_items(shard)

    def _shard_items(self, shard: str):
        try:
            tf = tarfile.open(shard, "r:")
        except (OSError, tarfile.TarError) as e:
            yield (f"{shard}", _corrupt(f"{shard}: cannot open shard ({e})"))
            return
        with tf:
            key, members = None, {}
            try:
                for m in tf:
                    if not m.isfile():
                        continue
                    base = m.name.rsplit("/", 1)[-1]
                    k, _, ext = base.partition(".")
                    k = m.name[: len(m.name) - len(base)] + k
                    if k != key and key is not None:
                        yield key, _tar_loader(tf, shard, key, members)
                        members = {}
                    key = k
                    members[ext.lower()] = m
            except (tarfile.TarError, OSError, EOFError) as e:
                # the pending sample is lost with the rest of the shard; it counts as corrupt
                yield f"{shard}:{key}", _corrupt(f"{shard}: truncated or corrupt after member {key!r} ({e}); "
                                                 "the rest of this shard is skipped")
                return
            if key is not None:
                yield key, _tar_loader(tf, shard, key, members)
            problem = _tail_problem(shard, tf.offset)
            if problem:  # tarfile reads a cut header as the end of the archive, silently
                yield f"{shard}:end", _corrupt(f"{shard}: {problem} after member {key!r}: the shard is "
                                               "truncated (copy it again); the samples before that point are used")


def _tail_problem(shard: str, offset: int) -> str | None:
    """What is wrong with the bytes after the last member (a tar ends with two zero blocks)."""
    size = os.path.getsize(shard)
    if offset > size:
        return "the last member's data runs past the end of the file"
    with open(shard, "rb") as f:
        f.seek(offset)
        tail = f.read(1024)
    if tail.strip(b"\0"):
        return "an unreadable member header"
    if len(tail) < 1024:
        return "no end-of-archive marker"
    return None


def _corrupt(msg):
    def load():
        raise DataError(msg)
    return load


def _tar_loader(tf, shard, key, members):
    def load():
        img = next((members[e] for e in IMAGE_EXTS if e in members), None)
        txt = next((members[e] for e in TEXT_EXTS if e in members), None)
        if img is None or txt is None:
            raise DataError(f"{shard}: sample {key!r} lacks {'an image' if img is None else 'a caption'} "
                            f"(members: {', '.join(sorted(members))})")
        try:
            raw = tf.extractfile(img).read()
            text = tf.extractfile(txt).read().decode("utf-8").strip()
        except (tarfile.TarError, OSError, UnicodeDecodeError) as e:
            raise DataError(f"{shard}: sample {key!r} unreadable ({e})") from None
        return _decode(raw, f"{shard}:{key}"), text
    return load


def _decode(raw: bytes, where: str):
    from PIL import Image, UnidentifiedImageError

    try:
        img = Image.open(io.BytesIO(raw))
        img.load()
        return img.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise DataError(f"{where}: image cannot be decoded ({e})") from None


class _MapSource:
    """Map-style sources: a fresh permutation of all indices per epoch."""

    def __len__(self):
        raise NotImplementedError

    def epoch_items(self, epoch: int, seed: int):
        order = list(range(len(self)))
        random.Random(seed * 7919 + epoch).shuffle(order)
        for i in order:
            yield str(i), (lambda i=i: self.load(i))


class JsonlSource(_MapSource):
    def __init__(self, path: Path):
        from sc_eval.io import iter_jsonl

        self.path = path
        self.records = list(iter_jsonl(path))
        self.describe = f"{path} ({len(self.records)} pairs)"

    def __len__(self):
        return len(self.records)

    def load(self, i):
        r = self.records[i]
        text = r.get("caption", r.get("text"))
        if "image" not in r or text is None:
            raise DataError(f"{self.path}:{i + 1}: record needs 'image' and 'caption' (or 'text')")
        p = self.path.parent / r["image"]
        try:
            raw = p.read_bytes()
        except OSError as e:
            raise DataError(f"{self.path}:{i + 1}: image {p} unreadable ({e.strerror})") from None
        return _decode(raw, str(p)), str(text)


class HFSource(_MapSource):
    def __init__(self, path: Path):
        import datasets

        ds = datasets.load_from_disk(str(path))
        if isinstance(ds, datasets.DatasetDict):
            ds = ds["train"] if "train" in ds else ds[next(iter(ds))]
        cols = ds.column_names
        self.image_col = next((c for c in ("image", "jpg", "img", "png") if c in cols), None)
        self.text_col = next((c for c in ("caption", "text", "txt", "sentence") if c in cols), None)
        if self.image_col is None or self.text_col is None:
            raise DataError(f"{path}: dataset needs an image column (image/jpg/img) and a text column "
                            f"(caption/text/txt); it has {', '.join(cols)}")
        self.ds, self.path = ds, path
        self.describe = f"{path} (HF dataset, {len(ds)} rows)"

    def __len__(self):
        return len(self.ds)

    def load(self, i):
        row = self.ds[i]
        img = row[self.image_col]
        if isinstance(img, dict) and img.get("bytes"):
            img = _decode(img["bytes"], f"{self.path}[{i}]")
        elif isinstance(img, (bytes, bytearray)):
            img = _decode(bytes(img), f"{self.path}[{i}]")
        if not hasattr(img, "convert"):
            raise DataError(f"{self.path}[{i}]: column {self.image_col!r} holds no image")
        return img.convert("RGB"), str(row[self.text_col])


def open_source(spec: str | None):
    """Resolve ``--data`` to a source (see module docstring)."""
    if spec in (None, "", "world"):
        from sc_eval.world import ensure_world

        spec = str(Path(ensure_world()) / "pretrain" / "shards")
    p = Path(spec)
    if "{" in spec or spec.endswith(".tar") or any(ch in spec for ch in "*?["):
        from braceexpand import braceexpand

        shards = []
        for s in braceexpand(spec):
            shards += sorted(glob.glob(s)) if any(ch in s for ch in "*?[") else [s]
        missing = [s for s in shards if not Path(s).exists()]
        if not shards or missing:
            raise DataError(f"--data {spec}: shard(s) not found: {', '.join(missing[:3]) or 'no match'}")
        return TarSource(shards)
    if p.is_file() and p.suffix == ".jsonl":
        return JsonlSource(p)
    if p.is_dir():
        if (p / "pretrain" / "shards").is_dir():  # a world root
            p = p / "pretrain" / "shards"
        tars = sorted(str(t) for t in p.glob("*.tar"))
        if tars:
            return TarSource(tars)
        if (p / "dataset_info.json").exists() or (p / "dataset_dict.json").exists() or (p / "state.json").exists():
            return HFSource(p)
        if (p / "pairs.jsonl").exists():
            return JsonlSource(p / "pairs.jsonl")
    raise DataError(f"--data {spec}: not a tar shard spec, a folder of .tar shards, a .jsonl of "
                    "{image, caption} records or a datasets.save_to_disk folder")


# -- augmentation --------------------------------------------------------------------------
def random_resized_crop_params(width, height, gen, scale=(0.9, 1.0), ratio=(3 / 4, 4 / 3)):
    """torchvision's RandomResizedCrop sampling, drawn from ``gen`` (a torch.Generator)."""
    import torch

    area = width * height
    log_r = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        u = torch.rand(2, generator=gen, dtype=torch.float64).tolist()
        target = area * (scale[0] + (scale[1] - scale[0]) * u[0])
        aspect = math.exp(log_r[0] + (log_r[1] - log_r[0]) * u[1])
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            i = int(torch.randint(0, height - h + 1, (1,), generator=gen))
            j = int(torch.randint(0, width - w + 1, (1,), generator=gen))
            return i, j, h, w
    in_ratio = width / height
    if in_ratio < ratio[0]:
        w, h = width, int(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        h, w = height, int(round(height * ratio[1]))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def train_transform(img, size, gen, mean=CLIP_MEAN, std=CLIP_STD):
    """RandomResizedCrop(size, scale (0.9, 1)), bicubic, CLIP mean/std, no flip (the official recipe)."""
    import torchvision.transforms.functional as TF
    from torchvision.transforms import InterpolationMode

    i, j, h, w = random_resized_crop_params(img.width, img.height, gen)
    img = TF.resized_crop(img, i, j, h, w, [size, size], InterpolationMode.BICUBIC, antialias=True)
    return TF.normalize(TF.to_tensor(img), mean, std)


# -- the stream ----------------------------------------------------------------------------
def _iterable_base():
    from torch.utils.data import IterableDataset

    return IterableDataset


class PretrainStream(_iterable_base()):
    """Yields dicts ``{images, tokens, batch_index, n_corrupt}``: this rank's share of global
    batch ``batch_index``, from ``start_batch`` on, forever (epochs loop)."""

    def __init__(self, source, tokenizer, image_size, local_batch, rank=0, world=1, seed=0,
                 start_batch=0, mean=CLIP_MEAN, std=CLIP_STD):
        super().__init__()
        self.source, self.tokenizer = source, tokenizer
        self.image_size, self.local_batch = image_size, local_batch
        self.rank, self.world, self.seed = rank, world, seed
        self.start_batch, self.mean, self.std = start_batch, mean, std

    def __iter__(self):
        import torch
        from torch.utils.data import get_worker_info

        info = get_worker_info()
        wid, nw = (info.id, info.num_workers) if info else (0, 1)
        b, world = self.local_batch, self.world
        g, epoch = 0, 0
        images, texts, n_corrupt, last_error = [], [], 0, ""
        warned_empty = False
        while True:
            seen = 0
            for key, load in self.source.epoch_items(epoch, self.seed):
                seen += 1
                chunk, pos = divmod(g, b)
                k = chunk // world
                mine = chunk % world == self.rank and k >= self.start_batch and (k - self.start_batch) % nw == wid
                if mine:
                    try:
                        img, text = load()
                        gen = torch.Generator().manual_seed((self.seed * 1_000_003 + g) % (2**63))
                        images.append(train_transform(img, self.image_size, gen, self.mean, self.std))
                        texts.append(text)
                    except DataError as e:
                        n_corrupt += 1
                        last_error = str(e)
                        log.warning("skipping corrupt sample %s", e)
                    if pos == b - 1:
                        if not images:
                            raise DataError(f"all {b} samples of batch {k} are corrupt; the last one: "
                                            f"{last_error}; check the data ({self.source.describe})")
                        if not any(str(t).strip() for t in texts) and not warned_empty:
                            warned_empty = True  # once per stream: the data, not the batch, is at fault
                            log.warning("batch %d: every caption is empty (%s); SuperClass has no word to "
                                        "classify and such a batch trains nothing (loss 0): check the data's "
                                        "caption field", k, self.source.describe)
                        yield {"images": torch.stack(images), "tokens": self.tokenizer(texts),
                               "batch_index": k, "n_corrupt": n_corrupt}
                        images, texts, n_corrupt = [], [], 0
                g += 1
            if seen == 0:
                raise DataError(f"{self.source.describe}: no samples")
            epoch += 1


def make_loader(stream, workers: int):
    """DataLoader over a PretrainStream: batches come back in worker round-robin order.

    A DataError raised in a worker process reaches the caller with its own message (torch
    re-raises it wrapped in the worker's traceback, which would bury what to fix)."""
    from torch.utils.data import DataLoader

    loader = DataLoader(stream, batch_size=None, num_workers=workers, persistent_workers=False,
                        prefetch_factor=2 if workers else None)
    return _plain_errors(loader) if workers else loader


def _plain_errors(loader):
    it = iter(loader)
    while True:
        try:
            batch = next(it)
        except StopIteration:
            return
        except DataError as e:
            raise DataError(worker_message(str(e))) from None
        yield batch


def worker_message(msg: str) -> str:
    """The original message of an error torch re-raised from a DataLoader worker."""
    if "Original Traceback" not in msg:
        return msg
    last = [ln for ln in msg.strip().splitlines() if ln.strip()][-1]
    name = DataError.__module__ + "." + DataError.__name__ + ": "
    return last[len(name):] if last.startswith(name) else last

