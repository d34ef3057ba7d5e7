"""`sc-eval report`: the comparison table rebuilt from run directories."""
import csv
import json

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


def test_report_on_a_folder_without_results_fails_clearly(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "no results.json under" in capsys.readouterr().err
