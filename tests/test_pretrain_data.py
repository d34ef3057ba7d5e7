"""The shard reader and the pretraining batches built on it (CPU; the GPU decoding path runs
here on the CPU device).

What a user would notice: shards group into samples as webdataset groups them, in pretraining
and in LiT pairs alike; a damaged sample is reported with its shard and key and the rest is
used; the same global batches come out on 1 or 2 processes, with 0 or 2 workers, and after a
resume in the middle of an epoch; each process reads only its own shards; the two decoding
paths take the same crops as torchvision's RandomResizedCrop, pixel for pixel up to rounding.
"""
import io
import logging
import tarfile

import numpy as np
import pytest
import torch

from sc_eval.errors import ConfigError, DataError


def _photo(w, h, seed=0, quality=90):
    """A JPEG with photo-like statistics: smooth colour fields plus fine noise."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    low = rng.normal(size=(h // 16 + 1, w // 16 + 1, 3))
    base = Image.fromarray(((low - low.min()) / np.ptp(low) * 255).astype(np.uint8)).resize((w, h), Image.BICUBIC)
    a = np.asarray(base).astype(np.float32) + rng.normal(0, 8, size=(h, w, 3))
    buf = io.BytesIO()
    Image.fromarray(a.clip(0, 255).astype(np.uint8)).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _tar(path, members):
    with tarfile.open(path, "w") as tf:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return str(path)


def _shards(folder, n_shards=4, per_shard=10, size=(40, 36)):
    """img2dataset-style shards whose captions name the shard and sample."""
    folder.mkdir(parents=True, exist_ok=True)
    for s in range(n_shards):
        _tar(folder / f"{s:05d}.tar",
             [m for i in range(per_shard) for m in ((f"{s}{i:04d}.jpg", _photo(*size, seed=100 * s + i)),
                                                    (f"{s}{i:04d}.txt", f"shard {s} sample {i}".encode()))])
    return str(folder) + "/{00000..%05d}.tar" % (n_shards - 1)


@pytest.fixture(scope="module")
def tok():
    from sc_eval.pretrain.tokenize import build_tokenizer

    return build_tokenizer("clip")


def _batches(data, tok, n, batch=8, lanes=4, world=1, workers=0, **kw):
    """The first ``n`` global batches as (tokens, pixels), joined over ``world`` ranks."""
    from sc_eval.pretrain.data import BatchLoader, PretrainStream, open_source

    ranks = [iter(BatchLoader(PretrainStream(open_source(data), tok, 32, batch, lanes=lanes, rank=r, world=world,
                                             **kw), workers)) for r in range(world)]
    out = []
    for _ in range(n):
        parts = [next(r) for r in ranks]
        out.append((torch.cat([p["tokens"] for p in parts]), torch.cat([p["pixels"] for p in parts]),
                    [p["lanes"] for p in parts]))
    return out


def _same(a, b):
    assert len(a) == len(b)
    for (ta, pa, _), (tb, pb, _) in zip(a, b):
        assert torch.equal(ta, tb) and torch.equal(pa, pb)


# -- the reader ----------------------------------------------------------------------------
def test_samples_group_as_webdataset_groups_them_in_pretraining_and_pairs(tmp_path, tok):
    import webdataset as wds

    from sc_eval.data.shards import read_shard
    from sc_eval.pretrain.data import PretrainStream, open_source
    from sc_eval.adapters.lit.pairs import iter_shard_pairs

    jpg = _photo(16, 16)
    url = _tar(tmp_path / "00000.tar", [
        ("a.b.jpg", jpg), ("a.b.txt", b"two dots"),        # key "a", fields "b.jpg" / "b.txt": no image
        ("dir/c.jpg", jpg), ("dir/c.txt", b"in a folder"),  # key "dir/c"
        ("d.jpg", jpg), ("d.TXT", b"upper-case extension"),
        ("e.json", b"{}"),                                  # an img2dataset failure record
    ])
    ours = [{k: v for k, v in s.items() if k != "__url__"} for s in read_shard(url)]
    theirs = [{k: v for k, v in s.items() if k not in ("__url__", "__local_path__")}
              for s in wds.WebDataset([url], shardshuffle=False)]
    assert ours == theirs and [s["__key__"] for s in ours] == ["a", "dir/c", "d", "e"]

    assert [c for _, c in iter_shard_pairs([url])] == ["in a folder", "upper-case extension"]  # "a" reported
    batch = next(iter(PretrainStream(open_source(url), tok, 16, batch=4, seed=0)))
    assert sorted(map(tuple, batch["tokens"].tolist())) == sorted(map(tuple, tok(["in a folder", "upper-case extension"]).tolist()))
    assert batch["n_corrupt"] == 2  # "a" lacks an image, "e" both


def test_a_damaged_sample_is_reported_with_shard_key_and_reason_and_reading_goes_on(tmp_path, tok, caplog):
    from sc_eval.data.shards import read_shard
    from sc_eval.pretrain.data import PretrainStream, open_source
    from sc_eval.adapters.lit.pairs import iter_shard_pairs

    jpg = _photo(16, 16)
    url = _tar(tmp_path / "00000.tar", [
        ("s0.jpg", jpg), ("s0.txt", b"good zero"),
        ("s1.jpg", b"\xff\xd8\xff not a jpeg"), ("s1.txt", b"broken image"),
        ("s2.jpg", jpg), ("s2.jpg", jpg), ("s2.txt", b"duplicate member"),
        ("s3.jpg", jpg),
        ("s4.jpg", jpg), ("s4.txt", b"good four"),
    ])
    dup = [s for s in read_shard(url) if s["__key__"] == "s2"][0]
    assert "00000.tar: sample 's2'" in dup["__error__"] and "duplicate" in dup["__error__"]

    with caplog.at_level(logging.WARNING):
        assert [c for _, c in iter_shard_pairs([url])] == ["good zero", "good four"]
    text = caplog.text
    assert "00000.tar: sample 's1': image cannot be decoded" in text
    assert "00000.tar: sample 's3' lacks a caption" in text and "sample 's2'" in text

    caplog.clear()
    with caplog.at_level(logging.WARNING):
        batch = next(iter(PretrainStream(open_source(url), tok, 16, batch=5, seed=0)))
    assert len(batch["tokens"]) == 2 and batch["n_corrupt"] == 3
    assert "00000.tar: sample 's1': image cannot be decoded" in caplog.text


def test_missing_shards_are_named(tmp_path):
    from sc_eval.data.shards import expand_shards

    _shards(tmp_path / "s", n_shards=2, per_shard=1)
    assert len(expand_shards(str(tmp_path / "s/{00000..00001}.tar"))) == 2
    with pytest.raises(DataError, match=r"--data .*: shard\(s\) not found: .*00002\.tar"):
        expand_shards(str(tmp_path / "s/{00000..00002}.tar"))


# -- lanes: order, split, resume -------------------------------------------------------------
def test_same_batches_on_one_or_two_processes_and_with_workers(tmp_path, tok):
    data = _shards(tmp_path / "s")
    ref = _batches(data, tok, 6)  # 40 samples, batch 8: crosses into the second epoch
    _same(ref, _batches(data, tok, 6, world=2))
    _same(ref, _batches(data, tok, 6, workers=2))
    _same(ref, _batches(data, tok, 6, world=2, workers=2))
    # more workers than lanes: a lane is shared by workers, each decoding its own samples
    _same(_batches(data, tok, 3, lanes=2), _batches(data, tok, 3, lanes=2, workers=3))
    # different seeds give different orders, and each epoch shows every sample once
    other = _batches(data, tok, 5, seed=1)
    assert not all(torch.equal(a[0], b[0]) for a, b in zip(ref, other))
    first_epoch = torch.cat([t for t, _, _ in ref[:5]])
    assert len({tuple(r.tolist()) for r in first_epoch}) == 40


def test_each_process_reads_only_its_own_shards(tmp_path, tok, monkeypatch):
    from sc_eval.data import shards as S
    from sc_eval.pretrain.data import PretrainStream, open_source

    data = _shards(tmp_path / "s")
    opened = {0: set(), 1: set()}
    real, who = S.read_shard, {"rank": 0}

    def spy(url):
        opened[who["rank"]].add(url)
        return real(url)

    monkeypatch.setattr(S, "read_shard", spy)
    for rank in (0, 1):
        who["rank"] = rank
        it = iter(PretrainStream(open_source(data), tok, 16, 8, lanes=4, rank=rank, world=2))
        for _ in range(4):  # most of an epoch
            next(it)
    assert opened[0] and opened[1] and not opened[0] & opened[1]
    assert len(opened[0] | opened[1]) == 4


def test_resume_in_mid_epoch_continues_the_same_stream(tmp_path, tok):
    data = _shards(tmp_path / "s")
    ref = _batches(data, tok, 9)
    saved = {str(k): list(v) for part in ref[6][2] for k, v in part.items()}  # positions after batch 6
    _same(ref[7:], _batches(data, tok, 2, start_batch=7, lane_state=saved))
    # without saved positions (an older checkpoint) the lanes replay from the start: same batches
    _same(ref[7:], _batches(data, tok, 2, start_batch=7))
    # and the resumed run may have other processes and workers
    _same(ref[7:], _batches(data, tok, 2, start_batch=7, lane_state=saved, world=2, workers=2))


def test_lane_count_is_checked(tmp_path, tok):
    from sc_eval.pretrain.data import PretrainStream, open_source

    data = _shards(tmp_path / "s", n_shards=2, per_shard=2)
    with pytest.raises(ConfigError, match="--lanes 3: at most one per shard"):
        PretrainStream(open_source(data), tok, 16, 8, lanes=3)


# -- decoding paths ------------------------------------------------------------------------
@pytest.mark.parametrize("size", [(224, 224), (256, 192), (300, 400)])
def test_cpu_and_device_paths_take_torchvisions_crop(size):
    """Same seed -> the same RandomResizedCrop box on both paths; pixels agree with torchvision's
    PIL transform up to the rounding of two resize implementations (measured: at most 2 levels
    of 255 apart, on average under 0.3)."""
    from PIL import Image
    import torchvision.transforms.functional as TF
    from torchvision.transforms import InterpolationMode

    from sc_eval.pretrain.data import cpu_crop, device_crops, random_resized_crop_params, sample_generator

    raws = [_photo(*size, seed=s) for s in range(4)]
    dev = device_crops(raws, [sample_generator(3, g) for g in range(4)], 224, "cpu")
    for g, raw in enumerate(raws):
        img = Image.open(io.BytesIO(raw)).convert("RGB")
        i, j, h, w = random_resized_crop_params(*img.size, sample_generator(3, g))
        ref = torch.from_numpy(np.array(TF.resized_crop(img, i, j, h, w, [224, 224], InterpolationMode.BICUBIC,
                                                        antialias=True))).permute(2, 0, 1).int()
        cpu = cpu_crop(raw, 224, sample_generator(3, g)).int()
        gpu_path = dev[g].int()
        for x in (cpu, gpu_path):
            d = (x - ref).abs()
            assert x.shape == (3, 224, 224) and d.max() <= 2 and d.float().mean() < 0.3


def test_draft_decoding_stays_close_to_full_decoding():
    """PIL's draft decodes a 1024 x 768 JPEG at half size when the crop keeps >= 224 pixels a
    side at that scale; the crop then differs from a full decode by DCT-scaling rounding only
    (measured on photo-like images: 0.48 levels of 255 on average, at most 4, no shift of the
    mean); a 224-px image is never drafted."""
    from sc_eval.pretrain.data import cpu_crop, sample_generator

    diffs, shifts = [], []
    for s in range(6):
        raw = _photo(1024, 768, seed=s)
        a = cpu_crop(raw, 224, sample_generator(0, s)).float()
        b = cpu_crop(raw, 224, sample_generator(0, s), draft=False).float()
        diffs.append((a - b).abs())
        shifts.append(float(a.mean() - b.mean()))
    d = torch.stack(diffs)
    assert 0 < d.mean() < 1.0 and d.max() <= 8 and max(abs(x) for x in shifts) < 0.2
    small = _photo(224, 224)
    assert torch.equal(cpu_crop(small, 224, sample_generator(0, 0)),
                       cpu_crop(small, 224, sample_generator(0, 0), draft=False))


def test_gpu_decoding_path_through_to_device_matches_cpu_path(tmp_path, tok):
    """``--decode gpu`` hands JPEG bytes to the training process, which decodes, crops and
    normalises on its device; run on the CPU device, it gives the CPU path's batch up to rounding."""
    from sc_eval.pretrain.data import BatchLoader, PretrainStream, open_source, to_device

    data = _shards(tmp_path / "s", size=(64, 48))
    batches = {}
    for mode in ("cpu", "gpu"):
        b = next(iter(BatchLoader(PretrainStream(open_source(data), tok, 32, 8, lanes=4, seed=5, decode=mode), 0)))
        batches[mode] = to_device(b, "cpu", 5)
    (xc, tc, nc), (xg, tg, ng) = batches["cpu"], batches["gpu"]
    assert torch.equal(tc, tg) and nc == ng == 0 and xc.shape == xg.shape == (8, 3, 32, 32)
    from sc_eval.pretrain.data import CLIP_STD

    levels = (xc - xg).abs() * torch.tensor(CLIP_STD).view(1, 3, 1, 1) * 255  # back to 0-255 units
    assert levels.max() < 2.01 and levels.mean() < 0.3


def test_decode_flag():
    from sc_eval.pretrain.data import resolve_decode

    assert resolve_decode("auto", "cpu", 4) == "cpu"
    with pytest.raises(ConfigError, match="--decode gpu needs a CUDA --device"):
        resolve_decode("gpu", "cpu", 0)
