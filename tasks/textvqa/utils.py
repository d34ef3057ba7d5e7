"""TextVQA docs from the official JSON (OCR tokens carried per doc), VQA accuracy per question."""
from __future__ import annotations

from pathlib import Path

OCR_PREFIX = "\nReference OCR token: "


def ocr_line(tokens) -> str:
    """LLaVA's OCR hint, ``"\\nReference OCR token: a, b, c"``; empty when there is no token."""
    tokens = [str(t) for t in (tokens or [])]
    return OCR_PREFIX + ", ".join(tokens) if tokens else ""


def load_docs(root: Path, annotations: str, images: str = "textvqa/train_images") -> list[dict]:
    from sc_eval.data.formats import read_textvqa

    root = Path(root)
    docs = read_textvqa(root / annotations, root / images)
    for d in docs:
        d["ocr_line"] = ocr_line(d.get("ocr_tokens"))
    return docs


def process_results(doc: dict, prediction: str) -> dict:
    """EvalAI-processor VQA accuracy (LLaVA's m4c evaluator, lmms-eval's TextVQA scorer)."""
    from sc_eval.metrics.vqa import vqa_scores

    return {"vqa_acc": vqa_scores(prediction, doc["answers"])["vqa_acc"]}


def load_for_scoring(annotations, questions=None) -> list[dict]:
    """Docs to score ``[{"question_id", "answer"}]`` results: the val JSON holds the answers."""
    from sc_eval.data.formats import read_textvqa

    annotations = Path(annotations)
    return read_textvqa(annotations, annotations.parent)
