"""ScienceQA-IMG docs from the official layout, the LLaVA-1.5 prompt, LLaVA's letter parse.

Official layout: ``problems.json`` (pid -> question, choices, answer index, hint, image, ...),
``pid_splits.json`` (split -> pids) and images at ``images/<split>/<pid>/image.png``. Only
problems with an image are docs (the "-IMG" subset the paper reports).
"""
from __future__ import annotations

from pathlib import Path

from sc_eval.errors import DataError

MC_SUFFIX = "\nAnswer with the option's letter from the given choices directly."


def load_docs(root: Path, problems: str, pid_splits: str, images: str, split: str = "test") -> list[dict]:
    from sc_eval.data.formats import read_scienceqa

    root = Path(root)
    return read_scienceqa(root / problems, root / pid_splits, root / images, split, with_image_only=True)


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
    """1 when LLaVA's parse of the output gives the answer's letter, else 0 (FAILED is wrong)."""
    from sc_eval.metrics.choice import scienceqa_correct

    return {"accuracy": scienceqa_correct(prediction, doc["answer"], len(doc["choices"]))}


def load_for_scoring(annotations, questions=None) -> list[dict]:
    """``--annotations``: the folder holding problems.json + pid_splits.json, or problems.json
    itself (pid_splits.json beside it). The test split's image questions are scored."""
    p = Path(annotations)
    folder = p if p.is_dir() else p.parent
    problems = p if p.is_file() else folder / "problems.json"
    splits = folder / "pid_splits.json"
    for f in (problems, splits):
        if not f.exists():
            raise DataError(f"{f}: not found; --annotations must be the ScienceQA folder with "
                            "problems.json and pid_splits.json")
    from sc_eval.data.formats import read_scienceqa

    return read_scienceqa(problems, splits, folder / "images", "test", with_image_only=True)
