"""results.json and results.md: the one writer every command's results go through.

A run directory's results.json holds one entry per task (schema in docs/scores.md).
Each update merges: under the run directory's lock it reads the file as it is on disk, replaces
only the entry of the task just finished and writes the whole file back atomically (temp file +
rename), so an update never drops another task's entry from a stale copy held in memory, and a
kill leaves the old file or the new one, never half of one.

results.md is every task's scores in one table; a command that lays its results out in more
ways (the LLaVA battery in the paper's Table 11 columns) passes its own ``markdown`` function.

Commands that compute each entry themselves (the probes, LiT) hold the file as a
:class:`ResultsFile`: an entry whose fingerprint (encoder, data, settings) matches is reused on a
rerun, a different one is refused unless ``--overwrite``, as the runner does for predictions.
"""
from __future__ import annotations

import datetime as _dt
import logging
from pathlib import Path
from typing import Callable

from sc_eval.errors import ConfigError, DataError
from sc_eval.io import atomic_write_json, atomic_write_text, iter_jsonl, read_json
from sc_eval.runtime.fingerprint import same
from sc_eval.runtime.rundir import locked, package_versions

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
RESULTS_NAME = "results.json"


def empty_results() -> dict:
    return {"schema_version": SCHEMA_VERSION, "results": {}}


def read_results(run_dir) -> dict:
    """The run directory's results.json, or an empty one (absent, or of another schema).
    A damaged file is a DataError naming it: it is not silently replaced."""
    path = Path(run_dir) / RESULTS_NAME
    data = read_json(path) if path.exists() else None
    if not isinstance(data, dict) or data.get("schema_version") != SCHEMA_VERSION \
            or not isinstance(data.get("results"), dict):
        return empty_results()
    return data


def update_results(run_dir, task: str, entry: dict, info: dict | None = None,
                   markdown: Callable[[dict], str] | None = None) -> dict:
    """Set ``task``'s entry (and the run-level ``info``) in results.json, keeping every other
    task's entry as the file holds it now; rewrites results.md (``markdown(results)``, by default
    `results_markdown`); returns the merged results."""
    run_dir = Path(run_dir)
    with locked(run_dir):  # re-entrant: the command writing this directory holds it already
        data = read_results(run_dir)
        data["results"][task] = entry
        data.update({"updated": _dt.datetime.now().isoformat(timespec="seconds"),
                     "versions": package_versions(), **(info or {})})
        atomic_write_json(run_dir / RESULTS_NAME, data)
        atomic_write_text(run_dir / "results.md", (markdown or results_markdown)(data))
    return data


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.2f}"
    return str(v)


def results_markdown(results: dict) -> str:
    """One row per task and metric: value, standard error, docs evaluated, and a note."""
    lines = ["| task | metric | value | ± stderr | n | note |", "|---|---|---|---|---|---|"]
    for name, e in results.get("results", {}).items():
        if e.get("skipped"):
            lines.append(f"| {name} | - | - | - | - | skipped: {e['skipped']} |")
            continue
        n = e.get("n_docs", {})
        note = "limited: not comparable to the full split" if e.get("limited") else ""
        if e.get("submission"):
            note = (note + "; " if note else "") + f"submission file {e['submission']}"
        if e.get("scored") is False:
            note = (note + "; " if note else "") + "predictions only, not scored (`sc-eval score`)"
        metrics = e.get("metrics") or {"(none)": None}
        stderr = e.get("stderr") or {}
        for m, v in metrics.items():
            lines.append(f"| {name} | {m} | {_fmt(v)} | {_fmt(stderr.get(m))} | "
                         f"{n.get('evaluated')}/{n.get('total')} | {note} |")
    return "\n".join(lines) + "\n"


class ResultsFile:
    def __init__(self, run_dir: Path, info: dict | None = None):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / "results.json"
        self.data = read_results(self.run_dir)
        self.info = info or {}

    def reusable(self, task: str, fp: str, overwrite: bool) -> dict | None:
        """The stored entry when it was made with the same fingerprint; refuse a different one."""
        old = self.data["results"].get(task)
        if old is None:
            return None
        if same(old.get("fingerprint"), fp):
            if self._predictions_intact(old):
                return old
            log.warning("%s: the predictions file of %s is missing or damaged; computing it again", self.path, task)
            return None
        if not overwrite:
            raise ConfigError(f"{self.path}: {task} was computed with a different setup (fingerprint "
                              f"{old.get('fingerprint')} != {fp}); use --overwrite to replace it or another --output-dir")
        return None

    def _predictions_intact(self, entry: dict) -> bool:
        """The entry's predictions file holds one readable record per evaluated image (what
        `sc-eval report --baseline` pairs runs by)."""
        rel = entry.get("predictions")
        if not rel:
            return True
        try:
            n = sum(1 for _ in iter_jsonl(self.run_dir / rel))
        except DataError:
            return False
        return n == (entry.get("n_docs") or {}).get("evaluated")

    def put(self, task: str, entry: dict) -> None:
        self.data = update_results(self.run_dir, task, entry, self.info)

    def markdown(self) -> str:
        return results_markdown(self.data)


def entry(metrics: dict, total: int, evaluated: int, fp: str, **extra) -> dict:
    return {"metrics": {k: float(v) for k, v in metrics.items()},
            "n_docs": {"total": int(total), "evaluated": int(evaluated)},
            "limited": evaluated < total, "fingerprint": fp, **extra}
