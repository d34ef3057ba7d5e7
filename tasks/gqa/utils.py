"""GQA testdev-balanced docs from the official questions JSON or the lmms-lab parquet download,
LLaVA's and lmms-eval's exact-match accuracies.

lmms-lab/GQA keeps questions and images in separate configs:
``testdev_balanced_instructions/testdev-*.parquet`` (id, imageId, question, answer, fullAnswer,
isBalanced, groups, entailed, equivalent, types, annotations, semantic, semanticStr: the official
JSON's records with the question id as ``id``) and ``testdev_balanced_images/testdev-*.parquet``
(id = imageId, image).
"""
from __future__ import annotations

from pathlib import Path

from sc_eval.data import lmms
from sc_eval.data.formats import read_gqa
from sc_eval.errors import DataError
from sc_eval.metrics.gqa import gqa_correct, gqa_correct_lmms

QUESTION_COLUMNS = ("id", "imageId", "question", "answer")


def load_docs(root: Path, questions: str, images: str = "gqa/images", lmms_dir=None,
              lmms_config: str = "testdev_balanced", lmms_split: str = "testdev") -> list[dict]:
    """Docs of the official questions JSON, or of an lmms-lab GQA download when it is absent:
    ``<lmms_config>_instructions`` joined with ``<lmms_config>_images`` on imageId."""
    root = Path(root)
    if not (root / questions).exists():
        return _lmms_docs(root, questions, lmms_dir, lmms_config, lmms_split)
    return read_gqa(root / questions, root / images, balanced_only=True)


def _lmms_docs(root: Path, questions: str, dirs, config: str, split: str) -> list[dict]:
    dirs = lmms.candidate_dirs(questions, dirs or ["GQA"])
    qsrc = lmms.require(root, dirs, split, f"{config}_instructions", QUESTION_COLUMNS, str(root / questions))
    isrc = lmms.require(root, [str(qsrc.folder)], split, f"{config}_images", ("id", "image"),
                        f"{qsrc.folder}: {config}_images (GQA keeps the images in their own config)")

    def build(store, folder):
        paths = {}
        for where, row in lmms.checked_rows(isrc, ("id", "image")):
            paths[str(row["id"])] = store.save(str(row["id"]), lmms.image_bytes(row["image"], where))
        docs = []
        for _, row in lmms.checked_rows(qsrc, QUESTION_COLUMNS):
            if not row.get("isBalanced", True):
                continue
            image = paths.get(str(row["imageId"]))
            if image is None:
                raise DataError(f"{isrc.describe()}: no image {row['imageId']!r} for question {row['id']!r}")
            docs.append({"doc_id": str(row["id"]), "question_id": str(row["id"]),
                         "image_id": row["imageId"], "question": row["question"],
                         "answer": row["answer"], "full_answer": row.get("fullAnswer"),
                         "types": row.get("types") or {}, "image": image})
        return docs

    return lmms.cached_docs([qsrc, isrc], f"gqa-{config}", build)


def process_results(doc: dict, prediction: str) -> dict:
    """``accuracy``: prediction.rstrip('.').lower() == answer (LLaVA's eval_gqa, nothing more);
    ``accuracy_lmms``: equal after lower-casing and deleting punctuation (lmms-eval)."""
    return {"accuracy": gqa_correct(prediction, doc["answer"]),
            "accuracy_lmms": gqa_correct_lmms(prediction, doc["answer"])}


def load_for_scoring(annotations, questions=None) -> list[dict]:
    """Docs to score ``[{"questionId", "prediction"}]``: the questions JSON carries the answers."""
    annotations = Path(questions or annotations)
    if annotations.is_dir():  # an lmms-lab GQA download
        return _lmms_docs(annotations, "gqa/questions.json", None, "testdev_balanced", "testdev")
    return read_gqa(annotations, annotations.parent, balanced_only=True)
