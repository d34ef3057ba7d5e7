"""VQAv2 docs from the official layout or the lmms-lab parquet download, per-question scores,
scoring files, EvalAI submission.

lmms-lab/VQAv2: ``data/{validation,testdev,test}-*.parquet``, columns question_type,
multiple_choice_answer, answers [{answer, answer_confidence, answer_id}], image_id, answer_type,
question_id, question, image. ``test`` holds all test2015 questions (the submission's list).
"""
from __future__ import annotations

from pathlib import Path

from sc_eval.data import lmms
from sc_eval.data.formats import read_vqav2
from sc_eval.errors import DataError
from sc_eval.io import atomic_write_json, read_json
from sc_eval.metrics.vqa import normalize_evalai, vqa_scores

LMMS_COLUMNS = ("question_id", "question", "image_id", "image")


def load_docs(root: Path, questions: str, annotations: str | None = None, images: str = "coco/images/val2014",
              image_pattern: str | None = None, all_questions: str | None = None,
              lmms_dir=None, lmms_split: str = "validation", lmms_all_split: str = "test") -> list[dict]:
    """Docs from the official question (+ annotation) JSONs, images under ``root/images``; or, when
    the questions file is absent, from an lmms-lab VQAv2 download (`lmms_split`) found under root."""
    root = Path(root)
    if not (root / questions).exists():
        return _lmms_docs(root, questions, lmms_dir, lmms_split, with_answers=annotations is not None,
                          all_split=lmms_all_split if all_questions else None)
    kw = {"image_pattern": image_pattern} if image_pattern else {}
    docs = read_vqav2(root / questions, root / annotations if annotations else None, root / images, **kw)
    if all_questions:  # test-dev: the submission must list every test2015 question
        for d in docs:
            d["submission_questions"] = str(root / all_questions)
    return docs


def _lmms_docs(root: Path, questions: str, dirs, split: str, with_answers: bool,
               all_split: str | None) -> list[dict]:
    """The official reader's docs, built from the lmms-lab parquet rows of one split."""
    cols = LMMS_COLUMNS + (("answers", "multiple_choice_answer") if with_answers else ())
    src = lmms.require(root, lmms.candidate_dirs(questions, dirs or ["VQAv2"]), split, None, cols,
                       str(root / questions))
    every = None
    if all_split:  # test-dev answers are submitted inside a file over every test2015 question
        every = lmms.require(root, [str(src.folder)], all_split, None, ["question_id"],
                             f"{src.folder}: the {all_split} split (all test2015 questions)")

    def build(store, folder):
        docs = []
        for where, row in lmms.checked_rows(src, cols):
            doc = {"doc_id": str(row["question_id"]), "question_id": row["question_id"],
                   "image_id": row["image_id"], "question": row["question"],
                   "image": store.save(str(row["image_id"]), lmms.image_bytes(row["image"], where))}
            if with_answers:
                answers = row["answers"] or []
                if not answers:
                    raise DataError(f"{where}: question {row['question_id']} has no answers; "
                                    "is this the test split?")
                doc.update(answers=[a["answer"] for a in answers],
                           answer_ids=[a.get("answer_id") for a in answers],
                           multiple_choice_answer=row["multiple_choice_answer"],
                           answer_type=row.get("answer_type"), question_type=row.get("question_type"))
            docs.append(doc)
        if every is not None:
            qids = [{"question_id": r["question_id"]} for r in lmms.iter_rows(every, ["question_id"])]
            path = Path(folder) / "test2015_questions.json"
            atomic_write_json(path, {"data_subtype": "test2015", "questions": qids}, indent=None)
            for d in docs:
                d["submission_questions"] = str(path)
        return docs

    sources = [src] + ([every] if every is not None else [])
    return lmms.cached_docs(sources, f"vqav2-{split}{'-answers' if with_answers else ''}", build)


def process_results(doc: dict, prediction: str) -> dict:
    """The four VQA accuracies (0..1) of one prediction against the ten human answers."""
    return dict(vqa_scores(prediction, doc["answers"]))


def load_for_scoring(annotations, questions=None) -> list[dict]:
    """Docs to score an official results file: answers come from the annotation file alone (or
    ``--annotations`` is an lmms-lab VQAv2 download: its validation split)."""
    annotations = Path(annotations)
    if annotations.is_dir():
        return _lmms_docs(annotations, "vqav2/annotations.json", None, "validation", True, None)
    if questions:
        return read_vqav2(Path(questions), annotations, annotations.parent)
    raw = read_json(annotations)
    if not isinstance(raw, dict) or "annotations" not in raw:
        raise DataError(f"{annotations}: not a VQAv2 annotation file (no 'annotations' list)")
    docs = []
    for a in raw["annotations"]:
        try:
            docs.append({"doc_id": str(a["question_id"]), "answers": [x["answer"] for x in a["answers"]],
                         "image": None})
        except (KeyError, TypeError):
            raise DataError(f"{annotations}: annotation {a.get('question_id', '?')} lacks question_id/answers") from None
    return docs


def _evalai(answer: str) -> str:
    """LLaVA passes test-dev answers through the EvalAI answer processor before submitting."""
    return normalize_evalai(answer)


def write_submission(records: list[dict], docs: list[dict], out_path) -> Path:
    """EvalAI file ``[{"question_id", "answer"}]`` over ALL test2015 questions, test-dev answered.

    The server scores test-dev from a file that covers the whole test2015 split; questions not
    answered here are filled with an empty answer, as LLaVA's converter does.
    """
    answers = {str(r["doc_id"]): _evalai(r["prediction"]) for r in records}
    src = next((d.get("submission_questions") for d in docs if d.get("submission_questions")), None)
    if src is None:
        raise DataError("vqav2_testdev: the task gives no test2015 question file (data.args.all_questions)")
    raw = read_json(src)
    qids = [q["question_id"] for q in raw.get("questions", [])]
    known = {str(q) for q in qids}
    stray = [k for k in answers if k not in known]
    if stray:
        raise DataError(f"{src}: {len(stray)} answered questions (first {stray[0]}) are not test2015 questions; "
                        "check that test-dev and test2015 files belong together")
    sub = [{"question_id": q, "answer": answers.get(str(q), "")} for q in qids]
    atomic_write_json(out_path, sub, indent=None)
    return Path(out_path)
