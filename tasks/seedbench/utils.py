"""SEED-Bench docs from ``SEED-Bench.json``, the multiple-choice prompt, per-type accuracy.

Official layout: ``SEED-Bench.json`` = ``{"question_type": {name: id}, "questions": [{
"question_id", "question", "choice_a".."choice_d", "answer", "data_type", "question_type_id",
"data_id"}]}``; image questions have ``data_type == "image"`` and their file is
``SEED-Bench-image/<data_id>``.

lmms-lab/SEED-Bench: ``data/test-*.parquet`` with the JSON's fields as columns (answer,
choice_a..choice_d, data_id, data_type, question, question_id, question_type_id, segment) and
``image``, a list of images (one for image questions, frames for video ones). Read when
SEED-Bench.json is absent; the type names come from the official mapping.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from sc_eval.data import lmms
from sc_eval.errors import DataError
from sc_eval.io import read_json
from sc_eval.metrics.choice import seed_correct

MC_SUFFIX = "\nAnswer with the option's letter from the given choices directly."
# The official mapping, used when a file lacks its "question_type" table.
QUESTION_TYPES = {1: "Scene Understanding", 2: "Instance Identity", 3: "Instance Attributes",
                  4: "Instance Location", 5: "Instances Counting", 6: "Spatial Relation",
                  7: "Instance Interaction", 8: "Visual Reasoning", 9: "Text Understanding",
                  10: "Action Recognition", 11: "Action Prediction", 12: "Procedure Understanding"}


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def _read(annotations: Path, image_root: Path | None) -> list[dict]:
    raw = read_json(annotations)
    if not isinstance(raw, dict) or not isinstance(raw.get("questions"), list):
        raise DataError(f"{annotations}: expected {{'questions': [...]}} (the official SEED-Bench.json)")
    types = {int(v): k for k, v in (raw.get("question_type") or {}).items()} or QUESTION_TYPES
    docs = []
    for i, q in enumerate(raw["questions"]):
        if not isinstance(q, dict) or q.get("data_type", "image") != "image":
            continue
        need = ("question_id", "question", "choice_a", "choice_b", "choice_c", "choice_d", "answer", "data_id")
        missing = [k for k in need if k not in q]
        if missing:
            raise DataError(f"{annotations}: question #{i} ({q.get('question_id', '?')}) lacks {', '.join(missing)}")
        docs.append(_doc(q, os.path.abspath(image_root / q["data_id"]) if image_root else None, types))
    if not docs:
        raise DataError(f"{annotations}: no image questions (data_type 'image')")
    return docs


def _doc(q: dict, image, types: dict) -> dict:
    """One SEED-Bench image question as a doc (the same from the official json and lmms-lab)."""
    type_id = int(q.get("question_type_id") or 0)
    return {"doc_id": str(q["question_id"]), "image": image, "question": q["question"],
            "choices": [q["choice_a"], q["choice_b"], q["choice_c"], q["choice_d"]],
            "answer": str(q["answer"]).strip(), "question_type_id": type_id,
            "question_type": types.get(type_id, f"type {type_id}")}


LMMS_COLUMNS = ("question_id", "question", "choice_a", "choice_b", "choice_c", "choice_d", "answer",
                "data_type", "image")


def load_docs(root: Path, annotations: str, images: str, lmms_dir=None, lmms_split: str = "test") -> list[dict]:
    """Docs of SEED-Bench.json, or of an lmms-lab SEED-Bench download when it is absent."""
    root = Path(root)
    if not (root / annotations).exists():
        return _lmms_docs(root, annotations, lmms_dir, lmms_split)
    return _read(root / annotations, root / images)


def _lmms_docs(root: Path, annotations: str, dirs, split: str) -> list[dict]:
    src = lmms.require(root, lmms.candidate_dirs(annotations, dirs or ["SEED-Bench"]), split, None,
                       LMMS_COLUMNS, str(root / annotations))

    def build(store, folder):
        docs = []
        for where, q in lmms.checked_rows(src, LMMS_COLUMNS):
            if q.get("data_type", "image") != "image":
                continue
            frames = q["image"] if isinstance(q["image"], list) else [q["image"]]
            if not frames:
                raise DataError(f"{where}: image question {q['question_id']} has no image")
            name = str(q.get("data_id") or q["question_id"])
            docs.append(_doc(q, store.save(Path(name).stem, lmms.image_bytes(frames[0], where)), QUESTION_TYPES))
        if not docs:
            raise DataError(f"{src.describe()}: no image questions (data_type 'image')")
        return docs

    return lmms.cached_docs([src], "seedbench", build)


def load_for_scoring(annotations, questions=None) -> list[dict]:
    """``--annotations``: SEED-Bench.json (or an lmms-lab SEED-Bench download); predictions as
    LLaVA answer jsonl or sc-eval jsonl."""
    if Path(annotations).is_dir():
        return _lmms_docs(Path(annotations), "seedbench/SEED-Bench.json", None, "test")
    return _read(Path(annotations), None)


def doc_to_text(doc: dict) -> str:
    options = "\n".join(f"{letter}. {c}" for letter, c in zip("ABCD", doc["choices"]))
    return f"{doc['question']}\n{options}{MC_SUFFIX}"


def process_results(doc: dict, prediction: str) -> dict:
    """lmms-eval's rule, recorded both overall and under the question's type."""
    right = seed_correct(prediction, doc["answer"])
    return {"accuracy": right, f"accuracy_{_slug(doc['question_type'])}": right}


def aggregate(records: list[dict]) -> dict:
    """Mean x100 of every score key: ``accuracy`` over all image questions, then each type's
    ``accuracy_<type>`` in the order the types first occur."""
    sums: dict[str, list[float]] = {}
    for r in records:
        for k, v in (r.get("scores") or {}).items():
            sums.setdefault(k, []).append(float(v))
    order = ["accuracy"] + [k for k in sums if k != "accuracy"]
    return {k: 100.0 * sum(sums[k]) / len(sums[k]) for k in order if k in sums}
