"""VQAv2 / TextVQA / GQA tasks on hand-written files in the official layouts: names, prompt
snapshots, per-question scores computed by hand, scoring of official result files, and the
VQAv2 test-dev EvalAI submission."""
import json

import pytest

from sc_eval.evaluation import tasks as tasks_api
SHORT = "\nAnswer the question using a single word or phrase."


def _write(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))
    return path


def _answers(*pairs):
    out = []
    for text, n in pairs:
        out += [text] * n
    return [{"answer": a, "answer_confidence": "yes", "answer_id": i + 1} for i, a in enumerate(out)]


@pytest.fixture()
def root(tmp_path):
    """A miniature data root with the official file names and layouts."""
    info = {"info": {}, "task_type": "Open-Ended", "data_type": "mscoco", "license": {}}
    _write(tmp_path / "vqav2/v2_OpenEnded_mscoco_val2014_questions.json", {**info, "data_subtype": "val2014", "questions": [
        {"image_id": 42, "question": "Is the ball red?", "question_id": 420},
        {"image_id": 7, "question": "What color is the car?", "question_id": 70}]})
    _write(tmp_path / "vqav2/v2_mscoco_val2014_annotations.json", {"annotations": [
        {"question_id": 420, "image_id": 42, "question_type": "is the", "answer_type": "yes/no",
         "multiple_choice_answer": "yes", "answers": _answers(("yes", 10))},
        {"question_id": 70, "image_id": 7, "question_type": "what color", "answer_type": "other",
         "multiple_choice_answer": "blue", "answers": _answers(("red", 2), ("blue", 8))}]})
    _write(tmp_path / "vqav2/v2_OpenEnded_mscoco_test-dev2015_questions.json", {**info, "data_subtype": "test-dev2015",
           "questions": [{"image_id": 5, "question": "How many cats?", "question_id": 50}]})
    _write(tmp_path / "vqav2/v2_OpenEnded_mscoco_test2015_questions.json", {**info, "data_subtype": "test2015",
           "questions": [{"image_id": 5, "question": "How many cats?", "question_id": 50},
                         {"image_id": 6, "question": "Is it day?", "question_id": 60},
                         {"image_id": 6, "question": "What is it?", "question_id": 61}]})
    _write(tmp_path / "textvqa/TextVQA_0.5.1_val.json", {"dataset_name": "textvqa", "dataset_version": "0.5.1", "data": [
        {"question_id": 34602, "question": "what word is written?", "image_id": "abc123",
         "answers": ["cat"] * 7 + ["Cat"] * 3, "set_name": "val", "image_classes": [], "image_width": 64,
         "image_height": 64, "flickr_original_url": "", "flickr_300k_url": ""},
        {"question_id": 34603, "question": "what brand is it?", "image_id": "def456",
         "answers": ["nokia"] * 10, "set_name": "val", "image_classes": [], "image_width": 64,
         "image_height": 64, "flickr_original_url": "", "flickr_300k_url": ""}]})
    # TextVQA's question file has no OCR: LLaVA's OCR prompt joins the Rosetta file on image_id
    _write(tmp_path / "textvqa/TextVQA_Rosetta_OCR_v0.2_val.json", {"dataset_name": "textvqa", "data": [
        {"image_id": "abc123", "ocr_tokens": ["CAT", "sale"], "ocr_info": []},
        {"image_id": "def456", "ocr_tokens": [], "ocr_info": []}]})
    _write(tmp_path / "gqa/testdev_balanced_questions.json", {
        "201307251": {"imageId": "n15740", "question": "Is the cup on the left?", "answer": "no",
                      "fullAnswer": "No, the cup is on the right.", "isBalanced": True, "types": {}},
        "201640614": {"imageId": "n161313", "question": "What colour is the shirt?", "answer": "red",
                      "fullAnswer": "The shirt is red.", "isBalanced": True, "types": {}},
        "999": {"imageId": "n1", "question": "Unbalanced?", "answer": "yes", "fullAnswer": "Yes.",
                "isBalanced": False, "types": {}}})
    return tmp_path


def test_names_aliases_and_group():
    names = lambda spec: [t.name for t in tasks_api.resolve(spec)]  # noqa: E731
    assert names("vqav2") == ["vqav2_val"]
    assert names("textvqa") == ["textvqa_val"]
    assert names("gqa") == ["gqa_testdev_balanced"]
    assert set(names("llava")) >= {"vqav2_val", "textvqa_val", "textvqa_val_ocr", "gqa_testdev_balanced"}
    assert names("vqav2_testdev") == ["vqav2_testdev"]
    # LLaVA's evaluation: greedy, 128 new tokens (1024 only for ScienceQA and MMBench). POPE reads
    # the whole first sentence of an answer ("Yes, ... but it is not ..." is a "no"), so a shorter
    # cap would change its scores.
    short = "vqav2_val,textvqa_val,textvqa_val_ocr,gqa,vqav2_testdev,vizwiz_vqa_val,vizwiz_vqa_test,pope,mme,seedbench"
    for t in tasks_api.resolve(short):
        assert t.generation_kwargs == {"max_new_tokens": 128}, t.name
    for t in tasks_api.resolve("scienceqa_img,mmbench_en_dev"):
        assert t.generation_kwargs == {"max_new_tokens": 1024}, t.name


def _docs(name, root):
    task = tasks_api.resolve(name)[0]
    return task, task.load_docs(root)


def test_prompt_snapshots(root):
    task, docs = _docs("vqav2_val", root)
    assert [d["doc_id"] for d in docs] == ["420", "70"]
    assert task.prompt_for(docs[1]) == "What color is the car?\nAnswer the question using a single word or phrase."
    assert docs[0]["image"].endswith("coco/images/val2014/COCO_val2014_000000000042.jpg")

    task, docs = _docs("vqav2_testdev", root)
    assert task.prompt_for(docs[0]) == "How many cats?\nAnswer the question using a single word or phrase."
    assert docs[0]["image"].endswith("coco/images/test2015/COCO_test2015_000000000005.jpg")

    task, docs = _docs("textvqa_val", root)
    assert task.prompt_for(docs[0]) == "what word is written?\nAnswer the question using a single word or phrase."
    assert docs[0]["image"].endswith("textvqa/train_images/abc123.jpg")
    task, docs = _docs("textvqa_val_ocr", root)
    assert task.prompt_for(docs[0]) == ("what word is written?\nReference OCR token: CAT, sale\n"
                                        "Answer the question using a single word or phrase.")
    assert task.prompt_for(docs[1]) == "what brand is it?\nAnswer the question using a single word or phrase."

    task, docs = _docs("gqa", root)
    assert [d["doc_id"] for d in docs] == ["201307251", "201640614"]  # unbalanced question left out
    assert task.prompt_for(docs[0]) == "Is the cup on the left?\nAnswer the question using a single word or phrase."
    assert docs[0]["image"].endswith("gqa/images/n15740.jpg")


def test_textvqa_ocr_needs_the_rosetta_file(root):
    from sc_eval.errors import DataError

    ocr = root / "textvqa/TextVQA_Rosetta_OCR_v0.2_val.json"
    full = json.loads(ocr.read_text())
    _write(ocr, {**full, "data": full["data"][:1]})  # an OCR file of another split: an image lacks its entry
    with pytest.raises(DataError, match=r"no entry for image 'def456' \(question 34603"):
        _docs("textvqa_val_ocr", root)
    ocr.unlink()  # without it the OCR task would silently be textvqa_val: refused, naming the file
    with pytest.raises(DataError, match="TextVQA_Rosetta_OCR_v0.2_val.json: not found"):
        _docs("textvqa_val_ocr", root)
    task, docs = _docs("textvqa_val", root)  # the plain task does not need it
    assert len(docs) == 2


def test_scores_by_hand(root):
    task, docs = _docs("vqav2_val", root)
    # "Yes" against ten "yes": the official script compares unnormalised strings when the answers agree
    s = task.score_doc(docs[0], "Yes")
    assert s["vqa_acc"] == 1.0 and s["vqa_acc_lmms"] == 1.0 and s["vqa_acc_official"] == 0.0
    assert s["vqa_acc_lmms_v03"] == 1.0  # lmms-eval <= 0.3.4 lower-cases the prediction first
    # "red" with 2 x red / 8 x blue: rounds dropping a red give 1/3, dropping a blue 2/3 -> 0.6
    s = task.score_doc(docs[1], "red")
    assert s == pytest.approx({"vqa_acc": 0.6, "vqa_acc_lmms": 0.6, "vqa_acc_lmms_v03": 0.6, "vqa_acc_official": 0.6})

    task, docs = _docs("textvqa_val_ocr", root)
    assert task.score_doc(docs[0], "CAT.") == {"vqa_acc": 1.0}
    task, docs = _docs("gqa", root)
    assert task.score_doc(docs[1], "Red.") == {"accuracy": 1.0, "accuracy_lmms": 1.0}
    # Neither LLaVA nor lmms-eval strips whitespace
    assert task.score_doc(docs[1], "red ") == {"accuracy": 0.0, "accuracy_lmms": 0.0}
    # lmms-eval deletes every punctuation mark, LLaVA only trailing periods
    assert task.score_doc(docs[1], "red!") == {"accuracy": 0.0, "accuracy_lmms": 1.0}


def test_score_official_result_files(root, tmp_path):
    from sc_eval.cli import main

    res = _write(tmp_path / "vqa_res.json", [{"question_id": 420, "answer": "yes"}, {"question_id": 70, "answer": "red"}])
    out = tmp_path / "scores.json"
    assert main(["score", "vqav2", "--predictions", str(res), "--annotations",
                 str(root / "vqav2/v2_mscoco_val2014_annotations.json"), "--output", str(out)]) == 0
    got = json.loads(out.read_text())
    assert got["n_docs"] == 2 and got["metrics"]["vqa_acc"] == pytest.approx(80.0)
    # Every variant from the same file. "Yes" against ten "yes": 1 but under the official script
    # (raw compare) -> 0. "r,ed" against 2 x red / 8 x blue: EvalAI deletes the comma ("red", 2
    # matches -> 0.6: vqa_acc and v03, whose EvalAI-processed prediction then matches the
    # normalised answers); the punctuation step alone makes it "r ed" (lmms, official) -> 0.
    res = _write(tmp_path / "vqa_res2.json", [{"question_id": 420, "answer": "Yes"},
                                             {"question_id": 70, "answer": "r,ed"}])
    out2 = tmp_path / "scores2.json"
    assert main(["score", "vqav2", "--predictions", str(res), "--annotations",
                 str(root / "vqav2/v2_mscoco_val2014_annotations.json"), "--output", str(out2)]) == 0
    assert json.loads(out2.read_text())["metrics"] == pytest.approx(
        {"vqa_acc": 80.0, "vqa_acc_lmms": 50.0, "vqa_acc_lmms_v03": 80.0, "vqa_acc_official": 0.0})

    res = _write(tmp_path / "gqa_res.json", [{"questionId": "201307251", "prediction": "No."},
                                            {"questionId": "201640614", "prediction": "(Red)"}])
    assert main(["score", "gqa", "--predictions", str(res), "--annotations",
                 str(root / "gqa/testdev_balanced_questions.json"), "--output", str(out), "--overwrite"]) == 0
    # "No." is right under both rules; "(Red)" only once its parentheses are deleted (lmms-eval)
    assert json.loads(out.read_text())["metrics"] == {"accuracy": 50.0, "accuracy_lmms": 100.0}

    res = _write(tmp_path / "tvqa_res.json", [{"question_id": 34602, "answer": "cat"}])
    assert main(["score", "textvqa", "--predictions", str(res), "--annotations",
                 str(root / "textvqa/TextVQA_0.5.1_val.json"), "--output", str(out), "--overwrite"]) == 0
    assert json.loads(out.read_text())["metrics"] == {"vqa_acc": 100.0}


class StubAdapter:
    """Answers from a table: enough to drive the runner without a model."""

    def __init__(self, table):
        self.table = table

    def fingerprint(self):
        return "stub"

    def predict(self, docs, task):
        return [self.table.get(d["doc_id"], "") for d in docs]


def test_testdev_submission_covers_all_test2015_questions(root, tmp_path):
    from sc_eval.evaluation.runner import evaluate

    tasks = tasks_api.resolve("vqav2_testdev,vqav2_val")
    res = evaluate(tasks, StubAdapter({"50": "Two.", "420": "yes", "70": "blue"}), tmp_path / "run", root,
                   progress=False)
    sub = json.loads((tmp_path / "run" / res["results"]["vqav2_testdev"]["submission"]).read_text())
    # every test2015 question once, in the file's order; test-dev answered (EvalAI-processed), rest empty
    assert sub == [{"question_id": 50, "answer": "2"}, {"question_id": 60, "answer": ""},
                   {"question_id": 61, "answer": ""}]
    assert res["results"]["vqav2_testdev"]["metrics"] == {}
    m = res["results"]["vqav2_val"]["metrics"]
    assert m["vqa_acc"] == pytest.approx(100 * (1.0 + 1.0) / 2)  # "blue" with 8 of 10 blue: 1.0


def test_a_resumed_run_is_scored_by_one_rule_from_its_stored_predictions(root, tmp_path):
    """Per-doc scores derive from the predictions: a run predicted by an older sc-eval (whose
    records lack a metric added since) and resumed now is rescored as a whole, not averaged over
    the newly predicted docs alone, and no prediction is made again."""
    from sc_eval.evaluation.runner import evaluate

    t = tasks_api.resolve("vqav2_val")
    run_dir = tmp_path / "run"
    evaluate(t, StubAdapter({"420": "Yes"}), run_dir, root, limit=1, progress=False)
    preds = run_dir / "predictions" / "vqav2_val.jsonl"
    old = [json.loads(line) for line in preds.read_text().splitlines()]
    for r in old:  # as an sc-eval without vqa_acc_lmms_v03 wrote it
        del r["scores"]["vqa_acc_lmms_v03"]
    preds.write_text("".join(json.dumps(r) + "\n" for r in old))

    class Once(StubAdapter):
        def predict(self, docs, task):
            assert [d["doc_id"] for d in docs] == ["70"]  # the stored answer is not asked again
            return super().predict(docs, task)

    res = evaluate(t, Once({"70": "red"}), run_dir, root, progress=False)
    # "Yes" against ten "yes" -> 1.0; "red" with 2 x red / 8 x blue -> 0.6: mean 80 over both
    # questions (the new question alone would give 60)
    assert res["results"]["vqav2_val"]["metrics"]["vqa_acc_lmms_v03"] == pytest.approx(80.0)
    stored = [json.loads(line) for line in preds.read_text().splitlines()]
    assert [(r["doc_id"], r["prediction"], r["scores"]["vqa_acc_lmms_v03"]) for r in stored] == [
        ("420", "Yes", 1.0), ("70", "red", pytest.approx(0.6))]
