"""GQA accuracy as LLaVA-1.5 and the GQA evaluation script compute it.

LLaVA converts each generated answer with ``rstrip('.').lower()`` and the official GQA ``eval.py``
then compares it with the annotation's answer by plain string equality. Nothing else is
normalised: no whitespace strip, no articles, no number words. So " yes" and "two" (answer
"2") are wrong, exactly as in the published numbers. Accuracy is over the balanced
test-dev questions (the loader selects them; this module scores one question).
"""
from __future__ import annotations

from sc_eval.errors import DataError


def gqa_normalize(prediction: str) -> str:
    """Trailing periods removed, lower-cased: the only change GQA's pipeline makes."""
    if not isinstance(prediction, str):
        raise DataError(f"GQA scoring: prediction must be a string, got {prediction!r}")
    return prediction.rstrip(".").lower()


def gqa_correct(prediction: str, answer: str) -> float:
    """1.0 when the normalised prediction equals the annotated answer exactly, else 0.0."""
    if not isinstance(answer, str):
        raise DataError(f"GQA scoring: answer must be a string, got {answer!r}")
    return 1.0 if gqa_normalize(prediction) == answer else 0.0
