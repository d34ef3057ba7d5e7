"""`sc-eval probe`: metrics by hand, the linear probe and logreg learn, k-shot seeding and its
errors, and a second run reuses the cached features."""
import json
import math
import statistics
from pathlib import Path

import pytest
import torch

from sc_eval.cli import main
from sc_eval.errors import ConfigError
from sc_eval.adapters.probe.fewshot import run_fewshot, select_kshot
from sc_eval.adapters.probe.linear import ProbeConfig, fit_logreg, logreg_sweep, predict_scores, train_linear_probe
from sc_eval.metrics.classification import classification_metrics

@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models: one intra-op thread is fastest, and leaves the other core to the rest."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220), "yellow": (230, 220, 30)}


def write_imagefolder(root, per_split=None, seed=0, size=32):
    """ROOT/<split>/<colour>/<n>.png: noisy solid-colour squares (class = colour)."""
    from PIL import Image

    per_split = per_split or {"train": 12, "val": 4, "test": 6}
    g = torch.Generator().manual_seed(seed)
    for split, n in per_split.items():
        for name, rgb in COLOURS.items():
            count = n.get(name, 0) if isinstance(n, dict) else n
            d = root / split / name
            d.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                base = torch.tensor(rgb, dtype=torch.float32).view(1, 1, 3)
                px = (base + 40 * torch.randn(size, size, 3, generator=g)).clamp(0, 255).to(torch.uint8)
                Image.fromarray(px.numpy()).save(d / f"{i}.png")
    return root


def blobs(n_per_class, num_classes=4, dim=16, spread=0.3, seed=0, noise_seed=100):
    """Gaussian clusters around random centres of norm 3 (``seed``), samples drawn with
    ``noise_seed``: train and test share centres but not samples. Separable when spread is small."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.nn.functional.normalize(torch.randn(num_classes, dim, generator=g), dim=1) * 3
    y = torch.arange(num_classes).repeat_interleave(n_per_class)
    x = centres[y] + spread * torch.randn(len(y), dim, generator=torch.Generator().manual_seed(noise_seed))
    return x, y


# ---------------------------------------------------------------- metrics, by hand

def test_metrics_hand_checked_confusion():
    # 5 classes, 6 examples. Rows give each example's class ranking through its scores.
    scores = torch.tensor([
        [0.9, 0.1, 0.0, 0.0, 0.0],  # label 0, top1 0: correct
        [0.1, 0.8, 0.05, 0.03, 0.02],  # label 0, ranked 2nd: top5 yes, top1 no
        [0.0, 0.9, 0.1, 0.0, 0.0],  # label 1: correct
        [0.5, 0.4, 0.0, 0.1, 0.0],  # label 2, ranked 4th-5th (tie at 0.0 with class 4): still in top5
        [0.0, 0.0, 0.0, 1.0, 0.0],  # label 3: correct
        [0.6, 0.0, 0.0, 0.0, 0.4],  # label 4: ranked 2nd
    ])
    labels = torch.tensor([0, 0, 1, 2, 3, 4])
    m = classification_metrics(scores, labels)
    assert m["top1"] == pytest.approx(100 * 3 / 6)
    assert m["top5"] == pytest.approx(100.0)  # 5 classes: every label is in the top 5
    # per-class recall: class0 1/2, class1 1, class2 0, class3 1, class4 0 -> mean 2.5/5
    assert m["mean_per_class_recall"] == pytest.approx(100 * 2.5 / 5)


def test_metrics_top5_needs_five_classes_and_counts_misses():
    m3 = classification_metrics(torch.tensor([[0.2, 0.7, 0.1], [0.6, 0.3, 0.1]]), torch.tensor([1, 2]))
    assert "top5" not in m3 and m3["top1"] == 50.0 and m3["mean_per_class_recall"] == 50.0
    # 6 classes: the label ranked 6th is outside the top 5.
    s = torch.tensor([[0.6, 0.5, 0.4, 0.3, 0.2, 0.1], [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]])
    m6 = classification_metrics(s, torch.tensor([5, 5]))
    assert m6["top1"] == 50.0 and m6["top5"] == 50.0


def test_tied_scores_rank_alike_in_top1_and_top5():
    """Class weights of unseen words can tie exactly (LiT zero-shot): the class top-1 picks must
    also be in the top 5. Ten classes all scored 0, label 0; seven of eight tied at 1, label 1."""
    m = classification_metrics(torch.zeros(1, 10), torch.tensor([0]))
    assert m["top1"] == 100.0 and m["top5"] == 100.0
    s = torch.tensor([[0.0, 1, 1, 1, 1, 1, 1, 1]])
    m = classification_metrics(s, torch.tensor([1]))
    assert m["top1"] == 100.0 and m["top5"] == 100.0
    m = classification_metrics(s, torch.tensor([7]))  # tied, but ranked 7th of the seven
    assert m["top1"] == 0.0 and m["top5"] == 0.0


# ---------------------------------------------------------------- classifiers on features

def test_linear_probe_learns_separable_problem():
    x, y = blobs(40)
    x_test, y_test = blobs(20, noise_seed=101)
    head = train_linear_probe(x, y, 4, ProbeConfig(epochs=15, batch_size=32, lr=0.1))
    assert isinstance(head[0], torch.nn.BatchNorm1d) and not head[0].affine
    m = classification_metrics(predict_scores(head, x_test), y_test)
    assert m["top1"] >= 95.0  # chance is 25
    # Same seed, same head: the probe is reproducible.
    head2 = train_linear_probe(x, y, 4, ProbeConfig(epochs=15, batch_size=32, lr=0.1))
    assert torch.equal(head[1].weight, head2[1].weight)


def test_logreg_sweep_prefers_regularisation_on_noisy_small_data():
    x, y = blobs(30, spread=0.3)
    model = fit_logreg(x, y, 4, weight_decay=1e-3)
    assert classification_metrics(model.scores(x), y)["top1"] == 100.0
    # Far more dimensions than examples, labels unrelated to most dims: the sweep must not pick
    # the weakest penalty when validation says otherwise, and it reports what it tried.
    g = torch.Generator().manual_seed(1)
    xs = torch.randn(30, 60, generator=g)
    ys = (xs[:, 0] > 0).long()
    xv = torch.randn(100, 60, generator=g)
    yv = (xv[:, 0] > 0).long()
    best, tried = logreg_sweep(xs, ys, xv, yv, 2)
    assert len(tried) >= 9 and best in tried
    assert tried[best] == max(tried.values())
    assert tried[best] > tried[1e-6] or best == 1e-6


# ---------------------------------------------------------------- k-shot

def test_kshot_selection_is_seeded_and_balanced():
    labels = torch.tensor([0] * 15 + [1] * 12 + [2] * 20)
    a = select_kshot(labels, 10, seed=0, classes=["a", "b", "c"])
    b = select_kshot(labels, 10, seed=0, classes=["a", "b", "c"])
    c = select_kshot(labels, 10, seed=1, classes=["a", "b", "c"])
    assert a == b and a != c
    assert torch.bincount(labels[a]).tolist() == [10, 10, 10]
    with pytest.raises(ConfigError, match=r"'b' has 12"):
        select_kshot(labels, 13, seed=0, classes=["a", "b", "c"])


def test_fewshot_same_seed_identical_different_seeds_differ():
    x, y = blobs(30, spread=1.6, seed=3)  # overlapping clusters: the chosen shots matter
    xt, yt = blobs(50, spread=1.6, seed=3, noise_seed=7)
    r1 = run_fewshot(x, y, xt, yt, list("abcd"), 5, [0, 1, 2])
    r2 = run_fewshot(x, y, xt, yt, list("abcd"), 5, [0, 1, 2])
    assert r1 == r2
    tops = [s["top1"] for s in r1["per_seed"]]
    assert len(set(tops)) > 1
    assert r1["metrics"]["top1"] == pytest.approx(sum(tops) / 3)
    mean = sum(tops) / 3
    assert r1["metrics"]["top1_std"] == pytest.approx(math.sqrt(sum((t - mean) ** 2 for t in tops) / 2))
    assert r1["metrics"]["top1"] > 40  # 4 classes: chance 25
    # one seed: each test image is right or wrong, so top-1's standard error over the n images is
    # sqrt(p (1 - p) / (n - 1)); with three seeds an image scores the share of seeds right
    one = run_fewshot(x, y, xt, yt, list("abcd"), 5, [1])
    p, n = one["metrics"]["top1"] / 100, len(yt)
    assert one["stderr"]["top1"] == pytest.approx(100 * math.sqrt(p * (1 - p) / (n - 1)))
    assert 0 < r1["stderr"]["top1"] < 100 * math.sqrt(0.25 / (n - 1))


# ---------------------------------------------------------------- the command

def test_shots_larger_than_smallest_class_fails_clearly(tmp_path, capsys):
    data = write_imagefolder(tmp_path / "data", {"train": {"red": 5, "green": 5, "blue": 3, "yellow": 5},
                                                 "test": 1})
    rc = main(["probe", "--encoder", "random:sc-vit-micro", "--data", str(data), "--tasks", "fewshot",
               "--shots", "4", "--output-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert rc == 2
    assert "'blue' has 3" in err and "--shots" in err


def test_unknown_task_is_a_clear_error(tmp_path, capsys):
    rc = main(["probe", "--encoder", "random:sc-vit-micro", "--tasks", "linaer",
               "--output-dir", str(tmp_path / "run")])
    assert rc == 2 and "did you mean 'linear'" in capsys.readouterr().err


def test_probe_command_end_to_end_and_feature_reuse(tmp_path, monkeypatch):
    import sc_eval
    from sc_eval.adapters.probe import pipeline

    data = write_imagefolder(tmp_path / "data")
    calls = {"images": 0}
    real_load = sc_eval.load_encoder

    def counting_load(spec, config=None, device="cpu"):
        enc = real_load(spec, config=config, device=device)
        inner = type(enc)._pooled

        def pooled(x):
            calls["images"] += x.shape[0]
            return inner(enc, x)

        enc._pooled = pooled
        return enc

    monkeypatch.setattr(pipeline, "load_encoder", counting_load)
    argv = ["probe", "--encoder", "random:sc-vit-micro", "--data", str(data), "--shots", "5", "--seeds", "2",
            "--epochs", "20", "--output-dir", str(tmp_path / "run")]
    assert main(argv) == 0
    encoded = calls["images"]
    assert encoded == 4 * (12 + 4 + 6)  # train, val (logreg sweep) and test, each once
    res = json.loads((tmp_path / "run" / "results.json").read_text())
    assert res["schema_version"] == 1
    assert set(res["results"]) == {"probe_linear", "probe_logreg", "probe_5shot"}
    for name, e in res["results"].items():
        assert e["n_docs"] == {"total": 24, "evaluated": 24} and e["limited"] is False
        assert e["metrics"]["top1"] > 60, (name, e["metrics"])  # noisy colours; chance is 25
        assert "top5" not in e["metrics"]  # only 4 classes
    assert len(res["results"]["probe_5shot"]["per_seed"]) == 2
    preds = (tmp_path / "run" / "predictions" / "probe_linear.jsonl").read_text().splitlines()
    right = [json.loads(x)["scores"]["correct"] for x in preds]
    # top-1's standard error over the 24 test images, from the predictions written beside it
    assert res["results"]["probe_linear"]["stderr"]["top1"] == pytest.approx(
        100 * statistics.stdev(right) / 24 ** 0.5)
    five = [json.loads(x) for x in (tmp_path / "run" / "predictions" / "probe_5shot.jsonl").read_text().splitlines()]
    assert len(five) == 24  # one line per test image, scored by the share of the 2 seeds right
    assert {x["scores"]["correct"] for x in five} <= {0.0, 0.5, 1.0}
    assert 100 * sum(x["scores"]["correct"] for x in five) / 24 == pytest.approx(
        res["results"]["probe_5shot"]["metrics"]["top1"])
    assert res["results"]["probe_5shot"]["stderr"]["top1"] == pytest.approx(
        100 * statistics.stdev([x["scores"]["correct"] for x in five]) / 24 ** 0.5)
    assert len(preds) == 24 and json.loads(preds[0])["targets"][0] in COLOURS
    first = json.loads(preds[0])  # named below the test split's folder: the same on any machine
    assert Path(first["image"]).relative_to(data / "test").as_posix() == first["doc_id"]
    assert "probe_linear" in (tmp_path / "run" / "results.md").read_text()

    # A second run (new directory, other settings) encodes nothing: the shared cache serves it.
    argv2 = ["probe", "--encoder", "random:sc-vit-micro", "--data", str(data), "--tasks", "linear",
             "--epochs", "5", "--limit", "10", "--output-dir", str(tmp_path / "run2")]
    assert main(argv2) == 0
    assert calls["images"] == encoded
    e = json.loads((tmp_path / "run2" / "results.json").read_text())["results"]["probe_linear"]
    assert e["n_docs"] == {"total": 24, "evaluated": 10} and e["limited"] is True

    # The same command again reuses the stored result; with its predictions file damaged (the
    # report pairs runs by it), the result is computed and the file written again.
    pred2 = tmp_path / "run2" / "predictions" / "probe_linear.jsonl"
    whole = pred2.read_text()
    assert main(argv2) == 0 and pred2.read_text() == whole
    pred2.write_text(whole[: len(whole) // 2])
    assert main(argv2) == 0 and pred2.read_text() == whole


def test_probe_on_a_saved_hf_dataset(tmp_path):
    """hf:DIR: image + ClassLabel columns, train/test splits, encoded in memory."""
    datasets = pytest.importorskip("datasets")
    from PIL import Image

    g = torch.Generator().manual_seed(0)
    names = list(COLOURS)

    def split(n):
        images, labels = [], []
        for ci, rgb in enumerate(COLOURS.values()):
            for _ in range(n):
                px = (torch.tensor(rgb, dtype=torch.float32).view(1, 1, 3) + 40 * torch.randn(32, 32, 3, generator=g))
                images.append(Image.fromarray(px.clamp(0, 255).to(torch.uint8).numpy()))
                labels.append(ci)
        feats = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=names)})
        return datasets.Dataset.from_dict({"image": images, "label": labels}, features=feats)

    datasets.DatasetDict({"train": split(8), "test": split(4)}).save_to_disk(str(tmp_path / "hf"))
    assert main(["probe", "--encoder", "random:sc-vit-micro", "--data", f"hf:{tmp_path / 'hf'}", "--tasks",
                 "logreg,fewshot", "--shots", "4", "--seeds", "1", "--output-dir", str(tmp_path / "run")]) == 0
    res = json.loads((tmp_path / "run" / "results.json").read_text())
    assert res["classes"] == names
    e = res["results"]["probe_logreg"]
    assert e["n_docs"]["total"] == 16 and e["val_split"] == "20% of train"
    assert e["metrics"]["top1"] > 60


def test_prediction_ids_name_images_below_the_whole_split_folder_whatever_the_limit_kept():
    from sc_eval.evaluation.classification import _doc_ids

    split = ["/d/test/cat/1.jpg", "/d/test/cat/2.jpg", "/d/test/dog/3.jpg"]
    assert _doc_ids(split[:2], split) == ["cat/1.jpg", "cat/2.jpg"]  # --limit 2 kept one class
    assert _doc_ids(split) == ["cat/1.jpg", "cat/2.jpg", "dog/3.jpg"]
