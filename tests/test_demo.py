"""The demo's stage bookkeeping: a finished stage is reused, a failed one says how to resume."""
import json
from argparse import Namespace
from pathlib import Path

import pytest

import sc_eval.cli
from sc_eval.demo import tiny_lm
from sc_eval.demo.pipeline import FULL, _budget, _stage, _tiny_lm_flags
from sc_eval.errors import ConfigError, ScEvalError
from tests.test_world import TINY


def test_finished_stage_is_reused_not_rerun(tmp_path, folder, monkeypatch):
    argv = ["probe", "--encoder", "random:sc-vit-micro", "--data", str(folder), "--tasks", "fewshot",
            "--shots", "2", "--seeds", "1"]
    run = _stage("probe-random", tmp_path / "demo", argv)
    assert (run / "results.json").exists() and (run / ".done").exists()

    def must_not_run(argv):
        raise AssertionError(f"stage ran again: {argv}")

    monkeypatch.setattr(sc_eval.cli, "main", must_not_run)
    assert _stage("probe-random", tmp_path / "demo", argv) == run
    (tmp_path / "demo").rename(tmp_path / "moved")  # the output directory is not part of the settings
    assert _stage("probe-random", tmp_path / "moved", argv) == tmp_path / "moved" / "probe-random"


def test_each_stage_logs_into_its_own_run_directory_only(tmp_path, folder):
    argv = ["probe", "--encoder", "random:sc-vit-micro", "--data", str(folder), "--tasks", "fewshot",
            "--shots", "2", "--seeds", "1"]
    first = _stage("probe-a", tmp_path / "demo", argv)
    second = _stage("probe-b", tmp_path / "demo", argv)
    logs = {run.name: (run / "log.txt").read_text() for run in (first, second)}
    # one few-shot result line each: the second stage's lines (and the demo's line announcing it)
    # stay out of the first stage's log
    assert [log.count("sc_eval.adapters.probe.fewshot: 2-shot seed 0") for log in logs.values()] == [1, 1]
    assert "probe-b" not in logs["probe-a"]


def test_failed_stage_names_its_log_and_how_to_resume(tmp_path, folder):
    argv = ["probe", "--encoder", "random:sc-vit-micro", "--data", str(folder), "--tasks", "fewshot",
            "--shots", "5"]  # more shots than any class has: the command exits 2
    with pytest.raises(ScEvalError, match="rerun `sc-eval demo` to resume") as e:
        _stage("probe-bad", tmp_path / "demo", argv)
    assert "probe-bad" in str(e.value)
    assert not (tmp_path / "demo" / "probe-bad" / ".done").exists()


def test_finished_stage_asked_with_other_settings_is_an_error_not_a_reuse(tmp_path, folder):
    argv = ["probe", "--encoder", "random:sc-vit-micro", "--data", str(folder), "--tasks", "fewshot",
            "--shots", "2", "--seeds", "1"]
    run = _stage("probe-random", tmp_path / "demo", argv)
    before = (run / "results.json").read_bytes()
    other = [*argv[:-1], "2"]  # two seeds instead of one
    with pytest.raises(ConfigError, match="finished with other settings") as e:
        _stage("probe-random", tmp_path / "demo", other)
    assert "--seeds 1" in str(e.value) and "--seeds 2" in str(e.value)
    assert (run / "results.json").read_bytes() == before  # nothing rerun or overwritten


def test_marker_without_a_recorded_command_is_still_reused(tmp_path, monkeypatch):
    run = tmp_path / "demo" / "probe-random"
    run.mkdir(parents=True)
    (run / ".done").write_text("12.5 s\n")  # the marker of earlier versions

    def must_not_run(argv):
        raise AssertionError(f"stage ran again: {argv}")

    monkeypatch.setattr(sc_eval.cli, "main", must_not_run)
    assert _stage("probe-random", tmp_path / "demo", ["probe", "--encoder", "random:sc-vit-micro"]) == run


def test_llava_budget_flags_change_only_the_llava_stage():
    base = Namespace(quick=False, llava_steps=None, llava_limit=None)
    assert _budget(base) == FULL
    long = _budget(Namespace(quick=False, llava_steps=1500, llava_limit=0))
    llava = long["llava"]
    assert llava[llava.index("--stage2-steps") + 1] == "1500" and "--limit" not in llava
    assert {k: v for k, v in long.items() if k != "llava"} == {k: v for k, v in FULL.items() if k != "llava"}
    assert FULL["llava"][FULL["llava"].index("--limit") + 1] == "150"  # the defaults are not mutated
    few = _budget(Namespace(quick=True, llava_steps=None, llava_limit=20))["llava"]
    assert few[few.index("--limit") + 1] == "20"
    with pytest.raises(ConfigError, match="--llava-steps"):
        _budget(Namespace(quick=False, llava_steps=0, llava_limit=None))


def test_killed_pretrain_stage_resumes_when_the_demo_is_rerun(tmp_path, monkeypatch):
    from sc_eval.world import build

    real = build.write_world
    monkeypatch.setattr(build, "write_world", lambda out, seed=0, **_: real(out, seed=seed, **TINY))
    monkeypatch.setenv("SC_EVAL_HOME", str(tmp_path / "home"))
    out = tmp_path / "demo"
    argv = ["demo", "--output-dir", str(out), "--encoders", "superclass", "--stages", "pretrain",
            "--pretrain-steps", "2", "--quick", "--device", "cpu"]
    assert sc_eval.cli.main(argv) == 0
    stage = out / "pretrain-superclass"
    (stage / ".done").unlink()  # killed after its last checkpoint, before the marker
    assert sc_eval.cli.main(argv) == 0  # was: "a pretraining run is already there"
    assert (stage / ".done").exists() and (stage / "encoder" / "model.safetensors").exists()
    assert "resumed from" in (stage / "log.txt").read_text()


def test_adapter_stages_are_given_the_tiny_lm_and_record_their_settings_without_it(tmp_path, monkeypatch):
    """ClipCap and LLaVA are given the world's tiny LMs by flag; a stage's recorded settings leave
    the LM's folder out (the world and the seed determine it), so a finished stage is reused
    without the LM being made again."""
    made, ran = [], []
    monkeypatch.setattr(tiny_lm, "ensure_tiny_lm",
                        lambda kind, world, seed: made.append((kind, seed)) or Path(f"/lms/{kind}-{seed}"))
    monkeypatch.setattr(sc_eval.cli, "main", lambda argv: ran.append(argv) or 0)
    world = tmp_path / "world"
    assert _tiny_lm_flags("caption", world, 3)() == ["--lm", "/lms/gpt2-0"]
    assert _tiny_lm_flags("llava", world, 3)() == ["--llm", "/lms/llama-3"]
    made.clear()
    argv = ["llava", "--encoder", "random:sc-vit-micro", "--seed", "3", "--data-root", str(world)]
    out = tmp_path / "demo"
    run = _stage("llava-random", out, argv, _tiny_lm_flags("llava", world, 3))
    assert ran == [[*argv, "--llm", "/lms/llama-3", "--output-dir", str(run)]] and made == [("llama", 3)]
    assert json.loads((run / ".done").read_text())["argv"] == argv
    assert _stage("llava-random", out, argv, _tiny_lm_flags("llava", world, 3)) == run
    assert len(ran) == 1 and len(made) == 1  # reused: neither run nor its LM made again
