"""Multiple-choice answer parsing: ScienceQA (LLaVA, lmms-eval), SEED-Bench (lmms-eval), MMBench.

Each benchmark's published numbers came from a different parser, and the parsers disagree on
ordinary outputs ("B." is FAILED for ScienceQA, fine for SEED), so each is reproduced as its
reference wrote it rather than unified.
"""
from __future__ import annotations

import operator
import re
import string
from typing import Hashable, Mapping, Sequence

from sc_eval.errors import DataError

FAILED = "FAILED"
# ScienceQA: "The answer is " + a capital letter + any one character (the "." is a regex dot),
# so "The answer is C." and "The answer is C)" parse, a bare trailing "The answer is C" does not.
_SQA_ANSWER_IS = re.compile(r"The answer is ([A-Z]).")


def _text(value, who: str) -> str:
    if not isinstance(value, str):
        raise DataError(f"{who} scoring: prediction must be a string, got {value!r}")
    return value


def parse_scienceqa(text: str, n_options: int) -> str:
    """The option letter LLaVA's ``eval_science_qa.py`` reads from ``text``, or "FAILED".

    Accepted, in order: the text is exactly one option letter; or it starts with a letter
    followed by ". " ("C. dog"; a bare "B." fails); or "The answer is X" + one more character
    occurs exactly once. LLaVA parses against the fixed letters A-E and then counts a letter
    beyond the question's options as wrong; here such a letter is returned as "FAILED", which
    scores the same.
    """
    text = _text(text, "ScienceQA")
    if n_options < 1:
        raise DataError(f"ScienceQA scoring: a question needs at least one option, got {n_options}")
    letters = tuple(string.ascii_uppercase[: max(5, n_options)])  # a tuple: "" in "ABCDE" is True
    if text in letters:
        letter = text
    elif len(text) >= 3 and text[0] in letters and text[1:3] == ". ":
        letter = text[0]
    else:
        found = _SQA_ANSWER_IS.findall(text)
        letter = found[0] if len(found) == 1 else FAILED
    return letter if letter in tuple(string.ascii_uppercase[:n_options]) else FAILED


def scienceqa_correct(text: str, answer_index: int, n_options: int) -> float:
    """1.0 when the parsed letter is the answer's (0-based index into the options)."""
    letter = parse_scienceqa(text, n_options)
    return 1.0 if letter != FAILED and string.ascii_uppercase.index(letter) == answer_index else 0.0


def scienceqa_correct_lmms_v03(text: str, answer_index: int) -> float:
    """lmms-eval's ScienceQA rule, v0.2.2 to v0.3.4 (``accuracy_lmms_v03``, the paper's era).

    The stripped, lower-cased output must equal the lower-cased answer letter: "b" and " B\n" are
    right for answer B, "B." and "B. dog" are wrong. (That version also tests for an upper-case
    letter followed by "." after lower-casing the output, which can never match.)
    """
    text = _text(text, "ScienceQA")
    try:
        index = operator.index(answer_index)
    except TypeError:
        index = -1
    if not 0 <= index < 26:
        raise DataError(f"ScienceQA scoring: answer index {answer_index!r} is not an option number (0-25)")
    return 1.0 if text.strip().lower() == string.ascii_lowercase[index] else 0.0


def seed_correct(text: str, answer_letter: str) -> float:
    """lmms-eval's SEED-Bench rule: strip, keep the first character, compare case-insensitively.

    (LLaVA's own SEED script demands the whole output equal the letter; the SuperClass paper
    used lmms-eval.) So "b) a dog" is right for answer "B", and "The answer is B" is wrong.
    """
    pred = _text(text, "SEED-Bench").strip()[:1]
    return 1.0 if pred.lower() == str(answer_letter).strip().lower() else 0.0


def mmbench_extract(text: str, options: Mapping[str, str]) -> str | None:
    """The option letter an MMBench answer names, or None when it names none unambiguously.

    ``options`` maps letters to option texts ({"A": "a cat", "B": "a dog", ...}). Accepted:
    exactly a letter ("B", "(B)", "B."), a letter opening the text ("B. a dog", "B) ..."),
    "The answer is B" / "Answer: B", or the text of exactly one option (the whole output, else
    contained in it).
    """
    text = _text(text, "MMBench").strip()
    letters = [k for k in options]
    m = re.fullmatch(r"\(?([A-Z])\)?[.:)]?", text)
    if m and m.group(1) in letters:
        return m.group(1)
    m = re.match(r"\(?([A-Z])[.:)]\s", text)
    if m and m.group(1) in letters:
        return m.group(1)
    found = set(re.findall(r"(?:[Aa]nswer is|[Aa]nswer:)\s*\(?([A-Z])\b", text))
    found &= set(letters)
    if len(found) == 1:
        return found.pop()
    lowered = text.lower().rstrip(".").strip()
    opts = {k: str(v).lower().strip().rstrip(".") for k, v in options.items() if str(v).strip()}
    exact = [k for k, v in opts.items() if v == lowered]
    if len(exact) == 1:
        return exact[0]
    contained = [k for k, v in opts.items() if re.search(r"\b" + re.escape(v) + r"\b", lowered)]
    if len(contained) == 1:
        return contained[0]
    return None


def mmbench_correct(text: str, options: Mapping[str, str], answer_letter: str) -> float:
    return 1.0 if mmbench_extract(text, options) == answer_letter else 0.0


def circular_rotations(options: Sequence[str], answer_index: int) -> list[tuple[list[str], str]]:
    """MMBench CircularEval passes: options shifted left by k = 0..n-1, with the answer letter.

    For options [a, b, c, d] and answer b: ([a,b,c,d], "B"), ([b,c,d,a], "A"), ([c,d,a,b],
    "D"), ([d,a,b,c], "C"). A question counts only if every pass is right.
    """
    n = len(options)
    if not 0 <= answer_index < n:
        raise DataError(f"CircularEval: answer index {answer_index} outside {n} options")
    passes = []
    for k in range(n):
        rotated = list(options[k:]) + list(options[:k])
        passes.append((rotated, string.ascii_uppercase[(answer_index - k) % n]))
    return passes


def circular_accuracy(passes_by_question: Mapping[Hashable, Sequence[bool]]) -> float:
    """Percent of questions whose passes were all right (CircularEval)."""
    if not passes_by_question:
        raise DataError("CircularEval: no questions to score")
    right = sum(1 for passes in passes_by_question.values() if passes and all(passes))
    return 100.0 * right / len(passes_by_question)
