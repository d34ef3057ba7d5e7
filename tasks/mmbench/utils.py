"""MMBench docs from the official TSV, the LLaVA-1.5 prompt, letter accuracy, CircularEval.

Official layout: one TSV per split (``mmbench_dev_20230712.tsv``, ``MMBench_DEV_EN.tsv``...) with
columns index, question, hint, A..D (E), answer (absent on test), category, l2-category, image
(base64), source, split, comment. Options end at the first empty cell; an empty hint is "",
"nan" or "none". Images are decoded once into a cache folder (``images.py``).

CircularEval asks every question once per rotation of its options and counts it only when every
pass is right: the score LLaVA (through the MMBench server), lmms-eval and VLMEvalKit all report.
The official TSVs already hold the rotated copies as extra rows whose index is the original's
plus k * 1,000,000; ``mmbench_en_dev`` groups its rows by index mod 1,000,000 and reports
``circular_accuracy`` (its headline) over those groups, and ``accuracy``, the mean over every
row (copies included), which no reference reports. ``mmbench_en_dev_circular`` instead builds
the rotations itself from the original rows (LLaVA's ``--all-rounds``: options shifted left,
letters fixed), doc_id "<index>/<rotation>", for TSVs without copies.

lmms-lab/MMBench, config ``en``: ``en/{dev,test}-*.parquet`` with the TSV's columns (index,
question, hint, answer, A..D, category, image as an image, source, L2-category, comment, split);
lmms-lab/MMBench_EN has the same in ``data/``. Read when the TSV is absent; docs are the same.
"""
from __future__ import annotations

import base64
import binascii
import csv
import logging
import sys
from pathlib import Path

from sc_eval.data import lmms
from sc_eval.data.images import embedded_images_dir, materialize
from sc_eval.errors import DataError
from sc_eval.io import atomic_write_json, iter_jsonl
from sc_eval.metrics.choice import circular_accuracy, circular_rotations, mmbench_correct
from sc_eval.metrics.stderr import clustered_mean_stderr, mean_stderr
from sc_eval.tasks.mmbench.xlsx import write_xlsx

log = logging.getLogger(__name__)

MC_SUFFIX = "\nAnswer with the option's letter from the given choices directly."
LETTERS = ("A", "B", "C", "D", "E")
COPY_OFFSET = 1_000_000  # official TSVs: rotated copies of question i have index i + k * 1e6


def _missing(value) -> bool:
    return value is None or str(value).strip().lower() in ("", "nan", "none")


def _read_tsv(tsv: Path, decode_images: bool = True) -> list[dict]:

    if not tsv.exists():
        raise DataError(f"{tsv}: MMBench TSV not found")
    csv.field_size_limit(sys.maxsize)  # base64 images are far longer than csv's default limit
    folder = embedded_images_dir(tsv, "mmbench") if decode_images else None
    docs = []
    with open(tsv, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t")
        need = {"index", "question", "A", "B"}
        if not need <= set(reader.fieldnames or []):
            raise DataError(f"{tsv}: header lacks {sorted(need - set(reader.fieldnames or []))}; "
                            "not an MMBench TSV")
        for line, row in enumerate(reader, start=2):
            index = _index(row, f"{tsv}:{line}")
            image = None
            if folder is not None and not _missing(row.get("image")):
                try:
                    data = base64.b64decode(row["image"], validate=False)
                except (binascii.Error, ValueError):
                    raise DataError(f"{tsv}:{line}: index {index}: image is not valid base64") from None
                image = materialize(folder, str(index), data)
            docs.append(_row_doc(row, index, image))
    if not docs:
        raise DataError(f"{tsv}: no rows")
    return docs


def _index(row: dict, where: str) -> int:
    try:
        return int(float(row["index"]))
    except (TypeError, ValueError):
        raise DataError(f"{where}: index {row['index']!r} is not a number") from None


def _row_doc(row: dict, index: int, image) -> dict:
    """A doc from one MMBench row (TSV or parquet): options end at the first empty letter."""
    options = []
    for letter in LETTERS:
        if _missing(row.get(letter)):
            break
        options.append(row[letter])
    answer = None if _missing(row.get("answer")) else str(row["answer"]).strip()
    return {
        "doc_id": str(index), "index": index, "question": row["question"],
        "hint": "" if _missing(row.get("hint")) else row["hint"],
        "options": options, "answer": answer,
        "category": row.get("category"), "l2_category": row.get("l2-category", row.get("L2-category")),
        "split": row.get("split"), "image": image,
    }


LMMS_COLUMNS = ("index", "question", "A", "B", "image")


def _read_lmms(root: Path, tsv: str, dirs, config: str, split: str, decode_images: bool = True) -> list[dict]:
    """The docs `_read_tsv` gives, from an lmms-lab MMBench download (`config`/`split`)."""
    names = dirs or ["MMBench", "MMBench_EN"]
    where_dirs = lmms.candidate_dirs(tsv, names)
    src = lmms.locate(root, where_dirs, split, config, LMMS_COLUMNS) or \
        lmms.require(root, where_dirs, split, None, LMMS_COLUMNS, str(root / tsv))

    def build(store, folder):
        docs = []
        cols = None if decode_images else [c for c in lmms.parquet_columns(src.files[0]) if c != "image"]
        for where, row in lmms.checked_rows(src, columns=cols):
            index = _index(row, where)
            image = store.save(str(index), lmms.image_bytes(row.get("image"), where)) if decode_images else None
            docs.append(_row_doc(row, index, image))
        if not docs:
            raise DataError(f"{src.describe()}: no rows")
        return docs

    return lmms.cached_docs([src], f"mmbench-{config}-{split}" + ("" if decode_images else "-noimg"), build)


def _read(root: Path, tsv: str, lmms_dir=None, lmms_config: str = "en", lmms_split: str = "dev") -> list[dict]:
    root = Path(root)
    if (root / tsv).exists():
        return _read_tsv(root / tsv)
    return _read_lmms(root, tsv, lmms_dir, lmms_config, lmms_split)


def load_docs(root: Path, tsv: str, lmms_dir=None, lmms_config: str = "en", lmms_split: str = "dev") -> list[dict]:
    """Docs of the official TSV, or of an lmms-lab MMBench download when the TSV is absent."""
    return _read(root, tsv, lmms_dir, lmms_config, lmms_split)


def load_circular_docs(root: Path, tsv: str, lmms_dir=None, lmms_config: str = "en",
                       lmms_split: str = "dev") -> list[dict]:
    """One doc per rotation of each original question (rows with index < 1e6)."""
    return _rotate(_read(root, tsv, lmms_dir, lmms_config, lmms_split))


def _rotate(rows: list[dict]) -> list[dict]:
    docs = []
    for row in rows:
        if row["index"] >= COPY_OFFSET:
            continue  # the TSV's own copies: we rotate the original ourselves
        if row["answer"] not in LETTERS[: len(row["options"])]:
            raise DataError(f"MMBench index {row['index']}: answer {row['answer']!r} is not one of its options")
        passes = circular_rotations(row["options"], LETTERS.index(row["answer"]))
        for k, (options, letter) in enumerate(passes):
            docs.append({**row, "doc_id": f"{row['index']}/{k}", "rotation": k,
                         "options": options, "answer": letter})
    return docs


def doc_to_text(doc: dict) -> str:
    """LLaVA-1.5's MMBench prompt: hint line (if any), question, "A. .." lines, instruction."""
    text = f"{doc['hint']}\n{doc['question']}" if doc["hint"] else doc["question"]
    for letter, option in zip(LETTERS, doc["options"]):
        text += f"\n{letter}. {option}"
    return text + MC_SUFFIX


def process_results(doc: dict, prediction: str) -> dict:
    """1 when the letter the output names (sc_eval.metrics.choice.mmbench_extract) is the answer."""
    if doc["answer"] is None:
        raise DataError(f"MMBench index {doc['index']}: no answer in this TSV (test split); "
                        "use mmbench_en_test, which only writes the submission file")
    return {"accuracy": mmbench_correct(prediction, dict(zip(LETTERS, doc["options"])), doc["answer"])}


def aggregate(records: list[dict]) -> dict:
    """``circular_accuracy``: questions (rows grouped by index mod 1e6) whose every row is right;
    ``accuracy``: the mean over all rows. As in lmms-eval and VLMEvalKit, the questions are the
    original rows (index < 1e6) scored, each with whichever of its copies were scored. Without
    rotated copies among the rows (a TSV that has none, or a --limit that stops before them)
    each question is one row and both are equal."""
    groups: dict[int, list[bool]] = {int(r["doc_id"]): [] for r in records if int(r["doc_id"]) < COPY_OFFSET}
    if not groups:
        raise DataError("MMBench: none of the rows scored is an original question (index < 1,000,000); "
                        "score the whole TSV, whose rotated copies follow their originals")
    for r in records:
        group = groups.get(int(r["doc_id"]) % COPY_OFFSET)
        if group is not None:
            group.append(r["scores"]["accuracy"] == 1.0)
    if len(groups) == len(records):
        log.warning("MMBench: none of the %d rows scored is a rotated copy (index >= 1,000,000), so "
                    "circular_accuracy is single-pass; the official TSVs hold the copies, and "
                    "mmbench_en_dev_circular makes them for a TSV that lacks them", len(records))
    rows = [r for r in records if int(r["doc_id"]) % COPY_OFFSET in groups]
    metrics = {"circular_accuracy": circular_accuracy(groups),
               "accuracy": 100.0 * sum(r["scores"]["accuracy"] for r in records) / len(records)}
    return metrics, _stderr(groups, [r["scores"]["accuracy"] for r in rows],
                            [int(r["doc_id"]) % COPY_OFFSET for r in rows], row_metric="accuracy")


def _stderr(groups: dict, row_scores: list, row_groups: list, row_metric: str) -> dict:
    """``circular_accuracy``'s standard error over its questions (each right or wrong as a whole),
    and the row mean's clustered by question: a question's rotated copies are not independent."""
    out = {"circular_accuracy": mean_stderr([1.0 if g and all(g) else 0.0 for g in groups.values()]),
           row_metric: clustered_mean_stderr(row_scores, row_groups)}
    return {k: v for k, v in out.items() if v is not None}


def aggregate_circular(records: list[dict]) -> dict:
    """``circular_accuracy`` (all rotations right), ``accuracy`` of the unrotated pass alone,
    ``pass_accuracy`` over every pass."""
    groups: dict[str, list[bool]] = {}
    first = []
    for r in records:
        index, _, k = str(r["doc_id"]).partition("/")
        groups.setdefault(index, []).append(r["scores"]["accuracy"] == 1.0)
        if k == "0":
            first.append(r["scores"]["accuracy"])
    out = {"circular_accuracy": circular_accuracy(groups)}
    if first:
        out["accuracy"] = 100.0 * sum(first) / len(first)
    out["pass_accuracy"] = 100.0 * sum(r["scores"]["accuracy"] for r in records) / len(records)
    stderr = _stderr(groups, [r["scores"]["accuracy"] for r in records],
                     [str(r["doc_id"]).partition("/")[0] for r in records], row_metric="pass_accuracy")
    first_se = mean_stderr(first)
    if first_se is not None:
        stderr["accuracy"] = first_se
    return out, stderr


# ---- scoring files and the server submission ---------------------------------------------------

def load_for_scoring(annotations, questions=None) -> list[dict]:
    """``--annotations``: the MMBench TSV, or an lmms-lab MMBench download (en, dev); images are
    not decoded for scoring."""
    return _scoring_rows(Path(annotations))


def load_circular_for_scoring(annotations, questions=None) -> list[dict]:
    return _rotate(_scoring_rows(Path(annotations)))


def _scoring_rows(path: Path) -> list[dict]:
    if path.is_dir():
        return _read_lmms(path, "mmbench/dev.tsv", None, "en", "dev", decode_images=False)
    return _read_tsv(path, decode_images=False)


def read_circular_predictions(path, docs: list[dict]) -> dict[str, str]:
    """sc-eval jsonl, or LLaVA ``--all-rounds`` answers ``{"question_id", "round_id", "text"}``."""
    out: dict[str, str] = {}
    for i, r in enumerate(iter_jsonl(Path(path))):
        if "doc_id" in r and "prediction" in r:
            out[str(r["doc_id"])] = str(r["prediction"] or "")
        elif "question_id" in r and "text" in r and "round_id" in r:
            out.setdefault(f"{int(r['question_id'])}/{int(r['round_id'])}", str(r["text"]))
        else:
            raise DataError(f"{path}:{i + 1}: need doc_id+prediction, or question_id+round_id+text "
                            "(LLaVA's model_vqa_mmbench --all-rounds)")
    return out


def write_submission(records: list[dict], docs: list[dict], out_path) -> Path:
    """The server's Excel file (LLaVA's converter: index, question, options, prediction, answer,
    split; hint, image and category columns dropped) as ``<name>.xlsx`` beside ``out_path``;
    ``out_path`` itself gets the same predictions as JSON ``[{"index", "prediction"}]``."""
    by_id = {str(r["doc_id"]): r["prediction"] for r in records}
    n_opt = max(len(d["options"]) for d in docs)
    has_answer = any(d["answer"] is not None for d in docs)
    has_split = any(d.get("split") for d in docs)
    header = ["index", "question", *LETTERS[:n_opt], "prediction"]
    header += ["answer"] if has_answer else []
    header += ["split"] if has_split else []
    rows, preds = [], []
    for d in docs:
        if d["doc_id"] not in by_id:
            continue
        opts = d["options"] + [None] * (n_opt - len(d["options"]))
        row = [d["index"], d["question"], *opts, by_id[d["doc_id"]]]
        row += [d["answer"]] if has_answer else []
        row += [d.get("split")] if has_split else []
        rows.append(row)
        preds.append({"index": d["index"], "prediction": by_id[d["doc_id"]]})
    xlsx = write_xlsx(Path(out_path).with_suffix(".xlsx"), header, rows)
    atomic_write_json(out_path, preds, indent=None)
    return xlsx
