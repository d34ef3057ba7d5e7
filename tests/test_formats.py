"""Readers of the official formats: they load what the world wrote, and fail by name."""
from __future__ import annotations

import json
import os

import pytest

from sc_eval.errors import ConfigError, DataError

TINY = dict(pretrain=12, shard_size=10, coco_train=12, coco_val=10, coco_test=4, textvqa_train=6,
            textvqa_val=4, gqa_train=6, gqa_testdev=4, pope_images=8, scienceqa=30,
            class_train=3, class_val=1, class_test=2)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from sc_eval.world.build import write_world

    root = write_world(tmp_path_factory.mktemp("fmt") / "w", seed=1, **TINY)
    return root, json.loads((root / "world.json").read_text())["counts"]


def _all_exist(docs):
    return all(d["image"] is None or (os.path.isabs(d["image"]) and os.path.isfile(d["image"])) for d in docs)


def test_coco_captions_reader(world):
    from sc_eval.data.formats import read_coco_captions

    root, counts = world
    docs = read_coco_captions(root / "coco/annotations/captions_val2014.json", root / "coco/images/val2014")
    assert len(docs) == counts["coco"]["val2014"]["images"]
    assert sum(len(d["captions"]) for d in docs) == counts["coco"]["val2014"]["captions"]
    assert all(d["doc_id"] == str(d["image_id"]) for d in docs) and _all_exist(docs)


def test_karpathy_reader_splits(world):
    from sc_eval.data.formats import read_karpathy

    root, counts = world
    path, images = root / "coco/dataset_coco.json", root / "coco/images"
    k = counts["karpathy"]
    for split in ("train", "val", "test", "restval"):
        docs = read_karpathy(path, images, split)
        assert len(docs) == k[split] and {d["split"] for d in docs} <= {split} and _all_exist(docs)
    both = read_karpathy(path, images, "train", include_restval=True)
    assert len(both) == k["train"] + k["restval"]
    test_ids = {d["doc_id"] for d in read_karpathy(path, images, "test")}
    assert not test_ids & {d["doc_id"] for d in both}
    with pytest.raises(ConfigError, match="did you mean 'test'"):
        read_karpathy(path, images, "tset")


def test_vqav2_reader(world):
    from sc_eval.data.formats import read_vqav2

    root, counts = world
    v = root / "vqav2"
    docs = read_vqav2(v / "v2_OpenEnded_mscoco_val2014_questions.json", v / "v2_mscoco_val2014_annotations.json",
                      root / "coco/images/val2014")
    assert len(docs) == counts["vqav2"]["val2014"] and _all_exist(docs)
    assert all(len(d["answers"]) == 10 and d["answer_ids"] == list(range(1, 11)) for d in docs)
    dev = read_vqav2(v / "v2_OpenEnded_mscoco_test-dev2015_questions.json", None, root / "coco/images/test2015")
    assert len(dev) == counts["vqav2"]["test-dev2015"] and "answers" not in dev[0]
    assert os.path.basename(dev[0]["image"]).startswith("COCO_test2015_") and _all_exist(dev)


def test_textvqa_gqa_readers(world):
    from sc_eval.data.formats import read_gqa, read_textvqa, read_textvqa_ocr

    root, counts = world
    for split in ("train", "val"):
        docs = read_textvqa(root / f"textvqa/TextVQA_0.5.1_{split}.json", root / "textvqa/train_images")
        assert len(docs) == counts["textvqa"][split] and _all_exist(docs)
        assert all(len(d["answers"]) == 10 and isinstance(d["ocr_tokens"], list) for d in docs)
        ocr = read_textvqa_ocr(root / f"textvqa/TextVQA_Rosetta_OCR_v0.2_{split}.json")
        assert {d["image_id"] for d in docs} <= set(ocr)
        # the world renders one word per picture and its OCR finds it (maybe misread) or nothing
        assert sum(bool(t) for t in ocr.values()) > len(ocr) // 2
    docs = read_gqa(root / "gqa/testdev_balanced_questions.json", root / "gqa/images")
    assert len(docs) == counts["gqa"]["testdev"] and _all_exist(docs)
    assert all(d["answer"] and d["doc_id"].isdigit() for d in docs)


def test_gqa_balanced_only_filters(tmp_path):
    from sc_eval.data.formats import read_gqa

    f = tmp_path / "all_questions.json"
    f.write_text(json.dumps({"7": {"imageId": "n1", "question": "q?", "answer": "yes", "isBalanced": False},
                             "8": {"imageId": "n1", "question": "r?", "answer": "no", "isBalanced": True}}))
    assert [d["doc_id"] for d in read_gqa(f, tmp_path)] == ["8"]
    assert [d["doc_id"] for d in read_gqa(f, tmp_path, balanced_only=False)] == ["7", "8"]


def test_pope_reader_dir_and_file(world):
    from sc_eval.data.formats import read_pope

    root, counts = world
    images = root / "coco/images/val2014"
    docs = read_pope(root / "pope", images)
    assert len(docs) == sum(counts["pope"].values()) and _all_exist(docs)
    assert len({d["doc_id"] for d in docs}) == len(docs) and docs[0]["doc_id"] == "random/1"  # ids repeat per file
    assert [d["category"] for d in docs][:: counts["pope"]["random"]] == ["random", "popular", "adversarial"]
    one = read_pope(root / "pope/coco_pope_popular.json", images)
    assert one[0]["doc_id"] == "1" and {d["category"] for d in one} == {"popular"}
    assert {d["label"] for d in one} == {"yes", "no"}


def test_scienceqa_reader(world):
    from sc_eval.data.formats import read_scienceqa

    root, counts = world
    s = root / "scienceqa"
    for split in ("train", "val", "test"):
        img = read_scienceqa(s / "problems.json", s / "pid_splits.json", s / "images", split)
        allq = read_scienceqa(s / "problems.json", s / "pid_splits.json", s / "images", split, with_image_only=False)
        assert len(img) == counts["scienceqa"]["with_image"][split] and len(allq) == counts["scienceqa"][split]
        assert _all_exist(allq) and all(d["image"] for d in img)
        assert all(d["choices"][ord(d["answer_letter"]) - 65] == d["choices"][d["answer"]] for d in allq)
    with pytest.raises(ConfigError, match="minival"):
        read_scienceqa(s / "problems.json", s / "pid_splits.json", s / "images", "minvial")


def test_imagefolder_reader(world):
    from sc_eval.data.formats import read_imagefolder

    root, counts = world
    docs = read_imagefolder(root / "classification", "train")
    classes = json.loads((root / "world.json").read_text())["classification_classes"]
    assert len(docs) == counts["classification"]["train"] and _all_exist(docs)
    assert [d["class_name"] for d in docs] == [c for c in classes for _ in range(3)]
    assert all(classes[d["label"]] == d["class_name"] for d in docs)
    with pytest.raises(DataError, match="nope"):
        read_imagefolder(root / "classification", "nope")


def test_llava_reader(world, tmp_path):
    from sc_eval.data.formats import read_llava_json

    root, counts = world
    for name in ("pretrain", "finetune"):
        docs = read_llava_json(root / f"llava/{name}.json", root)
        assert len(docs) == counts["llava"][name] and _all_exist(docs)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"id": "x9", "conversations": [{"from": "gpt", "value": "hi"}]}]))
    with pytest.raises(DataError, match=r"bad\.json.*x9.*alternate"):
        read_llava_json(bad, tmp_path)


# ---- errors users see ---------------------------------------------------------------------------

def test_malformed_json_names_file_and_line(tmp_path):
    from sc_eval.data.formats import read_coco_captions, read_pope

    f = tmp_path / "captions_val2014.json"
    f.write_text('{\n  "images": [\n    {"id": 1,, "file_name": "a.jpg"}\n  ],\n  "annotations": []\n}\n')
    with pytest.raises(DataError, match=r"captions_val2014\.json.*line 3"):
        read_coco_captions(f, tmp_path)
    p = tmp_path / "coco_pope_random.json"
    p.write_text('{"question_id": 1, "image": "a.jpg", "text": "Is there a cat?", "label": "yes"}\n{oops\n')
    with pytest.raises(DataError, match=r"coco_pope_random\.json:2"):
        read_pope(p, tmp_path)


def test_missing_field_names_file_and_record(tmp_path):
    from sc_eval.data.formats import read_textvqa, read_vqav2

    q = tmp_path / "v2_OpenEnded_mscoco_val2014_questions.json"
    q.write_text(json.dumps({"data_subtype": "val2014", "questions": [
        {"image_id": 1, "question": "ok?", "question_id": 1000},
        {"image_id": 2, "question_id": 2042}]}))
    with pytest.raises(DataError, match=r"val2014_questions\.json.*2042.*question"):
        read_vqav2(q, None, tmp_path)
    a = tmp_path / "v2_mscoco_val2014_annotations.json"
    a.write_text(json.dumps({"annotations": [{"question_id": 1000, "answers": [{"answer": "yes"}],
                                              "multiple_choice_answer": "yes"}]}))
    q.write_text(json.dumps({"data_subtype": "val2014", "questions": [
        {"image_id": 1, "question": "ok?", "question_id": 1000},
        {"image_id": 2, "question": "other?", "question_id": 2042}]}))
    with pytest.raises(DataError, match=r"annotations\.json.*2042"):
        read_vqav2(q, a, tmp_path)
    t = tmp_path / "TextVQA_0.5.1_val.json"
    t.write_text(json.dumps({"data": [{"question_id": 77, "question": "what?"}]}))
    with pytest.raises(DataError, match=r"TextVQA_0\.5\.1_val\.json.*77.*image_id"):
        read_textvqa(t, tmp_path)


def test_load_image_errors_name_the_file(world, tmp_path):
    from PIL import Image

    from sc_eval.data.images import load_image

    root, _ = world
    good = sorted((root / "coco/images/val2014").iterdir())[0]
    assert load_image(good).mode == "RGB"
    grey = tmp_path / "grey.png"
    Image.new("L", (5, 7), 128).save(grey)
    img = load_image(grey)
    assert img.mode == "RGB" and img.size == (5, 7) and img.getpixel((0, 0)) == (128, 128, 128)
    truncated = tmp_path / "COCO_val2014_000000000042.jpg"
    truncated.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"not an image at all")
    for bad in (truncated, garbage):
        with pytest.raises(DataError, match=bad.name):
            load_image(bad)
    with pytest.raises(DataError, match="missing.jpg.*not found"):
        load_image(tmp_path / "missing.jpg")
