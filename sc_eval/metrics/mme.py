"""MME scoring as the benchmark's ``calculation.py`` does it.

Every image has two yes/no questions (one "yes", one "no"). Per category: acc = percent of
questions right, acc+ = percent of images with both questions right; the category score is
acc + acc+ (out of 200). Perception sums 10 categories (max 2000), cognition 4 (max 800).
"""
from __future__ import annotations

import logging
from typing import Iterable, Mapping

from sc_eval.errors import DataError, did_you_mean

log = logging.getLogger(__name__)

PERCEPTION = ("existence", "count", "position", "color", "posters", "celebrity", "scene",
              "landmark", "artwork", "OCR")
COGNITION = ("commonsense_reasoning", "numerical_calculation", "text_translation", "code_reasoning")


def mme_parse(text: str) -> str:
    """'yes', 'no' or 'other': the lower-cased answer itself, else whichever of "yes"/"no"
    occurs in its first four characters ("yes" first). "Yes, it is" -> yes, "Not really" ->
    no, "There is a dog" -> other (counted wrong)."""
    if not isinstance(text, str):
        raise DataError(f"MME scoring: prediction must be a string, got {text!r}")
    text = text.lower()
    if text in ("yes", "no"):
        return text
    head = text[:4]
    if "yes" in head:
        return "yes"
    if "no" in head:
        return "no"
    return "other"


def _gold(answer, where: str) -> str:
    gold = str(answer).lower().strip()
    if gold not in ("yes", "no"):
        raise DataError(f"MME scoring: {where} has answer {answer!r}; MME answers are Yes or No")
    return gold


def mme_correct(prediction: str, answer: str) -> float:
    return 1.0 if mme_parse(prediction) == _gold(answer, "a question") else 0.0


def mme_scores(records: Iterable[Mapping]) -> dict[str, float]:
    """Scores from records with ``category``, ``image``, ``answer`` and ``prediction``.

    Returns ``perception``, ``cognition`` and, per category present, ``<category>`` (acc + acc+),
    ``<category>_acc`` and ``<category>_acc_plus``. An image must have exactly two questions.
    A category with no records is left out of the sums (with a warning): compare sums only
    between runs that scored the same categories.
    """
    by_image: dict[str, dict[str, list[bool]]] = {}
    for i, rec in enumerate(records):
        cat = rec.get("category")
        if cat not in PERCEPTION and cat not in COGNITION:
            raise DataError(f"MME scoring: record #{i} has unknown category {cat!r}"
                            + did_you_mean(str(cat), PERCEPTION + COGNITION))
        right = mme_parse(rec["prediction"]) == _gold(rec["answer"], f"record #{i} ({rec.get('image')})")
        by_image.setdefault(cat, {}).setdefault(str(rec["image"]), []).append(right)
    if not by_image:
        raise DataError("MME scoring: no records to score")
    out: dict[str, float] = {}
    for cat, images in by_image.items():
        for image, results in images.items():
            if len(results) != 2:
                raise DataError(f"MME scoring: {cat}/{image} has {len(results)} questions; "
                                "MME pairs exactly two questions per image")
        n_questions = sum(len(r) for r in images.values())
        acc = 100.0 * sum(sum(r) for r in images.values()) / n_questions
        acc_plus = 100.0 * sum(1 for r in images.values() if all(r)) / len(images)
        out[f"{cat}_acc"] = acc
        out[f"{cat}_acc_plus"] = acc_plus
        out[cat] = acc + acc_plus
    for group, cats in (("perception", PERCEPTION), ("cognition", COGNITION)):
        missing = [c for c in cats if c not in by_image]
        if missing and len(missing) < len(cats):
            log.warning("MME %s: no records for %s; the sum covers the others only", group, missing)
        out[group] = sum(out[c] for c in cats if c in by_image)
    return out
