"""VQAv2 docs from the official layout, per-question scores, scoring files, EvalAI submission."""
from __future__ import annotations

from pathlib import Path

from sc_eval.errors import DataError


def load_docs(root: Path, questions: str, annotations: str | None = None, images: str = "coco/images/val2014",
              image_pattern: str | None = None, all_questions: str | None = None) -> list[dict]:
    """Docs from the official question (+ annotation) JSONs; images under ``root/images``."""
    from sc_eval.data.formats import read_vqav2

    root = Path(root)
    kw = {"image_pattern": image_pattern} if image_pattern else {}
    docs = read_vqav2(root / questions, root / annotations if annotations else None, root / images, **kw)
    if all_questions:  # test-dev: the submission must list every test2015 question
        for d in docs:
            d["submission_questions"] = str(root / all_questions)
    return docs


def process_results(doc: dict, prediction: str) -> dict:
    """The three VQA accuracies (0..1) of one prediction against the ten human answers."""
    from sc_eval.metrics.vqa import vqa_scores

    return dict(vqa_scores(prediction, doc["answers"]))


def load_for_scoring(annotations, questions=None) -> list[dict]:
    """Docs to score an official results file: answers come from the annotation file alone."""
    from sc_eval.io import read_json

    annotations = Path(annotations)
    if questions:
        from sc_eval.data.formats import read_vqav2

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
    from sc_eval.metrics.vqa import normalize_evalai

    return normalize_evalai(answer)


def write_submission(records: list[dict], docs: list[dict], out_path) -> Path:
    """EvalAI file ``[{"question_id", "answer"}]`` over ALL test2015 questions, test-dev answered.

    The server scores test-dev from a file that covers the whole test2015 split; questions not
    answered here are filled with an empty answer, as LLaVA's converter does.
    """
    from sc_eval.io import atomic_write_json, read_json

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
