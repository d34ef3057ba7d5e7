"""The evaluation runner: docs -> batches -> adapter -> append-only predictions -> scores.

Resume state is the predictions jsonl itself: a rerun skips docs already written. Each task's
fingerprint (adapter + task version + prompt + generation kwargs) is stored beside its
predictions; a different fingerprint is refused unless ``overwrite``. Under torchrun, rank r
takes docs[r::world], writes its own shard file, and rank 0 merges and scores.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Callable

from tqdm import tqdm

from sc_eval.errors import ConfigError, DataError
from sc_eval.evaluation import tasks as tasks_api
from sc_eval.evaluation.predictions import make_record
from sc_eval.evaluation.results import read_results, results_markdown, update_results
from sc_eval.io import AppendLog, atomic_write_json, atomic_write_text, iter_jsonl, read_json
from sc_eval.runtime import dist
from sc_eval.runtime.fingerprint import same
from sc_eval.runtime.rundir import locked

log = logging.getLogger(__name__)


def _read_records(paths) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for p in paths:
        if Path(p).exists():
            for rec in iter_jsonl(p, skip_truncated_tail=True):
                out.setdefault(str(rec["doc_id"]), rec)
    return out


def _same_setup(meta: dict, fp: str, adapter_fp: str, task: tasks_api.Task) -> bool:
    """Whether stored predictions were made with this setup. The task's fingerprint hashes the
    adapter's as text, so one made when the adapter's fingerprint was cut at another length is
    recomputed from the adapter fingerprint stored beside it, once that one is known the same."""
    stored = meta.get("fingerprint")
    if same(stored, fp):
        return True
    old_adapter = meta.get("adapter")
    return (isinstance(old_adapter, str) and same(old_adapter, adapter_fp)
            and same(stored, tasks_api.fingerprint(old_adapter, task)))


def _check_fingerprint(meta_path: Path, pred_paths: list[Path], fp: str, overwrite: bool, task: tasks_api.Task,
                       adapter_fp: str) -> None:
    meta = read_json(meta_path) if meta_path.exists() else None
    if meta and not _same_setup(meta, fp, adapter_fp, task):
        if not overwrite:
            raise ConfigError(
                f"{meta_path.parent}: predictions for {task.name} were made with a different setup "
                f"(fingerprint {meta.get('fingerprint')} != {fp}); use --overwrite to replace them "
                "or another --output-dir")
        for p in pred_paths:
            if p.exists():
                p.unlink()


def _batches(items, size):
    for i in range(0, len(items), size):
        yield items[i:i + size]


def run_task(task: tasks_api.Task, adapter, run_dir: Path, data_root: Path, limit=None,
             batch_size: int = 8, overwrite: bool = False, progress: bool = True,
             docs: list | None = None, score: bool = True) -> dict | None:
    """Predict (resuming) and, on rank 0, score one task (its ``docs`` when already loaded;
    ``score=False``: predictions only, the entry says ``"scored": false``). Returns its results
    entry (rank 0), with ``timing`` (docs predicted by this call, seconds, docs per second)."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ConfigError(f"--limit {limit!r}: give a positive number of docs, or no --limit for the whole split")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch size {batch_size!r}: give a positive number of docs per batch")
    pred_dir = Path(run_dir) / "predictions"
    pred_dir.mkdir(parents=True, exist_ok=True)
    docs = task.load_docs(data_root) if docs is None else docs
    n_total = len(docs)
    if limit is not None:
        docs = docs[:limit]
    r, w = dist.rank(), dist.world_size()
    main_path = pred_dir / f"{task.name}.jsonl"
    shard_paths = sorted(pred_dir.glob(f"{task.name}.rank*.jsonl"))
    meta_path = pred_dir / f"{task.name}.meta.json"
    fp = tasks_api.fingerprint(adapter.fingerprint(), task)
    if r == 0:
        _check_fingerprint(meta_path, [main_path, *shard_paths], fp, overwrite, task, adapter.fingerprint())
        atomic_write_json(meta_path, {"fingerprint": fp, **task.describe(),
                                      "adapter": adapter.fingerprint()})
    dist.barrier()

    done = _read_records([main_path, *sorted(pred_dir.glob(f"{task.name}.rank*.jsonl"))])
    mine = docs[r::w]
    todo = [d for d in mine if d["doc_id"] not in done]
    if todo:
        log.info("%s: %d docs to predict (%d already done)", task.name, len(todo), len(mine) - len(todo))
    my_path = main_path if w == 1 else pred_dir / f"{task.name}.rank{r}.jsonl"
    bar = None
    if progress and r == 0 and todo:
        bar = tqdm(total=len(todo), desc=task.name, unit="doc")
    t0 = time.perf_counter()
    with AppendLog(my_path) as out:
        for batch in _batches(todo, batch_size):
            prompts = [task.prompt_for(d) for d in batch]
            preds = adapter.predict(batch, task)
            if len(preds) != len(batch):
                raise RuntimeError(f"adapter returned {len(preds)} predictions for {len(batch)} docs")
            out.write_many(make_record(task, d, p, str(pred)) for d, p, pred in zip(batch, prompts, preds))
            if bar:
                bar.update(len(batch))
    if bar:
        bar.close()
    seconds = time.perf_counter() - t0
    dist.barrier()
    if r != 0:
        return None

    shards = sorted(pred_dir.glob(f"{task.name}.rank*.jsonl"))
    records_by_id = _read_records([main_path, *shards])
    if shards:  # merge rank files into the main file, in doc order
        merged = [records_by_id[d["doc_id"]] for d in docs if d["doc_id"] in records_by_id]
        atomic_write_text(main_path, "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in merged))
        for s in shards:
            s.unlink()
    records = [records_by_id[d["doc_id"]] for d in docs if d["doc_id"] in records_by_id]
    missing = len(docs) - len(records)
    if missing:
        raise RuntimeError(f"{task.name}: {missing} docs have no prediction after the run")
    records = _rescored(task, docs, records, records_by_id, main_path)
    scored = score and bool(task.metrics or task.aggregate)
    metrics, stderr = task.score_records(records) if scored else ({}, {})
    entry = {
        "metrics": metrics,
        "n_docs": {"total": n_total, "evaluated": len(records)},
        "limited": len(records) < n_total,
        "task_version": task.version,
        "prompt_hash": task.prompt_hash,
        "generation_kwargs": task.generation_kwargs,
        "fingerprint": fp,
        "predictions": str(main_path.relative_to(run_dir)),
        "stderr": stderr,  # {} where the task's scores have none: the report need not look again
    }
    if not score:
        entry["scored"] = False
    if todo:  # rank 0's share; under torchrun the others ran alongside
        entry["timing"] = {"predicted": len(todo), "seconds": round(seconds, 3),
                           "docs_per_s": round(len(todo) / max(seconds, 1e-9), 3), "batch_size": batch_size}
    if task.submission:
        sub = Path(run_dir) / "submissions" / f"{task.name}.json"
        written = task.fn(task.submission)(records, docs, sub)  # may return another path (.xlsx)
        sub = Path(written) if written else sub
        entry["submission"] = str(sub.relative_to(run_dir)) if sub.is_relative_to(run_dir) else str(sub)
    return entry


def _rescored(task, docs: list[dict], records: list[dict], stored: dict, path: Path) -> list[dict]:
    """``records`` with their per-doc scores recomputed from the predictions by the task's
    current scorer. Scores derive from predictions, so a scorer that changed or gained a metric
    since they were written (a resumed or finished run) needs no new predictions, and one run is
    never scored by two rules. Where the stored scores differ, the predictions file is rewritten
    (atomically, every record kept) so that `sc-eval report` reads the same scores."""
    by_id = {d["doc_id"]: d for d in docs}
    fresh = [{**r, "scores": task.score_doc(by_id[r["doc_id"]], r["prediction"])} for r in records]
    if any(a.get("scores") != b["scores"] for a, b in zip(records, fresh)):
        log.info("%s: per-doc scores recomputed from the stored predictions (the scorer changed)", task.name)
        new = {r["doc_id"]: r for r in fresh}
        atomic_write_text(path, "".join(json.dumps(new.get(k, r), ensure_ascii=False) + "\n"
                                        for k, r in stored.items()))
    return fresh


def _docs_or_missing(task, data_root, skip_missing_data: bool):
    """The task's docs; with skip_missing_data, the DataError saying why its data is missing.
    Files that hold no document count as missing: a score of nothing is no score."""
    try:
        docs = task.load_docs(data_root)
        if not docs:
            raise DataError(f"task {task.name}: its data under {data_root} holds no documents; check "
                            "--data-root and that the files are the split this task reads")
        return docs
    except DataError as e:
        if not skip_missing_data:
            raise
        return e


def preload_docs(tasks, data_root, skip_missing_data: bool = False) -> dict:
    """{task name: docs (or, for a group's task, the DataError of its missing data)}, loaded once
    before any training and handed to `evaluate`: a task named outright without its files, or a
    group none of whose tasks has data, fails now instead of after the training."""
    docs = {t.name: _docs_or_missing(t, data_root, skip_missing_data) for t in tasks}
    if docs and all(isinstance(d, DataError) for d in docs.values()):
        raise DataError(f"no data under {data_root} for any of {', '.join(docs)}; "
                        "check --data-root (`sc-eval world --out DIR` shows the expected layout)")
    return docs


def evaluate(tasks, adapter, run_dir, data_root, limit=None, batch_size: int = 8,
             overwrite: bool = False, info: dict | None = None, progress: bool = True,
             skip_missing_data: bool = False, docs: dict | None = None, score: bool = True,
             markdown: Callable[[dict], str] = results_markdown) -> dict | None:
    """Run every task; results.json/results.md are rewritten after each one (rank 0), results.md
    by ``markdown(results)``, which is also printed at the end.

    With skip_missing_data (a group such as `all` asked for), a task whose data files are absent
    under data_root is skipped with a warning and recorded as skipped, instead of stopping the run.
    ``docs``: what `preload_docs` returned, so that no task's files are read twice. The run
    directory's lock is held throughout (every rank calls this; rank 0 holds it).
    """
    run_dir = Path(run_dir)
    with locked(run_dir, main_process=dist.is_main(), collective=True):
        results = read_results(run_dir) if dist.is_main() else None
        for task in tasks:
            got = (docs or {}).get(task.name)
            if got is None:
                got = _docs_or_missing(task, data_root, skip_missing_data)
            if isinstance(got, DataError):
                log.warning("skipping %s: its data is missing (%s)", task.name, got)
                if dist.is_main():
                    results = update_results(run_dir, task.name, {"skipped": str(got), "metrics": {}}, info,
                                             markdown=markdown)
                continue
            entry = run_task(task, adapter, run_dir, data_root, limit=limit, batch_size=batch_size,
                             overwrite=overwrite, progress=progress, docs=got, score=score)
            if entry is None:
                continue
            results = update_results(run_dir, task.name, entry, {"adapter": adapter.fingerprint(), **(info or {})},
                                     markdown=markdown)
    if dist.is_main():
        print(markdown(results))
        return results
    return None
