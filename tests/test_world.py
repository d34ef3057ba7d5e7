"""The embedded sc-shapes world: deterministic, complete, and in the official schemas."""
from __future__ import annotations

import hashlib
import json
import re
import tarfile
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest

TINY = dict(pretrain=24, shard_size=10, coco_train=12, coco_val=10, coco_test=4, textvqa_train=6,
            textvqa_val=4, gqa_train=6, gqa_testdev=4, pope_images=8, scienceqa=20,
            class_train=3, class_val=1, class_test=2)

LAYOUT = [
    "world.json", "pretrain/shards/00000.tar", "pretrain/pairs.jsonl",
    "coco/annotations/captions_train2014.json", "coco/annotations/captions_val2014.json",
    "coco/dataset_coco.json",
    "vqav2/v2_OpenEnded_mscoco_train2014_questions.json",
    "vqav2/v2_OpenEnded_mscoco_val2014_questions.json",
    "vqav2/v2_OpenEnded_mscoco_test-dev2015_questions.json",
    "vqav2/v2_OpenEnded_mscoco_test2015_questions.json",
    "vqav2/v2_mscoco_train2014_annotations.json", "vqav2/v2_mscoco_val2014_annotations.json",
    "textvqa/TextVQA_0.5.1_train.json", "textvqa/TextVQA_0.5.1_val.json",
    "gqa/train_balanced_questions.json", "gqa/testdev_balanced_questions.json",
    "pope/coco_pope_random.json", "pope/coco_pope_popular.json", "pope/coco_pope_adversarial.json",
    "scienceqa/problems.json", "scienceqa/pid_splits.json",
    "llava/pretrain.json", "llava/finetune.json", "text/corpus.txt",
]


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _load(root, rel):
    return json.loads((root / rel).read_text())


@pytest.fixture
def world(tiny_world):  # tests/conftest.py: written once per session, shared read-only
    return tiny_world


# ---- determinism and layout -------------------------------------------------------------------

def test_same_seed_gives_byte_identical_files(world, tmp_path):
    from sc_eval.world.build import write_world

    again = _files(write_world(tmp_path / "again", seed=0, **TINY))
    first = _files(world)
    assert sorted(again) == sorted(first)
    different = [k for k in first if first[k] != again[k]]
    assert different == []


def test_harder_pictures_are_deterministic_and_leave_the_rest_alone(world, tmp_path):
    """jitter / scale_jitter / noise change the pixels only: same seed, same bytes; every
    annotation and text file equal to the default world's; the default world has no trace of
    them in its manifest; the noise has the requested spread."""
    import numpy as np
    from PIL import Image

    from sc_eval.world.build import write_world

    hard = dict(TINY, jitter=6, scale_jitter=10, noise=12)
    a, b = write_world(tmp_path / "a", seed=0, **hard), write_world(tmp_path / "b", seed=0, **hard)
    fa, fb, plain = _files(a), _files(b), _files(world)
    assert fa == fb
    assert sorted(fa) == sorted(plain)
    images = [k for k in fa if k.endswith((".jpg", ".png"))]
    assert images and all(fa[k] != plain[k] for k in images)
    texts = [k for k in fa if k.endswith((".json", ".jsonl", ".txt")) and k != "world.json"]
    assert texts and all(fa[k] == plain[k] for k in texts)
    manifest = json.loads(fa["world.json"])
    assert manifest["render"] == {"jitter_pct": 6, "scale_pct": 10, "noise": 12}
    assert "render" not in json.loads(plain["world.json"]) and "noise" not in json.loads(plain["world.json"])["sizes"]
    # noise alone on the PNG classification images: (noisy - clean) has the requested spread where
    # nothing clips (mid-grey pixels are rare; use every channel value in 30..225)
    n = write_world(tmp_path / "n", seed=0, **dict(TINY, noise=12))
    diffs = []
    for k in [k for k in images if k.endswith(".png") and k.startswith("classification/")][:20]:
        clean = np.asarray(Image.open(world / k).convert("RGB"), dtype=np.float64)
        noisy = np.asarray(Image.open(n / k).convert("RGB"), dtype=np.float64)
        ok = (clean > 30) & (clean < 225)
        diffs.append((noisy - clean)[ok])
    d = np.concatenate(diffs)
    assert d.size > 500 and abs(d.mean()) < 1.5 and 10.5 < d.std() < 13.5


@pytest.mark.parametrize("flag,value", [("jitter", 9), ("scale_jitter", 16), ("noise", 65), ("noise", -1)])
def test_harder_pictures_out_of_range_is_a_clear_error(tmp_path, flag, value):
    from sc_eval.errors import ConfigError
    from sc_eval.world.build import write_world

    with pytest.raises(ConfigError, match=flag):
        write_world(tmp_path / "x", seed=0, **dict(TINY, **{flag: value}))


def test_same_seed_is_identical_in_another_process(world, tmp_path):
    """Nothing may depend on Python's per-process hash seed (set order) or on global RNG state."""
    import os
    import subprocess
    import sys

    code = ("import sys, random; random.seed(123); from sc_eval.world.build import write_world; "
            f"write_world(sys.argv[1], seed=0, **{TINY!r})")
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "p")], check=True, env=env)
    assert _files(tmp_path / "p") == _files(world)


def test_different_seed_gives_different_world(world, tmp_path):
    from sc_eval.world.build import write_world

    other = write_world(tmp_path / "other", seed=1, **TINY)
    for rel in ("coco/annotations/captions_train2014.json", "pretrain/shards/00000.tar",
                "vqav2/v2_mscoco_val2014_annotations.json"):
        assert (other / rel).read_bytes() != (world / rel).read_bytes(), rel


def test_every_documented_file_exists(world):
    missing = [rel for rel in LAYOUT if not (world / rel).is_file()]
    assert missing == []
    for split in ("train", "val", "test"):
        assert (world / "classification" / split / "red").is_dir()


def test_manifest_describes_the_world(world):
    m = _load(world, "world.json")
    assert m["seed"] == 0 and m["image_size"] == 64 and m["version"] >= 1
    assert len(m["vocabulary"]["shapes"]) in range(4, 7)
    assert len(m["vocabulary"]["colours"]) in range(6, 9)
    assert all(3 <= len(w) <= 5 for w in m["vocabulary"]["words"])
    assert m["classification_classes"] == sorted(m["vocabulary"]["colours"])
    assert m["counts"]["pretrain"] == {"pairs": 24, "shards": 3}
    assert m["counts"]["coco"]["train2014"] == {"images": 12, "captions": 60}


def test_image_size_is_configurable(tmp_path):
    from sc_eval.data.images import load_image
    from sc_eval.world.build import write_world

    root = write_world(tmp_path / "w40", seed=3, **{**TINY, "image_size": 40})
    for rel in ("coco/images/val2014", "textvqa/train_images", "gqa/images", "classification/test/red"):
        for p in sorted((root / rel).iterdir())[:3]:
            assert load_image(p).size == (40, 40), p
    ann = _load(root, "coco/annotations/captions_val2014.json")
    assert {(i["width"], i["height"]) for i in ann["images"]} == {(40, 40)}


# ---- pixels agree with the text ---------------------------------------------------------------

def _near(px, rgb, tol=40):
    return all(abs(a - b) <= tol for a, b in zip(px, rgb))


def test_render_puts_shapes_and_words_where_the_scene_says():
    from sc_eval.world.render import render
    from sc_eval.world.scene import COLOURS, Obj, Scene

    img = render(Scene((Obj("circle", "red", "big", "left"), Obj("square", "blue", "small", "right")),
                       word="cat"), 64)
    assert img.size == (64, 64) and img.mode == "RGB"
    assert _near(img.getpixel((11, 32)), COLOURS["red"])      # left anchor 18% of 64
    assert _near(img.getpixel((52, 32)), COLOURS["blue"])     # right anchor 82%
    assert _near(img.getpixel((32, 12)), (255, 255, 255))     # top is empty
    band = [img.getpixel((x, y)) for x in range(64) for y in range(46, 62)]
    assert sum(max(p) < 90 for p in band) >= 20               # dark text pixels at the bottom


def test_classification_label_is_the_dominant_colour(world):
    from sc_eval.data.images import load_image
    from sc_eval.world.scene import COLOURS

    m = _load(world, "world.json")
    for split, n in (("train", 3), ("val", 1), ("test", 2)):
        for cls in m["classification_classes"]:
            files = sorted((world / "classification" / split / cls).glob("*.png"))
            assert len(files) == n
            for f in files:
                px = np.asarray(load_image(f), dtype=np.int32).reshape(-1, 3)
                votes = {name: int((np.abs(px - rgb).max(axis=1) <= 30).sum()) for name, rgb in COLOURS.items()}
                assert max(votes, key=votes.get) == cls, (f, votes)


# ---- pretraining shards -----------------------------------------------------------------------

def test_shards_follow_img2dataset_layout(world):
    pairs = [json.loads(x) for x in (world / "pretrain/pairs.jsonl").read_text().splitlines()]
    seen = []
    for shard in sorted((world / "pretrain/shards").glob("*.tar")):
        groups = defaultdict(dict)
        with tarfile.open(shard) as tar:
            for m in tar.getmembers():
                key, ext = m.name.split(".", 1)
                groups[key][ext] = tar.extractfile(m).read()
        for key, g in groups.items():
            assert set(g) == {"jpg", "txt", "json"} and len(key) == 9 and key.isdigit()
            meta = json.loads(g["json"])
            assert meta["key"] == key and meta["caption"] == g["txt"].decode()
            assert (meta["width"], meta["height"]) == (64, 64)
            assert meta["sha256"] == hashlib.sha256(g["jpg"]).hexdigest()
            assert g["jpg"][:2] == b"\xff\xd8"                            # JPEG
            assert (world / "pretrain" / f"images/{key}.jpg").read_bytes() == g["jpg"]
            seen.append((key, g["txt"].decode()))
    assert seen == [(p["key"], p["caption"]) for p in pairs]
    assert len(seen) == 24


def test_shards_read_with_webdataset(world):
    import webdataset as wds

    urls = [str(p) for p in sorted((world / "pretrain/shards").glob("*.tar"))]
    samples = list(wds.WebDataset(urls, shardshuffle=False).decode("pil"))
    assert len(samples) == 24
    s = samples[0]
    assert s["jpg"].size == (64, 64) and isinstance(s["txt"], str) and s["json"]["key"] == s["__key__"]


# ---- benchmark schemas ------------------------------------------------------------------------

def test_coco_and_karpathy_schemas(world):
    for split in ("train2014", "val2014"):
        d = _load(world, f"coco/annotations/captions_{split}.json")
        assert set(d) >= {"info", "licenses", "images", "annotations"}
        for im in d["images"]:
            assert isinstance(im["id"], int) and im["file_name"] == f"COCO_{split}_{im['id']:012d}.jpg"
            assert (world / "coco/images" / split / im["file_name"]).is_file()
        per_image = Counter(a["image_id"] for a in d["annotations"])
        assert set(per_image.values()) == {5} and set(per_image) == {i["id"] for i in d["images"]}
        assert len({a["id"] for a in d["annotations"]}) == len(d["annotations"])
    k = _load(world, "coco/dataset_coco.json")
    assert k["dataset"] == "coco"
    splits = Counter(im["split"] for im in k["images"])
    assert splits["train"] == 12 and splits["val"] + splits["test"] + splits["restval"] == 10
    for im in k["images"]:
        assert [s["sentid"] for s in im["sentences"]] == im["sentids"]
        for s in im["sentences"]:
            assert s["imgid"] == im["imgid"] and s["tokens"] and all(t.islower() or t.isdigit() for t in s["tokens"])
        assert (world / "coco/images" / im["filepath"] / im["filename"]).is_file()
    s = k["images"][0]["sentences"][0]
    assert " ".join(s["tokens"]) in s["raw"].lower().replace('"', "").replace(",", "").replace(":", "")


def test_vqav2_schema_and_human_answers(world):
    for sub in ("train2014", "val2014", "test2015", "test-dev2015"):
        q = _load(world, f"vqav2/v2_OpenEnded_mscoco_{sub}_questions.json")
        assert q["task_type"] == "Open-Ended" and q["data_type"] == "mscoco" and q["data_subtype"] == sub
        assert set(q) >= {"info", "license", "questions"}
        for x in q["questions"]:
            assert isinstance(x["question_id"], int) and isinstance(x["image_id"], int)
            folder = "test2015" if sub.startswith("test") else sub
            assert (world / f"coco/images/{folder}/COCO_{folder}_{x['image_id']:012d}.jpg").is_file()
    test = {x["question_id"] for x in _load(world, "vqav2/v2_OpenEnded_mscoco_test2015_questions.json")["questions"]}
    dev = {x["question_id"] for x in _load(world, "vqav2/v2_OpenEnded_mscoco_test-dev2015_questions.json")["questions"]}
    assert dev and dev < test
    varied = 0
    for sub in ("train2014", "val2014"):
        anns = _load(world, f"vqav2/v2_mscoco_{sub}_annotations.json")["annotations"]
        qids = [x["question_id"] for x in _load(world, f"vqav2/v2_OpenEnded_mscoco_{sub}_questions.json")["questions"]]
        assert [a["question_id"] for a in anns] == qids
        for a in anns:
            assert a["answer_type"] in ("yes/no", "number", "other")
            assert [x["answer_id"] for x in a["answers"]] == list(range(1, 11))
            assert all(x["answer_confidence"] in ("yes", "maybe", "no") for x in a["answers"])
            words = [x["answer"] for x in a["answers"]]
            assert Counter(words).most_common(1)[0] == (a["multiple_choice_answer"], words.count(a["multiple_choice_answer"]))
            varied += len(set(words)) > 1
    assert varied > 10


def test_textvqa_and_gqa_schemas(world):
    words = set(_load(world, "world.json")["vocabulary"]["words"])
    for split in ("train", "val"):
        d = _load(world, f"textvqa/TextVQA_0.5.1_{split}.json")
        assert d["dataset_name"] == "textvqa" and d["dataset_version"] == "0.5.1"
        ocr = _load(world, f"textvqa/TextVQA_Rosetta_OCR_v0.2_{split}.json")  # upstream keeps OCR apart
        tokens = {e["image_id"]: e["ocr_tokens"] for e in ocr["data"]}
        for r in d["data"]:
            assert set(r) >= {"question_id", "question", "image_id", "image_classes", "flickr_original_url",
                              "flickr_300k_url", "image_width", "image_height", "answers", "set_name"}
            assert "ocr_tokens" not in r and isinstance(tokens[r["image_id"]], list)
            assert len(r["answers"]) == 10 and r["set_name"] == split
            assert Counter(r["answers"]).most_common(1)[0][0] in words
            assert (world / f"textvqa/train_images/{r['image_id']}.jpg").is_file()
    for split in ("train", "testdev"):
        d = _load(world, f"gqa/{split}_balanced_questions.json")
        assert isinstance(d, dict) and d
        for qid, r in d.items():
            assert r["isBalanced"] is True and r["answer"] == r["answer"].lower()
            assert set(r) >= {"imageId", "question", "answer", "fullAnswer", "types", "semantic", "annotations"}
            assert (world / f"gqa/images/{r['imageId']}.jpg").is_file()


def test_ocr_tokens_are_right_misread_or_missing_like_a_real_ocr_engine():
    """Reading the image must beat copying the OCR hint: a quarter of the hints are misread."""
    from sc_eval.world.scene import WORDS
    from sc_eval.world.text import MISREADS, ocr_tokens

    rng = np.random.default_rng(0)
    kinds = Counter()
    for k in range(2000):
        word = WORDS[k % len(WORDS)]
        toks = ocr_tokens(word, rng)
        if not toks:
            kinds["missing"] += 1
        elif toks[0].lower() == word:
            kinds["right"] += 1
        else:
            (tok,) = toks
            # exactly one character replaced by its listed confusion
            assert tok in {word[:i] + MISREADS[c] + word[i + 1:] for i, c in enumerate(word) if c in MISREADS}
            kinds["misread"] += 1
    assert abs(kinds["right"] / 2000 - 0.60) < 0.04
    assert abs(kinds["misread"] / 2000 - 0.25) < 0.04
    assert abs(kinds["missing"] / 2000 - 0.15) < 0.03


def test_vqav2_asks_pope_style_presence_questions_with_balanced_answers(world):
    qs = _load(world, "vqav2/v2_OpenEnded_mscoco_train2014_questions.json")["questions"]
    ann = {a["question_id"]: a for a in _load(world, "vqav2/v2_mscoco_train2014_annotations.json")["annotations"]}
    pope_like = [q for q in qs if q["question"].endswith(" in the image?") and q["question"].startswith("Is there a")]
    assert pope_like, "stage-2 data must teach the POPE question form"
    answers = Counter(ann[q["question_id"]]["multiple_choice_answer"] for q in pope_like)
    assert set(answers) <= {"yes", "no"}


def _pope(world, split):
    return [json.loads(x) for x in (world / f"pope/coco_pope_{split}.json").read_text().splitlines()]


def _shapes_in_captions(world) -> dict[str, set]:
    """Shapes each val2014 image holds, read from its COCO captions (independent of POPE)."""
    from sc_eval.world.scene import SHAPES

    d = _load(world, "coco/annotations/captions_val2014.json")
    name = {i["id"]: i["file_name"] for i in d["images"]}
    out = defaultdict(set)
    for a in d["annotations"]:
        words = set(a["caption"].lower().replace(",", " ").replace(".", " ").split())
        out[name[a["image_id"]]] |= {s for s in SHAPES if s in words or s + "s" in words or s + "es" in words}
    return out


def test_pope_is_balanced_and_labels_match_the_images(world):
    from sc_eval.world.scene import SHAPES

    truth = _shapes_in_captions(world)
    negatives = {}
    for split in ("random", "popular", "adversarial"):
        recs = _pope(world, split)
        assert [r["question_id"] for r in recs] == list(range(1, len(recs) + 1))
        assert Counter(r["label"] for r in recs) == {"yes": len(recs) // 2, "no": len(recs) // 2}
        assert len({r["image"] for r in recs}) == 8
        negs = defaultdict(set)
        for r in recs:
            assert r["text"].startswith("Is there a ") and r["text"].endswith(" in the image?")
            obj = r["text"][len("Is there a "):-len(" in the image?")]
            assert obj in SHAPES and r["image"] in truth
            assert (obj in truth[r["image"]]) == (r["label"] == "yes"), r
            if r["label"] == "no":
                negs[r["image"]].add(obj)
        negatives[split] = negs
    images = sorted(negatives["popular"])
    freq = Counter(s for im in images for s in truth[im])
    for im in images:
        absent = [s for s in SHAPES if s not in truth[im]]
        k = len(negatives["popular"][im])
        popular = sorted(absent, key=lambda s: (-freq[s], SHAPES.index(s)))[:k]
        assert negatives["popular"][im] == set(popular)
        co = {s: sum(1 for other in images if s in truth[other] for h in truth[im] if h in truth[other])
              for s in absent}
        adversarial = sorted(absent, key=lambda s: (-co[s], SHAPES.index(s)))[:k]
        assert negatives["adversarial"][im] == set(adversarial)


def test_scienceqa_schema(world):
    probs = _load(world, "scienceqa/problems.json")
    splits = _load(world, "scienceqa/pid_splits.json")
    assert set(splits) >= {"train", "val", "test", "minival"}
    assert set(splits["minival"]) <= set(splits["val"])
    assert sorted(splits["train"] + splits["val"] + splits["test"], key=int) == sorted(probs, key=int)
    for pid, p in probs.items():
        assert set(p) >= {"question", "choices", "answer", "hint", "image", "task", "grade", "subject",
                          "topic", "category", "skill", "lecture", "solution", "split"}
        assert 0 <= p["answer"] < len(p["choices"]) and len(set(p["choices"])) == len(p["choices"])
        assert pid in splits[p["split"]]
        if p["image"]:
            assert (world / f"scienceqa/images/{p['split']}/{pid}/image.png").is_file()
    assert any(p["image"] is None for p in probs.values())


def test_llava_jsons_and_corpus(world):
    for rel in ("llava/pretrain.json", "llava/finetune.json"):
        for r in _load(world, rel):
            conv = r["conversations"]
            assert [t["from"] for t in conv] == ["human", "gpt"] * (len(conv) // 2)
            assert conv[0]["value"].startswith("<image>\n")
            assert all("<image>" not in t["value"] for t in conv[1:])
            assert (world / r["image"]).is_file()
    assert len(_load(world, "llava/pretrain.json")) == 24
    corpus = set((world / "text/corpus.txt").read_text().splitlines())
    train = {a["caption"] for a in _load(world, "coco/annotations/captions_train2014.json")["annotations"]}
    assert train <= corpus
    qs = _load(world, "vqav2/v2_OpenEnded_mscoco_train2014_questions.json")["questions"]
    assert {q["question"] for q in qs} <= corpus
    pretrain = {json.loads(x)["caption"] for x in (world / "pretrain/pairs.jsonl").read_text().splitlines()}
    held_out = {a["caption"] for a in _load(world, "coco/annotations/captions_val2014.json")["annotations"]}
    held_out -= train | pretrain
    assert held_out and not held_out & corpus          # no test caption leaks into LM training text


def test_stage2_asks_each_question_kind_first_as_the_benchmarks_do(world):
    # Every benchmark asks its question in the turn that holds the image; a question kind that
    # stage 2 only ever asked in later turns (POPE's presence question, once) is one the model
    # never learns to answer there.
    first, later = Counter(), Counter()
    for r in _load(world, "llava/finetune.json"):
        if r["id"].startswith("battery-"):  # the battery's own records (tests/test_world_battery.py)
            continue
        conv = r["conversations"]
        for i in range(0, len(conv), 2):
            q = conv[i]["value"].removeprefix("<image>\n")
            kind = ("presence " + conv[i + 1]["value"] if re.fullmatch(r"Is there a \w+ in the image\?\n.*", q, re.S)
                    else q.split()[0].lower())
            (first if i == 0 else later)[kind] += 1
    assert first["presence yes"] and first["presence no"]
    assert {k for k, n in later.items() if n >= 5} <= set(first)


# ---- CLI and cache ------------------------------------------------------------------------------

def test_cli_world_writes_and_summarises(tmp_path, capsys):
    from sc_eval.cli import main

    argv = ["world", "--out", str(tmp_path / "w"), "--seed", "5"]
    for k, v in TINY.items():
        argv += ["--" + k.replace("_", "-"), str(v)]
    assert main(argv) == 0
    assert "pretrain" in capsys.readouterr().out
    assert _load(tmp_path / "w", "world.json")["seed"] == 5
    assert main(["world", "--out", str(tmp_path / "bad"), "--pope-images", "50", "--coco-val", "5"]) == 2


def test_ensure_world_writes_once(tmp_path, monkeypatch):
    from sc_eval.world import build
    from sc_eval.world.build import ensure_world

    calls = []
    real = build.write_world

    def tiny(out, seed=0, **_):
        calls.append(seed)
        return real(out, seed=seed, **TINY)

    monkeypatch.setattr(build, "write_world", tiny)
    first = ensure_world(root=tmp_path, seed=2)
    assert first == tmp_path / f"world-2-v{build.VERSION}" and (first / "world.json").is_file()
    assert ensure_world(root=tmp_path, seed=2) == first
    assert calls == [2]
    assert [p.name for p in tmp_path.iterdir()] == [first.name]     # no temp dirs left behind
    monkeypatch.setenv("SC_EVAL_HOME", str(tmp_path / "home"))
    assert ensure_world(seed=2).parent == tmp_path / "home"
