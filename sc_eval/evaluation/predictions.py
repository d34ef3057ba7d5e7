"""Predictions: the record the runner writes for each doc (``make_record``), the predictions
files `sc-eval score` reads in every format it accepts, and their scoring without a model
(``score_predictions``).

Formats, detected per record:
  sc-eval predictions jsonl     {"doc_id", "prediction", ...}
  LLaVA answer jsonl            {"question_id", "text", ...}
  VQAv2 / TextVQA results       [{"question_id", "answer"}]
  VizWiz results                [{"image", "answer"}]
  GQA results                   [{"questionId", "prediction"}]
  COCO caption results          [{"image_id", "caption"}]
Every id becomes a string doc_id, the id tasks use for their docs. Nothing here imports torch:
`sc-eval score` loads no model.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

from sc_eval.errors import DataError
from sc_eval.evaluation.tasks import Task
from sc_eval.io import iter_jsonl

log = logging.getLogger(__name__)

# (id key, prediction key) in the order they are tried
FORMATS = [
    ("doc_id", "prediction"),
    ("question_id", "text"),
    ("question_id", "answer"),
    ("questionId", "prediction"),
    ("image_id", "caption"),
    ("image", "answer"),
]


def _records(path: Path) -> list:
    if not path.exists():
        raise DataError(f"{path}: predictions file not found")
    if not path.is_file():
        raise DataError(f"{path}: not a file; give the predictions file itself")
    try:
        with open(path, encoding="utf-8-sig") as f:  # utf-8-sig: a byte-order mark is not data
            head = f.read(4096).lstrip()[:1]
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a text file (not UTF-8); give the predictions as JSON lines or a "
                        "JSON list of results") from None
    if head == "[":
        data = _whole(path)
        if not isinstance(data, list):
            raise DataError(f"{path}: expected a JSON list of results")
        return data
    try:
        return list(iter_jsonl(path))
    except DataError:
        if head == "{" and isinstance(_whole(path, quiet=True), dict):
            raise DataError(f"{path}: one JSON object over several lines, neither JSON lines (one result "
                            "object per line) nor a JSON list of results; write it in one of those forms") from None
        raise


def _whole(path: Path, quiet: bool = False):
    """The file as one JSON document (None when ``quiet`` and it is not one)."""
    with open(path, encoding="utf-8-sig") as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as e:
            if quiet:
                return None
            raise DataError(f"{path}: malformed JSON at line {e.lineno} column {e.colno}: {e.msg}") from None


def read_predictions(path, with_records: bool = False):
    """{doc_id: prediction}; duplicates keep the first and are counted in a warning. A prediction
    that is not a string (null, a number) is an error: scoring it as some text would be a guess."""
    path = Path(path)
    out: dict[str, str] = {}
    raw: dict[str, dict] = {}
    dups = 0
    not_text = []
    for i, rec in enumerate(_records(path)):
        if not isinstance(rec, dict):
            raise DataError(f"{path}: record {i} is not an object")
        for id_key, pred_key in FORMATS:
            if id_key in rec and pred_key in rec:
                break
        else:
            raise DataError(f"{path}: record {i} has none of the known id/prediction field pairs "
                            f"{[f'{a}+{b}' for a, b in FORMATS]} (keys: {sorted(rec)})")
        key = str(rec[id_key])
        if key in out:
            dups += 1
            continue
        pred = rec[pred_key]
        if not isinstance(pred, str):
            not_text.append((i, key, pred_key, pred))
            continue
        out[key] = pred
        raw[key] = rec
    if not_text:
        i, key, field, value = not_text[0]
        raise DataError(f"{path}: {len(not_text)} prediction(s) are not strings (first: record {i}, id {key!r}, "
                        f"{field!r} is {json.dumps(value)}); write every answer as a JSON string "
                        '(an empty answer as "")')
    if dups:
        log.warning("%s: %d duplicate ids; the first prediction of each was kept", path, dups)
    return (out, raw) if with_records else out


def _image_ref(doc: dict):
    img = doc.get("image")
    return str(img) if img is not None else None


def make_record(task: Task, doc: dict, prompt: str, prediction: str) -> dict:
    return {
        "doc_id": doc["doc_id"],
        "task": task.name,
        "prompt": prompt,
        "image": _image_ref(doc),
        "prediction": prediction,
        "targets": task.targets(doc),
        "scores": task.score_doc(doc, prediction),
    }


def score_predictions(task: Task, docs: list[dict], predictions: dict[str, str]) -> dict:
    """Score given predictions on the docs they cover (sc-eval score). No model is loaded."""
    by_id = {d["doc_id"]: d for d in docs}
    unknown = [k for k in predictions if k not in by_id]
    if unknown:
        raise DataError(f"{len(unknown)} predictions have ids absent from the annotations "
                        f"(first: {unknown[0]!r}); check that --annotations matches the predictions")
    covered = [d for d in docs if d["doc_id"] in predictions]
    records = [make_record(task, d, "", predictions[d["doc_id"]]) for d in covered]
    metrics, stderr = task.score_records(records) if records else ({}, {})
    out = {
        "task": task.name,
        "n_docs": len(records),
        "n_docs_annotated": len(docs),
        "metrics": metrics,
    }
    if stderr:
        out["stderr"] = stderr
    return out
