"""TextVQA docs from the official JSON or the lmms-lab parquet download (OCR tokens carried per
doc), VQA accuracy per question.

lmms-lab/textvqa: ``data/{train,validation,test}-*.parquet``, columns image_id, question_id,
question, question_tokens, image, image_width, image_height, flickr_original_url, flickr_300k_url,
answers (10 strings), image_classes, set_name, ocr_tokens. The official JSON's fields, so the docs
are the same; lmms-eval capitalises the question in its prompt, LLaVA and sc-eval do not.
"""
from __future__ import annotations

from pathlib import Path

from sc_eval.data import lmms
from sc_eval.data.formats import ocr_line, read_textvqa, read_textvqa_ocr
from sc_eval.errors import DataError
from sc_eval.metrics.vqa import vqa_acc

LMMS_COLUMNS = ("question_id", "image_id", "question", "image")


def load_docs(root: Path, annotations: str, images: str = "textvqa/train_images", ocr: str | None = None,
              lmms_dir=None, lmms_split: str = "validation") -> list[dict]:
    """Docs of the official JSON, or of an lmms-lab textvqa download when the JSON is absent.

    ``ocr``: the Rosetta OCR file whose tokens go into the prompt (official layout; the lmms-lab
    download carries them per row). Without it the JSON's own ``ocr_tokens`` are used, if any.
    """
    root = Path(root)
    if (root / annotations).exists():
        docs = read_textvqa(root / annotations, root / images)
        if ocr:
            _attach_ocr(docs, root / ocr, root / annotations)
    else:
        docs = _lmms_docs(root, annotations, lmms_dir, lmms_split)
    for d in docs:
        d["ocr_line"] = ocr_line(d.get("ocr_tokens"))
    return docs


def _attach_ocr(docs: list[dict], ocr_path: Path, annotations: Path) -> None:
    """Set each doc's ocr_tokens from the Rosetta OCR file (joined on image_id)."""
    if not ocr_path.exists():
        if any(d["ocr_tokens"] for d in docs):  # a question file that carries its own tokens
            return
        raise DataError(f"{ocr_path}: not found, and {annotations} carries no OCR tokens. This task puts "
                        "the Rosetta OCR tokens in the prompt: download TextVQA_Rosetta_OCR_v0.2_val.json "
                        "from the TextVQA site into that folder, or run textvqa_val (no OCR in the prompt)")
    tokens = read_textvqa_ocr(ocr_path)
    for d in docs:
        got = tokens.get(str(d["image_id"]))
        if got is None:
            raise DataError(f"{ocr_path}: no entry for image {d['image_id']!r} (question {d['question_id']} of "
                            f"{annotations}); use the Rosetta OCR file of the same split")
        d["ocr_tokens"] = got


def _lmms_docs(root: Path, annotations: str, dirs, split: str) -> list[dict]:
    src = lmms.require(root, lmms.candidate_dirs(annotations, dirs or ["textvqa"]), split, None,
                       LMMS_COLUMNS, str(root / annotations))

    def build(store, folder):
        docs = []
        for where, row in lmms.checked_rows(src, LMMS_COLUMNS):
            docs.append({"doc_id": str(row["question_id"]), "question_id": row["question_id"],
                         "image_id": row["image_id"], "question": row["question"],
                         "image": store.save(str(row["image_id"]), lmms.image_bytes(row["image"], where)),
                         "answers": list(row.get("answers") or []),
                         "ocr_tokens": list(row.get("ocr_tokens") or []),
                         "set_name": row.get("set_name")})
        return docs

    return lmms.cached_docs([src], f"textvqa-{split}", build)


def process_results(doc: dict, prediction: str) -> dict:
    """EvalAI-processor VQA accuracy (LLaVA's m4c evaluator, lmms-eval's TextVQA scorer)."""
    return {"vqa_acc": vqa_acc(prediction, doc["answers"])}


def load_for_scoring(annotations, questions=None) -> list[dict]:
    """Docs to score ``[{"question_id", "answer"}]`` results: the val JSON holds the answers."""
    annotations = Path(annotations)
    if annotations.is_dir():  # an lmms-lab textvqa download: its validation split
        return _lmms_docs(annotations, "textvqa/val.json", None, "validation")
    return read_textvqa(annotations, annotations.parent)
