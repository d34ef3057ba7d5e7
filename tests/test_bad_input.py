"""Bad input, as a new user gives it, across the commands: each gets one clear line naming the
flag or file (exit status 2, no traceback), and nothing already on disk changes.

Every case runs the real command line in-process with the working directory set to the test's
own folder, which also holds a finished run directory that the case points --output-dir at;
that whole folder is hashed before and after. Most cases stop before any model is built.
"""
import hashlib
import json
import os
import struct
from pathlib import Path

import pytest

from sc_eval.cli import main

FIXTURES = Path(__file__).parent / "fixtures" / "tasks"
MICRO = "random:sc-vit-micro"


# -- what each case is given ---------------------------------------------------------------------
def _safetensors(path: Path, **tensors) -> Path:
    import torch
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: torch.zeros(*v) for k, v in (tensors or {"w": (8, 8)}).items()}, str(path))
    return path


def _cut(path: Path, keep: int = -16) -> None:
    path.write_bytes(path.read_bytes()[:keep])


def _llava_adapter(d: Path) -> Path:
    (d / "lora").mkdir(parents=True)
    (d / "config.json").write_text(json.dumps({
        "encoder": MICRO, "encoder_fingerprint": "", "llm": str(d / "no-llm"), "projector": "linear",
        "select_layer": -2, "template": "vicuna_v1", "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
        "full_finetune": False, "format_version": 1}))
    _safetensors(d / "projector.safetensors", **{"proj.weight": (16, 32)})
    (d / "lora" / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 4}))
    _safetensors(d / "lora" / "adapter_model.safetensors", a=(4, 16), b=(16, 4))
    return d


def _clipcap_adapter(d: Path) -> Path:
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps({"format": "sc-eval-clipcap", "mapper": {"kind": "mlp"},
                                               "lm": str(d / "no-lm"), "lm_frozen": True}))
    _safetensors(d / "mapper.safetensors")
    return d


def _toy_data(tmp: Path) -> Path:
    root = tmp / "toy"
    root.mkdir()
    words = ["cat", "dog", "box"]
    root.joinpath("toy.jsonl").write_text("".join(
        json.dumps({"doc_id": 100 + i, "word": w, "answer": w.upper()}) + "\n" for i, w in enumerate(words)))
    return root


def _preds(tmp: Path, records, name="preds.jsonl") -> Path:
    p = tmp / name
    p.write_text("".join(json.dumps(r) + "\n" for r in records))
    return p


def _evil_tasks(tmp: Path) -> Path:
    folder = tmp / "evil" / "evil"
    folder.mkdir(parents=True)
    (folder / "evil.yaml").write_text("task: ../../../somewhere\ndata: {loader: load_docs}\n")
    return tmp / "evil"


def _image(path: Path, colour) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (32, 32), colour).save(path)


def _unseen_class(tmp: Path) -> Path:
    root = tmp / "cls"
    for split, cls in (("train", "red"), ("train", "green"), ("test", "red"), ("test", "green"), ("test", "blue")):
        for i in range(2):
            _image(root / split / cls / f"{i}.png", {"red": (220, 0, 0), "green": (0, 200, 0), "blue": (0, 0, 220)}[cls])
    return root


def _encoder_dir(tmp: Path, encoder_template: Path) -> Path:
    import shutil

    out = tmp / "enc"
    shutil.copytree(encoder_template, out)
    return out


def setup(kind: str, tmp: Path, encoder_template: Path) -> dict:
    """Extra placeholders a case's argv names ({adapter}, {preds}, ...)."""
    if kind == "llava_adapter_cut_projector":
        a = _llava_adapter(tmp / "adapter")
        _cut(a / "projector.safetensors")
        return {"adapter": a}
    if kind == "llava_adapter_no_projector":
        a = _llava_adapter(tmp / "adapter")
        (a / "projector.safetensors").unlink()
        return {"adapter": a}
    if kind == "llava_adapter_cut_lora":
        a = _llava_adapter(tmp / "adapter")
        _cut(a / "lora" / "adapter_model.safetensors", 40)
        return {"adapter": a}
    if kind == "llava_adapter_no_lora_dir":
        a = _llava_adapter(tmp / "adapter")
        for p in (a / "lora").iterdir():
            p.unlink()
        (a / "lora").rmdir()
        return {"adapter": a}
    if kind == "llava_adapter_bad_json":
        a = _llava_adapter(tmp / "adapter")
        (a / "config.json").write_text('{"encoder": "x",\n "projector": ')
        return {"adapter": a}
    if kind == "llava_adapter":
        return {"adapter": _llava_adapter(tmp / "adapter")}
    if kind == "llava_adapter_deep_layer":
        a = _llava_adapter(tmp / "adapter")
        cfg = json.loads((a / "config.json").read_text())
        (a / "config.json").write_text(json.dumps({**cfg, "select_layer": -9}))
        return {"adapter": a}
    if kind == "clipcap_adapter":
        return {"adapter": _clipcap_adapter(tmp / "adapter")}
    if kind == "clipcap_adapter_cut_mapper":
        a = _clipcap_adapter(tmp / "adapter")
        _cut(a / "mapper.safetensors", 9)
        return {"adapter": a}
    if kind == "adapter_is_a_file":
        (tmp / "adapter.json").write_text("{}")
        return {"adapter": tmp / "adapter.json"}
    if kind == "encoder_cut":
        enc = _encoder_dir(tmp, encoder_template)
        _cut(enc / "model.safetensors", 1000)
        return {"encoder": enc}
    if kind == "encoder_no_weights":
        enc = _encoder_dir(tmp, encoder_template)
        (enc / "model.safetensors").unlink()
        return {"encoder": enc}
    if kind == "unseen_class":
        return {"data": _unseen_class(tmp)}
    if kind.startswith("score"):
        toy = _toy_data(tmp)
        extra = {"ann": toy / "toy.jsonl"}
        if kind == "score_binary":
            (tmp / "preds.bin").write_bytes(bytes(range(256)) * 8)
            extra["preds"] = tmp / "preds.bin"
        elif kind == "score_null":
            extra["preds"] = _preds(tmp, [{"question_id": 100, "text": "CAT"}, {"question_id": 101, "text": None}])
        elif kind == "score_number":
            extra["preds"] = _preds(tmp, [{"question_id": 100, "answer": 3}])
        else:
            extra["preds"] = _preds(tmp, [{"question_id": 100, "text": "CAT"}])
        if kind == "score_existing_output":
            (tmp / "scores.json").write_text('{"kept": true}\n')
        if kind == "score_output_dir":
            (tmp / "scores").mkdir()
        return extra
    if kind == "evil_tasks":
        return {"evil": _evil_tasks(tmp), **setup("score", tmp, encoder_template)}
    if kind == "report_file":
        (tmp / "rep.txt").write_text("an earlier report\n")
        return {}
    if kind == "world_file":
        (tmp / "world.txt").write_text("not a folder\n")
        return {}
    if kind == "config_batch0":
        (tmp / "c.yaml").write_text("batch-size: 0\n")
        return {}
    if kind == "config_negative_lr":
        (tmp / "c.yaml").write_text("lr: -0.5\n")
        return {}
    if kind == "templates_binary":
        (tmp / "templates.txt").write_bytes(b"\xff\xfe\x00bad")
        return {}
    raise KeyError(kind)


# (id, setup, argv, fragments the one-line error must hold)
CASES = [
    # batch sizes of 0, on every command that takes one
    ("probe-batch-0", None, ["probe", "--encoder", MICRO, "--batch-size", "0"], ["--batch-size", "'0'"]),
    ("caption-batch-0", None, ["caption", "--encoder", MICRO, "--batch-size", "0"], ["--batch-size"]),
    ("llava-batch-0", None, ["llava", "--encoder", MICRO, "--batch-size", "0"], ["--batch-size"]),
    ("pretrain-batch-0", None, ["pretrain", "--batch-size", "0"], ["--batch-size"]),
    ("zeroshot-batch-0", None, ["zeroshot", "--encoder", MICRO, "--batch-size", "0"], ["--batch-size"]),
    ("demo-batch-0", None, ["demo", "--batch-size", "0"], ["--batch-size"]),
    ("llava-eval-batch-0", None, ["llava", "--encoder", MICRO, "--eval-batch-size", "0"], ["--eval-batch-size"]),
    ("caption-decode-batch-0", None, ["caption", "--encoder", MICRO, "--decode-batch-size", "0"],
     ["--decode-batch-size"]),
    # --limit: -1 used to mean "all docs but the last"
    ("probe-limit-neg", None, ["probe", "--encoder", MICRO, "--limit", "-1"], ["--limit", "'-1'"]),
    ("llava-limit-neg", None, ["llava", "--encoder", MICRO, "--limit", "-1"], ["--limit"]),
    ("caption-limit-0", None, ["caption", "--encoder", MICRO, "--limit", "0"], ["--limit", "whole split"]),
    ("llava-limit-text", None, ["llava", "--encoder", MICRO, "--limit", "ten"], ["--limit", "'ten'"]),
    # learning rates and other ranges
    ("pretrain-lr-neg", None, ["pretrain", "--lr=-1e-3"], ["--lr", "> 0", "-1e-3"]),
    ("probe-lr-neg", None, ["probe", "--encoder", MICRO, "--lr", "-0.1"], ["--lr"]),
    ("zeroshot-lr-0", None, ["zeroshot", "--encoder", MICRO, "--lr", "0"], ["--lr"]),
    ("caption-lr-neg", None, ["caption", "--encoder", MICRO, "--lr=-2e-5"], ["--lr"]),
    ("llava-stage1-lr-neg", None, ["llava", "--encoder", MICRO, "--stage1-lr=-1e-3"], ["--stage1-lr"]),
    ("llava-stage2-lr-nan", None, ["llava", "--encoder", MICRO, "--stage2-lr", "nan"], ["--stage2-lr"]),
    ("llava-projector-lr-inf", None, ["llava", "--encoder", MICRO, "--projector-lr", "inf"], ["--projector-lr"]),
    ("pretrain-steps-neg", None, ["pretrain", "--steps", "-5"], ["--steps"]),
    ("llava-stage2-steps-0", None, ["llava", "--encoder", MICRO, "--stage2-steps", "0"], ["--stage2-steps"]),
    ("zeroshot-steps-0", None, ["zeroshot", "--encoder", MICRO, "--steps", "0"], ["--steps"]),
    ("caption-steps-neg", None, ["caption", "--encoder", MICRO, "--steps", "-1"], ["--steps"]),
    ("probe-epochs-0", None, ["probe", "--encoder", MICRO, "--epochs", "0"], ["--epochs"]),
    ("probe-shots-0", None, ["probe", "--encoder", MICRO, "--shots", "0"], ["--shots"]),
    ("probe-seeds-0", None, ["probe", "--encoder", MICRO, "--seeds", "0"], ["--seeds"]),
    ("probe-wd-neg", None, ["probe", "--encoder", MICRO, "--probe-wd", "-1"], ["--probe-wd"]),
    ("llava-lora-dropout-1.5", None, ["llava", "--encoder", MICRO, "--lora-dropout", "1.5"], ["--lora-dropout"]),
    ("llava-grad-accum-0", None, ["llava", "--encoder", MICRO, "--grad-accum", "0"], ["--grad-accum"]),
    ("pretrain-beta2-1", None, ["pretrain", "--beta2", "1"], ["--beta2"]),
    ("pretrain-workers-neg", None, ["pretrain", "--workers", "-1"], ["--workers"]),
    ("caption-beam-0", None, ["caption", "--encoder", MICRO, "--beam", "0"], ["--beam"]),
    ("world-size-neg", None, ["world", "--out", "w", "--pretrain", "-5"], ["--pretrain"]),
    ("demo-pretrain-steps-0", None, ["demo", "--pretrain-steps", "0"], ["--pretrain-steps"]),
    # a config file's values meet the same checks as the flags
    ("config-batch-0", "config_batch0", ["probe", "--encoder", MICRO, "--config", "c.yaml"], ["c.yaml", "batch-size"]),
    ("config-lr-neg", "config_negative_lr", ["zeroshot", "--encoder", MICRO, "--config", "c.yaml"], ["c.yaml", "lr"]),
    # devices
    ("device-typo", None, ["probe", "--encoder", MICRO, "--device", "gpu"], ["--device gpu"]),
    ("device-cuda-absent", "needs_no_gpu", ["probe", "--encoder", MICRO, "--device", "cuda"], ["--device cuda", "cpu"]),
    ("device-cuda-index", "needs_no_gpu", ["llava", "--encoder", MICRO, "--device", "cuda:3"], ["--device cuda:3"]),
    # damaged or foreign artefacts
    ("llava-adapter-cut-projector", "llava_adapter_cut_projector",
     ["llava", "--encoder", MICRO, "--adapter", "{adapter}"], ["projector.safetensors", "cut short"]),
    ("llava-adapter-no-projector", "llava_adapter_no_projector",
     ["llava", "--encoder", MICRO, "--adapter", "{adapter}"], ["projector.safetensors", "missing"]),
    ("llava-adapter-cut-lora", "llava_adapter_cut_lora",
     ["llava", "--encoder", MICRO, "--adapter", "{adapter}"], ["adapter_model.safetensors"]),
    ("llava-adapter-no-lora", "llava_adapter_no_lora_dir",
     ["llava", "--encoder", MICRO, "--adapter", "{adapter}"], ["lora/ is missing"]),
    ("llava-adapter-bad-json", "llava_adapter_bad_json",
     ["llava", "--encoder", MICRO, "--adapter", "{adapter}"], ["config.json", "not valid JSON"]),
    ("llava-select-layer-beyond-depth", None,
     ["llava", "--encoder", MICRO, "--llm", "random:llama-tiny", "--select-layer", "4"],
     ["--select-layer 4", "out of range", "2 blocks"]),
    ("llava-adapter-layer-beyond-depth", "llava_adapter_deep_layer",
     ["llava", "--encoder", MICRO, "--adapter", "{adapter}"], ["select_layer", "config.json", "-9", "2 blocks"]),
    ("llava-given-clipcap-adapter", "clipcap_adapter",
     ["llava", "--encoder", MICRO, "--adapter", "{adapter}"], ["{adapter}", "ClipCap", "sc-eval caption"]),
    ("caption-given-llava-adapter", "llava_adapter",
     ["caption", "--encoder", MICRO, "--adapter", "{adapter}"], ["{adapter}", "LLaVA adapter"]),
    ("caption-adapter-cut-mapper", "clipcap_adapter_cut_mapper",
     ["caption", "--encoder", MICRO, "--adapter", "{adapter}"], ["mapper.safetensors"]),
    ("caption-adapter-is-a-file", "adapter_is_a_file",
     ["caption", "--encoder", MICRO, "--adapter", "{adapter}"], ["adapter.json", "not a directory"]),
    ("probe-encoder-cut", "encoder_cut",
     ["probe", "--encoder", "{encoder}", "--data", "{world}/classification", "--tasks", "linear"],
     ["model.safetensors"]),
    ("probe-encoder-no-weights", "encoder_no_weights",
     ["probe", "--encoder", "{encoder}", "--data", "{world}/classification", "--tasks", "linear"],
     ["model.safetensors"]),
    # data a run would score on nothing or on the impossible
    ("probe-class-not-in-train", "unseen_class",
     ["probe", "--encoder", MICRO, "--data", "{data}", "--tasks", "linear"], ["'blue'", "no train images"]),
    ("zeroshot-templates-binary", "templates_binary",
     ["zeroshot", "--encoder", MICRO, "--templates", "templates.txt"], ["templates.txt"]),
    # score: what it reads and what it writes
    ("score-binary-predictions", "score_binary",
     ["score", "toy", "--predictions", "{preds}", "--annotations", "{ann}", "--include-tasks", str(FIXTURES)],
     ["preds.bin", "not"]),
    ("score-predictions-dir", "score",
     ["score", "toy", "--predictions", "{tmp}", "--annotations", "{ann}", "--include-tasks", str(FIXTURES)],
     ["--predictions", "directory"]),
    ("score-output-dir", "score_output_dir",
     ["score", "toy", "--predictions", "{preds}", "--annotations", "{ann}", "--include-tasks", str(FIXTURES),
      "--output", "scores"], ["--output scores", "directory"]),
    ("score-output-exists", "score_existing_output",
     ["score", "toy", "--predictions", "{preds}", "--annotations", "{ann}", "--include-tasks", str(FIXTURES),
      "--output", "scores.json"], ["--output scores.json", "--overwrite"]),
    ("score-output-is-predictions", "score",
     ["score", "toy", "--predictions", "{preds}", "--annotations", "{ann}", "--include-tasks", str(FIXTURES),
      "--output", "{preds}", "--overwrite"], ["predictions file itself"]),
    ("score-null-prediction", "score_null",
     ["score", "toy", "--predictions", "{preds}", "--annotations", "{ann}", "--include-tasks", str(FIXTURES)],
     ["preds.jsonl", "not strings", "'101'", "null"]),
    ("score-number-prediction", "score_number",
     ["score", "toy", "--predictions", "{preds}", "--annotations", "{ann}", "--include-tasks", str(FIXTURES)],
     ["preds.jsonl", "not strings"]),
    ("score-annotations-dir", "score",
     ["score", "vqav2_val", "--predictions", "{preds}", "--annotations", "{tmp}"], ["{tmp}/vqav2", "not found"]),
    # names that would become paths outside their folders
    ("task-name-escapes", "evil_tasks",
     ["score", "toy", "--predictions", "{preds}", "--annotations", "{ann}", "--include-tasks", "{evil}"],
     ["evil.yaml", "../../../somewhere"]),
    ("ls-task-name-escapes", "evil_tasks", ["ls", "tasks", "--include-tasks", "{evil}"], ["evil.yaml"]),
    # world
    ("world-out-is-a-file", "world_file", ["world", "--out", "world.txt"], ["--out world.txt", "file"]),
    ("world-out-below-a-file", "world_file", ["world", "--out", "world.txt/w"], ["world.txt", "file"]),
    # the run directory lives on after any of these: a finished run given to each run command
    ("report-file-as-run", None, ["report", "run/results.json", "--output", "rep"], ["results.json", "file"]),
    ("report-missing-run", None, ["report", "nowhere", "--output", "rep"], ["nowhere"]),
    ("report-output-is-a-file", "report_file", ["report", "run", "--output", "rep.txt"], ["--output rep.txt", "file"]),
]
RUN_COMMANDS = {"probe", "caption", "llava", "pretrain", "zeroshot", "demo"}


@pytest.fixture(scope="module")
def encoder_template(tmp_path_factory):
    from sc_eval.encoders import save_encoder_dir
    from sc_eval.models.vit import create_vit

    return save_encoder_dir(create_vit("sc-vit-micro"), "sc-vit-micro", tmp_path_factory.mktemp("enc") / "enc")


def _finished_run(run: Path) -> None:
    """What a finished evaluation leaves behind."""
    (run / "predictions").mkdir(parents=True)
    (run / "config.yaml").write_text("command: probe\nencoder: random:sc-vit-micro\n")
    (run / "argv.txt").write_text("sc-eval probe --encoder random:sc-vit-micro\n")
    (run / "log.txt").write_text("2024-01-01 00:00:00 INFO sc_eval: done\n")
    (run / "results.json").write_text(json.dumps({"schema_version": 1, "results": {
        "probe_linear": {"metrics": {"top1": 50.0}, "n_docs": {"total": 2, "evaluated": 2},
                         "predictions": "predictions/probe_linear.jsonl"}}}))
    (run / "predictions" / "probe_linear.jsonl").write_text('{"doc_id": "a", "prediction": "red"}\n')


def snapshot(root: Path) -> dict:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            out[os.path.relpath(os.path.join(dirpath, d), root)] = "dir"
        for f in filenames:
            p = os.path.join(dirpath, f)
            out[os.path.relpath(p, root)] = hashlib.sha256(Path(p).read_bytes()).hexdigest()
    return out


def run_cli(argv, capsys) -> tuple[int, str]:
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse's own refusals
        rc = e.code
    except Exception as e:  # noqa: BLE001 - what a user would see as a traceback
        pytest.fail(f"sc-eval {' '.join(argv)} raised {type(e).__name__}: {e}")
    return rc, capsys.readouterr().err


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_clear_error_and_changes_nothing(case, tmp_path, monkeypatch, capsys, tiny_world,
                                                          encoder_template):
    name, kind, argv, fragments = case
    if kind == "needs_no_gpu":
        import torch

        if torch.cuda.is_available():
            pytest.skip("a GPU is present: --device cuda is valid here")
        kind = None
    monkeypatch.chdir(tmp_path)
    _finished_run(tmp_path / "run")
    places = {"tmp": tmp_path, "world": tiny_world, "run": tmp_path / "run"}
    if kind:
        places.update(setup(kind, tmp_path, encoder_template))
    fill = {k: str(v) for k, v in places.items()}
    argv = [a.format(**fill) for a in argv]
    if argv[0] in RUN_COMMANDS:
        argv += ["--output-dir", str(tmp_path / "run")]
    before = snapshot(tmp_path)

    rc, err = run_cli(argv, capsys)

    assert rc == 2, f"exit {rc}; stderr:\n{err}"
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]  # argparse prints its usage line above its error line
    assert last.startswith(("sc-eval: error: ", f"sc-eval {argv[0]}: error: ")), err
    for f in fragments:
        assert f.format(**fill) in last, f"{f!r} not in {last!r}"
    assert snapshot(tmp_path) == before, "a refused command changed files on disk"


def test_the_installed_command_exits_2_without_a_traceback(tmp_path):
    """The same refusal through the real console entry point (exit status as the shell sees it)."""
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "-m", "sc_eval", "probe", "--encoder", MICRO, "--limit", "-1"],
                       capture_output=True, text=True, cwd=tmp_path)
    assert p.returncode == 2 and "Traceback" not in p.stderr and "--limit" in p.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_task_whose_files_hold_no_document_is_not_scored_as_nothing(tmp_path):
    from sc_eval.errors import DataError
    from sc_eval.evaluation.runner import evaluate
    from tests.test_runner import Upper, toy

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "toy.jsonl").write_text("")
    with pytest.raises(DataError, match="toy_upper: its data under .* holds no documents"):
        evaluate(toy(), Upper(), tmp_path / "run", tmp_path / "data", progress=False)
    assert not (tmp_path / "run" / "results.json").exists()
    # in a group, it is skipped with the reason recorded, as missing files are
    res = evaluate(toy("toys"), Upper(), tmp_path / "run", tmp_path / "data", progress=False, skip_missing_data=True)
    assert all("holds no documents" in e["skipped"] for e in res["results"].values())


# -- visible warnings where the command still runs --------------------------------------------------
def test_report_names_each_folder_it_skipped(tmp_path, caplog, capsys):
    run = tmp_path / "runs" / "done"
    _finished_run(run)
    (tmp_path / "empty-run").mkdir()
    (tmp_path / "empty-run" / "log.txt").write_text("killed before its first task\n")
    rc = main(["report", str(run), str(tmp_path / "empty-run"), "--output", str(tmp_path / "rep"), "--no-plots"])
    assert rc == 0
    skipped = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(skipped) == 1 and str(tmp_path / "empty-run") in skipped[0] and "no results.json" in skipped[0]


def test_report_says_a_run_without_scores_is_empty(tmp_path, caplog):
    run = tmp_path / "a"
    _finished_run(run)
    nothing = tmp_path / "b"
    nothing.mkdir()
    (nothing / "results.json").write_text(json.dumps({"schema_version": 1, "results": {
        "vqav2_val": {"skipped": "vqav2/...json: not found", "metrics": {}}}}))
    assert main(["report", str(run), str(nothing), "--output", str(tmp_path / "rep"), "--no-plots"]) == 0
    said = " ".join(r.getMessage() for r in caplog.records)
    assert f"{nothing / 'results.json'} has no scored task" in said and "vqav2_val" in said


def test_all_empty_captions_are_reported_while_pretraining(tmp_path, caplog):
    from PIL import Image

    images = tmp_path / "img"
    images.mkdir()
    rows = []
    for i in range(8):
        Image.new("RGB", (32, 32), (30 * i, 0, 0)).save(images / f"{i}.png")
        rows.append({"image": f"img/{i}.png", "caption": "  "})
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    rc = main(["pretrain", "--model", "sc-vit-micro", "--data", str(tmp_path / "pairs.jsonl"), "--steps", "1",
               "--batch-size", "4", "--workers", "0", "--threads", "1", "--no-progress",
               "--output-dir", str(tmp_path / "run")])
    assert rc == 0
    said = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("every caption is empty" in m and "pairs.jsonl" in m for m in said), said


# -- names read from files stay inside their folders ------------------------------------------------
def test_a_parquet_image_path_outside_its_dataset_folder_is_refused(tmp_path, monkeypatch):
    """An lmms-lab image cell holding only a path is read from inside the download alone."""
    monkeypatch.setenv("SC_EVAL_HOME", str(tmp_path / "home"))  # a cache of this test's own
    import pyarrow as pa
    import pyarrow.parquet as pq

    from sc_eval.evaluation import tasks as tasks_api
    from sc_eval.errors import DataError
    from sc_eval.runtime.home import cache_dir
    from tests.test_lmms_layouts import _vqav2, img

    _, root = _vqav2(tmp_path)
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(img((1, 2, 3), "JPEG"))
    inside = root / "VQAv2" / "pictures" / "a.jpg"
    inside.parent.mkdir()
    inside.write_bytes(img((9, 9, 9), "JPEG"))
    shard = root / "VQAv2" / "data" / "validation-00000-of-00001.parquet"
    table = pq.read_table(shard)
    i = table.schema.get_field_index("image")

    def cells(path):  # every row's image cell: no bytes, only a path
        col = pa.array([{"bytes": None, "path": path}] * table.num_rows, type=table.schema.field(i).type)
        pq.write_table(table.set_column(i, "image", col).replace_schema_metadata(table.schema.metadata), shard)

    task = tasks_api.resolve("vqav2_val")[0]
    cells("pictures/a.jpg")  # inside the download's folder, relative to it: read
    docs = task.load_docs(root)
    assert Path(docs[0]["image"]).read_bytes() == inside.read_bytes()
    for outside in (str(secret), "../../secret.jpg"):
        cells(outside)
        with pytest.raises(DataError, match="outside the dataset folder"):
            task.load_docs(root)
    cached = [p.read_bytes() for p in cache_dir("lmms").rglob("*") if p.is_file()]
    assert secret.read_bytes() not in cached


def test_a_split_name_cannot_climb_out_of_the_dataset_folder(tmp_path):
    from sc_eval.data import lmms
    from sc_eval.errors import DataError

    with pytest.raises(DataError, match="split '../x'"):
        lmms.split_files(tmp_path, "../x")


def test_a_crafted_task_name_writes_nothing_outside(tmp_path, capsys):
    """--include-tasks with `task: ../../../somewhere`: refused where the YAML is read."""
    evil = _evil_tasks(tmp_path)
    toy = _toy_data(tmp_path)
    run = tmp_path / "deep" / "er" / "run"
    before = snapshot(tmp_path)
    rc, err = run_cli(["llava", "--encoder", MICRO, "--tasks", "somewhere", "--include-tasks", str(evil),
                       "--data-root", str(toy), "--output-dir", str(run)], capsys)
    assert rc == 2 and "evil.yaml" in err and "cannot be used as a name" in err
    assert snapshot(tmp_path) == before


# -- safetensors checked whole, by their header ---------------------------------------------------
def test_a_whole_safetensors_file_passes_and_any_cut_fails(tmp_path):
    from sc_eval.runtime.artefacts import check_safetensors
    from sc_eval.errors import CheckpointError

    p = _safetensors(tmp_path / "a.safetensors", w=(3, 5), b=(7,))
    header = check_safetensors(p)
    assert header["w"]["shape"] == [3, 5] and header["b"]["shape"] == [7]
    data = p.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    for keep in (0, 7, 8 + n // 2, 8 + n, len(data) - 1):  # every place a copy can stop
        p.write_bytes(data[:keep])
        with pytest.raises(CheckpointError, match=str(p)):
            check_safetensors(p)
    p.write_bytes(data + b"\0")
    with pytest.raises(CheckpointError, match="longer than its tensors"):
        check_safetensors(p)
