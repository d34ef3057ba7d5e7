"""`sc-eval pretrain` end to end on tiny generated webdataset shards (micro ViT, CPU).

What a user would notice: a run killed with SIGKILL and resumed ends with exactly the weights
of an uninterrupted run; corrupt samples are skipped and counted; a diverging run stops with
the step number and keeps its last good checkpoint; a checkpoint of another architecture is
refused with the mismatched keys named; the exported encoder loads.
"""
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time

import pytest
import torch
from safetensors.torch import load_file

from sc_eval.cli import main
from sc_eval.errors import DataError

OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
COLORS = ["red", "blue", "green", "yellow"]
SHAPES = ["circle", "square", "triangle"]


@pytest.fixture(autouse=True)
def _env(monkeypatch):
    for k, v in OFFLINE.items():
        monkeypatch.setenv(k, v)
    torch.set_num_threads(1)


def _jpeg(color):
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (40, 36), color).save(buf, "JPEG")
    return buf.getvalue()


def make_shards(folder, n_shards=2, per_shard=24, corrupt=()):
    """img2dataset-style tars: NNNNNNNNN.jpg/.txt/.json. ``corrupt``: sample indices to break
    (even: garbage image bytes, odd: caption missing)."""
    folder.mkdir(parents=True, exist_ok=True)
    idx = 0
    for s in range(n_shards):
        with tarfile.open(folder / f"{s:05d}.tar", "w") as tf:
            for _ in range(per_shard):
                rgb = ((idx * 53) % 256, (idx * 97) % 256, (idx * 31) % 256)
                members = {"jpg": _jpeg(rgb), "txt": f"a {COLORS[idx % 4]} {SHAPES[idx % 3]} at {idx}".encode(),
                           "json": json.dumps({"key": f"{idx:09d}"}).encode()}
                if idx in corrupt:
                    if idx % 2 == 0:
                        members["jpg"] = b"\xff\xd8 not really a jpeg"
                    else:
                        del members["txt"]
                for ext, data in members.items():
                    info = tarfile.TarInfo(f"{idx:09d}.{ext}")
                    info.size = len(data)
                    tf.addfile(info, io.BytesIO(data))
                idx += 1
    return str(folder) + "/{00000..%05d}.tar" % (n_shards - 1)


def _args(data, out, steps, *extra):
    return ["pretrain", "--model", "sc-vit-micro", "--data", data, "--steps", str(steps), "--batch-size", "8",
            "--output-dir", str(out), "--workers", "0", "--threads", "1", "--no-progress", "--lr", "2e-3",
            *extra]


def _weights(run, step):
    return load_file(str(run / "checkpoints" / f"step_{step}" / "model.safetensors"))


def _metrics(run):
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


def test_sigkill_then_resume_is_bitwise_equal(tmp_path):
    data = make_shards(tmp_path / "shards")
    ref, cut = tmp_path / "ref", tmp_path / "cut"
    assert main(_args(data, ref, 10, "--save-every", "2")) == 0

    env = {**os.environ, **OFFLINE}
    proc = subprocess.Popen([sys.executable, "-m", "sc_eval", *_args(data, cut, 10, "--save-every", "2")],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    target = cut / "checkpoints" / "step_4" / "state.pt"
    deadline = time.monotonic() + 120
    while not target.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    latest = (cut / "checkpoints" / "latest").read_text().strip()
    # killed before the end (possibly between renaming step_4 into place and updating latest)
    assert latest in ("step_2", "step_4", "step_6", "step_8"), latest

    # resumed with other worker processes: the data position is per lane, not per worker
    resume = _args(data, cut, 10, "--save-every", "2", "--resume", "latest")
    resume[resume.index("--workers") + 1] = "2"
    assert main(resume) == 0
    a, b = _weights(ref, 10), _weights(cut, 10)
    assert a.keys() == b.keys() and any(k.startswith("head.fc") for k in a)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    sa = torch.load(ref / "checkpoints/step_10/state.pt", weights_only=True)
    sb = torch.load(cut / "checkpoints/step_10/state.pt", weights_only=True)
    assert torch.equal(sa["idf"]["df"], sb["idf"]["df"]) and sa["idf"]["num_samples"].item() == 80
    assert sa["data"]["next_batch"] == sb["data"]["next_batch"] == 10
    # the metrics log holds each step once, with the same losses
    la, lb = _metrics(ref), _metrics(cut)
    assert [m["step"] for m in lb] == list(range(1, 11))
    assert [m["loss"] for m in la] == [m["loss"] for m in lb]
    assert all(0.0 <= m["data_wait"] <= 1.0 for m in la + lb)
    # an existing run is not clobbered without --resume/--overwrite
    assert main(_args(data, cut, 10)) == 2

    # the exported encoder loads, with the head, and gives the tower's pooled features
    import sc_eval

    enc = sc_eval.load_encoder(str(ref))
    assert enc.width == 32
    feats = enc.forward_pooled(torch.zeros(2, 3, 32, 32))
    assert feats.shape == (2, 32) and torch.isfinite(feats).all()


def test_corrupt_samples_are_skipped_and_counted(tmp_path):
    data = make_shards(tmp_path / "shards", corrupt={3, 10})  # a missing caption, a broken jpeg
    run = tmp_path / "run"
    assert main(_args(data, run, 6, "--save-every", "6")) == 0  # 6 x 8 samples: one whole epoch
    m = _metrics(run)
    assert m[-1]["n_corrupt"] == 2 and m[-1]["samples_seen"] == 48
    assert "corrupt" in (run / "log.txt").read_text()

    from sc_eval.pretrain.data import PretrainStream, open_source
    from sc_eval.pretrain.tokenize import build_tokenizer

    stream = PretrainStream(open_source(data), build_tokenizer("clip"), 32, batch=8, seed=0)
    it = iter(stream)
    sizes = [(b["batch_index"], len(b["tokens"]), b["n_corrupt"]) for b in (next(it) for _ in range(6))]
    assert sum(s[1] for s in sizes) == 46 and sum(s[2] for s in sizes) == 2
    assert all(n + c == 8 for _, n, c in sizes)  # a damaged sample leaves its batch one smaller


def test_a_truncated_shard_is_reported_not_read_as_a_short_one(tmp_path):
    """tarfile takes a cut member header for the end of the archive: the shard must be named."""
    from sc_eval.data.shards import image_and_caption, read_shard

    make_shards(tmp_path / "shards", n_shards=1, per_shard=6)
    shard = tmp_path / "shards" / "00000.tar"
    whole = [s["__key__"] for s in read_shard(str(shard))]
    assert len(whole) == 6  # an intact shard: its samples, nothing else
    with tarfile.open(shard) as tf:
        cut = [m for m in tf.getmembers()][9].offset + 200  # inside the 4th sample's first header
    shard.write_bytes(shard.read_bytes()[:cut])
    items = list(read_shard(str(shard)))
    assert [s["__key__"] for s in items[:3]] == whole[:3] and len(items) == 4
    with pytest.raises(DataError, match=r"00000\.tar: an unreadable member header after sample '000000002'"):
        image_and_caption(items[3])
    shard.write_bytes(shard.read_bytes()[:cut - 200])  # cut at a member boundary: no end marker
    with pytest.raises(DataError, match="no end-of-archive marker"):
        image_and_caption(list(read_shard(str(shard)))[-1])
    shard.write_bytes(shard.read_bytes()[:cut - 300])  # cut inside a caption's data
    items = list(read_shard(str(shard)))
    assert [s["__key__"] for s in items[:2]] == whole[:2] and len(items) == 3
    with pytest.raises(DataError, match=r"00000\.tar: unreadable \(unexpected end of data\) after sample '000000001'"):
        image_and_caption(items[2])


def test_an_all_corrupt_batch_from_a_worker_names_the_sample_not_a_traceback(tmp_path, capsys):
    data = make_shards(tmp_path / "shards", n_shards=1, per_shard=8, corrupt=set(range(8)))
    argv = _args(data, tmp_path / "run", 1)
    argv[argv.index("--workers") + 1] = "1"
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "all 8 samples of batch 0 are corrupt; the last one: " in err and "00000.tar" in err
    assert "Traceback" not in err


def test_nan_loss_stops_with_step_and_keeps_last_checkpoint(tmp_path, capsys):
    data = make_shards(tmp_path / "shards", n_shards=1)
    run = tmp_path / "run"
    # lr 1e30 blows the weights up after the first update: step 2's loss is NaN.
    assert main(_args(data, run, 6, "--save-every", "1", "--lr", "1e30", "--warmup", "0")) == 2
    err = capsys.readouterr().err
    assert "at step 2" in err and "nan" in err
    assert (run / "checkpoints" / "latest").read_text().strip() == "step_1"
    w = _weights(run, 1)
    assert all(torch.isfinite(v).all() for v in w.values())


def test_wrong_architecture_checkpoint_names_keys(tmp_path, capsys):
    data = make_shards(tmp_path / "shards", n_shards=1)
    run = tmp_path / "run"
    assert main(_args(data, run, 1, "--save-every", "1")) == 0
    other = tmp_path / "wide.json"
    other.write_text(json.dumps({"image_size": 32, "patch_size": 8, "width": 64, "layers": 2, "heads": 2}))
    capsys.readouterr()
    assert main(_args(data, run, 2, "--resume", "latest", "--model", str(other))) == 2
    err = capsys.readouterr().err
    assert "head.fc.weight checkpoint [49408, 32] vs model [49408, 64]" in err
    assert "visual.blocks.0.attn.qkv.weight checkpoint [96, 32] vs model [192, 64]" in err


def test_clip_objective_and_jsonl_source(tmp_path):
    from PIL import Image

    img_dir = tmp_path / "pairs" / "images"
    img_dir.mkdir(parents=True)
    lines = []
    for i in range(16):
        Image.new("RGB", (30, 30), (i * 15, 0, 255 - i * 15)).save(img_dir / f"{i}.png")
        lines.append(json.dumps({"image": f"images/{i}.png", "caption": f"a {COLORS[i % 4]} square"}))
    (tmp_path / "pairs" / "pairs.jsonl").write_text("\n".join(lines) + "\n")
    run = tmp_path / "clip"
    assert main(_args(str(tmp_path / "pairs" / "pairs.jsonl"), run, 2, "--objective", "clip")) == 0
    keys = _weights(run, 2).keys()
    assert "logit_scale" in keys and any(k.startswith("text.") for k in keys) and "head.proj.weight" in keys
    m = _metrics(run)
    assert torch.isfinite(torch.tensor([x["loss"] for x in m])).all()
    assert abs(m[0]["logit_scale"] - 1 / 0.07) < 0.1  # CLIP's initial temperature, 0.07
    assert (run / "encoder" / "model.safetensors").exists()
    from sc_eval import load_encoder

    # results.json describes the tower by its training objective, from the export and a checkpoint
    assert load_encoder(str(run / "encoder")).describe()["objective"] == "clip"
    assert load_encoder(str(run / "checkpoints" / "step_2")).describe()["objective"] == "clip"


def test_clip_loss_matches_numpy():
    import numpy as np

    from sc_eval.pretrain.models import clip_criterion

    g = torch.Generator().manual_seed(0)
    img = torch.nn.functional.normalize(torch.randn(6, 16, generator=g, dtype=torch.float64), dim=-1)
    txt = torch.nn.functional.normalize(torch.randn(6, 16, generator=g, dtype=torch.float64), dim=-1)
    got = clip_criterion()(img, txt, torch.tensor(10.0, dtype=torch.float64)).item()
    s = 10.0 * img.numpy() @ txt.numpy().T

    def ce(rows):
        rows = rows - rows.max(1, keepdims=True)
        return float(np.mean(np.log(np.exp(rows).sum(1)) - np.diag(rows)))

    assert abs(got - (ce(s) + ce(s.T)) / 2) < 1e-6


def test_hf_dataset_source_and_hf_tokenizer(tmp_path):
    """A datasets.save_to_disk folder as data, a local GPT-2 tokenizer folder as labels:
    the head is sized to that vocabulary (50,257) and the targets use its ids."""
    import datasets
    from PIL import Image

    from sc_eval.models.tokenizers import gpt2_tokenizer, save_tokenizer

    rows = {"image": [Image.new("RGB", (20, 20), (i * 30, 90, 0)) for i in range(8)],
            "text": [f"a {COLORS[i % 4]} disk" for i in range(8)]}
    ds = datasets.Dataset.from_dict(rows, features=datasets.Features(
        {"image": datasets.Image(), "text": datasets.Value("string")}))
    ds.save_to_disk(str(tmp_path / "hf"))
    tok_dir = save_tokenizer(gpt2_tokenizer(), tmp_path / "gpt2tok")
    run = tmp_path / "run"
    assert main(_args(str(tmp_path / "hf"), run, 1, "--tokenizer", str(tok_dir))) == 0
    w = _weights(run, 1)
    assert w["head.fc.weight"].shape == (50257, 32)
    cfg = json.loads((run / "checkpoints" / "step_1" / "config.json").read_text())
    assert cfg["vocab_size"] == 50257 and cfg["objective"] == "superclass"
    # the IDF counts are over GPT-2 ids: " disk" appears in every caption of the batch
    state = torch.load(run / "checkpoints/step_1/state.pt", weights_only=True)
    disk = gpt2_tokenizer()(" disk")["input_ids"][-1]
    assert state["idf"]["df"][disk].item() == 8 and state["idf"]["num_samples"].item() == 8


def test_the_log_says_which_share_of_the_time_went_waiting_for_data(tmp_path, monkeypatch, caplog):
    """Steps that spent 1 s and 3 s blocked on the loader in a 10 s window: data_wait 0.4 on each
    of the window's lines, in the log line too (a clock that the test moves by hand)."""
    from types import SimpleNamespace

    from sc_eval.pretrain import progress

    now = [100.0]
    monkeypatch.setattr(progress.time, "perf_counter", lambda: now[0])
    args = SimpleNamespace(no_progress=True, batch_size=8, objective="superclass", log_every=2, steps=2)
    pos = SimpleNamespace(n_corrupt=0)
    with progress.TrainLog(tmp_path, args, 0, "cpu", 1, True) as tlog:
        for step, wait in ((1, 1.0), (2, 3.0)):
            tlog.add({"step": step, "loss": torch.tensor(2.0, dtype=torch.float64), "lr": 1e-3, "n_corrupt": 0,
                      "samples_seen": 8 * step, "data_wait_s": wait, "scale": None})
        now[0] += 10.0
        with caplog.at_level("INFO", logger="sc_eval.pretrain"):
            tlog.flush(2, pos)
    lines = _metrics(tmp_path)
    assert [m["data_wait"] for m in lines] == pytest.approx([0.4, 0.4])
    assert [m["images_per_s"] for m in lines] == pytest.approx([1.6, 1.6])  # 16 images in 10 s
    assert "40% waiting for data" in caplog.text
