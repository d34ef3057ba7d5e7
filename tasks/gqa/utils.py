"""GQA testdev-balanced docs from the official questions JSON, LLaVA's exact-match accuracy."""
from __future__ import annotations

from pathlib import Path


def load_docs(root: Path, questions: str, images: str = "gqa/images") -> list[dict]:
    from sc_eval.data.formats import read_gqa

    root = Path(root)
    return read_gqa(root / questions, root / images, balanced_only=True)


def process_results(doc: dict, prediction: str) -> dict:
    """1.0 when prediction.rstrip('.').lower() == answer (LLaVA's eval_gqa, nothing more)."""
    from sc_eval.metrics.gqa import gqa_correct

    return {"accuracy": float(gqa_correct(prediction, doc["answer"]))}


def load_for_scoring(annotations, questions=None) -> list[dict]:
    """Docs to score ``[{"questionId", "prediction"}]``: the questions JSON carries the answers."""
    from sc_eval.data.formats import read_gqa

    annotations = Path(questions or annotations)
    return read_gqa(annotations, annotations.parent, balanced_only=True)
