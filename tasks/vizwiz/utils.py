"""VizWiz-VQA docs from the official layout, per-question VQA accuracy, EvalAI submission.

Official layout: ``val.json`` / ``test.json`` are JSON lists of
``{"image", "question", "answers": [{"answer", "answer_confidence"}], "answerable", "answer_type"}``
(test has no answers), images under ``val/`` and ``test/``. VizWiz has no question ids: the
image file name is the id, in the annotations and in the EvalAI results ``[{"image", "answer"}]``.

lmms-lab/VizWiz-VQA: ``data/{val,test}-*.parquet``, columns question_id (the image file name
without ``.jpg``), image, question, answers (the ten answer strings), category.
"""
from __future__ import annotations

import os
from pathlib import Path

from sc_eval.data import lmms
from sc_eval.errors import DataError
from sc_eval.io import atomic_write_json, read_json
from sc_eval.metrics.vqa import normalize_evalai, vqa_acc


def _read(annotations: Path, image_root: Path | None, need_answers: bool) -> list[dict]:
    raw = read_json(annotations)
    if not isinstance(raw, list):
        raise DataError(f"{annotations}: expected a JSON list of VizWiz questions (official val.json/test.json)")
    docs = []
    for i, rec in enumerate(raw):
        if not isinstance(rec, dict) or "image" not in rec or "question" not in rec:
            raise DataError(f"{annotations}: record #{i} lacks 'image'/'question'; not the VizWiz layout")
        answers = rec.get("answers")
        if need_answers and not answers:
            raise DataError(f"{annotations}: {rec['image']} has no 'answers'; is this the test file? "
                            "(use vizwiz_vqa_test for test)")
        try:
            answers = [a["answer"] if isinstance(a, dict) else str(a) for a in (answers or [])]
        except KeyError:
            raise DataError(f"{annotations}: {rec['image']}: an answer record has no 'answer' field") from None
        docs.append({
            "doc_id": str(rec["image"]),
            "image": os.path.abspath(image_root / rec["image"]) if image_root else None,
            "question": rec["question"],
            "answers": answers,
            "answerable": rec.get("answerable"),
            "answer_type": rec.get("answer_type"),
        })
    return docs


def load_docs(root: Path, annotations: str, images: str, lmms_dir=None, lmms_split: str | None = None) -> list[dict]:
    """Docs of val.json (with answers) or test.json (without), images under ``root/images``; or of
    an lmms-lab VizWiz-VQA download (split `lmms_split`, default the file's stem) when absent."""
    root = Path(root)
    need_answers = Path(annotations).stem != "test"
    if not (root / annotations).exists():
        return _lmms_docs(root, annotations, lmms_dir, lmms_split or Path(annotations).stem, need_answers)
    return _read(root / annotations, root / images, need_answers=need_answers)


def _lmms_docs(root: Path, annotations: str, dirs, split: str, need_answers: bool) -> list[dict]:
    cols = ("question_id", "image", "question")
    src = lmms.require(root, lmms.candidate_dirs(annotations, dirs or ["VizWiz-VQA"]), split, None, cols,
                       str(root / annotations))

    def build(store, folder):
        docs = []
        for where, row in lmms.checked_rows(src, cols):
            name = str(row["question_id"])
            name = name if name.lower().endswith(".jpg") else name + ".jpg"
            answers = [str(a) for a in (row.get("answers") or []) if a is not None]
            if not need_answers:
                answers = [a for a in answers if a.strip()]  # test: placeholders, not answers
            if need_answers and not answers:
                raise DataError(f"{where}: {name} has no answers; is this the test split? "
                                "(use vizwiz_vqa_test for test)")
            docs.append({"doc_id": name,
                         "image": store.save(Path(name).stem, lmms.image_bytes(row["image"], where)),
                         "question": row["question"], "answers": answers,
                         "answerable": None, "answer_type": None})
        return docs

    return lmms.cached_docs([src], f"vizwiz-{split}", build)


def process_results(doc: dict, prediction: str) -> dict:
    """VQA accuracy (EvalAI processor, leave-one-out over the ten answers), 0..1."""
    return {"vqa_acc": vqa_acc(prediction, doc["answers"])}


def load_for_scoring(annotations, questions=None) -> list[dict]:
    """Docs to score an EvalAI results file ``[{"image", "answer"}]`` against ``val.json`` (or an
    lmms-lab VizWiz-VQA download: its val split)."""
    if Path(annotations).is_dir():
        return _lmms_docs(Path(annotations), "vizwiz/val.json", None, "val", True)
    return _read(Path(annotations), None, need_answers=True)


def write_submission(records: list[dict], docs: list[dict], out_path) -> Path:
    """EvalAI file ``[{"image", "answer"}]`` in doc order, answers through the EvalAI processor.

    LLaVA's converter normalises answers before upload; the server normalises again, so this
    changes nothing but makes the file identical to the reference one.
    """
    by_id = {str(r["doc_id"]): r["prediction"] for r in records}
    missing = [d["doc_id"] for d in docs if d["doc_id"] not in by_id]
    if missing:
        raise DataError(f"VizWiz submission: {len(missing)} test images have no prediction "
                        f"(first {missing[0]!r}); rerun the task without --limit")
    sub = [{"image": d["doc_id"], "answer": normalize_evalai(by_id[d["doc_id"]])} for d in docs]
    atomic_write_json(out_path, sub, indent=None)
    return Path(out_path)
