"""The evaluation runner: predictions, resume after a kill, fingerprints, sharding, scoring."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from sc_eval.evaluation import tasks as tasks_api
from sc_eval.cli import main
from sc_eval.errors import ConfigError
from sc_eval.evaluation.runner import evaluate

FIXTURES = Path(__file__).parent / "fixtures" / "tasks"
WORDS = ["cat", "dog", "box", "sun", "axe", "red", "fox", "hat", "ink", "jar", "key"]


class Upper:
    """Answers word.upper(), except for words with an 'x' (answered lower-case: wrong)."""

    def __init__(self, fail_after=None):
        self.calls = 0
        self.seen = []
        self.fail_after = fail_after

    def fingerprint(self):
        return "upper-v1"

    def predict(self, docs, task):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise KeyboardInterrupt("simulated interruption")
        self.calls += 1
        self.seen += [d["doc_id"] for d in docs]
        if task.name == "toy_len":
            return [str(len(d["word"])) for d in docs]
        return [d["word"] if "x" in d["word"] else d["word"].upper() for d in docs]


@pytest.fixture
def data_root(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    with open(root / "toy.jsonl", "w") as f:
        for i, w in enumerate(WORDS):
            f.write(json.dumps({"doc_id": 100 + i, "word": w, "answer": w.upper(), "image": f"img/{i}.png"}) + "\n")
    return root


def toy(name="toy_upper"):
    return tasks_api.resolve(name, [FIXTURES])


def test_evaluate_scores_and_writes_the_run_dir(tmp_path, data_root):
    run = tmp_path / "run"
    res = evaluate(toy(), Upper(), run, data_root, batch_size=4, progress=False)
    entry = res["results"]["toy_upper"]
    # 3 of 11 words contain an x (box, axe, fox): 8/11 right.
    assert entry["metrics"]["exact"] == pytest.approx(100 * 8 / 11)
    assert entry["n_docs"] == {"total": 11, "evaluated": 11}
    assert entry["limited"] is False
    lines = [json.loads(x) for x in (run / "predictions" / "toy_upper.jsonl").read_text().splitlines()]
    assert [r["doc_id"] for r in lines] == [str(100 + i) for i in range(11)]
    assert lines[0] == {"doc_id": "100", "task": "toy_upper", "prompt": "Say cat loudly.",
                        "image": "img/0.png", "prediction": "CAT", "targets": "CAT", "scores": {"exact": 1.0}}
    on_disk = json.loads((run / "results.json").read_text())
    assert on_disk["results"]["toy_upper"]["metrics"] == entry["metrics"]
    assert on_disk["schema_version"] == 1 and on_disk["versions"]["torch"]
    # 8 ones and 3 zeros: sample variance (8*(3/11)^2 + 3*(8/11)^2) / 10 = 264/1210, over sqrt(11)
    assert entry["stderr"] == {"exact": pytest.approx(100 * (264 / 1210 / 11) ** 0.5)}
    assert on_disk["results"]["toy_upper"]["stderr"] == entry["stderr"]
    assert "| toy_upper | exact | 72.73 | 14.08 | 11/11 |" in (run / "results.md").read_text()


def test_limit_is_flagged(tmp_path, data_root):
    res = evaluate(toy(), Upper(), tmp_path / "run", data_root, limit=5, progress=False)
    e = res["results"]["toy_upper"]
    assert e["n_docs"] == {"total": 11, "evaluated": 5} and e["limited"] is True
    assert e["metrics"]["exact"] == pytest.approx(100 * 3 / 5)  # cat dog box sun axe
    assert "not comparable" in (tmp_path / "run" / "results.md").read_text()


def test_interrupted_run_resumes_without_recomputing(tmp_path, data_root):
    full = evaluate(toy(), Upper(), tmp_path / "full", data_root, batch_size=3, progress=False)
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        evaluate(toy(), Upper(fail_after=2), run, data_root, batch_size=3, progress=False)
    assert len((run / "predictions" / "toy_upper.jsonl").read_text().splitlines()) == 6
    # a kill in the middle of a write leaves a torn last line: it must not break the resume
    with open(run / "predictions" / "toy_upper.jsonl", "a") as f:
        f.write('{"doc_id": "106", "task": "toy_up')
    again = Upper()
    res = evaluate(toy(), again, run, data_root, batch_size=3, progress=False)
    assert again.seen == [str(100 + i) for i in range(6, 11)]
    assert res["results"]["toy_upper"]["metrics"] == full["results"]["toy_upper"]["metrics"]
    assert (run / "predictions" / "toy_upper.jsonl").read_text() == \
        (tmp_path / "full" / "predictions" / "toy_upper.jsonl").read_text()


def test_a_whole_last_record_without_its_newline_is_kept_on_resume(tmp_path, data_root):
    """Killed between a record and its newline: the record counts as done and is not lost."""
    full = evaluate(toy(), Upper(), tmp_path / "full", data_root, batch_size=3, progress=False)
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        evaluate(toy(), Upper(fail_after=2), run, data_root, batch_size=3, progress=False)
    preds = run / "predictions" / "toy_upper.jsonl"
    preds.write_bytes(preds.read_bytes()[:-1])  # the 6th record stays whole, its newline gone
    again = Upper()
    res = evaluate(toy(), again, run, data_root, batch_size=3, progress=False)
    assert again.seen == [str(100 + i) for i in range(6, 11)]
    assert res["results"]["toy_upper"]["metrics"] == full["results"]["toy_upper"]["metrics"]
    assert preds.read_text() == (tmp_path / "full" / "predictions" / "toy_upper.jsonl").read_text()


def test_sigkill_mid_run_then_resume_equals_uninterrupted(tmp_path, data_root):
    run = tmp_path / "run"
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_runner import Upper, toy
        from sc_eval.evaluation.runner import evaluate
        class Slow(Upper):
            def predict(self, docs, task):
                if self.calls >= 2:
                    time.sleep(60)
                return super().predict(docs, task)
        evaluate(toy(), Slow(), {str(run)!r}, {str(data_root)!r}, batch_size=2, progress=False)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script])
    pred = run / "predictions" / "toy_upper.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline:
        if pred.exists() and len(pred.read_text().splitlines()) >= 4:
            break
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert len(pred.read_text().splitlines()) == 4
    resumed = Upper()
    res = evaluate(toy(), resumed, run, data_root, batch_size=2, progress=False)
    assert resumed.seen == [str(100 + i) for i in range(4, 11)]
    full = evaluate(toy(), Upper(), tmp_path / "full", data_root, batch_size=5, progress=False)
    assert res["results"]["toy_upper"]["metrics"] == full["results"]["toy_upper"]["metrics"]


def test_changed_fingerprint_is_refused_unless_overwrite(tmp_path, data_root):
    run = tmp_path / "run"
    evaluate(toy(), Upper(), run, data_root, progress=False)

    class Other(Upper):
        def fingerprint(self):
            return "other"

        def predict(self, docs, task):
            return ["?" for _ in docs]

    with pytest.raises(ConfigError, match="--overwrite"):
        evaluate(toy(), Other(), run, data_root, progress=False)
    res = evaluate(toy(), Other(), run, data_root, overwrite=True, progress=False)
    assert res["results"]["toy_upper"]["metrics"]["exact"] == 0.0


def test_results_json_keeps_other_tasks(tmp_path, data_root):
    run = tmp_path / "run"
    evaluate(toy("toy_len"), Upper(), run, data_root, progress=False)
    res = evaluate(toy("toy_upper"), Upper(), run, data_root, progress=False)
    assert set(res["results"]) == {"toy_len", "toy_upper"}
    assert res["results"]["toy_len"]["metrics"]["exact"] == 100.0


def test_task_names_aliases_groups_and_did_you_mean():
    assert [t.name for t in toy("toy")] == ["toy_upper"]
    assert [t.name for t in toy("toys")] == ["toy_len", "toy_upper"]
    assert [t.name for t in toy("toy_len,toys")] == ["toy_len", "toy_upper"]
    with pytest.raises(ConfigError, match="did you mean 'toy_upper'"):
        toy("toy_uper")


def test_score_command_reads_official_formats(tmp_path, data_root, capsys):
    preds = tmp_path / "preds.json"
    preds.write_text(json.dumps([{"question_id": 100, "answer": "CAT"}, {"question_id": 101, "answer": "dog"}]))
    out = tmp_path / "scores.json"
    rc = main(["score", "toy", "--predictions", str(preds), "--annotations", str(data_root / "toy.jsonl"),
               "--include-tasks", str(FIXTURES), "--output", str(out)])
    assert rc == 0
    got = json.loads(out.read_text())
    assert got["task"] == "toy_upper" and got["n_docs"] == 2 and got["metrics"] == {"exact": 50.0}
    # LLaVA answer jsonl
    llava = tmp_path / "answers.jsonl"
    llava.write_text("".join(json.dumps({"question_id": 100 + i, "text": w.upper()}) + "\n" for i, w in enumerate(WORDS)))
    assert main(["score", "toy", "--predictions", str(llava), "--annotations", str(data_root / "toy.jsonl"),
                 "--include-tasks", str(FIXTURES), "--output", str(out)]) == 2  # an existing file is kept
    assert json.loads(out.read_text())["n_docs"] == 2
    assert main(["score", "toy", "--predictions", str(llava), "--annotations", str(data_root / "toy.jsonl"),
                 "--include-tasks", str(FIXTURES), "--output", str(out), "--overwrite"]) == 0
    assert json.loads(out.read_text())["metrics"] == {"exact": 100.0}


def test_score_command_names_bad_input(tmp_path, data_root, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question_id": 100, "text": "CAT"}\n{"question_id": 101, "text": \n')
    rc = main(["score", "toy", "--predictions", str(bad), "--annotations", str(data_root / "toy.jsonl"),
               "--include-tasks", str(FIXTURES)])
    assert rc == 2
    assert f"{bad}:2: malformed JSON line" in capsys.readouterr().err
    unknown = tmp_path / "u.json"
    unknown.write_text(json.dumps([{"question_id": 999, "answer": "x"}]))
    assert main(["score", "toy", "--predictions", str(unknown), "--annotations", str(data_root / "toy.jsonl"),
                 "--include-tasks", str(FIXTURES)]) == 2
    assert "'999'" in capsys.readouterr().err
    bom = tmp_path / "bom.json"  # a results list saved by an editor that writes a byte-order mark
    bom.write_bytes(b"\xef\xbb\xbf" + json.dumps([{"question_id": 100, "answer": "CAT"}]).encode())
    assert main(["score", "toy", "--predictions", str(bom), "--annotations", str(data_root / "toy.jsonl"),
                 "--include-tasks", str(FIXTURES), "--output", str(tmp_path / "s.json")]) == 0
    assert json.loads((tmp_path / "s.json").read_text())["n_docs"] == 1
    pretty = tmp_path / "pretty.json"
    pretty.write_text(json.dumps({"100": "CAT", "101": "dog"}, indent=2))
    assert main(["score", "toy", "--predictions", str(pretty), "--annotations", str(data_root / "toy.jsonl"),
                 "--include-tasks", str(FIXTURES)]) == 2
    assert "one JSON object over several lines" in capsys.readouterr().err
    empty = tmp_path / "empty.jsonl"  # a run killed before its first answer: not a score of nothing
    empty.write_text("")
    assert main(["score", "toy", "--predictions", str(empty), "--annotations", str(data_root / "toy.jsonl"),
                 "--include-tasks", str(FIXTURES)]) == 2
    assert f"{empty}: no predictions in it" in capsys.readouterr().err


def test_two_ranks_give_the_one_process_result(tmp_path, data_root):
    script = tmp_path / "ranked.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_runner import Upper, toy
        from sc_eval.evaluation.runner import evaluate
        from sc_eval.runtime.dist import init_distributed
        init_distributed("cpu")
        evaluate(toy(), Upper(), sys.argv[1], {str(data_root)!r}, batch_size=2, progress=False)
    """))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                    "--master_port", "29517", str(script), str(tmp_path / "two")], check=True, env=env,
                   capture_output=True)
    one = evaluate(toy(), Upper(), tmp_path / "one", data_root, batch_size=2, progress=False)
    two = json.loads((tmp_path / "two" / "results.json").read_text())
    assert two["results"]["toy_upper"]["metrics"] == one["results"]["toy_upper"]["metrics"]
    assert (tmp_path / "two" / "predictions" / "toy_upper.jsonl").read_text() == \
        (tmp_path / "one" / "predictions" / "toy_upper.jsonl").read_text()
    assert not list((tmp_path / "two" / "predictions").glob("*.rank*.jsonl"))


def test_group_run_skips_tasks_whose_data_is_missing(tmp_path, data_root):
    (tmp_path / "empty").mkdir()
    with pytest.raises(Exception, match="toy.jsonl"):
        evaluate(toy("toys"), Upper(), tmp_path / "strict", tmp_path / "empty", progress=False)
    res = evaluate(toy("toys"), Upper(), tmp_path / "run", tmp_path / "empty", progress=False,
                   skip_missing_data=True)
    assert set(res["results"]) == {"toy_len", "toy_upper"}
    assert all("toy.jsonl" in e["skipped"] for e in res["results"].values())
    assert "skipped:" in (tmp_path / "run" / "results.md").read_text()


def test_a_group_is_told_apart_from_named_tasks():
    assert tasks_api.names_a_group("toys", [FIXTURES])
    assert tasks_api.names_a_group("toy_len,all", [FIXTURES])
    assert not tasks_api.names_a_group("toy_len,toy", [FIXTURES])


def test_all_keeps_only_the_tasks_an_adapter_can_run():
    names = [t.name for t in tasks_api.resolve("all", adapter_kind="caption")]
    assert "coco_caption" in names and "vqav2_val" not in names
    generate = [t.name for t in tasks_api.resolve("all", adapter_kind="generate")]
    assert "vqav2_val" in generate and "coco_caption" not in generate
    with pytest.raises(ConfigError, match="coco_caption is a caption task"):
        tasks_api.resolve("vqav2,coco_caption", adapter_kind="generate")


def test_predictions_stored_with_longer_fingerprints_resume(tmp_path, data_root):
    """A run directory written when the task's and the adapter's fingerprints were cut to 20
    hex characters resumes under 16-character ones; another adapter is still refused."""
    import hashlib

    weights = hashlib.sha256(b"the adapter's weights").hexdigest()

    class Cut(Upper):
        def __init__(self, length, **kw):
            super().__init__(**kw)
            self.length = length

        def fingerprint(self):
            return weights[:self.length]

    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        evaluate(toy(), Cut(16, fail_after=2), run, data_root, batch_size=3, progress=False)
    # what the earlier version wrote beside the 6 predictions made so far
    task = toy()[0]
    old_task_fp = hashlib.sha256(json.dumps({"adapter": weights[:20], **task.describe()},
                                            sort_keys=True).encode()).hexdigest()[:20]
    meta = run / "predictions" / "toy_upper.meta.json"
    meta.write_text(json.dumps({"fingerprint": old_task_fp, **task.describe(), "adapter": weights[:20]}))

    resumed = Cut(16)
    res = evaluate(toy(), resumed, run, data_root, batch_size=3, progress=False)
    assert resumed.seen == [str(100 + i) for i in range(6, 11)]  # the 6 stored predictions kept
    assert res["results"]["toy_upper"]["n_docs"]["evaluated"] == 11
    assert json.loads(meta.read_text())["fingerprint"] == hashlib.sha256(json.dumps(
        {"adapter": weights[:16], **task.describe()}, sort_keys=True).encode()).hexdigest()[:16]

    meta.write_text(json.dumps({"fingerprint": old_task_fp, **task.describe(), "adapter": weights[:20]}))

    class Other(Cut):
        def fingerprint(self):
            return hashlib.sha256(b"other weights").hexdigest()[:16]

    with pytest.raises(ConfigError, match="--overwrite"):
        evaluate(toy(), Other(16), run, data_root, progress=False)
