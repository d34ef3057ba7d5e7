"""MMMU docs from the official parquet files, lmms-eval's prompt, MMMU's answer parsing.

Official layout (the Hugging Face dataset ``MMMU/MMMU`` as downloaded): one folder per subject,
``<Subject>/validation-00000-of-00001.parquet`` (also dev/test), columns id, question, options
(a Python-literal list in a string), answer, question_type ("multiple-choice" | "open"),
image_1..image_7 ({"bytes", "path"} or null), subfield, ... lmms-lab/MMMU is the same table with
every subject merged into ``data/validation-*.parquet`` (dev, test too); the subject is then read
from the id ("validation_Art_Theory_12"). Rows are streamed through `datasets`
(sc_eval.data.lmms), which writes no Hugging Face cache.

Questions may show several images, referred to in the text as "<image k>": a doc lists them in
the order they are first referred to (question, then options) as ``images``, and ``image`` is
the first, the one the single-image adapters use.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

from sc_eval.data import lmms
from sc_eval.data.images import embedded_images_dir, materialize
from sc_eval.data.lmms import Source, split_files
from sc_eval.errors import DataError
from sc_eval.tasks.mmmu.parse import choice_correct, open_correct, parse_choice, parse_open

MC_SUFFIX = "Answer with the option's letter from the given choices directly."
OPEN_SUFFIX = "Answer the question using a single word or phrase."
# The official grouping of the 30 subjects into six disciplines (per-discipline accuracy).
DISCIPLINES = {
    "Art and Design": ["Art", "Art_Theory", "Design", "Music"],
    "Business": ["Accounting", "Economics", "Finance", "Manage", "Marketing"],
    "Science": ["Biology", "Chemistry", "Geography", "Math", "Physics"],
    "Health and Medicine": ["Basic_Medical_Science", "Clinical_Medicine",
                            "Diagnostics_and_Laboratory_Medicine", "Pharmacy", "Public_Health"],
    "Humanities and Social Science": ["History", "Literature", "Sociology", "Psychology"],
    "Tech and Engineering": ["Agriculture", "Architecture_and_Engineering", "Computer_Science",
                             "Electronics", "Energy_and_Power", "Materials", "Mechanical_Engineering"],
}
_DISCIPLINE_OF = {s: d for d, subs in DISCIPLINES.items() for s in subs}
_IMAGE_REF = re.compile(r"<image (\d+)>")


def _literal_list(text, where: str) -> list:
    if isinstance(text, list):
        return text
    try:
        value = ast.literal_eval(text) if str(text).strip() else []
    except (ValueError, SyntaxError):
        raise DataError(f"{where}: options {str(text)[:60]!r} are not a list literal") from None
    if not isinstance(value, list):
        raise DataError(f"{where}: options are a {type(value).__name__}, expected a list")
    return [str(v) for v in value]


def _gold(answer):
    """Open answers are sometimes several accepted strings written as a list literal."""
    text = str(answer).strip()
    if text.startswith("[") and text.endswith("]"):
        try:
            value = ast.literal_eval(text)
            if isinstance(value, list):
                return [str(v) for v in value]
        except (ValueError, SyntaxError):
            pass
    return text


def _sources(folder: Path, split: str) -> list:
    """One source per folder of ``<split>-*.parquet`` files: subject folders (MMMU/MMMU), the
    merged ``data/`` folder (lmms-lab/MMMU), or the folder itself."""
    folder = Path(folder)
    subdirs = sorted({f.parent for f in folder.glob(f"*/{split}-*.parquet")})
    out = [Source(d, split, None, split_files(d, split, ".")) for d in subdirs]
    if split_files(folder, split, "."):
        out.append(Source(folder, split, None, split_files(folder, split, ".")))
    if not out:
        raise DataError(f"{folder}: no {split}-*.parquet files (expected <Subject>/{split}-00000-of-00001.parquet "
                        "as in the MMMU/MMMU dataset download, or data/ of lmms-lab/MMMU)")
    return out


def _subject(folder: Path, top: Path, qid: str) -> str:
    """The subject folder's name (MMMU/MMMU), else the id's middle part (merged tables)."""
    if folder != top and folder.name != "data":
        return folder.name
    return str(qid).split("_", 1)[-1].rsplit("_", 1)[0]  # "validation_Art_Theory_12" -> "Art_Theory"


def _find(root: Path, folder: str, split: str, lmms_dir=None) -> Path:
    """``root/folder`` when it holds the split, else an lmms-lab MMMU download under root."""
    if (Path(root) / folder).is_dir():
        return Path(root) / folder
    src = lmms.locate(root, lmms.candidate_dirs(folder, lmms_dir or ["MMMU"]), split, None,
                      ("id", "question", "answer", "question_type"))
    return src.folder if src is not None else Path(root) / folder


def _read(folder: Path, split: str, decode_images: bool = True) -> list[dict]:
    docs = []
    for src in _sources(Path(folder), split):
        cols = None
        if not decode_images:
            cols = [c for c in lmms.parquet_columns(src.files[0]) if not c.startswith("image_")]
        cache = embedded_images_dir(src.files[0], "mmmu") if decode_images else None
        for row in lmms.iter_rows(src, cols):
            where = f"{src.folder} id {row.get('id')!r}"
            for k in ("id", "question", "answer", "question_type"):
                if k not in row:
                    raise DataError(f"{where}: lacks column {k!r}; not the MMMU layout")
            options = _literal_list(row.get("options") or "[]", where)
            text = row["question"] + " " + " ".join(options)
            refs = list(dict.fromkeys(int(n) for n in _IMAGE_REF.findall(text)))
            present = [k for k in range(1, 8) if row.get(f"image_{k}")]
            order = [k for k in refs if k in present] or present
            images = []
            for k in order:
                data = lmms.image_bytes(row[f"image_{k}"], where)
                if cache is not None and data:
                    images.append(materialize(cache, f"{row['id']}_image_{k}", data))
            docs.append({
                "doc_id": str(row["id"]), "question": row["question"], "options": options,
                "answer": _gold(row["answer"]), "question_type": row["question_type"],
                "subject": _subject(src.folder, Path(folder), row["id"]), "subfield": row.get("subfield"),
                "images": images, "image": images[0] if images else None,
            })
    return docs


def load_docs(root: Path, folder: str, split: str = "validation", lmms_dir=None) -> list[dict]:
    """Docs of the MMMU/MMMU subject folders under ``root/folder``, or of an lmms-lab MMMU
    download (merged ``data/<split>-*.parquet``) found under root."""
    return _read(_find(Path(root), folder, split, lmms_dir), split)


def load_for_scoring(annotations, questions=None) -> list[dict]:
    """``--annotations``: the MMMU folder (subject folders of parquet files); validation split."""
    return _read(Path(annotations), "validation", decode_images=False)


def doc_to_text(doc: dict) -> str:
    """lmms-eval's MMMU prompt: multiple choice "question\\nA. ..\\nB. ..\\n\\n<MC instruction>",
    open "question\\n\\n<short-answer instruction>"; "<image k>" markers stay in the text."""
    if doc["question_type"] == "multiple-choice":
        options = "\n".join(f"{chr(ord('A') + i)}. {o}" for i, o in enumerate(doc["options"]))
        return f"{doc['question']}\n{options}\n\n{MC_SUFFIX}"
    return f"{doc['question']}\n\n{OPEN_SUFFIX}"


def process_results(doc: dict, prediction: str) -> dict:
    """MMMU's parse and match (tasks/mmmu/parse.py), overall and under the doc's discipline."""
    if not isinstance(prediction, str):
        raise DataError(f"MMMU {doc['doc_id']}: prediction must be a string, got {prediction!r}")
    if doc["question_type"] == "multiple-choice":
        right = choice_correct(doc["answer"], parse_choice(prediction, doc["options"], doc["doc_id"]))
    else:
        right = open_correct(doc["answer"], parse_open(prediction))
    out = {"accuracy": float(right)}
    discipline = _DISCIPLINE_OF.get(doc.get("subject"))
    if discipline:
        out["accuracy_" + re.sub(r"[^a-z0-9]+", "_", discipline.lower())] = float(right)
    return out


def aggregate(records: list[dict]) -> dict:
    """``accuracy`` over all questions (MMMU's instance-level number), then per discipline."""
    sums: dict[str, list[float]] = {}
    for r in records:
        for k, v in (r.get("scores") or {}).items():
            sums.setdefault(k, []).append(float(v))
    order = ["accuracy"] + sorted(k for k in sums if k != "accuracy")
    return {k: 100.0 * sum(sums[k]) / len(sums[k]) for k in order if k in sums}
