"""COCO caption metrics: the published coco-caption oracle, hand-worked cases, error paths.

The oracle is the coco-caption demo's fake-caption results file scored on val2014: its
published values (and COCOEvalCap's own, recomputed with pycocoevalcap 1.2 and OpenJDK 17) must
come out to floating-point precision. The val2014 references ship inside pycocoevalcap's SPICE
jar, so nothing is downloaded.
"""
import json
import os
import shutil
from pathlib import Path

import pytest

from sc_eval.errors import DataError, MissingDependencyError
from sc_eval.metrics.caption import score_captions, score_coco_results, spice_status

needs_java = pytest.mark.skipif(shutil.which("java") is None, reason="caption metrics need java")

# COCOEvalCap's values for the fake-caption oracle (published rounded: 0.191/0.195/0.396/0.600).
ORACLE = {"bleu1": 0.5793995754573356, "bleu2": 0.40439129741018104, "bleu3": 0.2785363856619147,
          "bleu4": 0.1908290437674253, "meteor": 0.19525467177780284,
          "rouge_l": 0.39625269357570847, "cider": 0.5997905185184199}
FAKECAP = "captions_val2014_fakecap_results.json"
REPO = Path(__file__).resolve().parents[1]


def _fakecap_file():
    # The published oracle ships with the tests (tests/data/coco-fakecap/README.md).
    path = REPO / "tests" / "data" / "coco-fakecap" / FAKECAP
    assert path.is_file(), f"missing test data {path}"
    return path


@pytest.fixture(scope="module")
def oracle(coco_val2014_annotations):
    # Scored once per module: METEOR's JVM start-up alone takes ~10 s.
    if shutil.which("java") is None:
        pytest.skip("caption metrics need java")
    results = _fakecap_file()
    annotations = coco_val2014_annotations
    out = score_coco_results(results, annotations)
    out["java_children_after"] = _java_children() if Path("/proc").is_dir() else []
    return out


def test_fakecap_oracle_reproduces_coco_caption(oracle):
    assert oracle["n_images"] == 1000
    m = oracle["metrics"]
    for name, value in ORACLE.items():
        assert m[name] == pytest.approx(100 * value, rel=1e-12, abs=0), name
    # The rounded values the coco-caption demo prints.
    assert (round(m["bleu4"], 1), round(m["meteor"], 1), round(m["rouge_l"], 1),
            round(m["cider"], 1)) == (19.1, 19.5, 39.6, 60.0)


def test_meteor_jvm_is_closed_after_scoring(oracle):
    assert oracle["java_children_after"] == []


def test_spice_reported_only_when_its_jars_exist(oracle):
    available, _ = spice_status()
    assert "spice" in oracle["metrics"]
    assert (oracle["metrics"]["spice"] is None) == (not available)


def _java_children():
    pid = os.getpid()
    kids = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids += (task / "children").read_text().split()
        except OSError:
            pass
    names = []
    for k in kids:
        try:
            names.append(Path(f"/proc/{k}/comm").read_text().strip())
        except OSError:
            pass
    return [n for n in names if "java" in n]


@needs_java
def test_hand_worked_corpus_and_first_duplicate_kept(tmp_path):
    # Image 1: the candidate equals its reference; image 2: no word in common. No n-gram is
    # shared between images, so every n-gram has df 1 of N 2. By hand:
    # BLEU-n: matches [5,4,3,2] of [10,8,6,4] candidate n-grams, lengths 10 = 10 -> every
    # BLEU-n = 0.5; ROUGE-L = mean(1, 0) = 0.5; CIDEr-D = 10 * mean(1, 0) = 5.
    annotations = {"images": [{"id": 1}, {"id": 2}],
                   "annotations": [{"image_id": 1, "id": 10, "caption": "Red kite flies over hills."},
                                   {"image_id": 2, "id": 11, "caption": "small dog sleeps near door"}]}
    results = [{"image_id": 2, "caption": "blue car parked beside tree"},
               {"image_id": 1, "caption": "red kite flies over hills"},
               {"image_id": 1, "caption": "small dog sleeps near door"}]  # duplicate: ignored
    ann_path, res_path = tmp_path / "ann.json", tmp_path / "res.json"
    ann_path.write_text(json.dumps(annotations))
    res_path.write_text(json.dumps(results))
    out = score_coco_results(res_path, ann_path, spice=False, meteor=False)
    assert out["n_images"] == 2
    m = out["metrics"]
    for n in range(1, 5):
        assert m[f"bleu{n}"] == pytest.approx(50.0, abs=1e-6)
    assert m["rouge_l"] == pytest.approx(50.0, abs=1e-9)
    assert m["cider"] == pytest.approx(500.0, abs=1e-9)
    assert "spice" not in m and "meteor" not in m


@needs_java
def test_cider_and_rouge_standard_errors_over_the_images():
    # The hand-worked corpus above: image 1 scores CIDEr-D 1000 and ROUGE-L 100, image 2 zero.
    # The standard error of two values a, 0 is stdev / sqrt(2) = (a / sqrt(2)) / sqrt(2) = a / 2.
    gts = {1: ["Red kite flies over hills."], 2: ["small dog sleeps near door"]}
    res = {1: "red kite flies over hills", 2: "blue car parked beside tree"}
    m, se = score_captions(gts, res, spice=False, meteor=False, with_stderr=True)
    assert m["cider"] == pytest.approx(500.0, abs=1e-9)
    assert se == {"cider": pytest.approx(500.0, abs=1e-6), "rouge_l": pytest.approx(50.0, abs=1e-6)}


@needs_java
def test_per_image_scores_let_two_runs_be_compared_image_by_image():
    from sc_eval.evaluation import tasks as tasks_api
    from sc_eval.metrics.caption import per_image_scores

    gts = {1: ["Red kite flies over hills."], 2: ["small dog sleeps near door"]}
    res = {1: "red kite flies over hills", 2: "blue car parked beside tree"}
    assert per_image_scores(gts, res) == {"cider": {1: pytest.approx(1000.0), 2: pytest.approx(0.0)},
                                          "rouge_l": {1: pytest.approx(100.0), 2: pytest.approx(0.0)}}
    records = [{"doc_id": i, "prediction": res[i], "targets": gts[i], "scores": {}} for i in (1, 2)]
    task = tasks_api.discover()["coco_caption"]
    assert task.per_doc(records, "cider") == {"1": pytest.approx(1000.0), "2": pytest.approx(0.0)}
    assert task.per_doc(records, "bleu4") is None  # a corpus score: no per-image share


@needs_java
def test_identical_captions_score_full_marks():
    gts = {"a": ["a man rides a red bike down the street"],
           "b": ["two cats sleep on the old sofa"]}
    res = {"a": "a man rides a red bike down the street", "b": "two cats sleep on the old sofa"}
    m = score_captions(gts, res, spice=False, meteor=False)
    assert m["bleu4"] == pytest.approx(100.0, abs=1e-6)
    assert m["rouge_l"] == pytest.approx(100.0, abs=1e-9)
    # "the" occurs in both images (idf 0); the other n-grams match exactly: cosine 1 -> 10 each.
    assert m["cider"] == pytest.approx(1000.0, abs=1e-6)


def test_missing_java_fails_first(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(MissingDependencyError, match="java"):
        score_captions({1: ["a cat"]}, {1: "a cat"})
    with pytest.raises(MissingDependencyError, match="install"):
        score_coco_results(tmp_path / "does-not-matter.json", tmp_path / "nor-this.json")


@needs_java
def test_malformed_results_and_unknown_ids(tmp_path):
    ann = {"images": [{"id": 1}], "annotations": [{"image_id": 1, "id": 1, "caption": "a cat"}]}
    bad = tmp_path / "bad.json"
    bad.write_text('{"image_id": 1}')
    with pytest.raises(DataError, match="bad.json"):
        score_coco_results(bad, ann)
    bad.write_text('[{"image_id": 1, "caption": 3}]')
    with pytest.raises(DataError, match="item 0"):
        score_coco_results(bad, ann)
    bad.write_text('[{"image_id": 1, "caption": "a cat"}, {"image_id": 7, "caption": "a dog"}]')
    with pytest.raises(DataError, match=r"not in .*\[7\]"):
        score_coco_results(bad, ann)
    bad.write_text("[{")
    with pytest.raises(DataError, match="malformed JSON"):
        score_coco_results(bad, ann)
    with pytest.raises(DataError, match="no reference"):
        score_captions({}, {5: "a dog"})
