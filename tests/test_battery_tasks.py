"""The LLaVA benchmark battery: VizWiz, POPE, MME, ScienceQA-IMG, MMBench, SEED-Bench, MMMU.

Each task reads a tiny file written here in its official layout, runs through the evaluation
runner with a scripted "model" (answers looked up by doc id), and its metrics are compared with
values worked out by hand in the comments. Prompt snapshots pin the exact text a model sees;
`sc-eval score` is exercised with the official answer formats.
"""
import base64
import io
import json
import zipfile
from pathlib import Path

import pytest

from sc_eval.evaluation import tasks as tasks_api
from sc_eval.cli import main
from sc_eval.errors import DataError
from sc_eval.evaluation.runner import evaluate

MC = "\nAnswer with the option's letter from the given choices directly."
SHORT = "\nAnswer the question using a single word or phrase."


class Scripted:
    """An adapter whose answers are given per doc id (missing ids answer "")."""

    def __init__(self, answers):
        self.answers = answers

    def fingerprint(self):
        return "scripted"

    def predict(self, docs, task):
        return [self.answers.get(d["doc_id"], "") for d in docs]


def task(name):
    return tasks_api.resolve(name)[0]


def run(name, root, answers, tmp_path):
    res = evaluate([task(name)], Scripted(answers), tmp_path / "run", root, progress=False)
    return res["results"][name]


def score(capsys, *argv):
    capsys.readouterr()  # drop what earlier steps printed
    assert main(["score", *map(str, argv)]) == 0
    return json.loads(capsys.readouterr().out)


def png_bytes(colour=(255, 0, 0)):
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (4, 4), colour).save(buf, format="PNG")
    return buf.getvalue()


def write_jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_groups_hold_the_battery():
    battery = {t.name for t in tasks_api.resolve("battery")}
    assert {"vizwiz_vqa_val", "pope", "mme", "scienceqa_img", "mmbench_en_dev", "seedbench",
            "mmmu_val"} <= battery
    assert battery <= {t.name for t in tasks_api.resolve("llava")}
    assert "vizwiz_vqa_test" not in battery and "mmbench_en_dev_circular" not in battery


# ---- VizWiz --------------------------------------------------------------------------------------

def _vizwiz(root):
    (root / "vizwiz").mkdir(parents=True)
    val = [
        {"image": "VizWiz_val_00000001.jpg", "question": "What is this?", "answerable": 0,
         "answer_type": "unanswerable",
         "answers": [{"answer": a, "answer_confidence": "yes"}
                     for a in ["unanswerable"] * 4 + ["blue"] * 3 + ["navy"] * 3]},
        {"image": "VizWiz_val_00000002.jpg", "question": "What drink is in the cup?", "answerable": 1,
         "answer_type": "other",
         "answers": [{"answer": a, "answer_confidence": "yes"} for a in ["coffee"] * 2 + ["tea"] * 8]},
    ]
    (root / "vizwiz" / "val.json").write_text(json.dumps(val))
    test = [{"image": "VizWiz_test_00000001.jpg", "question": "How many dogs?"},
            {"image": "VizWiz_test_00000002.jpg", "question": "What is it?"}]
    (root / "vizwiz" / "test.json").write_text(json.dumps(test))


def test_vizwiz_val_prompt_and_vqa_accuracy(tmp_path, capsys):
    root = tmp_path / "data"
    _vizwiz(root)
    docs = task("vizwiz_vqa_val").load_docs(root)
    assert [d["doc_id"] for d in docs] == ["VizWiz_val_00000001.jpg", "VizWiz_val_00000002.jpg"]
    assert docs[0]["image"] == str(root / "vizwiz" / "val" / "VizWiz_val_00000001.jpg")
    assert task("vizwiz_vqa_val").prompt_for(docs[0]) == (
        "What is this?\nWhen the provided information is insufficient, respond with 'Unanswerable'."
        "\nAnswer the question using a single word or phrase.")
    # "Unanswerable" -> "unanswerable" matches 4 of 10 -> 1.0; "Coffee." -> "coffee" matches 2 -> 0.6
    entry = run("vizwiz_vqa_val", root, {"VizWiz_val_00000001.jpg": "Unanswerable",
                                         "VizWiz_val_00000002.jpg": "Coffee."}, tmp_path)
    assert entry["metrics"]["vqa_acc"] == pytest.approx(80.0)
    # the EvalAI results format, scored without a model; "blue" matches 3 -> 0.9, "" -> 0
    results = tmp_path / "results.json"
    results.write_text(json.dumps([{"image": "VizWiz_val_00000001.jpg", "answer": "blue"},
                                   {"image": "VizWiz_val_00000002.jpg", "answer": ""}]))
    out = score(capsys, "vizwiz_vqa_val", "--predictions", results,
                "--annotations", root / "vizwiz" / "val.json")
    assert out["n_docs"] == 2 and out["metrics"]["vqa_acc"] == pytest.approx(45.0)


def test_vizwiz_test_writes_the_evalai_submission(tmp_path):
    root = tmp_path / "data"
    _vizwiz(root)
    entry = run("vizwiz_vqa_test", root, {"VizWiz_test_00000001.jpg": "Two dogs.",
                                          "VizWiz_test_00000002.jpg": "Unanswerable"}, tmp_path)
    assert entry["metrics"] == {}
    sub = json.loads((tmp_path / "run" / entry["submission"]).read_text())
    # EvalAI processor: lower-case, "." dropped, "two" -> "2"
    assert sub == [{"image": "VizWiz_test_00000001.jpg", "answer": "2 dogs"},
                   {"image": "VizWiz_test_00000002.jpg", "answer": "unanswerable"}]


# ---- POPE ----------------------------------------------------------------------------------------

POPE = {
    "random": [("yes", "Yes."), ("no", "No, there is not."), ("yes", "NO"), ("no", "")],
    "popular": [("yes", "yes"), ("no", "no")],
    "adversarial": [("yes", "not sure"), ("no", "Yes")],
}


def _pope(root):
    for split, rows in POPE.items():  # ids restart at 1 in every file, as in the official data
        write_jsonl(root / "pope" / f"coco_pope_{split}.json",
                    [{"question_id": i + 1, "image": f"COCO_val2014_{i:012d}.jpg",
                      "text": "Is there a dog in the image?", "label": label} for i, (label, _) in enumerate(rows)])


def _pope_expected(m):
    # random: parsed yes,no,yes,yes ("NO" and "" are yes) vs yes,no,yes,no: TP 2 TN 1 FP 1 FN 0
    assert m["random_accuracy"] == pytest.approx(75.0)
    assert m["random_precision"] == pytest.approx(200 / 3)
    assert m["random_recall"] == pytest.approx(100.0)
    assert m["random_f1"] == pytest.approx(80.0)
    assert m["random_yes_ratio"] == pytest.approx(75.0)
    assert m["popular_f1"] == pytest.approx(100.0) and m["popular_yes_ratio"] == pytest.approx(50.0)
    # adversarial: "not sure" -> no on a yes, "Yes" on a no: nothing right
    assert m["adversarial_accuracy"] == 0.0 and m["adversarial_f1"] == 0.0
    assert m["f1"] == pytest.approx(60.0)
    assert m["accuracy"] == pytest.approx(175 / 3)
    # lmms-eval, all eight questions pooled; only an exact "yes"/"no" (after strip + lower) counts:
    #   random: "Yes." other, "No, there is not." other, "NO" on a yes: FN, "" other
    #   popular: "yes" TP, "no" TN;  adversarial: "not sure" other, "Yes" on a no: FP
    # TP 1, FP 1, TN 1, FN 1, 4 others: accuracy 2/8; precision 1/2; recall 1/2; F1 1/2.
    # (A mean of per-split lmms F1 would be (0 + 100 + 0) / 3 instead.)
    assert m["accuracy_lmms"] == pytest.approx(25.0)
    assert (m["precision_lmms"], m["recall_lmms"], m["f1_lmms"]) == pytest.approx((50.0, 50.0, 50.0))


def test_pope_three_splits_in_one_task(tmp_path):
    root = tmp_path / "data"
    _pope(root)
    t = task("pope")
    docs = t.load_docs(root)
    assert [d["doc_id"] for d in docs[:5]] == ["random/1", "random/2", "random/3", "random/4", "popular/1"]
    assert docs[0]["image"] == str(root / "coco" / "images" / "val2014" / "COCO_val2014_000000000000.jpg")
    assert t.prompt_for(docs[0]) == "Is there a dog in the image?\nAnswer the question using a single word or phrase."
    answers = {f"{s}/{i + 1}": pred for s, rows in POPE.items() for i, (_, pred) in enumerate(rows)}
    entry = run("pope", root, answers, tmp_path)
    _pope_expected(entry["metrics"])
    assert t.headline == "f1"


def test_pope_scores_llava_answers_routed_by_category(tmp_path, capsys):
    root = tmp_path / "data"
    _pope(root)
    # LLaVA's question file numbers all questions uniquely and names the split in `category`;
    # answers are paired with the annotation lines of their split in order.
    answers, qid = [], 1000
    for split in ("adversarial", "popular", "random"):
        for _, pred in POPE[split]:
            answers.append({"question_id": qid, "text": pred, "category": split})
            qid += 1
    f = tmp_path / "answers.jsonl"
    write_jsonl(f, answers)
    out = score(capsys, "pope", "--predictions", f, "--annotations", root / "pope")
    assert out["n_docs"] == 8
    _pope_expected(out["metrics"])


def test_pope_answers_without_category_need_unique_ids(tmp_path, capsys):
    root = tmp_path / "data"
    _pope(root)
    f = tmp_path / "answers.jsonl"
    write_jsonl(f, [{"question_id": 1, "text": "Yes"}])
    assert main(["score", "pope", "--predictions", str(f), "--annotations", str(root / "pope")]) == 2
    assert "category" in capsys.readouterr().err
    # one split file: ids are unique, answers route by id
    write_jsonl(f, [{"question_id": i + 1, "text": p} for i, (_, p) in enumerate(POPE["random"])])
    out = score(capsys, "pope", "--predictions", f, "--annotations", root / "pope" / "coco_pope_random.json")
    assert out["metrics"]["f1"] == pytest.approx(80.0) and out["metrics"]["random_f1"] == pytest.approx(80.0)


# ---- MME -----------------------------------------------------------------------------------------

ASK = " Please answer yes or no."


def _mme(root):
    base = root / "mme" / "MME_Benchmark_release_version"
    # side-by-side layout: existence/<n>.jpg + existence/<n>.txt
    for n, lines in (("1", [("Is there a dog in this image?", "Yes"), ("Is there a cat in this image?", "No")]),
                     ("2", [("Is there a car in this image?", "Yes"), ("Is there a bus in this image?", "No")])):
        (base / "existence").mkdir(parents=True, exist_ok=True)
        (base / "existence" / f"{n}.jpg").write_bytes(b"jpg")
        (base / "existence" / f"{n}.txt").write_text("".join(f"{q}{ASK}\t{a}\n" for q, a in lines))
    # images/ + questions_answers_YN/ layout
    (base / "artwork" / "images").mkdir(parents=True)
    (base / "artwork" / "questions_answers_YN").mkdir()
    (base / "artwork" / "images" / "10.jpg").write_bytes(b"jpg")
    (base / "artwork" / "questions_answers_YN" / "10.txt").write_text(
        f"Is this artwork by Monet?{ASK}\tYes\nIs this artwork by Dali?{ASK}\tNo\n")
    # the eval tool's flat file: <category>.txt "image\tquestion\tanswer"
    (base / "code_reasoning").mkdir()
    (base / "code_reasoning" / "5.png").write_bytes(b"png")
    (base / "code_reasoning.txt").write_text(
        f"5.png\tWill this code print 3?{ASK}\tYes\n5.png\tWill this code print 4?{ASK}\tNo\n")
    return base


MME_ANSWERS = {
    "existence/1.jpg/0": "Yes", "existence/1.jpg/1": "No",          # both right
    "existence/2.jpg/0": "yes, there is", "existence/2.jpg/1": "Yes.",  # right, wrong
    "artwork/10.jpg/0": "", "artwork/10.jpg/1": "No",                # empty = other: wrong, right
    "code_reasoning/5.png/0": "Yes", "code_reasoning/5.png/1": "The answer is no",  # right, "other"
}


def _mme_expected(m):
    # existence: acc 3/4 = 75, acc+ 1/2 = 50 -> 125; artwork: 50 + 0; code_reasoning: 50 + 0
    assert m["existence_acc"] == pytest.approx(75.0) and m["existence_acc_plus"] == pytest.approx(50.0)
    assert m["existence"] == pytest.approx(125.0) and m["artwork"] == pytest.approx(50.0)
    assert m["perception"] == pytest.approx(175.0)
    assert m["cognition"] == pytest.approx(50.0)


def test_mme_layouts_prompt_and_summed_scores(tmp_path, capsys):
    root = tmp_path / "data"
    base = _mme(root)
    t = task("mme")
    docs = t.load_docs(root)
    assert sorted(d["doc_id"] for d in docs) == sorted(MME_ANSWERS)
    doc = next(d for d in docs if d["doc_id"] == "artwork/10.jpg/0")
    assert doc["image"] == str(base / "artwork" / "images" / "10.jpg")
    assert t.prompt_for(doc) == "Is this artwork by Monet?\nAnswer the question using a single word or phrase."
    entry = run("mme", root, MME_ANSWERS, tmp_path)
    _mme_expected(entry["metrics"])
    # --limit 3 cuts image 2's pair in half: only image 1 (both right) is scored -> 100 + 100
    limited = evaluate([t], Scripted(MME_ANSWERS), tmp_path / "limited", root, limit=3, progress=False)
    assert limited["results"]["mme"]["metrics"]["perception"] == pytest.approx(200.0)
    assert list(entry["metrics"])[:2] == ["perception", "cognition"]
    # the eval tool's results folder: <category>.txt "image\tquestion\tanswer\tprediction"
    res = tmp_path / "mme_results"
    res.mkdir()
    by_cat = {}
    for d in docs:
        by_cat.setdefault(d["category"], []).append(
            f"{d['image_name']}\t{d['question']}\t{d['answer']}\t{MME_ANSWERS[d['doc_id']]}\n")
    for cat, lines in by_cat.items():
        (res / f"{cat}.txt").write_text("".join(lines))
    out = score(capsys, "mme", "--predictions", res, "--annotations", base)
    assert out["n_docs"] == 8
    _mme_expected(out["metrics"])
    # LLaVA answers: question_id names the image, prompt carries the question
    f = tmp_path / "answers.jsonl"
    write_jsonl(f, [{"question_id": f"{d['category']}/{d['image_name']}", "prompt": t.prompt_for(d),
                     "text": MME_ANSWERS[d["doc_id"]]} for d in docs])
    out = score(capsys, "mme", "--predictions", f, "--annotations", base)
    _mme_expected(out["metrics"])


# ---- ScienceQA-IMG -------------------------------------------------------------------------------

def _sqa(root):
    def p(q, choices, answer, hint="", image="image.png", split="test"):
        return {"question": q, "choices": choices, "answer": answer, "hint": hint, "image": image,
                "split": split, "subject": "natural science", "category": "c", "grade": "grade1"}

    problems = {
        "1": p("Which shape is on the left?", ["circle", "square", "triangle"], 2, hint="Look at the picture."),
        "2": p("What color is the ball?", ["red", "blue"], 0),
        "3": p("How many shapes?", ["1", "2"], 1),
        "4": p("Which is a color?", ["dog", "cat", "sun", "green"], 3),
        "5": p("Which is round?", ["ball", "box"], 0),
        "6": p("Which word names a color?", ["red", "cat"], 0, image=None),  # no image: not in -IMG
        "7": p("Train question?", ["a", "b"], 0, split="train"),
    }
    (root / "scienceqa").mkdir(parents=True)
    (root / "scienceqa" / "problems.json").write_text(json.dumps(problems))
    (root / "scienceqa" / "pid_splits.json").write_text(
        json.dumps({"train": ["7"], "val": [], "test": ["1", "2", "3", "4", "5", "6"], "minival": []}))


def test_scienceqa_img_prompt_and_llava_parse(tmp_path, capsys):
    root = tmp_path / "data"
    _sqa(root)
    t = task("scienceqa_img")
    docs = t.load_docs(root)
    assert [d["doc_id"] for d in docs] == ["1", "2", "3", "4", "5"]
    assert docs[0]["image"] == str(root / "scienceqa" / "images" / "test" / "1" / "image.png")
    assert t.prompt_for(docs[0]) == ("Context: Look at the picture.\nWhich shape is on the left?\n"
                                     "A. circle\nB. square\nC. triangle" + MC)
    assert t.prompt_for(docs[1]) == "What color is the ball?\nA. red\nB. blue" + MC  # empty hint: no line
    # "C" right; "The answer is A." right; "B." FAILED; "E" beyond 4 options: wrong; "" wrong -> 2/5
    answers = {"1": "C", "2": "The answer is A.", "3": "B.", "4": "E", "5": ""}
    entry = run("scienceqa_img", root, answers, tmp_path)
    assert entry["metrics"]["accuracy"] == pytest.approx(40.0)
    f = tmp_path / "answers.jsonl"
    write_jsonl(f, [{"question_id": k, "text": v} for k, v in answers.items()])
    out = score(capsys, "scienceqa_img", "--predictions", f, "--annotations", root / "scienceqa")
    assert out["n_docs"] == 5 and out["metrics"]["accuracy"] == pytest.approx(40.0)
    # lmms-eval up to v0.3.4: only "C" (problem 1) is the bare letter -> 1/5
    assert out["metrics"]["accuracy_lmms_v03"] == pytest.approx(20.0)


def test_scienceqa_img_lmms_rule_of_the_papers_time(tmp_path, capsys):
    root = tmp_path / "data"
    _sqa(root)
    # answers: 1 -> C, 2 -> A, 3 -> B, 4 -> D, 5 -> A
    #              LLaVA                          lmms-eval <= 0.3.4 (strip, lower, == letter)
    # "c"          not a capital: FAILED    0     "c" == "c"        1
    # "A. red"     "A" + ". ": A            1     "a. red" != "a"   0
    # " B\n"       not stripped: FAILED     0     "b" == "b"        1
    # "D."         no ". " after it: FAILED 0     "d." != "d"       0
    # "a"          not a capital: FAILED    0     "a" == "a"        1
    answers = {"1": "c", "2": "A. red", "3": " B\n", "4": "D.", "5": "a"}
    entry = run("scienceqa_img", root, answers, tmp_path)
    assert entry["metrics"]["accuracy"] == pytest.approx(20.0)
    assert entry["metrics"]["accuracy_lmms_v03"] == pytest.approx(60.0)
    f = tmp_path / "answers.jsonl"
    write_jsonl(f, [{"question_id": k, "text": v} for k, v in answers.items()])
    out = score(capsys, "scienceqa_img", "--predictions", f, "--annotations", root / "scienceqa")
    assert (out["metrics"]["accuracy"], out["metrics"]["accuracy_lmms_v03"]) == pytest.approx((20.0, 60.0))


# ---- MMBench -------------------------------------------------------------------------------------

MMB_COLUMNS = ["index", "question", "hint", "A", "B", "C", "D", "answer", "category", "image",
               "source", "l2-category", "comment"]


def _mmbench(root, with_copy=True):
    img = base64.b64encode(png_bytes()).decode()
    rows = [
        [0, "What color is the ball?", "nan", "red", "blue", "green", "", "C", "color", img, "s", "attr", "nan"],
        [1, "How many cars?", "A toy shop.", "1", "2", "3", "4", "D", "count", img, "s", "attr", "nan"],
        [2, "Is it raining?", "", "yes", "no", "", "", "A", "weather", img, "s", "attr", "nan"],
    ]
    if with_copy:  # the official TSVs hold rotated copies at index + 1e6
        rows.append([1000000, "What color is the ball?", "nan", "blue", "green", "red", "", "B", "color", img,
                     "s", "attr", "nan"])
    (root / "mmbench").mkdir(parents=True, exist_ok=True)
    text = "\t".join(MMB_COLUMNS) + "\n" + "".join("\t".join(map(str, r)) + "\n" for r in rows)
    (root / "mmbench" / "mmbench_dev_20230712.tsv").write_text(text)


def test_mmbench_dev_prompt_accuracy_images_and_submission(tmp_path):
    root = tmp_path / "data"
    _mmbench(root)
    t = task("mmbench_en_dev")
    docs = t.load_docs(root)
    assert [d["doc_id"] for d in docs] == ["0", "1", "2", "1000000"]
    assert Path(docs[0]["image"]).read_bytes() == png_bytes()  # base64 decoded to a cached file
    assert docs[0]["options"] == ["red", "blue", "green"]  # options stop at the first empty cell
    assert t.prompt_for(docs[1]) == "A toy shop.\nHow many cars?\nA. 1\nB. 2\nC. 3\nD. 4" + MC
    assert t.prompt_for(docs[0]) == "What color is the ball?\nA. red\nB. blue\nC. green" + MC
    # "The answer is C." right; "4" is option D's text: right; "F" names no option: wrong; copy right
    answers = {"0": "The answer is C.", "1": "4", "2": "F", "1000000": "B"}
    entry = run("mmbench_en_dev", root, answers, tmp_path)
    assert entry["metrics"]["accuracy"] == pytest.approx(75.0)
    assert entry["metrics"]["circular_accuracy"] == pytest.approx(200 / 3)  # questions 0 and 1 of 3
    assert t.headline == "circular_accuracy" and list(entry["metrics"]) == ["circular_accuracy", "accuracy"]
    xlsx = tmp_path / "run" / "submissions" / "mmbench_en_dev.xlsx"
    with zipfile.ZipFile(xlsx) as z:
        sheet = z.read("xl/worksheets/sheet1.xml").decode()
    import xml.etree.ElementTree as ET

    ns = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}
    rows = [[("".join(c.itertext())) for c in r.findall("m:c", ns)]
            for r in ET.fromstring(sheet).find("m:sheetData", ns).findall("m:row", ns)]
    assert rows[0] == ["index", "question", "A", "B", "C", "D", "prediction", "answer"]
    assert rows[2] == ["1", "How many cars?", "1", "2", "3", "4", "4", "D"]
    assert rows[1] == ["0", "What color is the ball?", "red", "blue", "green", "The answer is C.", "C"]


def test_mmbench_dev_counts_a_question_only_when_every_rotated_copy_is_right(tmp_path, capsys):
    img = base64.b64encode(png_bytes()).decode()
    rows = [  # index, question, options A-D, answer; copies at index + k * 1e6, options shifted left by k
        (0, "What color is the ball?", "red", "blue", "green", "", "C"),
        (1, "How many cars?", "1", "2", "3", "4", "D"),
        (2, "Is it raining?", "yes", "no", "", "", "A"),
        (1000000, "What color is the ball?", "blue", "green", "red", "", "B"),
        (1000001, "How many cars?", "2", "3", "4", "1", "C"),
        (1000002, "Is it raining?", "no", "yes", "", "", "B"),
        (2000000, "What color is the ball?", "green", "red", "blue", "", "A"),
        (2000001, "How many cars?", "3", "4", "1", "2", "B"),
        (3000001, "How many cars?", "4", "1", "2", "3", "A"),
    ]
    root = tmp_path / "data"
    (root / "mmbench").mkdir(parents=True)
    (root / "mmbench" / "mmbench_dev_20230712.tsv").write_text("\t".join(MMB_COLUMNS) + "\n" + "".join(
        "\t".join(map(str, [i, q, "nan", *options, answer, "c", img, "s", "l2", "nan"])) + "\n"
        for i, q, *options, answer in rows))
    # Question 0 is right in its original and first copy but says "B" (red) on the second copy,
    # whose answer is A (green): it fails. Question 1 answers "4" (the option's text) in all four
    # rows: right each time. Question 2: "A", then "B" on its copy: right both times.
    answers = {"0": "C", "1000000": "B", "2000000": "B",
               "1": "4", "1000001": "4", "2000001": "4", "3000001": "4", "2": "A", "1000002": "B"}
    # rows right: 8 of 9 -> accuracy 800/9; questions right: 1 and 2 of 0, 1, 2 -> 200/3
    entry = run("mmbench_en_dev", root, answers, tmp_path)
    m = entry["metrics"]
    assert m == pytest.approx({"circular_accuracy": 200 / 3, "accuracy": 800 / 9})
    # standard errors: questions right 0, 1, 1 -> stdev sqrt(1/3) / sqrt(3) = 1/3; rows clustered by
    # question (sums 2 of 3, 4 of 4, 2 of 2; residuals -2/3, 4/9, 2/9): sqrt(3/2 x 56/81) / 9
    assert entry["stderr"] == pytest.approx({"circular_accuracy": 100 / 3, "accuracy": 100 * (84 / 81) ** 0.5 / 9})
    # the same from a LLaVA answer file (question_id = the TSV's index) through `sc-eval score`
    f = tmp_path / "answers.jsonl"
    write_jsonl(f, [{"question_id": int(k), "text": v} for k, v in answers.items()])
    out = score(capsys, "mmbench", "--predictions", f, "--annotations", root / "mmbench" / "mmbench_dev_20230712.tsv")
    assert out["n_docs"] == 9 and out["metrics"] == pytest.approx(m)
    # Question 0 now right in every row, question 1 wrong in its last copy only: again 8 of 9
    # rows and 2 of 3 questions, the other two
    m = run("mmbench_en_dev", root, {**answers, "2000000": "A", "3000001": "B"}, tmp_path / "again")["metrics"]
    assert m == pytest.approx({"circular_accuracy": 200 / 3, "accuracy": 800 / 9})
    # Questions are the original rows scored (as lmms-eval and VLMEvalKit count them): copies of
    # question 0 without its original row are left out of circular_accuracy, not of accuracy.
    # Rows: 1000000 wrong ("C" is red; answer B, green), the other five right -> 5/6; questions:
    # only 1, all four rows right -> 100.
    write_jsonl(f, [{"question_id": k, "text": v} for k, v in
                    [(1000000, "C"), (2000000, "A"), (1, "4"), (1000001, "4"), (2000001, "4"), (3000001, "4")]])
    out = score(capsys, "mmbench", "--predictions", f, "--annotations", root / "mmbench" / "mmbench_dev_20230712.tsv")
    assert out["metrics"] == pytest.approx({"circular_accuracy": 100.0, "accuracy": 500 / 6})
    write_jsonl(f, [{"question_id": 1000000, "text": "B"}])   # copies only: no question to count
    assert main(["score", "mmbench", "--predictions", str(f), "--annotations",
                 str(root / "mmbench" / "mmbench_dev_20230712.tsv")]) == 2
    assert "original question" in capsys.readouterr().err


def test_mmbench_circular_eval(tmp_path, capsys):
    root = tmp_path / "data"
    _mmbench(root)
    t = task("mmbench_en_dev_circular")
    docs = t.load_docs(root)
    # 3 + 4 + 2 rotations; the TSV's own copy (index 1e6) is not used
    assert [d["doc_id"] for d in docs] == ["0/0", "0/1", "0/2", "1/0", "1/1", "1/2", "1/3", "2/0", "2/1"]
    assert t.prompt_for(docs[1]) == "What color is the ball?\nA. blue\nB. green\nC. red" + MC
    assert [d["answer"] for d in docs] == ["C", "B", "A", "D", "C", "B", "A", "A", "B"]
    # question 0: right every pass; 1: "4" names the right option's text every pass; 2: "A" twice
    answers = {"0/0": "C", "0/1": "B", "0/2": "A", **{f"1/{k}": "4" for k in range(4)}, "2/0": "A", "2/1": "A"}
    entry = run("mmbench_en_dev_circular", root, answers, tmp_path)
    m = entry["metrics"]
    assert m["circular_accuracy"] == pytest.approx(200 / 3)
    assert m["accuracy"] == pytest.approx(100.0)  # unrotated passes only
    assert m["pass_accuracy"] == pytest.approx(800 / 9)
    # questions 0, 1, 2 right 1, 1, 0 -> 100/3; first passes all right -> 0; every pass clustered
    # by question (sums 3 of 3, 4 of 4, 1 of 2; residuals 1/3, 4/9, -7/9): sqrt(3/2 x 74/81) / 9
    assert entry["stderr"] == pytest.approx({"circular_accuracy": 100 / 3, "accuracy": 0.0,
                                             "pass_accuracy": 100 * (111 / 81) ** 0.5 / 9})
    # LLaVA --all-rounds answers: question_id + round_id
    f = tmp_path / "answers.jsonl"
    write_jsonl(f, [{"question_id": int(k.split("/")[0]), "round_id": int(k.split("/")[1]), "text": v}
                    for k, v in answers.items()])
    out = score(capsys, "mmbench_en_dev_circular", "--predictions", f,
                "--annotations", root / "mmbench" / "mmbench_dev_20230712.tsv")
    assert out["metrics"]["circular_accuracy"] == pytest.approx(200 / 3)


# ---- SEED-Bench ----------------------------------------------------------------------------------

def test_seedbench_prompt_first_letter_rule_and_types(tmp_path, capsys):
    root = tmp_path / "data"

    def q(qid, answer, type_id, data_type="image"):
        return {"question_id": qid, "question": "What is shown?", "choice_a": "a cat", "choice_b": "a dog",
                "choice_c": "a bird", "choice_d": "a fish", "answer": answer, "data_type": data_type,
                "question_type_id": type_id, "data_id": f"{qid}.jpg"}

    data = {"question_type": {"Scene Understanding": 1, "Instance Identity": 2},
            "questions": [q("101", "A", 1), q("102", "B", 1), q("103", "C", 2), q("v1", "A", 10, "video")]}
    (root / "seedbench").mkdir(parents=True)
    (root / "seedbench" / "SEED-Bench.json").write_text(json.dumps(data))
    t = task("seedbench")
    docs = t.load_docs(root)
    assert [d["doc_id"] for d in docs] == ["101", "102", "103"]  # the video question is skipped
    assert docs[0]["image"] == str(root / "seedbench" / "SEED-Bench-image" / "101.jpg")
    assert t.prompt_for(docs[0]) == "What is shown?\nA. a cat\nB. a dog\nC. a bird\nD. a fish" + MC
    # "A" right; "b) a dog" starts with b: right; "The answer is C" starts with T: wrong
    answers = {"101": "A", "102": "b) a dog", "103": "The answer is C"}
    m = run("seedbench", root, answers, tmp_path)["metrics"]
    assert m["accuracy"] == pytest.approx(200 / 3)
    assert m["accuracy_scene_understanding"] == pytest.approx(100.0)
    assert m["accuracy_instance_identity"] == 0.0
    f = tmp_path / "answers.jsonl"
    write_jsonl(f, [{"question_id": k, "text": v} for k, v in answers.items()])
    out = score(capsys, "seedbench", "--predictions", f, "--annotations", root / "seedbench" / "SEED-Bench.json")
    assert out["metrics"]["accuracy"] == pytest.approx(200 / 3)


# ---- MMMU ----------------------------------------------------------------------------------------

def _mmmu(root):
    import pyarrow as pa
    import pyarrow.parquet as pq

    def row(qid, question, options, answer, qtype, images):
        r = {"id": qid, "question": question, "options": repr(options), "answer": answer,
             "question_type": qtype, "subfield": "x", "explanation": ""}
        for k in range(1, 8):
            r[f"image_{k}"] = {"bytes": images[k], "path": f"{k}.png"} if k in images else None
        return r

    red, blue = png_bytes((255, 0, 0)), png_bytes((0, 0, 255))
    subjects = {
        "Art": [row("validation_Art_1", "<image 1> Which animal is painted?", ["cat", "dog", "bird", "fish"], "B",
                    "multiple-choice", {1: red}),
                row("validation_Art_2", "Compare <image 2> and <image 1>. Which is warmer?", ["left", "right", "both", "neither"],
                    "A", "multiple-choice", {1: red, 2: blue})],
        "Math": [row("validation_Math_1", "<image 1> What is x?", [], "3.5", "open", {1: red}),
                 row("validation_Math_2", "<image 1> Which city?", [], "Paris", "open", {1: red})],
    }
    for subject, rows in subjects.items():
        (root / "mmmu" / subject).mkdir(parents=True)
        pq.write_table(pa.Table.from_pylist(rows), root / "mmmu" / subject / "validation-00000-of-00001.parquet")
    return red, blue


def test_mmmu_multi_image_docs_prompts_and_official_parsing(tmp_path, capsys):
    root = tmp_path / "data"
    red, blue = _mmmu(root)
    t = task("mmmu_val")
    docs = t.load_docs(root)
    assert [d["doc_id"] for d in docs] == ["validation_Art_1", "validation_Art_2", "validation_Math_1",
                                           "validation_Math_2"]
    two = docs[1]
    # images in the order the text refers to them; image = the first
    assert [Path(p).read_bytes() for p in two["images"]] == [blue, red] and two["image"] == two["images"][0]
    assert t.prompt_for(two) == ("Compare <image 2> and <image 1>. Which is warmer?\nA. left\nB. right\n"
                                 "C. both\nD. neither\n\nAnswer with the option's letter from the given choices directly.")
    assert t.prompt_for(docs[2]) == "<image 1> What is x?\n\nAnswer the question using a single word or phrase."
    # "(B) dog" right; " C " stands alone: C, wrong; "The result is 3.50." -> tail "3.50" -> 3.5 right;
    # "It is paris" -> tail "paris" contains the gold "paris": right
    answers = {"validation_Art_1": "(B) dog", "validation_Art_2": "I think C is the answer",
               "validation_Math_1": "The result is 3.50.", "validation_Math_2": "It is paris"}
    m = run("mmmu_val", root, answers, tmp_path)["metrics"]
    assert m["accuracy"] == pytest.approx(75.0)
    assert m["accuracy_art_and_design"] == pytest.approx(50.0) and m["accuracy_science"] == pytest.approx(100.0)
    f = tmp_path / "answers.jsonl"
    write_jsonl(f, [{"doc_id": k, "prediction": v} for k, v in answers.items()])
    out = score(capsys, "mmmu_val", "--predictions", f, "--annotations", root / "mmmu")
    assert out["metrics"]["accuracy"] == pytest.approx(75.0)


def test_mmmu_parse_rules():
    from sc_eval.tasks.mmmu.parse import open_correct, parse_choice, parse_open

    opts = ["cat", "dog", "bird", "fish"]
    assert parse_choice("(A) or maybe (C)", opts, "q") == "C"        # bracketed: the last one
    assert parse_choice("B.", opts, "q") == "B"                       # "." stripped, " B " found
    assert parse_choice("I would go with the dog option here", opts, "q") == "B"  # > 5 words: by content
    assert parse_choice("dog", opts, "q") in "ABCD"                   # too short for content: random
    assert parse_choice("", opts, "q1") == parse_choice("", opts, "q1")  # the fallback is reproducible
    # the official number patterns also pick "000" out of "1,000" (a quirk kept on purpose)
    assert parse_open("1,000 apples") == ["1,000 apples", 1000.0, 0.0]
    assert open_correct("1000", parse_open("The total is 1,000"))
    assert not open_correct("5", parse_open("It has 15 sides"))       # 15 != 5 as numbers
    assert open_correct(["12", "twelve"], parse_open("so the answer is twelve"))


def test_a_missing_file_is_a_data_error_naming_it(tmp_path):
    for name in ("vizwiz_vqa_val", "pope", "mme", "scienceqa_img", "mmbench_en_dev", "seedbench", "mmmu_val"):
        with pytest.raises(DataError) as e:
            task(name).load_docs(tmp_path)
        assert str(tmp_path) in str(e.value), name
