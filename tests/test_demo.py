"""The demo's stage bookkeeping: a finished stage is reused, a failed one says how to resume."""
import pytest

import sc_eval.cli
from sc_eval.demo import _stage
from sc_eval.errors import ScEvalError


@pytest.fixture
def folder(tmp_path):
    from PIL import Image

    root = tmp_path / "cls"
    for split in ("train", "test"):
        for name, colour in (("red", (220, 30, 30)), ("blue", (30, 30, 220))):
            d = root / split / name
            d.mkdir(parents=True)
            for i in range(3):
                Image.new("RGB", (32, 32), tuple(max(0, c - 20 * i) for c in colour)).save(d / f"{i}.png")
    return root


def test_finished_stage_is_reused_not_rerun(tmp_path, folder, monkeypatch):
    argv = ["probe", "--encoder", "random:sc-vit-micro", "--data", str(folder), "--tasks", "fewshot",
            "--shots", "2", "--seeds", "1"]
    run = _stage("probe-random", tmp_path / "demo", argv)
    assert (run / "results.json").exists() and (run / ".done").exists()

    def must_not_run(argv):
        raise AssertionError(f"stage ran again: {argv}")

    monkeypatch.setattr(sc_eval.cli, "main", must_not_run)
    assert _stage("probe-random", tmp_path / "demo", argv) == run


def test_failed_stage_names_its_log_and_how_to_resume(tmp_path, folder):
    argv = ["probe", "--encoder", "random:sc-vit-micro", "--data", str(folder), "--tasks", "fewshot",
            "--shots", "5"]  # more shots than any class has: the command exits 2
    with pytest.raises(ScEvalError, match="rerun `sc-eval demo` to resume") as e:
        _stage("probe-bad", tmp_path / "demo", argv)
    assert "probe-bad" in str(e.value)
    assert not (tmp_path / "demo" / "probe-bad" / ".done").exists()
