"""GQA accuracy, two ways: LLaVA-1.5's pipeline and lmms-eval's exact match.

``accuracy`` (LLaVA): each generated answer becomes ``rstrip('.').lower()`` and the official GQA
``eval.py`` compares it with the annotation's answer by plain string equality. Nothing else is
normalised: no whitespace strip, no articles, no number words. So " yes" and "two" (answer
"2") are wrong, exactly as in LLaVA's published numbers.

``accuracy_lmms`` (lmms-eval, every version; what the SuperClass paper ran): exact match with
``ignore_case`` and ``ignore_punctuation``: both sides lower-cased, every ASCII punctuation
character (``string.punctuation``) deleted, then compared. "Yes." and "t-shirt" (answer
"tshirt") are right; " yes" and "two" still are not.

Accuracy is over the balanced test-dev questions (the loader selects them; this module scores
one question).
"""
from __future__ import annotations

import string

from sc_eval.errors import DataError

_NO_PUNCTUATION = str.maketrans("", "", string.punctuation)


def _text(value, what: str) -> str:
    if not isinstance(value, str):
        raise DataError(f"GQA scoring: {what} must be a string, got {value!r}")
    return value


def gqa_normalize(prediction: str) -> str:
    """Trailing periods removed, lower-cased: the only change LLaVA's GQA pipeline makes."""
    return _text(prediction, "prediction").rstrip(".").lower()


def gqa_correct(prediction: str, answer: str) -> float:
    """1.0 when the normalised prediction equals the annotated answer exactly, else 0.0."""
    return 1.0 if gqa_normalize(prediction) == _text(answer, "answer") else 0.0


def gqa_normalize_lmms(text: str) -> str:
    """lmms-eval's exact-match normalisation: lower-case, delete ASCII punctuation."""
    return _text(text, "answer").lower().translate(_NO_PUNCTUATION)


def gqa_correct_lmms(prediction: str, answer: str) -> float:
    """1.0 when both sides agree after lmms-eval's normalisation (``accuracy_lmms``), else 0.0."""
    return 1.0 if gqa_normalize_lmms(prediction) == gqa_normalize_lmms(answer) else 0.0
