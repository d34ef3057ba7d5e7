"""Webdataset tar shards: the one reader of image-caption shards (pretraining, LiT pairs).

Built on the webdataset library, so a shard reads here as it reads in open_clip or img2dataset:

- ``expand_shards``: a spec (``dir/{00000..00099}.tar``, a glob, a folder of ``.tar``, a list)
  -> shard URLs (local paths, or webdataset's ``pipe:`` / http URLs, opened with its ``gopen``).
- ``read_shard``: one shard's samples through webdataset's tar iterator and its key rule: member
  ``dir/a.b.jpg`` is sample ``dir/a``, field ``b.jpg`` (the key ends at the base name's FIRST
  dot). Damage never stops a run. The handler reports a damaged member (shard, key, why) and
  reading goes on; the damaged sample is yielded with an ``__error__`` field so that it is
  counted once. A truncated shard is the case the tar format hides: a cut member header reads
  as the end of the archive. Its intact samples are used, and a marker ``{"__error__": ...}``
  after them names the shard, the last good key and what is wrong with the tail.
- ``image_and_caption``: a sample's encoded image and caption, or a DataError naming both;
  ``open_image`` / ``decode_rgb`` turn the bytes into a PIL image, naming the sample if they fail.
- ``LaneLayout`` / ``LaneStream``: the exact, resumable stream pretraining draws batches from.

Lanes, and why: data is split by node and by worker (each worker reads only some shards), a
buffer shuffle mixes samples, and yet a run on 1 or N processes with any number of workers sees
the same global batches, and a run resumed after SIGKILL continues at the exact sample. The data
is dealt to ``L`` lanes (``L`` fixed for a run, never derived from the number of processes or
workers): in epoch ``e`` a seeded permutation of all shards is dealt round-robin, lane ``l``
taking shards ``[l::L]``, and the lane's samples pass through webdataset's ``shuffle`` seeded by
``(seed, e, l)``. Global batch ``k`` is the concatenation, in lane order, of ``P_l`` samples of
each lane (``P_l`` = batch / L, give or take one): lane ``l`` has given ``k * P_l`` samples before
batch ``k``, whatever the hardware. Rank ``r`` prepares its slice ``[r*B/W, (r+1)*B/W)`` of each
global batch, so it reads only the lanes in that slice (split by node), and cuts the slice in
equal runs for its workers, each reading only the lanes of its run (split by worker). A lane's position is
``(epoch, offset)``: resuming replays the current lane epoch up to the offset (reading, never
decoding), which is exact because the shard order and the shuffle depend on seeds only.
"""
from __future__ import annotations

import glob
import io
import logging
import os
import random
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

from braceexpand import braceexpand
from PIL import Image, UnidentifiedImageError
from webdataset.filters import shuffle
from webdataset.gopen import gopen
from webdataset.tariterators import base_plus_ext, group_by_keys, tar_file_iterator

from sc_eval.errors import DataError

log = logging.getLogger(__name__)

IMAGE_EXTS = ("jpg", "jpeg", "png", "webp")
TEXT_EXTS = ("txt", "caption")
_REMOTE = ("pipe:", "http://", "https://", "gs://", "s3://", "ais://")


# -- shard lists ---------------------------------------------------------------------------
def expand_shards(spec, what: str = "--data") -> list[str]:
    """Shard URLs from a brace pattern, glob, folder of .tar files, single file or list of these.

    Local shards must exist (a DataError lists the missing ones); remote URLs are kept as given.
    """
    specs = [spec] if isinstance(spec, (str, Path)) else list(spec)
    out: list[str] = []
    for s in map(str, specs):
        for one in braceexpand(s):
            if one.startswith(_REMOTE):
                out.append(one)
            elif any(ch in one for ch in "*?["):
                out += sorted(glob.glob(one))
            elif os.path.isdir(one):
                out += sorted(str(p) for p in Path(one).glob("*.tar"))
            else:
                out.append(one)
    missing = [s for s in out if not s.startswith(_REMOTE) and not os.path.isfile(s)]
    if not out or missing:
        raise DataError(f"{what} {spec}: shard(s) not found: {', '.join(missing[:3]) or 'no match'}"
                        f"{' ...' if len(missing) > 3 else ''}")
    return out


# -- one shard -----------------------------------------------------------------------------
def _key_of(fname: str) -> str:
    key, _ = base_plus_ext(fname)
    return key if key is not None else fname


def read_shard(url: str):
    """The samples of one shard, in order: dicts ``{"__key__", "__url__", <ext>: bytes}``, a
    damaged sample with an ``"__error__"`` message, and for a truncated shard a last
    ``{"__key__", "__url__", "__error__"}`` marker (see the module docstring)."""
    current = {"key": None}
    damaged: dict[str, str] = {}

    def track(fname):  # webdataset's rename hook sees every member name before its data is read
        current["key"] = _key_of(fname)
        return fname

    def handler(exn) -> bool:  # report the damaged member, go on with the shard
        why = str(exn.args[0] if exn.args else exn).split(" @ <")[0]
        damaged.setdefault(current["key"], f"{url}: sample {current['key']!r}: {why}")
        return True

    try:
        stream = gopen(url, "rb")
    except Exception as e:  # gopen raises OSError, ValueError or a pipe error by URL kind
        yield {"__key__": "", "__url__": url, "__error__": f"{url}: cannot open shard ({e})"}
        return
    last = None
    try:
        members = tar_file_iterator(stream, handler=handler, rename_files=track)
        files = ({**m, "__url__": url} for m in members)
        for sample in group_by_keys(files, handler=handler):
            if sample["__key__"] in damaged:
                sample["__error__"] = damaged.pop(sample["__key__"])
            last = sample["__key__"]
            yield sample
        problem = _tail_problem(url)
    except Exception as e:  # tarfile / gzip / OS errors mid-shard: the rest of the shard is lost
        problem = f"unreadable ({str(e).split(' @ <')[0]})"
    finally:
        stream.close()
    for key, msg in damaged.items():  # damaged members of samples that never completed
        if key != current["key"] or not problem:
            yield {"__key__": key or "", "__url__": url, "__error__": msg}
    if problem:
        yield {"__key__": current["key"] or "", "__url__": url,
               "__error__": f"{url}: {problem} " + (f"after sample {last!r}" if last else "at its start")
                            + ": the shard is truncated or corrupt (copy it again); its samples before that "
                              "point are used"}


def _tail_problem(url: str) -> str | None:
    """What is wrong with a local uncompressed shard's end (a tar ends with two zero blocks)."""
    if not os.path.isfile(url):
        return None  # remote streams cannot be checked; compressed ones check their own CRC
    size = os.path.getsize(url)
    with open(url, "rb") as f:
        if f.read(2) == b"\x1f\x8b":
            return None
        f.seek(max(0, size - 1024))
        tail = f.read()
    if len(tail) == 1024 and not tail.strip(b"\0"):
        return None
    if size % 512:
        return "an unreadable member header"
    return "no end-of-archive marker"


def iter_samples(shards):
    """Every sample of the shards, in shard then member order (damaged ones included)."""
    for url in shards:
        yield from read_shard(url)


def image_and_caption(sample) -> tuple[bytes, str]:
    """(encoded image, caption) of a sample; DataError naming the shard, key and problem."""
    if "__error__" in sample:
        raise DataError(sample["__error__"])
    where = f"{sample.get('__url__')}: sample {sample.get('__key__')!r}"
    img = next((sample[e] for e in IMAGE_EXTS if e in sample), None)
    txt = next((sample[e] for e in TEXT_EXTS if e in sample), None)
    if img is None or txt is None:
        fields = sorted(k for k in sample if not k.startswith("__"))
        raise DataError(f"{where} lacks {'an image' if img is None else 'a caption'} (members: {', '.join(fields)})")
    try:
        return img, txt.decode("utf-8").strip()
    except UnicodeDecodeError as e:
        raise DataError(f"{where}: caption is not UTF-8 ({e})") from None


def open_image(image, where: str):
    """A PIL image of encoded bytes, opened lazily (so a JPEG ``draft`` can still shrink its
    decoding), or ``image`` itself when it is one already; DataError naming ``where``."""
    if not isinstance(image, (bytes, bytearray)):
        return image

    try:
        return Image.open(io.BytesIO(image))
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise DataError(f"{where}: image cannot be decoded ({e})") from None


def decode_rgb(image, where: str):
    """``image`` (encoded bytes or a PIL image) fully decoded, in RGB; DataError naming ``where``."""
    img = open_image(image, where)
    try:
        img.load()
        return img if img.mode == "RGB" else img.convert("RGB")
    except (OSError, ValueError, SyntaxError) as e:
        raise DataError(f"{where}: image cannot be decoded ({e})") from None


# -- lanes ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class LaneLayout:
    """How a global batch of ``batch`` samples is made of ``lanes`` lanes (module docstring)."""

    batch: int
    lanes: int

    def offset(self, lane: int) -> int:
        """Where lane ``lane``'s part starts in a global batch (parts differ by at most one
        sample, the larger ones spread evenly, so any run of lanes holds its share of samples)."""
        return lane * self.batch // self.lanes

    def part(self, lane: int) -> int:
        """Samples lane ``lane`` gives to every global batch."""
        return self.offset(lane + 1) - self.offset(lane)

    def parts(self, start: int, stop: int) -> list[tuple[int, int, int]]:
        """``(lane, lo, hi)``: samples ``[start, stop)`` of a global batch as sub-ranges of the
        lanes' parts, in lane order."""
        out = []
        for lane in range(self.lanes):
            o = self.offset(lane)
            lo, hi = max(o, start), min(o + self.part(lane), stop)
            if lo < hi:
                out.append((lane, lo - o, hi - o))
        return out

    def share(self, rank: int, world: int, worker: int = 0, workers: int = 1) -> tuple[int, int]:
        """Samples ``[start, stop)`` of each global batch that worker ``worker`` of rank ``rank``
        prepares: the rank's slice ``[rank*B/W, (rank+1)*B/W)`` cut in ``workers`` equal runs. A
        lane across a boundary is read by both sides, each keeping its own samples."""
        a, b = rank * self.batch // world, (rank + 1) * self.batch // world
        return a + worker * (b - a) // workers, a + (worker + 1) * (b - a) // workers


def default_lanes(n_items: int, batch: int, cap: int = 64) -> int:
    """Lanes for a run: as many as ``cap`` allows, but no more than shards (a lane needs one per
    epoch) or than samples in a global batch (a lane gives at least one to each)."""
    return max(1, min(cap, n_items, batch))


def tar_epoch_items(shards: list[str], seed: int):
    """``epoch_items(epoch, lane, lanes)`` for shards: lane ``lane``'s shards of that epoch's
    seeded permutation, read in order."""
    def items(epoch: int, lane: int, lanes: int):
        order = list(shards)
        random.Random(seed * 7919 + epoch).shuffle(order)
        return iter_samples(order[lane::lanes])
    return items


class LaneStream:
    """One lane's samples from position ``(epoch, offset)`` on, forever: yields
    ``(sample, (epoch, offset after it))``.

    ``epoch_items(epoch, lane, lanes)`` gives the lane's samples of an epoch in file order; with
    ``buffer > 1`` they pass through webdataset's shuffle (buffer and initial fill ``buffer``,
    its generator seeded from ``(seed, epoch, lane)``). Positions count shuffled samples, so
    skipping to ``offset`` replays the epoch's reading and shuffling, and nothing else.
    """

    def __init__(self, epoch_items, lane: int, lanes: int, seed: int, buffer: int, epoch: int = 0,
                 offset: int = 0, carry: bool = False, describe: str = "the data"):
        self.epoch_items, self.lane, self.lanes = epoch_items, lane, lanes
        self.seed, self.buffer, self.epoch, self.offset = seed, buffer, epoch, offset
        self.carry, self.describe = carry, describe

    def _epoch(self, epoch: int):
        items = iter(self.epoch_items(epoch, self.lane, self.lanes))
        if self.buffer <= 1:
            return items

        rng = random.Random(f"sc-eval lane {self.seed}:{epoch}:{self.lane}")
        return iter(shuffle(self.buffer, self.buffer, rng=rng)(items))

    def __iter__(self):
        epoch, skip = self.epoch, self.offset
        while True:
            it = self._epoch(epoch)
            n = sum(1 for _ in islice(it, skip))  # replayed: read (and shuffled), never decoded
            for sample in it:
                n += 1
                yield sample, (epoch, n)
            if n == 0:
                raise DataError(f"{self.describe}: lane {self.lane} of {self.lanes} has no samples in epoch "
                                f"{epoch}; check that the shards are not empty, or pass fewer --lanes")
            if n < skip and not self.carry:
                raise DataError(f"{self.describe}: lane {self.lane} epoch {epoch} has {n} samples, fewer than the "
                                f"{skip} the checkpoint had read; the data changed since the run started")
            epoch, skip = epoch + 1, max(0, skip - n)


def lane_start(layout: LaneLayout, lane: int, next_batch: int, saved: dict | None):
    """``(epoch, offset, carry)`` to resume lane ``lane`` at global batch ``next_batch``: the saved
    position when the checkpoint has it, else the lane's sample count from the first epoch on,
    carried over epochs as they are read (exact too, but it replays every epoch so far)."""
    if saved and str(lane) in saved:
        epoch, offset = saved[str(lane)]
        return int(epoch), int(offset), False
    return 0, next_batch * layout.part(lane), True
