"""MME docs from the official layouts, the LLaVA-1.5 prompt, per-category scores, answer files.

Layouts read (per category folder ``<root>/<category>/``, categories as MME names them):
  * ``images/<image>`` + ``questions_answers_YN/<stem>.txt`` (artwork, celebrity, ...);
  * ``<image>`` + ``<stem>.txt`` side by side (code_reasoning, color, count, ...);
  * the eval tool's flat files ``<root>/<category>.txt``, lines "image<TAB>question<TAB>answer",
    images in ``<root>/<category>/`` (or its ``images/``).
A question file holds the image's two lines "question<TAB>answer" (Yes/No). No official question
id exists, so doc_id = "<category>/<image>/<k>", k the line (0 or 1) of the pair.

lmms-lab/MME: ``data/test-*.parquet`` (2,374 rows), columns question_id ("<category>/<image
file>", shared by the two questions of an image), image, question, answer, category. Read when the
official folder is absent; docs are ordered as the official reader orders them.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from sc_eval.data import lmms
from sc_eval.errors import DataError
from sc_eval.io import iter_jsonl
from sc_eval.metrics.mme import COGNITION, PERCEPTION, mme_correct, mme_scores

log = logging.getLogger(__name__)

ASK_YES_NO = " Please answer yes or no."
SHORT_SUFFIX = "\nAnswer the question using a single word or phrase."
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


def _category_names() -> tuple[str, ...]:
    return PERCEPTION + COGNITION


def _qa_lines(path: Path, n_fields: int) -> list[list[str]]:
    out = []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            fields = line.split("\t")
            if len(fields) < n_fields:
                raise DataError(f"{path}:{i + 1}: expected {n_fields} tab-separated fields, got {len(fields)}")
            out.append([x.strip() for x in fields])
    return out


def _find_image(folder: Path, stem: str) -> Path:
    for ext in IMAGE_EXTS:
        for cand in (folder / (stem + ext), folder / (stem + ext.upper())):
            if cand.exists():
                return cand
    raise DataError(f"{folder}: no image named {stem}.* for question file {stem}.txt")


def _doc(category: str, image: Path, k: int, question: str, answer: str, where) -> dict:
    if answer.strip().lower() not in ("yes", "no"):
        raise DataError(f"{where}: answer {answer!r} is not Yes/No")
    return {"doc_id": f"{category}/{image.name}/{k}", "category": category,
            "image": os.path.abspath(image), "image_name": image.name,
            "question": question, "answer": answer}


def _read_category(root: Path, category: str) -> list[dict]:
    folder = root / category
    flat = root / f"{category}.txt"
    docs = []
    if (folder / "questions_answers_YN").is_dir():
        for qa in sorted((folder / "questions_answers_YN").glob("*.txt")):
            image = _find_image(folder / "images", qa.stem)
            docs += [_doc(category, image, k, q, a, qa) for k, (q, a, *_) in enumerate(_qa_lines(qa, 2))]
    elif folder.is_dir() and any(folder.glob("*.txt")):
        for qa in sorted(folder.glob("*.txt")):
            image = _find_image(folder, qa.stem)
            docs += [_doc(category, image, k, q, a, qa) for k, (q, a, *_) in enumerate(_qa_lines(qa, 2))]
    elif flat.exists():
        seen: dict[str, int] = {}
        img_dir = folder / "images" if (folder / "images").is_dir() else folder
        for name, q, a, *_ in _qa_lines(flat, 3):
            k = seen.get(name, 0)
            seen[name] = k + 1
            docs.append(_doc(category, img_dir / name, k, q, a, flat))
    return docs


def _read(root: Path) -> list[dict]:
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: MME folder not found (expected MME_Benchmark_release_version)")
    docs = []
    for category in _category_names():
        docs += _read_category(root, category)
    if not docs:
        raise DataError(f"{root}: no MME category folder or <category>.txt found; expected e.g. "
                        "existence/ or artwork/questions_answers_YN/")
    _check_pairs(docs, root)
    return docs


def _check_pairs(docs: list[dict], root) -> None:
    counts: dict[tuple, int] = {}
    for d in docs:
        key = (d["category"], d["image_name"])
        counts[key] = counts.get(key, 0) + 1
    odd = [(key, n) for key, n in counts.items() if n != 2]
    if odd:
        (cat, image), n = odd[0]
        raise DataError(f"{root}: MME pairs two questions per image, but {cat}/{image} has {n} "
                        f"({len(odd)} such images); check its question file")


LMMS_COLUMNS = ("question_id", "image", "question", "answer", "category")


def load_docs(root: Path, folder: str, lmms_dir=None, lmms_split: str = "test") -> list[dict]:
    """Every category present under ``data_root/folder``, in MME's category order; or the lmms-lab
    MME download when that folder is absent."""
    root = Path(root)
    if not (root / folder).is_dir():
        return _lmms_docs(root, folder, lmms_dir, lmms_split)
    return _read(root / folder)


def _lmms_docs(root: Path, folder: str, dirs, split: str) -> list[dict]:
    src = lmms.require(root, lmms.candidate_dirs(folder, dirs or ["MME"]), split, None, LMMS_COLUMNS,
                       str(root / folder))

    def build(store, cache):
        docs, seen = [], {}
        for where, row in lmms.checked_rows(src, LMMS_COLUMNS):
            category = str(row["category"])
            name = Path(str(row["question_id"])).name
            k = seen.get((category, name), 0)
            seen[(category, name)] = k + 1
            if str(row["answer"]).strip().lower() not in ("yes", "no"):
                raise DataError(f"{where}: answer {row['answer']!r} is not Yes/No")
            image = store.save(f"{category}__{Path(name).stem}", lmms.image_bytes(row["image"], where))
            docs.append({"doc_id": f"{category}/{name}/{k}", "category": category, "image": image,
                         "image_name": name, "question": str(row["question"]).strip(),
                         "answer": str(row["answer"]).strip()})
        order = {c: n for n, c in enumerate(_category_names())}
        docs.sort(key=lambda d: (order.get(d["category"], len(order)), Path(d["image_name"]).stem))
        _check_pairs(docs, src.folder)
        return docs

    return lmms.cached_docs([src], "mme", build)


def load_for_scoring(annotations, questions=None) -> list[dict]:
    """``--annotations``: the MME folder (per-category folders or <category>.txt files), or an
    lmms-lab MME download."""
    if lmms.locate(annotations, [], "test", None, LMMS_COLUMNS) is not None:
        return _lmms_docs(Path(annotations), "mme", None, "test")
    return _read(Path(annotations))


def doc_to_text(doc: dict) -> str:
    """The question with " Please answer yes or no." swapped for the short-answer suffix."""
    return doc["question"].strip().replace(ASK_YES_NO, "") + SHORT_SUFFIX


def process_results(doc: dict, prediction: str) -> dict:
    """1 when MME's yes/no parse of the output equals the answer."""
    return {"correct": mme_correct(prediction, doc["answer"])}


def aggregate(records: list[dict]) -> dict:
    """``perception``, ``cognition``, then per category its score and ``_acc``/``_acc_plus``."""
    rows = []
    for r in records:
        category, image, _ = str(r["doc_id"]).split("/")
        rows.append({"category": category, "image": image, "answer": r["targets"],
                     "prediction": r["prediction"]})
    # Loading checked that every image has its pair; a half pair here comes from --limit.
    n = {}
    for row in rows:
        n[(row["category"], row["image"])] = n.get((row["category"], row["image"]), 0) + 1
    whole = [row for row in rows if n[(row["category"], row["image"])] == 2]
    if len(whole) < len(rows):
        log.warning("MME: %d questions whose pair was not evaluated (--limit?) are left out",
                    len(rows) - len(whole))
    scores = mme_scores(whole or rows)
    head = {k: scores.pop(k) for k in ("perception", "cognition")}
    return {**head, **scores}


# ---- answer files ------------------------------------------------------------------------------

def _bare(question: str) -> str:
    return question.split("\n")[0].strip().replace(ASK_YES_NO, "").strip()


def read_predictions(path, docs: list[dict]) -> dict[str, str]:
    """{doc_id: answer} from sc-eval predictions, the eval tool's results folder, or LLaVA answers.

    * a folder of ``<category>.txt`` with lines "image<TAB>question<TAB>answer<TAB>prediction"
      (what MME's calculation.py reads);
    * sc-eval jsonl (``doc_id`` + ``prediction``);
    * LLaVA answer jsonl (``question_id`` naming the image, ``prompt`` the question, ``text``),
      matched to docs by image file and question text.
    """
    path = Path(path)
    by_key = {(d["category"], d["image_name"], _bare(d["question"])): d["doc_id"] for d in docs}
    by_image = {}
    for d in docs:
        by_image.setdefault((d["image_name"], _bare(d["question"])), []).append(d["doc_id"])
    out: dict[str, str] = {}
    if path.is_dir():
        for f in sorted(path.glob("*.txt")):
            for name, q, _, pred, *_ in _qa_lines(f, 4):
                key = (f.stem, name, _bare(q))
                if key not in by_key:
                    raise DataError(f"{f}: {name} / {q!r} is not an MME question of --annotations")
                out[by_key[key]] = pred
        return out

    for i, r in enumerate(iter_jsonl(path)):
        if "doc_id" in r and "prediction" in r:
            out[str(r["doc_id"])] = str(r["prediction"] or "")
            continue
        if "question_id" not in r or "text" not in r or "prompt" not in r:
            raise DataError(f"{path}:{i + 1}: need doc_id+prediction or question_id+prompt+text")
        qid = str(r["question_id"])
        found = by_image.get((Path(qid).name, _bare(r["prompt"])), [])
        cat = qid.split("/")[0]
        if len(found) > 1:
            found = [x for x in found if x.startswith(cat + "/")]
        if len(found) != 1:
            raise DataError(f"{path}:{i + 1}: cannot match {qid!r} / {r['prompt'][:60]!r} to one MME question")
        out[found[0]] = str(r["text"])
    return out
