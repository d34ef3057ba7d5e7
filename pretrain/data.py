"""Image-caption batches for pretraining: an exact data position, and decoding where it is cheapest.

Sources (``open_source``): webdataset tar shards in the img2dataset layout (``NNNNN.jpg`` +
``.txt`` [+ ``.json``]: a brace pattern such as ``dir/{00000..00003}.tar``, a folder of tars, a
glob), read by the shard reader of ``sc_eval.data.shards``; a jsonl of ``{"image", "caption"}``
records next to an image folder; a local Hugging Face dataset directory
(``datasets.load_from_disk``) with image and text columns; the embedded world's shards by default.

Order: the lanes of ``sc_eval.data.shards`` (read its docstring): global batch ``k`` is the same
samples on 1 or N processes and with any number of workers, each rank reads only the lanes of its
slice, each worker only its share of those, and a resumed run continues at the exact sample.
Map-style sources (jsonl, HF) deal a per-epoch permutation of their rows to the lanes instead of
shards, and need no shuffle buffer.

Who does what: every worker produces, for every batch, its share (its lanes' samples of that
batch); ``BatchLoader`` in the training process joins the shares of a batch in lane order into
pinned memory, and ``to_device`` finishes it on the training device. Workers get equal runs of
samples (a lane across a boundary is read by both workers, each decoding its own samples), so
none waits on another and any number of workers is busy, even with fewer lanes than workers. A worker hands over what is
cheap to move: token ids, and

- ``--decode cpu``: the crop as uint8 pixels. PIL decodes the JPEG, at a reduced size (its
  ``draft``: libjpeg's DCT scaling by 1/2, 1/4 or 1/8) when the crop still has at least
  ``image_size`` pixels a side at that scale, and torch's uint8 bicubic kernel resizes (PIL's
  arithmetic, several times faster; PIL itself where torch lacks that kernel). The float
  conversion and normalisation happen on the device, so 4x fewer bytes cross processes.
- ``--decode gpu``: the JPEG bytes. ``to_device`` decodes the whole batch at once with nvjpeg
  (``torchvision.io.decode_jpeg(list, device=...)``), then crops, resizes and normalises on the
  device. Images that are not JPEG are cropped in the worker as above.

The augmentation is the official recipe on both paths: RandomResizedCrop(size, scale (0.9, 1),
ratio (3/4, 4/3)), bicubic with antialiasing, CLIP mean/std, no flip. Its randomness is seeded
per sample from (seed, global sample index), so it depends on neither workers nor decode path:
both paths take the same crop of every image (resized with PIL's two passes, each rounded to
8 bits, on the device too), and differ only by the JPEG decoder's and draft's rounding
(tests/test_pretrain_data.py measures how much).

Damaged samples (an unreadable image, a missing image or caption, a truncated shard) are
skipped, logged and counted (``n_corrupt`` in each batch); the batch is then smaller by that many.
"""
from __future__ import annotations

import logging
import math
import random
from pathlib import Path

import datasets
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from sc_eval.data.shards import (LaneLayout, LaneStream, decode_rgb, default_lanes, expand_shards, image_and_caption,
                                 lane_start, open_image, tar_epoch_items)
from sc_eval.errors import ConfigError, DataError
from sc_eval.io import iter_jsonl
from sc_eval.world.build import ensure_world

log = logging.getLogger(__name__)

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
DECODE_MODES = ("cpu", "gpu", "auto")
JPEG_MAGIC = b"\xff\xd8\xff"


# -- sources -------------------------------------------------------------------------------
class TarSource:
    """webdataset shards; a sample's image and caption come from ``image_and_caption``."""

    shuffles = True  # samples arrive in file order: the lanes' buffer shuffle applies

    def __init__(self, shards: list[str]):
        self.shards = shards
        self.n_items = len(shards)
        self.describe = f"{len(shards)} webdataset shard(s) ({shards[0]} ...)"

    def epoch_items(self, seed: int):
        return tar_epoch_items(self.shards, seed)

    def load(self, sample):
        """(encoded image, caption, where) or DataError."""
        raw, text = image_and_caption(sample)
        return raw, text, f"{sample['__url__']}: sample {sample['__key__']!r}"


class _MapSource:
    """Map-style sources: each epoch deals a fresh permutation of all rows to the lanes."""

    shuffles = False

    def __len__(self):
        raise NotImplementedError

    @property
    def n_items(self):
        return len(self)

    def epoch_items(self, seed: int):
        def items(epoch: int, lane: int, lanes: int):
            order = list(range(len(self)))
            random.Random(seed * 7919 + epoch).shuffle(order)
            return iter(order[lane::lanes])
        return items


class JsonlSource(_MapSource):
    def __init__(self, path: Path):
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
        return raw, str(text), str(p)


class HFSource(_MapSource):
    def __init__(self, path: Path):
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
            img = img["bytes"]
        if isinstance(img, (bytes, bytearray)):
            img = bytes(img)
        elif not hasattr(img, "convert"):
            raise DataError(f"{self.path}[{i}]: column {self.image_col!r} holds no image")
        return img, str(row[self.text_col]), f"{self.path}[{i}]"


def open_source(spec: str | None):
    """Resolve ``--data`` to a source (see module docstring)."""
    if spec in (None, "", "world"):
        spec = str(Path(ensure_world()) / "pretrain" / "shards")
    p = Path(spec)
    if "{" in spec or spec.endswith(".tar") or any(ch in spec for ch in "*?[") or spec.startswith("pipe:"):
        return TarSource(expand_shards(spec))
    if p.is_file() and p.suffix == ".jsonl":
        return JsonlSource(p)
    if p.is_dir():
        if (p / "pretrain" / "shards").is_dir():  # a world root
            p = p / "pretrain" / "shards"
        if any(p.glob("*.tar")):
            return TarSource(expand_shards(str(p)))
        if (p / "dataset_info.json").exists() or (p / "dataset_dict.json").exists() or (p / "state.json").exists():
            return HFSource(p)
        if (p / "pairs.jsonl").exists():
            return JsonlSource(p / "pairs.jsonl")
    raise DataError(f"--data {spec}: not a tar shard spec, a folder of .tar shards, a .jsonl of "
                    "{image, caption} records or a datasets.save_to_disk folder")


# -- augmentation --------------------------------------------------------------------------
def random_resized_crop_params(width, height, gen, scale=(0.9, 1.0), ratio=(3 / 4, 4 / 3)):
    """torchvision's RandomResizedCrop sampling, drawn from ``gen`` (a torch.Generator):
    ``(top, left, height, width)`` of the crop."""
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


def sample_generator(seed: int, index: int):
    """The generator of global sample ``index``'s augmentation (independent of workers)."""
    return torch.Generator().manual_seed((seed * 1_000_003 + index) % (2**63))


_U8_BICUBIC: bool | None = None


def _torch_u8_bicubic() -> bool:
    """Whether this torch resizes uint8 images with antialiased bicubic (its PIL-like kernel)."""
    global _U8_BICUBIC
    if _U8_BICUBIC is None:
        try:
            F.interpolate(torch.zeros(1, 3, 8, 8, dtype=torch.uint8), size=(5, 5), mode="bicubic", antialias=True)
            _U8_BICUBIC = True
        except (RuntimeError, NotImplementedError):
            _U8_BICUBIC = False
    return _U8_BICUBIC


def cpu_crop(image, size: int, gen, where: str = "image", draft: bool = True):
    """The recipe's random-resized crop of one image as uint8 ``[3, size, size]``.

    ``image``: encoded bytes or a PIL image. With ``draft``, a JPEG is decoded at the smallest
    DCT scale that keeps the crop at least ``size`` pixels a side (PIL guarantees the draft is
    no smaller than asked), so a 1024-px photo cropped to 224 decodes at 1/4 of the cost."""
    img = open_image(image, where)
    width, height = img.size
    i, j, h, w = random_resized_crop_params(width, height, gen)
    if draft and getattr(img, "format", None) == "JPEG" and min(w, h) >= 2 * size:
        img.draft("RGB", (math.ceil(width * size / w), math.ceil(height * size / h)))
    rgb = decode_rgb(img, where)
    if rgb.size != (width, height):  # decoded at 1/f scale: reduced pixel x covers [x*f, (x+1)*f)
        f = round(width / rgb.width)
        out = rgb.resize((size, size), Image.BICUBIC, box=(j / f, i / f, (j + w) / f, (i + h) / f))
        return torch.from_numpy(np.array(out)).permute(2, 0, 1).contiguous()
    if not _torch_u8_bicubic():
        out = rgb.crop((j, i, j + w, i + h)).resize((size, size), Image.BICUBIC)
        return torch.from_numpy(np.array(out)).permute(2, 0, 1).contiguous()

    crop = torch.from_numpy(np.array(rgb))[i:i + h, j:j + w].permute(2, 0, 1)[None]  # a channels-last view
    if (h, w) == (size, size):
        return crop[0].contiguous()
    return F.interpolate(crop, size=(size, size), mode="bicubic", antialias=True, align_corners=False)[0].contiguous()


def resize_like_pil(x, size: int):
    """Bicubic antialiased resize of float ``[N, 3, h, w]`` (0-255) as PIL does it: horizontal
    pass, rounded to 8 bits, then vertical pass, rounded (PIL keeps 8 bits between passes)."""
    h, w = x.shape[-2:]
    if w != size:
        x = F.interpolate(x, size=(h, size), mode="bicubic", antialias=True, align_corners=False).round_().clamp_(0, 255)
    if h != size:
        x = F.interpolate(x, size=(size, size), mode="bicubic", antialias=True, align_corners=False).round_().clamp_(0, 255)
    return x


def _decode_jpegs(jpegs, device):
    """Decode JPEG byte strings on ``device`` in one batched call (torchvision; nvjpeg on CUDA);
    entries that fail are None. Falls back to one call per image where a batch is not accepted.

    On CUDA the decoder runs with a stream of its own made current: torchvision's decoder takes
    its output memory from the current stream's pool and fills it from a private stream that
    does not wait for the current one, so on the training stream it can be handed memory that
    queued training kernels still read (seen as a NaN loss a few steps in). On the side stream
    the pool holds only earlier decoder outputs, each kept by the allocator until the training
    stream has used it (``record_stream``); the training stream waits for the decoded images."""
    datas = [torch.from_numpy(np.frombuffer(r, dtype=np.uint8).copy()) for r in jpegs]
    if not datas:
        return []
    dev = torch.device(device)
    if dev.type != "cuda":
        return _decode_all(datas, dev)
    main = torch.cuda.current_stream(dev)
    side = _decode_stream(dev)
    with torch.cuda.stream(side):
        out = _decode_all(datas, dev)
    side.synchronize()  # the decoder's own work is done before its buffers are touched again
    main.wait_stream(side)
    for img in out:
        if img is not None:
            img.record_stream(main)
    return out


_DECODE_STREAMS: dict = {}


def _decode_stream(dev):
    if dev not in _DECODE_STREAMS:
        _DECODE_STREAMS[dev] = torch.cuda.Stream(dev)
    return _DECODE_STREAMS[dev]


def _decode_all(datas, dev):
    # Imported here, not at the top: torchvision deprecates its decoders, and the CPU path (and
    # --decode auto's fallback, see _gpu_decoder) must not depend on them.
    from torchvision.io import ImageReadMode, decode_jpeg

    try:
        out = decode_jpeg(datas, mode=ImageReadMode.RGB, device=dev)
        if isinstance(out, (list, tuple)) and len(out) == len(datas):
            return list(out)
    except (RuntimeError, TypeError, ValueError):
        pass  # a damaged image fails the whole batch (or lists are not accepted): one by one
    decoded = []
    for d in datas:
        try:
            decoded.append(decode_jpeg(d, mode=ImageReadMode.RGB, device=dev))
        except (RuntimeError, ValueError):
            decoded.append(None)
    return decoded


def device_crops(jpegs, gens, size: int, device):
    """The recipe's crops of JPEG byte strings, decoded and resized on ``device``: a list of
    float ``[3, size, size]`` tensors holding 0-255 integers (None where an image failed to
    decode). Runs on any device; on CUDA the decoding is nvjpeg's."""
    out = []
    for img, gen in zip(_decode_jpegs(jpegs, device), gens):
        if img is None:
            out.append(None)
            continue
        height, width = img.shape[-2:]
        i, j, h, w = random_resized_crop_params(width, height, gen)
        out.append(resize_like_pil(img[:, i:i + h, j:j + w].float()[None], size)[0])
    return out


def normalize(x, mean, std):
    """0-255 float ``[N, 3, H, W]`` -> the model's input: ``(x / 255 - mean) / std`` in the
    operation order of torchvision's ToTensor + Normalize."""
    m = torch.as_tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    s = torch.as_tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return x.div_(255).sub_(m).div_(s)


def train_transform(img, size, gen, mean=CLIP_MEAN, std=CLIP_STD):
    """One image through the CPU path to the model's input ``[3, size, size]`` (for inspection)."""
    x = cpu_crop(img, size, gen)[None].float()
    return normalize(x, mean, std)[0]


def resolve_decode(mode: str, device, workers: int) -> str:
    """``--decode auto``: GPU decoding when training on CUDA without worker processes (the
    training process would otherwise decode on its own, between steps), else the workers'
    CPU decoding, which keeps the GPU for the step. ``gpu`` needs a CUDA device."""
    dev = torch.device(device)
    if mode not in DECODE_MODES:
        raise ConfigError(f"--decode {mode}: use one of {', '.join(DECODE_MODES)}")
    if mode == "auto":
        return "gpu" if dev.type == "cuda" and workers == 0 and _gpu_decoder() else "cpu"
    if mode == "gpu" and dev.type != "cuda":
        raise ConfigError(f"--decode gpu needs a CUDA --device (got {device}); use --decode cpu")
    if mode == "gpu" and not _gpu_decoder():
        raise ConfigError("--decode gpu needs torchvision.io.decode_jpeg, which this torchvision lacks; use --decode cpu")
    return mode


def _gpu_decoder() -> bool:
    try:
        from torchvision.io import decode_jpeg  # noqa: F401  (deprecated in newer torchvision releases)
    except ImportError:
        return False
    return True


# -- the stream (runs in each worker) ------------------------------------------------------
class PretrainStream(IterableDataset):
    """Yields this worker's share of each of this rank's batches (``LaneLayout.share``), from
    ``start_batch`` on, forever: dicts ``{batch_index, start, pixels [n, 3, S, S] uint8, jpegs,
    seeds, tokens, n_corrupt, last_error, lanes}``.

    ``batch``: samples per global (micro-)batch; ``lanes``: the run's lane count;
    ``lane_state``: ``{str(lane): (epoch, offset)}`` saved with the checkpoint (None: derived).
    With ``decode="gpu"``, JPEGs are passed as bytes (``jpegs`` has bytes or None per sample,
    None meaning the next row of ``pixels``) with their sample ``seeds``."""

    def __init__(self, source, tokenizer, image_size, batch, lanes=None, rank=0, world=1, seed=0,
                 start_batch=0, lane_state=None, decode="cpu", shuffle_buffer=8192):
        super().__init__()
        if batch % world:
            raise ConfigError(f"global batch {batch} is not a multiple of the {world} processes")
        self.source, self.tokenizer, self.image_size = source, tokenizer, image_size
        self.batch, self.rank, self.world, self.seed = batch, rank, world, seed
        self.lanes = lanes or default_lanes(source.n_items, batch)
        if self.lanes > min(source.n_items, batch):
            raise ConfigError(f"--lanes {self.lanes}: at most one per shard (or row) and per sample of the global "
                              f"batch ({min(source.n_items, batch)} here)")
        self.layout = LaneLayout(batch, self.lanes)
        self.start_batch, self.lane_state, self.decode = start_batch, lane_state, decode
        self._warned_empty = False
        self.buffer = math.ceil(shuffle_buffer / self.lanes) if source.shuffles else 0

    def __iter__(self):
        info = get_worker_info()
        wid, nw = (info.id, info.num_workers) if info else (0, 1)
        start, stop = self.layout.share(self.rank, self.world, wid, nw)
        mine = self.layout.parts(start, stop)
        items = self.source.epoch_items(self.seed)
        streams = {lane: iter(LaneStream(items, lane, self.lanes, self.seed, self.buffer,
                                         *lane_start(self.layout, lane, self.start_batch, self.lane_state),
                                         describe=self.source.describe))
                   for lane, _, _ in mine}
        k = self.start_batch
        while True:
            share = {"batch_index": k, "start": start, "pixels": [], "jpegs": [], "seeds": [], "texts": [],
                     "n_corrupt": 0, "last_error": "", "lanes": {}}
            for lane, lo, hi in mine:
                base = k * self.batch + self.layout.offset(lane)
                for i in range(self.layout.part(lane)):
                    sample, pos = next(streams[lane])
                    if lo <= i < hi:
                        self._take(share, sample, base + i)
                share["lanes"][lane] = pos
            yield self._pack(share)
            k += 1

    def _take(self, share, sample, index: int):
        try:
            image, text, where = self.source.load(sample)
            if self.decode == "gpu" and isinstance(image, bytes) and image[:3] == JPEG_MAGIC:
                share["jpegs"].append(image)
                share["seeds"].append(index)
            else:
                share["pixels"].append(cpu_crop(image, self.image_size, sample_generator(self.seed, index), where))
                share["jpegs"].append(None)
            share["texts"].append(text)
        except DataError as e:
            share["n_corrupt"] += 1
            share["last_error"] = str(e)
            log.warning("skipping corrupt sample %s", e)

    def _pack(self, share):
        s = self.image_size
        pixels = share.pop("pixels")
        share["pixels"] = torch.stack(pixels) if pixels else torch.zeros((0, 3, s, s), dtype=torch.uint8)
        texts = share.pop("texts")
        if texts and not self._warned_empty and not any(str(t).strip() for t in texts):
            self._warned_empty = True  # once per stream: the data, not the batch, is at fault
            log.warning("batch %d: every caption is empty (%s); SuperClass has no word to classify and "
                        "such a batch trains nothing (loss 0): check the data's caption field",
                        share["batch_index"], self.source.describe)
        context = getattr(self.tokenizer, "context_length", 77)
        share["tokens"] = self.tokenizer(texts) if texts else torch.zeros((0, context), dtype=torch.long)
        if self.decode != "gpu":
            share["jpegs"] = None
        return share


# -- the training process ------------------------------------------------------------------
class BatchLoader:
    """Batches of one rank: the workers' shares joined in sample order.

    Each worker yields one share per batch, and the DataLoader hands shares back in worker
    round-robin order, so every ``workers`` consecutive shares make one batch. Pixels and
    tokens are joined straight into pinned memory when ``pin`` (for non-blocking copies)."""

    def __init__(self, stream: PretrainStream, workers: int, pin: bool = False, prefetch: int = 4):
        self.stream, self.workers, self.pin = stream, workers, pin
        self.loader = DataLoader(stream, batch_size=None, num_workers=workers, persistent_workers=False,
                                 prefetch_factor=prefetch if workers else None)

    def __iter__(self):
        it = iter(self.loader)
        group = max(1, self.workers)
        while True:
            shares = []
            for _ in range(group):
                try:
                    shares.append(next(it))
                except StopIteration:
                    return
                except DataError as e:  # re-raised from a worker: keep its own message
                    raise DataError(worker_message(str(e))) from None
            yield self.join(shares)

    def join(self, shares):
        k = shares[0]["batch_index"]
        if any(s["batch_index"] != k for s in shares):
            raise RuntimeError(f"data order broken: shares of batches {[s['batch_index'] for s in shares]}")
        shares.sort(key=lambda s: s["start"])  # the rank's slice, in global batch order
        lanes = {}
        for s in shares:
            lanes.update(s["lanes"])
        n_corrupt = sum(s["n_corrupt"] for s in shares)
        last_error = next((s["last_error"] for s in reversed(shares) if s["last_error"]), "")
        tokens = [s["tokens"] for s in shares]
        n = sum(len(t) for t in tokens)
        if n == 0:
            raise DataError(f"all {n_corrupt} samples of batch {k} are corrupt; the last one: {last_error}; "
                            f"check the data ({self.stream.source.describe})")
        pixels = [s["pixels"] for s in shares]
        batch = {"batch_index": k, "n_corrupt": n_corrupt, "last_error": last_error, "lanes": lanes,
                 "pixels": _cat(pixels, self.pin), "tokens": _cat(tokens, self.pin), "jpegs": None, "seeds": None}
        if self.stream.decode == "gpu":
            batch["jpegs"] = [j for s in shares for j in s["jpegs"]]
            batch["seeds"] = [g for s in shares for g in s["seeds"]]
        return batch


def _cat(tensors, pin: bool):
    shape = (sum(t.shape[0] for t in tensors), *tensors[0].shape[1:])
    out = torch.empty(shape, dtype=tensors[0].dtype, pin_memory=pin)
    return torch.cat(tensors, out=out)


def make_loader(stream, workers: int, pin: bool = False):
    return BatchLoader(stream, workers, pin=pin)


def to_device(batch, device, seed: int, mean=CLIP_MEAN, std=CLIP_STD):
    """A joined batch on the training device: ``(images [n, 3, S, S] float, tokens [n, L],
    n_failed)``. Copies are non-blocking (from pinned memory); with GPU decoding the JPEGs are
    decoded, cropped and resized there; images that fail to decode are dropped with their
    tokens and counted in ``n_failed``."""
    tokens = batch["tokens"].to(device, non_blocking=True)
    pixels = batch["pixels"].to(device, non_blocking=True)
    jpegs = batch.get("jpegs")
    if not jpegs:
        return normalize(pixels.float(), mean, std), tokens, 0
    size = pixels.shape[-1]
    todo = [j for j in jpegs if j is not None]
    gens = [sample_generator(seed, g) for g in batch["seeds"]]
    crops = iter(device_crops(todo, gens, size, device))
    rows, keep, row = [], [], iter(range(len(pixels)))
    for n, j in enumerate(jpegs):
        x = next(crops) if j is not None else pixels[next(row)].float()
        if x is None:
            log.warning("skipping corrupt sample: a JPEG of batch %d cannot be decoded on %s", batch["batch_index"], device)
            continue
        rows.append(x)
        keep.append(n)
    if not rows:
        raise DataError(f"no image of batch {batch['batch_index']} could be decoded on {device}")
    if len(keep) < len(jpegs):
        tokens = tokens[torch.tensor(keep, device=tokens.device)]
    return normalize(torch.stack(rows), mean, std), tokens, len(jpegs) - len(keep)


def worker_message(msg: str) -> str:
    """The original message of an error torch re-raised from a DataLoader worker."""
    if "Original Traceback" not in msg:
        return msg
    last = [ln for ln in msg.strip().splitlines() if ln.strip()][-1]
    name = DataError.__module__ + "." + DataError.__name__ + ": "
    return last[len(name):] if last.startswith(name) else last


__all__ = ["CLIP_MEAN", "CLIP_STD", "BatchLoader", "PretrainStream", "cpu_crop", "device_crops",
           "make_loader", "normalize", "open_source", "random_resized_crop_params", "resolve_decode", "to_device"]
