"""`sc-eval report`: the comparison table rebuilt from run directories."""
import csv
import json
import shutil

import pytest

from sc_eval.cli import main


def _run(path, encoder, results, loss=None):
    path.mkdir(parents=True)
    (path / "results.json").write_text(json.dumps({"schema_version": 1, "encoder": encoder, "results": results}))
    if loss:
        (path / "metrics.jsonl").write_text("".join(json.dumps({"step": i, "loss": v}) + "\n" for i, v in enumerate(loss)))


def test_report_table_csv_and_plots(tmp_path, capsys):
    runs = tmp_path / "runs"
    _run(runs / "a", "superclass", {
        "coco_caption": {"metrics": {"bleu4": 10.0, "cider": 41.256}, "limited": False},
        "pope": {"metrics": {"random_f1": 80.0, "f1": 75.5}, "limited": True},
    }, loss=[5.0, 4.0, 3.5])
    _run(runs / "b", "random:sc-vit-tiny", {"coco_caption": {"metrics": {"cider": 12.0}, "limited": False}})
    out = tmp_path / "report"
    assert main(["report", str(runs), "--output", str(out)]) == 0
    md = (out / "report.md").read_text()
    assert "| encoder | coco_caption cider | pope f1 |" in md
    assert "| superclass | 41.26 | 75.50* |" in md
    assert "| random:sc-vit-tiny | 12.00 | - |" in md
    assert "not comparable" in md
    rows = list(csv.DictReader(open(out / "report.csv")))
    assert {(r["encoder"], r["task"], r["metric"], r["value"], r["limited"]) for r in rows} == {
        ("superclass", "coco_caption", "cider", "41.2560", "0"),
        ("superclass", "pope", "f1", "75.5000", "1"),
        ("random:sc-vit-tiny", "coco_caption", "cider", "12.0000", "0"),
    }
    pngs = sorted(p.name for p in (out / "plots").glob("*.png"))
    assert pngs == ["coco_caption_cider.png", "pope_f1.png", "pretraining_loss.png"]
    assert (out / "plots" / "pope_f1.png").read_bytes()[:4] == b"\x89PNG"


def test_report_marks_a_model_that_gave_every_pope_question_the_same_answer(tmp_path):
    from sc_eval.metrics.pope import pope_metrics, pope_summary

    labels = ["yes", "no"] * 4  # POPE's splits are balanced
    def scored(answers):
        return pope_summary({"random": pope_metrics(answers, labels)})
    runs = tmp_path / "runs"
    _run(runs / "a", "says-yes", {"pope": {"metrics": scored(["Yes"] * 8), "limited": False}})
    _run(runs / "b", "says-no", {"pope": {"metrics": scored(["No."] * 8), "limited": False}})
    _run(runs / "c", "looks", {"pope": {"metrics": scored(["Yes", "No"] * 3 + ["No", "Yes"]), "limited": False}})
    out = tmp_path / "report"
    assert main(["report", str(runs), "--output", str(out), "--no-plots"]) == 0
    md = (out / "report.md").read_text()
    # all "yes" on balanced labels: precision 1/2, recall 1, F1 2/3; all "no": F1 0
    assert "| says-yes | 66.67† |" in md and "| says-no | 0.00† |" in md
    assert "| looks | 75.00 |" in md  # 3 of its 4 "yes" right, 3 of the 4 "yes" labels found: P = R = 3/4
    assert "† the same answer to every question" in md
    rows = {r["encoder"]: r["constant_answer"] for r in csv.DictReader(open(out / "report.csv"))}
    assert rows == {"says-yes": "1", "says-no": "1", "looks": "0"}


def test_report_puts_a_probe_run_on_its_encoders_row(tmp_path, folder):
    # `probe` records the encoder's whole description, the other commands its spec
    runs = tmp_path / "runs"
    assert main(["probe", "--encoder", "random:sc-vit-micro", "--data", str(folder), "--tasks", "fewshot",
                 "--shots", "2", "--seeds", "1", "--output-dir", str(runs / "probe")]) == 0
    _run(runs / "caption", "random:sc-vit-micro", {"coco_caption": {"metrics": {"cider": 12.0}, "limited": False}})
    assert main(["report", str(runs), "--output", str(tmp_path / "report"), "--no-plots"]) == 0
    lines = [ln for ln in (tmp_path / "report" / "report.md").read_text().splitlines() if ln.startswith("| ")]
    assert lines[0] == "| encoder | coco_caption cider | probe_2shot top1 |"
    assert len(lines) == 2 and lines[1].startswith("| random:sc-vit-micro | 12.00 | ")


def test_report_on_a_folder_without_results_fails_clearly(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "no results.json under" in capsys.readouterr().err


def test_report_names_a_damaged_results_file(tmp_path, capsys):
    _run(tmp_path / "good", "sc", {"vqav2_val": {"metrics": {"vqa_acc": 50.0}}})
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "results.json").write_text('{"results": {"vqav2_val": ')  # cut short
    assert main(["report", str(tmp_path), "--output", str(tmp_path / "rep")]) == 2
    assert f"{tmp_path / 'bad' / 'results.json'}: malformed JSON" in capsys.readouterr().err
    (tmp_path / "bad" / "results.json").write_text("[1, 2]")
    assert main(["report", str(tmp_path), "--output", str(tmp_path / "rep")]) == 2
    assert "not an sc-eval results file" in capsys.readouterr().err


def test_two_runs_of_one_encoder_on_one_task_get_a_row_each(tmp_path):
    """Same encoder, same task, different numbers (say two seeds): no cell may silently take
    one run's value; the rows are named by run directory, in both argument orders."""
    _run(tmp_path / "seed0", "random:sc-vit-tiny", {"vqav2_val": {"metrics": {"vqa_acc": 40.0}},
                                                    "gqa_testdev_balanced": {"metrics": {"accuracy": 30.0}}})
    _run(tmp_path / "seed1", "random:sc-vit-tiny", {"vqav2_val": {"metrics": {"vqa_acc": 60.0}}})
    for order in (["seed0", "seed1"], ["seed1", "seed0"]):
        out = tmp_path / f"rep-{order[0]}"
        assert main(["report", *[str(tmp_path / r) for r in order], "--output", str(out)]) == 0
        rows = {(r["encoder"], r["task"]): float(r["value"]) for r in csv.DictReader(open(out / "report.csv"))}
        assert rows == {("random:sc-vit-tiny (seed0)", "vqav2_val"): 40.0,
                        ("random:sc-vit-tiny (seed0)", "gqa_testdev_balanced"): 30.0,
                        ("random:sc-vit-tiny (seed1)", "vqav2_val"): 60.0}


def test_report_shows_each_scores_standard_error_where_the_run_recorded_one(tmp_path):
    runs = tmp_path / "runs"
    _run(runs / "a", "superclass", {
        "vqav2_val": {"metrics": {"vqa_acc": 48.27}, "stderr": {"vqa_acc": 4.0512}, "limited": True},
        "coco_caption": {"metrics": {"cider": 37.7}, "limited": False},  # a corpus score: no stderr
    })
    out = tmp_path / "report"
    assert main(["report", str(runs), "--output", str(out)]) == 0
    md = (out / "report.md").read_text()
    assert "| superclass | 48.27 ± 4.05* | 37.70 |" in md
    assert "± one standard error" in md
    rows = {r["task"]: r["stderr"] for r in csv.DictReader(open(out / "report.csv"))}
    assert rows == {"vqav2_val": "4.0512", "coco_caption": ""}


def test_report_reads_the_standard_error_off_the_predictions_of_an_older_run(tmp_path):
    import statistics

    runs = tmp_path / "runs"
    scores = [1.0, 0.0, 1.0, 0.3, 0.6, 1.0, 0.0]
    _run(runs / "a", "superclass", {"vqav2_val": {"metrics": {"vqa_acc": 100 * sum(scores) / 7},
                                                   "n_docs": {"total": 7, "evaluated": 7}, "limited": False,
                                                   "predictions": "predictions/vqav2_val.jsonl"}})
    (runs / "a" / "predictions").mkdir()
    (runs / "a" / "predictions" / "vqav2_val.jsonl").write_text("".join(
        json.dumps({"doc_id": str(i), "task": "vqav2_val", "prediction": "x", "scores": {"vqa_acc": v}}) + "\n"
        for i, v in enumerate(scores)))
    out = tmp_path / "report"
    assert main(["report", str(runs), "--output", str(out), "--no-plots"]) == 0
    se = 100 * statistics.stdev(scores) / 7 ** 0.5
    assert f"| superclass | {100 * sum(scores) / 7:.2f} ± {se:.2f} |" in (out / "report.md").read_text()


def _scored_run(path, encoder, task, metric, scores):
    """A run whose predictions file gives each question of `task` the score in `scores`."""
    n = len(scores)
    _run(path, encoder, {task: {"metrics": {metric: 100 * sum(scores) / n}, "limited": False,
                                "n_docs": {"total": n, "evaluated": n},
                                "predictions": f"predictions/{task}.jsonl"}})
    (path / "predictions").mkdir()
    (path / "predictions" / f"{task}.jsonl").write_text("".join(
        json.dumps({"doc_id": str(i), "task": task, "prediction": "x", "scores": {metric: v}}) + "\n"
        for i, v in enumerate(scores)))


def test_report_compares_each_row_with_the_baseline_question_by_question(tmp_path, capsys):
    runs = tmp_path / "runs"
    floor = [0.0] * 8 + [1.0] * 2
    _scored_run(runs / "a", "better", "vqav2_val", "vqa_acc", [1.0] * 10)
    _scored_run(runs / "b", "floor", "vqav2_val", "vqa_acc", floor)
    _scored_run(runs / "c", "same", "vqav2_val", "vqa_acc", [1.0] + floor[1:])  # one question more
    _scored_run(runs / "d", "part", "vqav2_val", "vqa_acc", [1.0] * 5)  # --limit 5: compared on those
    out = tmp_path / "report"
    assert main(["report", str(runs), "--output", str(out), "--no-plots", "--baseline", "floor"]) == 0
    md = (out / "report.md").read_text()
    # "better" minus floor, per question: eight 1s and two 0s. Mean 0.8; sample variance
    # (8 * 0.2^2 + 2 * 0.8^2) / 9 = 1.6 / 9, standard error sqrt(1.6 / 90) = 0.1333; of the 2^8
    # sign patterns of the eight wins, two sum to +-8: p = 2/256.
    assert "| better | 100.00 ± 0.00 ▲ |" in md
    # one question of ten: mean 0.1, standard error sqrt(0.9 / 90) = 0.1, p = 1
    assert "| same | 30.00 ± 15.28 ≈ |" in md
    assert "| floor | 20.00 ± 13.33 |" in md
    # five wins of five shared questions: p = 2/32, not below 0.05
    assert "| part | 100.00 ± 0.00 ≈ |" in md
    rows = {r["encoder"]: (r["diff_vs_baseline"], r["diff_stderr"], r["p_value"], r["n_compared"])
            for r in csv.DictReader(open(out / "report.csv"))}
    assert rows == {"better": ("80.0000", "13.3333", "0.007812", "10"), "floor": ("", "", "", ""),
                    "same": ("10.0000", "10.0000", "1", "10"), "part": ("100.0000", "0.0000", "0.0625", "5")}

    assert main(["report", str(runs), "--output", str(out), "--no-plots", "--baseline", "nobody"]) != 0
    assert "names no row" in capsys.readouterr().err


def test_report_compares_captions_image_by_image_on_the_images_both_runs_captioned(tmp_path):
    if shutil.which("java") is None:
        pytest.skip("pycocoevalcap needs java")
    from sc_eval.metrics.caption import per_image_scores

    refs = {"1": ["a red circle on the left"], "2": ["two blue squares at the top"],
            "3": ["a green star in the center"]}
    good = {"1": "a red circle on the left", "2": "two blue squares", "3": "a green star"}
    poor = {"1": "a blue square", "2": "a red circle"}

    def caption_run(path, encoder, caps):
        path.mkdir(parents=True)
        (path / "predictions").mkdir()
        (path / "predictions" / "coco_caption.jsonl").write_text("".join(
            json.dumps({"doc_id": i, "task": "coco_caption", "prediction": c, "targets": refs[i], "scores": {}}) + "\n"
            for i, c in caps.items()))
        (path / "results.json").write_text(json.dumps({"schema_version": 1, "encoder": encoder, "results": {
            "coco_caption": {"metrics": {"cider": 50.0}, "stderr": {}, "limited": True,
                             "n_docs": {"total": 3, "evaluated": len(caps)},
                             "predictions": "predictions/coco_caption.jsonl"}}}))

    caption_run(tmp_path / "runs" / "a", "good", good)
    caption_run(tmp_path / "runs" / "b", "poor", poor)  # captioned two of the three images
    out = tmp_path / "report"
    assert main(["report", str(tmp_path / "runs"), "--output", str(out), "--no-plots", "--baseline", "poor"]) == 0
    row = next(r for r in csv.DictReader(open(out / "report.csv")) if r["encoder"] == "good")
    # both rescored on images 1 and 2 alone, so that CIDEr-D's document frequencies are the same
    shared = {i: refs[i] for i in ("1", "2")}
    mine = per_image_scores(shared, {i: good[i] for i in shared})["cider"]
    base = per_image_scores(shared, poor)["cider"]
    assert row["n_compared"] == "2"
    assert float(row["diff_vs_baseline"]) == pytest.approx(sum(mine[i] - base[i] for i in shared) / 2, abs=1e-3)


def test_a_damaged_predictions_file_costs_its_cells_their_marks_not_the_report(tmp_path):
    runs = tmp_path / "runs"
    _scored_run(runs / "a", "floor", "vqav2_val", "vqa_acc", [0.0, 1.0, 0.0])
    _scored_run(runs / "b", "other", "vqav2_val", "vqa_acc", [1.0, 1.0, 1.0])
    (runs / "b" / "predictions" / "vqav2_val.jsonl").write_text(
        '{"task": "vqav2_val", "scores": {"vqa_acc": 1.0}}\n' * 3)  # no doc_id
    out = tmp_path / "report"
    assert main(["report", str(runs), "--output", str(out), "--no-plots", "--baseline", "floor"]) == 0
    md = (out / "report.md").read_text()
    assert "| other | 100.00 ? |" in md  # no ±, and a mark saying it could not be paired
    assert "? not compared with the floor row: a predictions file behind it is missing or unreadable" in md


def test_report_lays_llava_runs_out_in_the_papers_table11_columns(tmp_path):
    runs = tmp_path / "runs"
    battery = {"vqav2_val": {"metrics": {"vqa_acc": 70.0, "vqa_acc_lmms_v03": 69.5}},
               "gqa_testdev_balanced": {"metrics": {"accuracy": 55.0, "accuracy_lmms": 56.0}},
               "pope": {"metrics": {"f1": 80.0, "f1_lmms": 78.25}, "limited": True},
               "mmbench_en_dev": {"metrics": {"circular_accuracy": 40.0, "accuracy": 61.0}}}
    _run(runs / "a", "superclass", battery)
    _run(runs / "b", "random:sc-vit-tiny", {"pope": {"metrics": {"f1": 66.67, "f1_lmms": 0.0}},
                                           "scienceqa_img": {"metrics": {"accuracy": 30.0, "accuracy_lmms_v03": 35.0}}})
    _run(runs / "c", "clip", {"coco_caption": {"metrics": {"cider": 50.0}}})   # no battery: no row
    out = tmp_path / "report"
    assert main(["report", str(runs), "--output", str(out), "--no-plots"]) == 0
    md = (out / "report.md").read_text()
    paper, llava = md.split("Table 11 columns, as the paper scored")[1].split("Table 11 columns, under LLaVA")
    # columns VQAv2 GQA VizWiz T-VQA SciQA MME MMB PoPE MMMU SEED: lmms-eval's rules, then LLaVA's
    assert "| superclass | 69.50 | 56.00 | - | - | - | - | 40.00 | 78.25* | - | - |" in paper
    assert "| random:sc-vit-tiny | - | - | - | - | 35.00 | - | - | 0.00 | - | - |" in paper
    assert "| superclass | 69.50 | 55.00 | - | - | - | - | 40.00 | 80.00* | - | - |" in llava
    assert "| random:sc-vit-tiny | - | - | - | - | 30.00 | - | - | 66.67 | - | - |" in llava
    assert "clip" not in paper + llava
    assert "PoPE `f1_lmms` = lmms-eval, the three splits pooled" in paper
    assert "PoPE `f1` = LLaVA's eval_pope, mean of the three splits" in llava
