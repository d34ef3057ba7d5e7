"""The embedded world's counterparts of the LLaVA battery: VizWiz, MME, MMBench, SEED-Bench, MMMU
(plus the POPE and ScienceQA files written before them), and the Table 11 layout of results.

A tiny world is written once; each task's own loader reads it, perfect answers score the
maximum through the scoring path `sc-eval score` uses, and constant answers score what the
world's construction fixes by hand (a quarter of VizWiz is unanswerable, MME pairs one Yes with
one No, option letters are dealt in turn). Then `--tasks all` runs the whole battery end to end.
"""
from __future__ import annotations

import base64
import csv
import io
import json
from collections import Counter
from pathlib import Path

import pytest

from sc_eval.evaluation import tasks as tasks_api
from sc_eval.evaluation.predictions import score_predictions
from sc_eval.evaluation.runner import evaluate

SIZES = dict(pretrain=12, shard_size=12, coco_train=6, coco_val=8, coco_test=2, textvqa_train=3,
             textvqa_val=3, gqa_train=3, gqa_testdev=3, pope_images=8, scienceqa=20, class_train=1,
             class_val=1, class_test=1, vizwiz_val=8, vizwiz_test=4, mme_images=2, mmbench_dev=8, mmbench_test=4,
             seedbench=8, mmmu_val=10, battery_train=20)
BATTERY = ["vizwiz_vqa_val", "vizwiz_vqa_test", "pope", "mme", "scienceqa_img", "mmbench_en_dev",
           "mmbench_en_dev_circular", "mmbench_en_test", "seedbench", "mmmu_val"]
NEW_PARTS = ["vizwiz", "mme", "mmbench", "seedbench", "mmmu", "battery_train"]
MC = "\nAnswer with the option's letter from the given choices directly."


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from sc_eval.world.build import write_world

    return write_world(tmp_path_factory.mktemp("battery") / "w", seed=0, **SIZES)


def task(name):
    return tasks_api.resolve(name)[0]


def docs_of(name, root):
    return task(name).load_docs(root)


def _files(root: Path, parts=None) -> dict[str, bytes]:
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_file() and (parts is None or rel.split("/")[0] in parts):
            out[rel] = p.read_bytes()
    return out


def oracle(t, doc) -> str:
    """The right answer as a model would say it: the most common human answer for VQA tasks."""
    target = t.targets(doc)
    if isinstance(target, list):
        return Counter(target).most_common(1)[0][0] if target else ""
    return str(target)


def scored(name, root, answer) -> dict:
    t = task(name)
    docs = t.load_docs(root)
    return score_predictions(t, docs, {d["doc_id"]: answer(t, d) for d in docs})["metrics"]


# ---- the task loaders read the world -------------------------------------------------------------

def test_every_loader_reads_its_layout(world):
    viz = docs_of("vizwiz_vqa_val", world)
    assert len(viz) == 8 and all(len(d["answers"]) == 10 and Path(d["image"]).is_file() for d in viz)
    assert sum(d["answerable"] == 0 for d in viz) == 2          # round(8 / 4)
    assert all(d["answers"] == [] for d in docs_of("vizwiz_vqa_test", world))
    assert len(docs_of("vizwiz_vqa_test", world)) == 4

    mme = docs_of("mme", world)
    cats = Counter(d["category"] for d in mme)
    assert cats == {c: 4 for c in ("existence", "count", "position", "color", "OCR",
                                   "numerical_calculation", "commonsense_reasoning")}
    pairs = {}
    for d in mme:
        pairs.setdefault((d["category"], d["image_name"]), []).append(d["answer"])
        assert d["question"].endswith(" Please answer yes or no.") and Path(d["image"]).is_file()
    assert all(sorted(a) == ["No", "Yes"] for a in pairs.values())

    mmb = docs_of("mmbench_en_dev", world)
    originals = [d for d in mmb if d["index"] < 1_000_000]
    assert len(originals) == 8 and {len(d["options"]) for d in originals} == {2, 3, 4}
    # As in the official TSVs, each question's n - 1 rotated copies follow as rows of their own:
    # kinds of 4, 4, 3 and 2 options, twice -> 2 * (4 + 4 + 3 + 2) = 26 rows.
    assert len(mmb) == 26 == sum(len(d["options"]) for d in originals)
    first = {d["index"]: d for d in originals}
    for d in mmb:
        o, k = first[d["index"] % 1_000_000], d["index"] // 1_000_000
        assert d["options"] == o["options"][k:] + o["options"][:k]             # shifted left by k
        assert d["options"]["ABCD".index(d["answer"])] == o["options"]["ABCD".index(o["answer"])]
        assert (d["question"], d["hint"], d["category"]) == (o["question"], o["hint"], o["category"])
        assert Path(d["image"]).read_bytes() == Path(o["image"]).read_bytes()
    assert [d["answer"] for d in docs_of("mmbench_en_test", world)] == [None] * 13   # 4 + 4 + 3 + 2 rows
    assert {d["category"] for d in mmb} == {"attribute_recognition", "object_localization", "ocr",
                                            "spatial_relationship"}
    # The circular task rotates the originals itself and leaves the TSV's copies out: 26 passes again.
    assert len(docs_of("mmbench_en_dev_circular", world)) == 26

    seed = docs_of("seedbench", world)                           # the two video questions are skipped
    assert len(seed) == 8 and all(len(d["choices"]) == 4 and Path(d["image"]).is_file() for d in seed)
    assert {d["question_type"] for d in seed} >= {"Instance Attributes", "Instances Counting"}

    mmmu = docs_of("mmmu_val", world)
    assert len(mmmu) == 10 and Counter(d["question_type"] for d in mmmu) == {"multiple-choice": 8, "open": 2}
    multi = [d for d in mmmu if len(d["images"]) > 1]
    assert len(multi) == 2 and all(len(d["images"]) == 2 and "<image 2>" in d["question"] for d in multi)
    assert all(Path(p).is_file() for d in mmmu for p in d["images"])


def test_questions_are_about_the_pixels(world):
    """An MMBench colour question's right option is the colour drawn where it points."""
    from PIL import Image

    from sc_eval.world.scene import ANCHORS, COLOURS
    from sc_eval.world.text import WHERE

    checked = 0
    with open(world / "mmbench/mmbench_dev_20230712.tsv", newline="") as f:
        csv.field_size_limit(1 << 30)
        for row in csv.DictReader(f, delimiter="\t"):
            if not row["question"].startswith("What color is the shape"):
                continue
            pos = next(p for p, w in WHERE.items() if row["question"].endswith(w + "?"))
            img = Image.open(io.BytesIO(base64.b64decode(row["image"]))).convert("RGB")
            x, y = ANCHORS[pos]
            pixel = img.getpixel((int(x * img.width), int(y * img.height)))
            want = COLOURS[row[row["answer"]]]
            assert all(abs(a - b) < 40 for a, b in zip(pixel, want)), (row["index"], pixel, want)
            checked += 1
    assert checked == 8  # two colour questions, each with its three rotated copies


# ---- scores: perfect and constant answers ---------------------------------------------------------

@pytest.mark.parametrize("name,metric,best", [
    ("vizwiz_vqa_val", "vqa_acc", 100.0), ("pope", "f1", 100.0), ("scienceqa_img", "accuracy", 100.0),
    ("mmbench_en_dev", "accuracy", 100.0), ("mmbench_en_dev_circular", "circular_accuracy", 100.0),
    ("seedbench", "accuracy", 100.0), ("mmmu_val", "accuracy", 100.0),
    ("mme", "perception", 1000.0), ("mme", "cognition", 400.0)])   # MME: 200 per category
def test_right_answers_score_the_maximum(world, name, metric, best):
    assert scored(name, world, oracle)[metric] == pytest.approx(best)


def test_constant_answers_score_what_the_construction_fixes(world):
    m = scored("vizwiz_vqa_val", world, lambda t, d: "Unanswerable")
    assert m["vqa_acc"] == pytest.approx(25.0)                   # 2 of 8, each with >= 7 "unanswerable"
    m = scored("mme", world, lambda t, d: "Yes")                  # acc 50 + acc+ 0 per category
    assert (m["perception"], m["cognition"], m["OCR"]) == pytest.approx((250.0, 100.0, 50.0))
    m = scored("pope", world, lambda t, d: "Yes")                 # half the questions are "yes"
    assert (m["accuracy"], m["precision"], m["recall"], m["yes_ratio"]) == pytest.approx((50, 50, 100, 100))
    assert m["f1"] == pytest.approx(200 / 3)
    assert scored("seedbench", world, lambda t, d: "A")["accuracy"] == pytest.approx(25.0)
    # MMBench: 4 kinds x 2 questions, letters dealt per kind: A then B -> 4 of the 8 originals are
    # A. Copy k of a question whose answer is letter j with n options has letter (j - k) mod n: the
    # A-questions' copies are never A; each B-question has exactly one A copy (k = 1): 4 more.
    # Rows: 8 of 26 are A. No question is A in every row, so none counts under CircularEval.
    m = scored("mmbench_en_dev", world, lambda t, d: "A")
    assert m["accuracy"] == pytest.approx(100 * 8 / 26) and m["circular_accuracy"] == 0.0
    assert scored("mmbench_en_dev_circular", world, lambda t, d: "A")["circular_accuracy"] == 0.0
    # MMMU: 8 multiple-choice questions dealt A-D twice (2 are A); "A" never matches an open count.
    assert scored("mmmu_val", world, lambda t, d: "A")["accuracy"] == pytest.approx(20.0)


def test_sc_eval_score_reads_official_answer_formats(world, tmp_path, capsys):
    from sc_eval.cli import main

    viz = json.loads((world / "vizwiz/val.json").read_text())
    sub = [{"image": r["image"], "answer": Counter(a["answer"] for a in r["answers"]).most_common(1)[0][0]}
           for r in viz]
    (tmp_path / "viz.json").write_text(json.dumps(sub))
    answers = []
    with open(world / "mmbench/mmbench_dev_20230712.tsv", newline="") as f:
        csv.field_size_limit(1 << 30)
        answers = [{"question_id": int(r["index"]), "text": r["answer"]} for r in csv.DictReader(f, delimiter="\t")]
    (tmp_path / "mmb.jsonl").write_text("".join(json.dumps(a) + "\n" for a in answers))
    for name, preds, ann, metric, n in (
            ("vizwiz_vqa_val", "viz.json", world / "vizwiz/val.json", "vqa_acc", 8),
            ("mmbench_en_dev", "mmb.jsonl", world / "mmbench/mmbench_dev_20230712.tsv", "circular_accuracy", 26)):
        capsys.readouterr()
        assert main(["score", name, "--predictions", str(tmp_path / preds), "--annotations", str(ann)]) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["metrics"][metric] == pytest.approx(100.0) and out["n_docs"] == n


# ---- determinism and training data ----------------------------------------------------------------

def test_same_seed_same_bytes_and_existing_parts_untouched(world, tmp_path, monkeypatch):
    from sc_eval.world import battery
    from sc_eval.world.build import write_world

    again = write_world(tmp_path / "again", seed=0, **SIZES)
    assert _files(again) == _files(world)
    # The same world without the battery: every file the battery does not own is unchanged,
    # and the corpus and the stage-2 set only gain lines/records at their end.
    monkeypatch.setattr(battery, "write_battery", lambda ctx: battery.Battery())
    bare = write_world(tmp_path / "bare", seed=0, **SIZES)
    mine = set(NEW_PARTS) | {"world.json", "text", "llava"}
    old = {k: v for k, v in _files(bare).items() if k.split("/")[0] not in mine}
    assert old and old == {k: v for k, v in _files(world).items() if k.split("/")[0] not in mine}
    assert (world / "llava/pretrain.json").read_bytes() == (bare / "llava/pretrain.json").read_bytes()
    assert (world / "text/corpus.txt").read_text().startswith((bare / "text/corpus.txt").read_text())
    full = json.loads((world / "llava/finetune.json").read_text())
    base = json.loads((bare / "llava/finetune.json").read_text())
    assert full[: len(base)] == base and len(full) == len(base) + 20


def test_stage2_conversations_use_training_images_only(world):
    convs = [c for c in json.loads((world / "llava/finetune.json").read_text()) if c["id"].startswith("battery-")]
    assert len(convs) == 20
    corpus = set((world / "text/corpus.txt").read_text().splitlines())
    kinds = Counter()
    for c in convs:
        assert c["image"].startswith("battery_train/images/") and (world / c["image"]).is_file()
        for human, gpt in zip(c["conversations"][::2], c["conversations"][1::2]):
            q, a = human["value"].removeprefix("<image>\n"), gpt["value"]
            if q.endswith(MC):
                options = [line[3:] for line in q.split("\n") if line[:3] in ("A. ", "B. ", "C. ", "D. ")]
                assert 2 <= len(options) <= 4 and a in "ABCD"[: len(options)]
                kinds["mc"] += 1
            elif "respond with 'Unanswerable'" in q:
                assert a == "Unanswerable"
                kinds["unanswerable"] += 1
            else:
                assert q.endswith("\nAnswer the question using a single word or phrase.") and a in ("Yes", "No")
                assert q.split("\n")[0] in corpus
                kinds["yesno"] += 1
    assert kinds["mc"] and kinds["yesno"]
    eval_images = {p.name for part in ("vizwiz", "mme", "seedbench") for p in (world / part).rglob("*.*")}
    assert not eval_images & {Path(c["image"]).name for c in convs}


# ---- --tasks all and the Table 11 layout ---------------------------------------------------------

class Oracle:
    kind = "generate"

    def fingerprint(self):
        return "oracle"

    def predict(self, docs, t):
        return [oracle(t, d) for d in docs]


def test_tasks_all_runs_the_battery_and_lays_out_table11(world, tmp_path):
    from sc_eval.adapters.llava.pipeline import results_markdown
    from sc_eval.report.table11 import HEADERS

    tasks = tasks_api.resolve("all", adapter_kind="generate")
    assert set(BATTERY) <= {t.name for t in tasks} and tasks_api.names_a_group("all")
    res = evaluate(tasks, Oracle(), tmp_path / "run", world, progress=False, skip_missing_data=True,
                   markdown=results_markdown)  # results.md as `sc-eval llava` writes it
    assert [n for n, e in res["results"].items() if e.get("skipped")] == []
    assert set(BATTERY) <= set(res["results"])
    for name in ("vizwiz_vqa_test", "mmbench_en_test"):        # test splits: submission files only
        assert (tmp_path / "run" / res["results"][name]["submission"]).is_file()
    md = (tmp_path / "run" / "results.md").read_text()
    # The paper's nine columns in its order, then SEED-Bench marked as an extra; the layout under
    # the paper's rules first, then under LLaVA's; each with its legend.
    assert HEADERS == ("VQAv2", "GQA", "VizWiz", "T-VQA", "SciQA", "MME", "MMB", "PoPE", "MMMU", "SEED\u2020")
    paper, llava = md.split("Table 11 columns, as the paper scored")[1].split("Table 11 columns, under LLaVA")
    for section, rules in ((paper, "Rules (lmms-eval's"), (llava, "Rules (LLaVA-1.5's")):
        table = section.split("\n\n", 1)[1].splitlines()
        assert table[0] == "| encoder | " + " | ".join(HEADERS) + " |"
        cells = [c.strip() for c in table[2].split("|")[2:-1]]
        assert cells == ["100.00"] * 5 + ["1000.00/400.00"] + ["100.00"] * 4
        assert table[4].startswith(rules)


def test_table11_fills_gaps_with_a_dash_and_marks_limited_runs():
    from sc_eval.adapters.llava.pipeline import results_markdown
    from sc_eval.report.table11 import table11_markdown

    results = {"encoder": "random:sc-vit-tiny", "results": {
        "vqav2_val": {"metrics": {"vqa_acc": 50.0, "vqa_acc_lmms": 51.0, "vqa_acc_official": 49.0}},  # older run
        "gqa_testdev_balanced": {"metrics": {"accuracy": 41.5, "accuracy_lmms": 43.25}},
        "textvqa_val_ocr": {"metrics": {"vqa_acc": 12.0}, "limited": True},
        "mme": {"metrics": {"perception": 812.25, "cognition": 201.0}},
        "pope": {"metrics": {"f1": 70.0, "f1_lmms": 68.5}},
        "seedbench": {"skipped": "no data", "metrics": {}}}}
    lines = table11_markdown(results).splitlines()
    assert lines[0].startswith("| encoder | VQAv2 | GQA | VizWiz | T-VQA (textvqa_val_ocr) | SciQA | MME |")
    # VQAv2 scored before vqa_acc_lmms_v03 existed: "-", not another rule's number; lmms-eval's
    # GQA and POPE scores
    assert lines[2] == "| random:sc-vit-tiny | - | 43.25 | - | 12.00* | - | 812.25/201.00 | - | 68.50 | - | - |"
    assert "`accuracy_lmms` = lmms-eval" in lines[4] and "`f1_lmms` = lmms-eval, the three splits pooled" in lines[4]
    assert "--limit" in lines[-1]
    # LLaVA's rules: its GQA and POPE metrics, and LLaVA's TextVQA (with OCR tokens) is the first choice
    lines = table11_markdown(results, layout="llava").splitlines()
    assert lines[0].startswith("| encoder | VQAv2 | GQA | VizWiz | T-VQA | SciQA | MME |")
    assert lines[2] == "| random:sc-vit-tiny | - | 41.50 | - | 12.00* | - | 812.25/201.00 | - | 70.00 | - | - |"
    assert "GQA `accuracy` = LLaVA's eval_gqa" in lines[4]
    assert "Table 11" in results_markdown(results)
    one = {"results": {"mme": results["results"]["mme"], "coco_caption": {"metrics": {"cider": 50.0}}}}
    assert "Table 11" not in results_markdown(one)                # a single battery task: no table
