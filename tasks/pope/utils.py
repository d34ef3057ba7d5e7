"""POPE docs over the three splits, LLaVA's yes/no parse, per-split metrics, lmms-eval's pooled
metrics, answer routing.

Official layout: ``coco_pope_{random,popular,adversarial}.json`` (JSON lines
``{"question_id", "image", "text", "label"}``), images from COCO val2014. Every file numbers its
questions from 1, so a question is named by its split: doc_id = "<split>/<question_id>".

Scoring a LLaVA answer file needs care for the same reason: LLaVA's question file gives every
question a unique id plus a ``category`` (the split), and its ``eval_pope.py`` routes answers to
splits by that category, then pairs them with the annotation lines in order. ``read_predictions``
accepts exactly that, and answers without a category when their ids are unique across the
files given.

lmms-lab/POPE: one table ``data/test-*.parquet`` (9,000 rows) with columns id, question_id,
question, answer, image_source, image, category (random / popular / adversarial); its ``Full``
config has the same columns with one split per category (``Full/<category>-*.parquet``).
"""
from __future__ import annotations

import logging
from pathlib import Path

from sc_eval.data import lmms
from sc_eval.data.formats import read_pope
from sc_eval.errors import DataError
from sc_eval.io import iter_jsonl, read_json
from sc_eval.metrics.pope import (pope_lmms_stderr, pope_metrics, pope_metrics_lmms, pope_paired, pope_parse,
                                  pope_stderr, pope_summary)

log = logging.getLogger(__name__)

SPLITS = ("random", "popular", "adversarial")


def _docs(annotations, image_root) -> list[dict]:
    """Docs of one file, a directory of coco_pope_*.json, or a comma-separated list of files."""
    text = str(annotations)
    parts = [Path(p.strip()) for p in text.split(",") if p.strip()] if "," in text else [Path(text)]
    docs: list[dict] = []
    for p in parts:
        for d in read_pope(p, image_root):
            d["doc_id"] = f"{d['category']}/{d['question_id']}"
            docs.append(d)
    return docs


LMMS_COLUMNS = ("question_id", "question", "answer", "image", "category")


def _has_official(path: Path) -> bool:
    return path.is_file() or (path.is_dir() and any(path.glob("coco_pope_*.json")))


def load_docs(root: Path, annotations: str, images: str, lmms_dir=None, lmms_split: str = "test") -> list[dict]:
    """All splits found under ``root/annotations`` (random, popular, adversarial first), or, when
    there are no coco_pope_*.json files, an lmms-lab POPE download (its ``category`` column)."""
    root = Path(root)
    if "," not in str(annotations) and not _has_official(root / annotations):
        return _lmms_docs(root, annotations, lmms_dir, lmms_split)
    return _docs(root / annotations, root / images)


def _lmms_docs(root: Path, annotations: str, dirs, split: str) -> list[dict]:
    dirs = lmms.candidate_dirs(annotations, dirs or ["POPE"])
    sources = [lmms.locate(root, dirs, split, None, LMMS_COLUMNS)]
    if sources[0] is None:  # the Full config: one split per category
        sources = [lmms.locate(root, dirs, cat, "Full", LMMS_COLUMNS) for cat in SPLITS]
        sources = [s for s in sources if s is not None]
    if not sources:
        lmms.require(root, dirs, split, None, LMMS_COLUMNS, str(root / annotations))

    def build(store, folder):
        docs = []
        for src in sources:
            for where, row in lmms.checked_rows(src, LMMS_COLUMNS):
                qid = lmms.as_int(row["question_id"])
                name = str(row.get("image_source") or f"{row['category']}_{qid}")
                docs.append({"doc_id": f"{row['category']}/{qid}", "question_id": qid,
                             "category": row["category"], "question": row["question"],
                             "label": row["answer"], "answers": [row["answer"]],
                             "image": store.save(name, lmms.image_bytes(row["image"], where))})
        order = {c: k for k, c in enumerate(SPLITS)}
        docs.sort(key=lambda d: order.get(d["category"], len(SPLITS)))  # stable: rows keep their order
        return docs

    return lmms.cached_docs(sources, "pope", build)


def load_for_scoring(annotations, questions=None) -> list[dict]:
    """``--annotations``: a directory of coco_pope_*.json, one such file, files joined by ',', or
    an lmms-lab POPE download."""
    if "," not in str(annotations) and Path(annotations).is_dir() and not _has_official(Path(annotations)):
        return _lmms_docs(Path(annotations), "pope", None, "test")
    return _docs(annotations, ".")


def process_results(doc: dict, prediction: str) -> dict:
    """Per question: whether the parsed answer is right and whether it said yes (0/1)."""
    said = pope_parse(prediction)
    return {"correct": float(said == str(doc["label"]).strip().lower()), "said_yes": float(said == "yes")}


def _split_of(doc_id: str) -> str:
    split, sep, _ = str(doc_id).rpartition("/")
    if not sep:
        raise DataError(f"POPE: doc_id {doc_id!r} is not '<split>/<question_id>'")
    return split


def aggregate(records: list[dict]) -> tuple[dict, dict]:
    """Per split accuracy/precision/recall/f1/yes_ratio (``random_f1``...) and the split means,
    with the standard errors of the means ``f1`` and ``accuracy`` (bootstrapped over images);
    then lmms-eval's ``accuracy_lmms`` ... ``f1_lmms`` over all records pooled, with theirs.

    Each split is scored on its own, as LLaVA's eval_pope.py does; ``f1`` is the mean of the
    splits' F1, the number LLaVA reports as POPE.
    """
    by_split: dict[str, tuple[list, list]] = {}
    for r in records:
        preds, labels = by_split.setdefault(_split_of(r["doc_id"]), ([], []))
        preds.append(r["prediction"])
        labels.append(r["targets"])
    order = [s for s in SPLITS if s in by_split] + sorted(s for s in by_split if s not in SPLITS)
    per_split = {s: pope_metrics(*by_split[s]) for s in order}
    pooled = pope_metrics_lmms([r["prediction"] for r in records], [r["targets"] for r in records])
    questions = _questions(records)
    return {**pope_summary(per_split), **pooled}, {**pope_stderr(questions), **pope_lmms_stderr(questions)}


def _questions(records: list[dict]) -> list[tuple]:
    """(split, image, prediction, label) per record. The image ties a question to the others
    about the same picture (the same "yes" questions recur in every split); a record without
    one stands alone."""
    return [(_split_of(r["doc_id"]), r.get("image") or ("doc", r["doc_id"]), r["prediction"], r["targets"])
            for r in records]


def paired(records_a: list[dict], records_b: list[dict]) -> dict:
    """{"f1" | "accuracy": (A - B, standard error, p-value)} over the questions both answered,
    by a paired bootstrap over images (see sc_eval.metrics.pope.pope_paired)."""
    b = {str(r["doc_id"]): r for r in records_b}
    a = [r for r in records_a if str(r["doc_id"]) in b]
    qa = _questions(a)
    # B's questions tied to A's image keys: the same questions, wherever B's images were stored
    qb = [(split, image, b[str(r["doc_id"])]["prediction"], b[str(r["doc_id"])]["targets"])
          for (split, image, _, _), r in zip(qa, a)]
    return pope_paired(qa, qb)


# ---- reading answer files ----------------------------------------------------------------------

def _raw_records(path: Path) -> list[dict]:
    if not path.exists():
        raise DataError(f"{path}: predictions file not found")
    with open(path, encoding="utf-8") as f:
        first = f.read(4096).lstrip()[:1]
    data = read_json(path) if first == "[" else list(iter_jsonl(path))
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise DataError(f"{path}: expected JSON objects (LLaVA answer jsonl or sc-eval predictions)")
    return data


def read_predictions(path, docs: list[dict]) -> dict[str, str]:
    """{doc_id: answer text} from sc-eval predictions or a LLaVA answer file.

    sc-eval records carry ``doc_id``. LLaVA records ``{"question_id", "text", "category"?}``:
    with a category, answers go to that split, matched by question id when every id of the
    category is one of the split's ids, else in order (the reference's pairing, which needs as
    many answers as the split has questions); without a category, each id must belong to
    exactly one of the splits given.
    """
    path = Path(path)
    recs = _raw_records(path)
    if all("doc_id" in r and "prediction" in r for r in recs):
        return {str(r["doc_id"]): str(r["prediction"] or "") for r in recs}
    for i, r in enumerate(recs):
        if "question_id" not in r or "text" not in r:
            raise DataError(f"{path}: record #{i} has neither doc_id+prediction nor question_id+text "
                            f"(keys {sorted(r)})")
    by_split: dict[str, list[dict]] = {}
    for d in docs:
        by_split.setdefault(d["category"], []).append(d)
    out: dict[str, str] = {}
    with_cat = [r for r in recs if r.get("category") is not None]
    for cat in dict.fromkeys(str(r["category"]) for r in with_cat):
        answers = [r for r in with_cat if str(r["category"]) == cat]
        split_docs = by_split.get(cat)
        if split_docs is None:
            raise DataError(f"{path}: answers have category {cat!r} but --annotations has no "
                            f"coco_pope_{cat}.json (splits given: {sorted(by_split)})")
        ids = {str(d["question_id"]): d["doc_id"] for d in split_docs}
        if all(str(r["question_id"]) in ids for r in answers):
            for r in answers:
                out.setdefault(ids[str(r["question_id"])], str(r["text"]))
        elif len(answers) == len(split_docs):
            log.info("POPE %s: answer ids are not the annotation ids; pairing answers with "
                     "annotation lines in order, as LLaVA's eval_pope.py does", cat)
            for r, d in zip(answers, split_docs):
                out[d["doc_id"]] = str(r["text"])
        else:
            raise DataError(f"{path}: {len(answers)} answers of category {cat!r} neither use the "
                            f"annotation ids nor match its {len(split_docs)} questions one to one")
    owners: dict[str, list[str]] = {}
    for d in docs:
        owners.setdefault(str(d["question_id"]), []).append(d["doc_id"])
    for r in recs:
        if r.get("category") is not None:
            continue
        qid = str(r["question_id"])
        found = owners.get(qid, [])
        if len(found) > 1:
            raise DataError(f"{path}: answer to question_id {qid} has no 'category' and that id occurs "
                            f"in {len(found)} splits ({', '.join(found)}); give answers a category "
                            "(as LLaVA's question file does) or score one split file at a time")
        if not found:
            raise DataError(f"{path}: question_id {qid} is in none of the annotation files given")
        out.setdefault(found[0], str(r["text"]))
    return out
