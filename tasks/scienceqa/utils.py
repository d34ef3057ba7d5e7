"""ScienceQA-IMG docs from the official layout, the LLaVA-1.5 prompt, LLaVA's and lmms-eval's
letter rules.

Official layout: ``problems.json`` (pid -> question, choices, answer index, hint, image, ...),
``pid_splits.json`` (split -> pids) and images at ``images/<split>/<pid>/image.png``. Only
problems with an image are docs (the "-IMG" subset the paper reports).

lmms-lab/ScienceQA, config ScienceQA-IMG: ``ScienceQA-IMG/{train,validation,test}-*.parquet``
(test: 2,017 rows), columns image, question, choices, answer (index), hint, task, grade, subject,
topic, category, skill, lecture, solution. It carries no problem id: when the official
problems.json and pid_splits.json (small, no images) are under the data root, each row is given
its pid by matching its content with that split's image problems; otherwise doc_id is
"<split>-<row number>".
"""
from __future__ import annotations

from pathlib import Path

from sc_eval.data import lmms
from sc_eval.data.formats import read_scienceqa
from sc_eval.errors import DataError
from sc_eval.metrics.choice import scienceqa_correct, scienceqa_correct_lmms_v03

MC_SUFFIX = "\nAnswer with the option's letter from the given choices directly."
LMMS_COLUMNS = ("image", "question", "choices", "answer", "hint")
LMMS_SPLITS = {"val": "validation"}  # pid_splits.json names -> lmms-lab split names


def load_docs(root: Path, problems: str, pid_splits: str, images: str, split: str = "test",
              lmms_dir=None, lmms_config: str = "ScienceQA-IMG") -> list[dict]:
    """Docs of the official layout; or, when its images folder is absent, of an lmms-lab ScienceQA
    download (config `lmms_config`, the same split)."""
    root = Path(root)
    official = (root / problems).is_file() and (root / images).is_dir()
    if not official and ((not (root / problems).is_file()) or lmms.locate(
            root, lmms.candidate_dirs(problems, lmms_dir or ["ScienceQA"]), LMMS_SPLITS.get(split, split),
            lmms_config, LMMS_COLUMNS)):
        return _lmms_docs(root, problems, pid_splits, lmms_dir, lmms_config, split)
    return read_scienceqa(root / problems, root / pid_splits, root / images, split, with_image_only=True)


def _key(question, choices, hint, answer) -> tuple:
    return (str(question), tuple(str(c) for c in choices), str(hint or ""), int(answer))


def _pids_by_content(root: Path, problems: str, pid_splits: str, split: str) -> dict | None:
    """{content key: [pids]} of the split's image problems, when the official JSONs are present."""
    if not ((root / problems).is_file() and (root / pid_splits).is_file()):
        return None
    out: dict = {}
    for d in read_scienceqa(root / problems, root / pid_splits, root, split, with_image_only=True):
        out.setdefault(_key(d["question"], d["choices"], d["hint"], d["answer"]), []).append(d["doc_id"])
    return out


def _lmms_docs(root: Path, problems: str, pid_splits: str, dirs, config: str, split: str) -> list[dict]:
    src = lmms.require(root, lmms.candidate_dirs(problems, dirs or ["ScienceQA"]), LMMS_SPLITS.get(split, split),
                       config, LMMS_COLUMNS, str(root / problems))
    pids = _pids_by_content(root, problems, pid_splits, split)
    key = "scienceqa-" + config + ("-pids" if pids is not None else "")

    def build(store, folder):
        docs = []
        for i, (where, row) in enumerate(lmms.checked_rows(src, LMMS_COLUMNS)):
            doc_id = f"{split}-{i:05d}"
            if pids is not None:
                found = pids.get(_key(row["question"], row["choices"], row["hint"], row["answer"]))
                if not found:
                    raise DataError(f"{where}: no {split} problem of {root / problems} has this question "
                                    f"({str(row['question'])[:60]!r}); are the parquet and the JSON the same release?")
                doc_id = found.pop(0)
            choices = [str(c) for c in row["choices"]]
            image = store.save(doc_id, lmms.image_bytes(row["image"], where))
            docs.append({"doc_id": doc_id, "question": row["question"], "choices": choices,
                         "answer": int(row["answer"]), "answer_letter": chr(ord("A") + int(row["answer"])),
                         "hint": row["hint"] or "", "subject": row.get("subject"),
                         "category": row.get("category"), "grade": row.get("grade"), "image": image})
        return docs

    sources = [src]
    if pids is not None:  # the pid mapping depends on the JSONs too: a changed file, a new cache
        sources.append(lmms.Source(root, split, None, [root / problems, root / pid_splits]))
    return lmms.cached_docs(sources, key, build)


def doc_to_text(doc: dict) -> str:
    """``Context: <hint>\\n`` (omitted when the hint is empty), question, ``A. ..`` lines, suffix.

    This is lmms-eval's default ScienceQA prompt, which the SuperClass paper's numbers used;
    LLaVA-1.5's question file has the same shape.
    """
    letters = [chr(ord("A") + i) for i in range(len(doc["choices"]))]
    options = "\n".join(f"{letter}. {choice}" for letter, choice in zip(letters, doc["choices"]))
    context = f"Context: {doc['hint']}\n" if doc.get("hint") else ""
    return f"{context}{doc['question']}\n{options}{MC_SUFFIX}"


def process_results(doc: dict, prediction: str) -> dict:
    """``accuracy``: 1 when LLaVA's parse of the output gives the answer's letter, else 0 (FAILED
    is wrong); ``accuracy_lmms_v03``: 1 when the output is that letter, any case (lmms-eval)."""
    return {"accuracy": scienceqa_correct(prediction, doc["answer"], len(doc["choices"])),
            "accuracy_lmms_v03": scienceqa_correct_lmms_v03(prediction, doc["answer"])}


def load_for_scoring(annotations, questions=None) -> list[dict]:
    """``--annotations``: the folder holding problems.json + pid_splits.json, or problems.json
    itself (pid_splits.json beside it). The test split's image questions are scored."""
    p = Path(annotations)
    if p.is_dir() and lmms.locate(p, ["ScienceQA"], "test", "ScienceQA-IMG", LMMS_COLUMNS) is not None:
        return _lmms_docs(p, "scienceqa/problems.json", "scienceqa/pid_splits.json", None, "ScienceQA-IMG", "test")
    folder = p if p.is_dir() else p.parent
    problems = p if p.is_file() else folder / "problems.json"
    splits = folder / "pid_splits.json"
    for f in (problems, splits):
        if not f.exists():
            raise DataError(f"{f}: not found; --annotations must be the ScienceQA folder with "
                            "problems.json and pid_splits.json")

    return read_scienceqa(problems, splits, folder / "images", "test", with_image_only=True)
