"""One writer per run directory: a second is refused at once, a killed one's lock is taken over,
and results.json updates merge instead of overwriting each other."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from sc_eval.runtime import rundir
from sc_eval.errors import ConfigError
from sc_eval.evaluation.results import read_results, update_results
from sc_eval.evaluation.runner import evaluate

TESTS = Path(__file__).parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _writer_script(tmp_path: Path, run: Path, data_root: Path) -> Path:
    """A command that evaluates toy_upper into ``run`` and, after its first batch, waits until the
    file ``go`` appears: it is then mid-run, holding the run directory, for as long as a test likes."""
    script = tmp_path / "first_writer.py"
    script.write_text(textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        sys.path.insert(0, {str(TESTS)!r})
        from test_runner import Upper, toy
        from sc_eval.runtime.rundir import RunDir
        from sc_eval.evaluation.runner import evaluate

        class WaitsAfterOneBatch(Upper):
            def predict(self, docs, task):
                if self.calls == 1:
                    while not Path({str(tmp_path / "go")!r}).exists():
                        time.sleep(0.05)
                return super().predict(docs, task)

        RunDir.create({str(run)!r}, "toy", argv=["toy", "--first"])
        evaluate(toy(), WaitsAfterOneBatch(), {str(run)!r}, {str(data_root)!r}, batch_size=2, progress=False)
    """))
    return script


def _wait_for_lines(path: Path, n: int, proc) -> None:
    deadline = time.time() + 120
    while time.time() < deadline:
        if path.exists() and len(path.read_text().splitlines()) >= n:
            return
        if proc.poll() is not None:
            raise AssertionError(f"the first writer ended early: {proc.stderr.read()}")
        time.sleep(0.05)
    raise AssertionError("the first writer never wrote its first batch")


@pytest.fixture
def data_root(tmp_path):
    from tests.test_runner import WORDS

    root = tmp_path / "data"
    root.mkdir()
    with open(root / "toy.jsonl", "w") as f:
        for i, w in enumerate(WORDS):
            f.write(json.dumps({"doc_id": 100 + i, "word": w, "answer": w.upper()}) + "\n")
    return root


def test_a_second_writer_is_refused_and_nothing_is_lost(tmp_path, data_root):
    from tests.test_runner import Upper, toy

    run = tmp_path / "run"
    first = subprocess.Popen([sys.executable, str(_writer_script(tmp_path, run, data_root))], env=ENV,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    preds = run / "predictions" / "toy_upper.jsonl"
    try:
        _wait_for_lines(preds, 2, first)
        # a second command into the same directory: refused at once, naming the holder
        second = subprocess.run([sys.executable, "-m", "sc_eval", "caption", "--encoder", "random:sc-vit-micro", "--lm", "random:gpt2-tiny",
                                 "--data-root", str(data_root), "--output-dir", str(run)],
                                capture_output=True, text=True, env=ENV, timeout=300)
        assert second.returncode == 2 and "Traceback" not in second.stderr
        line = second.stderr.strip().splitlines()[-1]
        assert line.startswith(f"sc-eval: error: {run}: another sc-eval command is writing this run directory")
        assert f"pid {first.pid} on " in line and "`first_writer.py`" in line and "started 20" in line
        # ... and so is another task evaluated into it from this process (once, results.json lost one)
        with pytest.raises(ConfigError, match=f"pid {first.pid}"):
            evaluate(toy("toy_len"), Upper(), run, data_root, progress=False)
    finally:
        (tmp_path / "go").touch()
        assert first.wait(timeout=120) == 0, first.stderr.read()

    records = [json.loads(x) for x in preds.read_text().splitlines()]
    assert sorted(r["doc_id"] for r in records) == [str(100 + i) for i in range(11)]  # each doc once
    assert (run / "argv.txt").read_text() == "sc-eval toy --first\n"  # the refused command wrote nothing
    assert not (run / "predictions" / "toy_len.jsonl").exists()
    assert read_results(run)["results"]["toy_upper"]["n_docs"]["evaluated"] == 11
    assert (run / rundir.LOCK_NAME).read_text() == ""  # released cleanly: no holder left named
    # now free: the other task runs, and results.json keeps both
    evaluate(toy("toy_len"), Upper(), run, data_root, progress=False)
    assert set(read_results(run)["results"]) == {"toy_upper", "toy_len"}


def test_a_lock_left_by_a_killed_command_is_taken_over(tmp_path, data_root, caplog):
    from tests.test_runner import Upper, toy

    run = tmp_path / "run"
    first = subprocess.Popen([sys.executable, str(_writer_script(tmp_path, run, data_root))], env=ENV,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    preds = run / "predictions" / "toy_upper.jsonl"
    _wait_for_lines(preds, 2, first)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    left = json.loads((run / rundir.LOCK_NAME).read_text())
    assert left["pid"] == first.pid  # the holder's record outlives it; its lock does not

    again = Upper()
    res = evaluate(toy(), again, run, data_root, batch_size=2, progress=False)
    taken = [r.getMessage() for r in caplog.records if "taking over the lock" in r.getMessage()]
    assert len(taken) == 1 and f"pid {first.pid}" in taken[0] and "`first_writer.py`" in taken[0]
    assert again.seen == [str(100 + i) for i in range(2, 11)]  # resumed after the killed run's batch
    assert res["results"]["toy_upper"]["metrics"]["exact"] == pytest.approx(100 * 8 / 11)


def test_results_updates_merge_instead_of_overwriting(tmp_path):
    """A writer holding an old copy of results.json (read before another task was added) adds its
    own task: both survive."""
    from sc_eval.evaluation.results import ResultsFile

    run = tmp_path / "run"
    update_results(run, "first", {"metrics": {"acc": 1.0}})
    stale = ResultsFile(run, {"encoder": "e"})  # holds {"first"} in memory
    update_results(run, "second", {"metrics": {"acc": 2.0}}, {"adapter": "a"})
    stale.put("third", {"metrics": {"top1": 3.0}})
    got = read_results(run)
    assert {k: v["metrics"] for k, v in got["results"].items()} == {
        "first": {"acc": 1.0}, "second": {"acc": 2.0}, "third": {"top1": 3.0}}
    assert got["encoder"] == "e" and got["adapter"] == "a"
    assert "| second | acc | 2.00 |" in (run / "results.md").read_text()


def test_locks_are_reentrant_and_released_by_the_command_that_took_them(tmp_path):
    outer, inner = tmp_path / "demo", tmp_path / "demo" / "stage"
    token = rundir.acquire_lock(outer)
    try:
        mark = rundir.lock_mark()
        rundir.acquire_lock(inner)
        rundir.acquire_lock(outer)  # the same process again: no refusal
        rundir.release_locks(mark)  # what the CLI does when a nested command ends
        assert rundir.holds_lock(outer) and not rundir.holds_lock(inner)
        assert json.loads((outer / rundir.LOCK_NAME).read_text())["pid"] == os.getpid()
        assert (inner / rundir.LOCK_NAME).read_text() == ""
    finally:
        rundir.release_lock(token)
    assert not rundir.holds_lock(outer)


def test_a_refusal_under_torchrun_stops_every_rank(tmp_path, data_root):
    """Rank 0 is refused; the other rank learns it and stops too instead of waiting at a barrier."""
    run = tmp_path / "run"
    script = tmp_path / "ranked.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(TESTS)!r})
        from test_runner import Upper, toy
        from sc_eval.evaluation.runner import evaluate
        from sc_eval.runtime.dist import init_distributed
        init_distributed("cpu")
        evaluate(toy(), Upper(), {str(run)!r}, {str(data_root)!r}, batch_size=2, progress=False)
    """))
    token = rundir.acquire_lock(run)
    try:
        p = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                            "--master_port", "29531", str(script)], env=ENV, capture_output=True, text=True,
                           timeout=240)
    finally:
        rundir.release_lock(token)
    assert p.returncode != 0
    refusals = p.stderr.count("another sc-eval command is writing this run directory")
    assert refusals >= 2, p.stderr[-3000:]  # both ranks raised it
    assert not (run / "predictions").exists()
