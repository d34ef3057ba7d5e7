"""MMMU's answer parsing and matching, re-derived from the rules of its official eval_utils.py.

MMMU scores free-form outputs, so the published numbers depend on these heuristics; each step
below is the official one, quirks included:

Multiple choice (``parse_choice``): strip , . ! ? ; : ' from the ends (one pass per character,
in that order), pad with spaces; the candidates are the letters written "(B)"; else those
standing alone " B "; else, only if the output has more than five words, the options whose text
it contains. Several candidates: the one occurring last wins. None: a random letter. The
official code draws it from a global generator seeded once, so its pick depends on the order of
questions; here it is drawn from a generator seeded by the doc id, so a score never depends on
batching or order (expected accuracy of the fallback is the same, 1/n).

Open questions (``parse_open``): lower-case, split into lines (the official sentence split
looks for an upper-case letter after ". " in lower-cased text, so only newlines split); in each
line keep the shortest tail after one of "could be ", "so ", "is ", "thus ", "therefore ",
"final ", "answer ", "result " (and "=" in the last line); no tail anywhere -> the whole
output. Add every number found in the tails; normalise: numbers (commas dropped) become floats
rounded to 2 places, other text is lower-cased, a single character is padded (" x", "x ") so
it cannot match inside words. ``open_correct``: a float must equal a normalised gold number; a
string is right when a normalised gold string occurs inside it.
"""
from __future__ import annotations

import random
import re

_STRIP_CHARS = [",", ".", "!", "?", ";", ":", "'"]
_INDICATORS = ["could be ", "so ", "is ", "thus ", "therefore ", "final ", "answer ", "result "]
_TRIVIAL = {":", ",", ".", "!", "?", ";", "'"}

_NUM_COMMAS = re.compile(r"-?\b\d{1,3}(?:,\d{3})+\b")
_NUM_SCIENTIFIC = re.compile(r"-?\d+(?:\.\d+)?[eE][+-]?\d+")
_NUM_SIMPLE = re.compile(r"-?(?:\d+\.\d+|\.\d+|\d+\b)(?![eE][+-]?\d+)(?![,\d])")


def parse_choice(response: str, options: list[str], seed: str) -> str:
    """The option letter an answer to a multiple-choice question names (see module doc)."""
    letters = [chr(ord("A") + i) for i in range(len(options))]
    if not letters:
        return ""
    for ch in _STRIP_CHARS:
        response = response.strip(ch)
    padded = f" {response} "
    candidates = [c for c in letters if f"({c})" in padded]
    bracketed = bool(candidates)
    by_content = False
    if not candidates:
        candidates = [c for c in letters if f" {c} " in padded]
    if not candidates and len(padded.split()) > 5:
        candidates = [c for c, text in zip(letters, options) if text.lower() in padded.lower()]
        by_content = bool(candidates)
    if not candidates:
        return random.Random(f"mmmu:{seed}").choice(letters)
    if len(candidates) == 1:
        return candidates[0]
    if by_content:
        text = dict(zip(letters, options))
        positions = [padded.lower().rfind(text[c].lower()) for c in candidates]
    elif bracketed:
        positions = [padded.rfind(f"({c})") for c in candidates]
    else:
        positions = [padded.rfind(f" {c} ") for c in candidates]
    return candidates[positions.index(max(positions))]  # first of equal maxima, as argmax


def _is_number(text: str) -> bool:
    try:
        float(text.replace(",", ""))
        return True
    except ValueError:
        return False


def normalize(text: str) -> list:
    """A number -> [float rounded to 2]; text -> [lower-cased]; one character -> [" x", "x "]."""
    text = text.strip()
    if _is_number(text):
        return [round(float(text.replace(",", "")), 2)]
    text = text.lower()
    if len(text) == 1:
        return [" " + text, text + " "]
    return [text]


def extract_numbers(text: str) -> list[str]:
    return _NUM_COMMAS.findall(text) + _NUM_SCIENTIFIC.findall(text) + _NUM_SIMPLE.findall(text)


def _key_responses(response: str) -> list[str]:
    response = response.strip().strip(".").lower()
    lines = re.split(r"\.\s(?=[A-Z])|\n", response)
    keys = []
    for i, line in enumerate(lines):
        indicators = _INDICATORS + (["="] if i == len(lines) - 1 else [])
        shortest = None
        for ind in indicators:
            if ind in line:
                tail = line.split(ind)[-1].strip()
                if not shortest or len(tail) < len(shortest):
                    shortest = tail
        if shortest and shortest.strip() not in _TRIVIAL:
            keys.append(shortest)
    return keys or [response]


def parse_open(response: str) -> list:
    """The normalised candidate answers of a free-form output (see module doc)."""
    keys = _key_responses(response)
    preds = list(keys)
    for k in keys:
        preds += extract_numbers(k)
    out = []
    for p in preds:
        for n in normalize(p):
            if n not in out:
                out.append(n)
    return out


def open_correct(gold, preds: list) -> bool:
    golds = gold if isinstance(gold, list) else [gold]
    norm = [n for g in golds for n in normalize(str(g))]
    for p in preds:
        if isinstance(p, str):
            if any(isinstance(n, str) and n in p for n in norm):
                return True
        elif p in norm:
            return True
    return False


def choice_correct(gold, letter: str) -> bool:
    golds = gold if isinstance(gold, list) else [gold]
    return letter in [str(g) for g in golds]
