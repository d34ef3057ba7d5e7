"""LiT zero-shot: the CLIP loss by hand, templates, and `sc-eval zeroshot` learning an easy
colour task from captions (then reloading the saved text side with --lit)."""
import json
import math

import pytest
import torch

from sc_eval.cli import main
from sc_eval.errors import ConfigError
from sc_eval.adapters.lit import model as L
from sc_eval.adapters.lit.templates import OPENAI_IMAGENET_TEMPLATES, load_templates
from sc_eval.models.tokenizers import clip_tokenizer

from test_probe import COLOURS, _one_thread, write_imagefolder  # noqa: F401 (autouse fixture)


def test_clip_loss_by_hand():
    from open_clip.loss import ClipLoss

    img = torch.eye(2)
    txt = torch.eye(2)
    model = L.LitModel(L.LitConfig(image_width=2, embed_dim=2))
    model.logit_scale.data.fill_(math.log(2.0))
    scale = model.scale()
    # logits [[2, 0], [0, 2]]: each row and column is CE = log(1 + e^-2)
    assert ClipLoss()(img, txt, scale).item() == pytest.approx(math.log(1 + math.exp(-2)), rel=1e-5)
    # swapped texts: the positive has logit 0, the negative 2 -> log(1 + e^2)
    assert ClipLoss()(img, txt.flip(0), scale).item() == pytest.approx(math.log(1 + math.exp(2)), rel=1e-5)
    model.logit_scale.data.fill_(math.log(1000.0))
    assert model.scale().item() == pytest.approx(100.0)  # CLIP's clamp


def test_text_tower_is_causal_and_reads_the_eot_position():
    cfg = L.LitConfig(image_width=8, embed_dim=8, text=L.TextConfig(context_length=8, width=32, layers=1, heads=2))
    torch.manual_seed(0)
    model = L.LitModel(cfg).eval()
    a = clip_tokenizer(8)(["red square"])  # SOT red square EOT pad pad pad
    eot = int(a[0].argmax())
    after, before = a.clone(), a.clone()
    after[0, eot + 1:] = 320  # tokens after EOT: invisible to it under the causal mask
    before[0, 1] = 1125  # "photo" instead of "red": must change the embedding
    with torch.no_grad():
        ea, e_after, e_before = (model.encode_text(t) for t in (a, after, before))
    assert torch.allclose(ea, e_after, atol=1e-6)
    assert not torch.allclose(ea, e_before, atol=1e-3)


def test_templates_default_and_user_file(tmp_path):
    t = load_templates()
    assert len(t) == 80 and len(set(t)) == 80 and all(x.count("{}") == 1 for x in t)
    assert "a photo of a {}." in t and t == list(OPENAI_IMAGENET_TEMPLATES)
    f = tmp_path / "t.txt"
    f.write_text("# mine\na {} thing\n\nthe {}\n")
    assert load_templates(f) == ["a {} thing", "the {}"]
    f.write_text("no slot here\n")
    with pytest.raises(ConfigError, match=r"t.txt:1"):
        load_templates(f)


def _write_pairs(root, n_per_colour=24, seed=1):
    """pairs.jsonl + images: each caption names the image's colour among shape words."""
    from PIL import Image

    g = torch.Generator().manual_seed(seed)
    shapes = ["square", "circle", "blob", "patch"]
    lines = []
    (root / "images").mkdir(parents=True)
    for ci, (name, rgb) in enumerate(COLOURS.items()):
        for i in range(n_per_colour):
            base = torch.tensor(rgb, dtype=torch.float32).view(1, 1, 3)
            px = (base + 40 * torch.randn(32, 32, 3, generator=g)).clamp(0, 255).to(torch.uint8)
            rel = f"images/{name}_{i}.png"
            Image.fromarray(px.numpy()).save(root / rel)
            lines.append(json.dumps({"image": rel, "caption": f"a {name} {shapes[i % 4]}."}))
    (root / "pairs.jsonl").write_text("\n".join(lines) + "\n")
    return root / "pairs.jsonl"


def test_lit_zeroshot_beats_chance_on_colours_and_reloads(tmp_path, capsys):
    data = write_imagefolder(tmp_path / "data", {"train": 1, "test": 10})
    pairs = _write_pairs(tmp_path / "pairs")
    tpl = tmp_path / "templates.txt"
    tpl.write_text("a {} square.\na {} circle.\n")
    common = ["--encoder", "random:sc-vit-micro", "--data", str(data), "--templates", str(tpl),
              "--text-width", "64", "--text-layers", "2", "--embed-dim", "32", "--context-length", "12"]
    assert main(["zeroshot", *common, "--pairs", str(pairs), "--steps", "150", "--batch-size", "32",
                 "--lr", "2e-3", "--output-dir", str(tmp_path / "run")]) == 0
    res = json.loads((tmp_path / "run" / "results.json").read_text())
    e = res["results"]["zeroshot_lit"]
    assert e["n_docs"] == {"total": 40, "evaluated": 40} and e["n_templates"] == 2
    assert e["metrics"]["top1"] >= 60, e["metrics"]  # 4 colours: chance is 25
    p = e["metrics"]["top1"] / 100  # its standard error over the 40 images, each right or wrong
    assert e["stderr"]["top1"] == pytest.approx(100 * (p * (1 - p) / 39) ** 0.5)
    lit_dir = tmp_path / "run" / "lit"
    assert (lit_dir / "model.safetensors").is_file()
    assert json.loads((lit_dir / "config.json").read_text())["image_width"] == 32

    # The saved text side, loaded with --lit, classifies the same images identically.
    assert main(["zeroshot", *common, "--lit", str(lit_dir), "--output-dir", str(tmp_path / "run2")]) == 0
    e2 = json.loads((tmp_path / "run2" / "results.json").read_text())["results"]["zeroshot_lit"]
    assert e2["metrics"] == e["metrics"]

    # A text side saved by an earlier version (format version 1, other blocks) is refused
    # naming what to do, before any result is written.
    cfg = json.loads((lit_dir / "config.json").read_text())
    (lit_dir / "config.json").write_text(json.dumps({**cfg, "version": 1}))
    capsys.readouterr()
    assert main(["zeroshot", *common, "--lit", str(lit_dir), "--output-dir", str(tmp_path / "run3")]) == 2
    err = capsys.readouterr().err
    assert "format version 1" in err and "sc-eval zeroshot --overwrite" in err
    assert not (tmp_path / "run3" / "results.json").exists()


def test_lit_dir_that_is_not_one_fails_clearly(tmp_path, capsys):
    data = write_imagefolder(tmp_path / "data", {"train": 1, "test": 1})
    (tmp_path / "empty").mkdir()
    rc = main(["zeroshot", "--encoder", "random:sc-vit-micro", "--data", str(data), "--lit", str(tmp_path / "empty"),
               "--output-dir", str(tmp_path / "run")])
    assert rc == 2 and "config.json and model.safetensors" in capsys.readouterr().err


def test_pairs_from_webdataset_shards_and_bad_jsonl(tmp_path):
    import io
    import tarfile

    from PIL import Image

    from sc_eval.errors import DataError
    from sc_eval.adapters.lit.pairs import iter_shard_pairs, read_jsonl_pairs

    def add(tf, name, data):
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 0, 0)).save(buf, format="JPEG")
    with tarfile.open(tmp_path / "00000.tar", "w") as tf:
        add(tf, "000.jpg", buf.getvalue())
        add(tf, "000.txt", b"a red square")
        add(tf, "001.json", b"{}")  # no image or caption: skipped, as img2dataset failures are
        add(tf, "002.jpg", buf.getvalue())
        add(tf, "002.txt", b"another red square\n")
    got = [(im.size, cap) for im, cap in iter_shard_pairs([tmp_path / "00000.tar"])]
    assert got == [((8, 8), "a red square"), ((8, 8), "another red square")]
    from sc_eval import load_encoder
    from sc_eval.adapters.lit.pairs import pair_features

    feats, captions = pair_features(load_encoder("random:sc-vit-micro"), str(tmp_path / "00000.tar"))
    assert captions == ["a red square", "another red square"] and feats.shape[0] == 2
    assert torch.equal(feats[0], feats[1])  # the same image twice

    bad = tmp_path / "pairs.jsonl"
    bad.write_text('{"image": "a.jpg", "caption": "ok"}\n{"image": "b.jpg"}\n')
    with pytest.raises(DataError, match=r"pairs.jsonl:2"):
        read_jsonl_pairs(bad)
