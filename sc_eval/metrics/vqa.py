"""VQA accuracy, four ways: the scorers that published VQAv2/TextVQA/VizWiz numbers came from.

Every VQA-style benchmark scores a short answer against ten human answers with the same soft
accuracy: for each human answer, drop it, count how many of the other nine equal the
prediction, and take min(1, count / 3); the score is the mean over the ten rounds. Exactly one
answer is dropped per round, even when several humans wrote the same string (the official
script compares answer records, which carry distinct answer ids). So the prediction needs 4 of
10 humans for a full score: 3 give 0.9, not 1 (see ``leave_one_out_accuracy``).

What differs between the published scorers is how strings are normalised before comparing, and
the differences move scores by whole points, so sc-eval reports each under its own name:

``vqa_acc``           the EvalAI answer processor (MMF/Pythia) on the prediction and on every
                      human answer: lower-case, delete "," and "?", split "'s", then the
                      punctuation and number/article/contraction steps. LLaVA's TextVQA scorer
                      (m4c) and lmms-eval's TextVQA/VizWiz scorers.
``vqa_acc_lmms``      lmms-eval's VQAv2 scorer from v0.4.1 on: strip, then only the punctuation
                      and number/article steps, always applied to both sides. No lower-casing
                      first, so "," "?" and "'s" are handled by the punctuation rules, and a
                      digit-comma-digit anywhere turns replacing into deleting.
``vqa_acc_lmms_v03``  lmms-eval's VQAv2 scorer up to v0.3.4 (the SuperClass paper's era): the
                      full EvalAI processor on the prediction; then, only when the ten answers
                      are not all identical, the punctuation and number/article steps on every
                      answer and once more on the processed prediction. With identical answers
                      the answers stay raw, so "t-shirt" (processed to "t shirt") against ten
                      "t-shirt" scores 0, while "two" and "Yes" against ten "2" / "yes" score 1.
``vqa_acc_official``  the official VQA script (GT-Vision-Lab/VQA, vqaEval.py): normalises only
                      when the ten human answers are not all identical, so "Yes" against ten
                      "yes" scores 0 there and 1 in the others.

Quirks all of them share, reproduced on purpose: a "." is removed unless a digit follows it (the
intended look-behind was mistyped as a look-ahead), at most 32 periods are removed per string
(``re.UNICODE`` was passed where ``sub`` expects its ``count``), "none" maps to "0", and "a" is an
article, so the answer "a" normalises to "". Each punctuation mark is deleted when it touches a
space anywhere in the original string (or a digit-comma-digit occurs), else replaced by a space.

All values are per question in 0..1; the runner averages and multiplies by 100.
"""
from __future__ import annotations

import re
from typing import Sequence

from sc_eval.errors import DataError

# Contractions restored after punctuation removal. The table is the one all three scorers share
# (identical in vqaEval.py, m4c_evaluator.py and lmms-eval); keys with capitals can never match
# because words are lower-cased first, and "somebody'd" really maps to "somebodyd".
_CONTRACTION_PAIRS = """
    aint=ain't arent=aren't cant=can't couldve=could've couldnt=couldn't couldn'tve=couldn't've
    couldnt've=couldn't've didnt=didn't doesnt=doesn't dont=don't hadnt=hadn't
    hadnt've=hadn't've hadn'tve=hadn't've hasnt=hasn't havent=haven't hed=he'd hed've=he'd've
    he'dve=he'd've hes=he's howd=how'd howll=how'll hows=how's Id've=I'd've I'dve=I'd've Im=I'm
    Ive=I've isnt=isn't itd=it'd itd've=it'd've it'dve=it'd've itll=it'll let's=let's maam=ma'am
    mightnt=mightn't mightnt've=mightn't've mightn'tve=mightn't've mightve=might've
    mustnt=mustn't mustve=must've neednt=needn't notve=not've oclock=o'clock oughtnt=oughtn't
    ow's'at='ow's'at 'ows'at='ow's'at 'ow'sat='ow's'at shant=shan't shed've=she'd've
    she'dve=she'd've she's=she's shouldve=should've shouldnt=shouldn't shouldnt've=shouldn't've
    shouldn'tve=shouldn't've somebody'd=somebodyd somebodyd've=somebody'd've
    somebody'dve=somebody'd've somebodyll=somebody'll somebodys=somebody's someoned=someone'd
    someoned've=someone'd've someone'dve=someone'd've someonell=someone'll someones=someone's
    somethingd=something'd somethingd've=something'd've something'dve=something'd've
    somethingll=something'll thats=that's thered=there'd thered've=there'd've
    there'dve=there'd've therere=there're theres=there's theyd=they'd theyd've=they'd've
    they'dve=they'd've theyll=they'll theyre=they're theyve=they've twas='twas wasnt=wasn't
    wed've=we'd've we'dve=we'd've weve=we've werent=weren't whatll=what'll whatre=what're
    whats=what's whatve=what've whens=when's whered=where'd wheres=where's whereve=where've
    whod=who'd whod've=who'd've who'dve=who'd've wholl=who'll whos=who's whove=who've
    whyll=why'll whyre=why're whys=why's wont=won't wouldve=would've wouldnt=wouldn't
    wouldnt've=wouldn't've wouldn'tve=wouldn't've yall=y'all yall'll=y'all'll y'allll=y'all'll
    yall'd've=y'all'd've y'alld've=y'all'd've y'all'dve=y'all'd've youd=you'd youd've=you'd've
    you'dve=you'd've youll=you'll youre=you're youve=you've
"""
CONTRACTIONS: dict[str, str] = dict(p.split("=", 1) for p in _CONTRACTION_PAIRS.split())

# "none" -> "0" is in the official table: "how many ...? none" then matches "0".
NUMBER_WORDS: dict[str, str] = {
    "none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
    "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}
ARTICLES = frozenset({"a", "an", "the"})

# The marks the scorers treat (not "." or "'" or ":"); each is handled independently.
PUNCTUATION = (";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-",
               ">", "<", "@", "`", ",", "?", "!")

# A period not followed by a digit ("2.5" keeps its point, "yes." loses it). Equivalent to the
# scorers' "(?!<=\d)(\.)(?!\d)", whose first group is a look-ahead that can never fail here.
_PERIOD = re.compile(r"\.(?!\d)")
_PERIOD_MAX_REMOVALS = 32  # re.UNICODE == 32 landed in sub()'s count argument
# Digit-comma-digit detectors: the official script looks for exactly one comma, EvalAI's
# processor for a run of them; either switches every punctuation mark to deletion.
_DIGIT_COMMA_OFFICIAL = re.compile(r"\d,\d")
_DIGIT_COMMA_EVALAI = re.compile(r"(?<=\d),+(?=\d)")


def _check_text(value, what: str) -> str:
    if not isinstance(value, str):
        raise DataError(f"VQA scoring: {what} must be a string, got {type(value).__name__} ({value!r})")
    return value


def process_punctuation(text: str, official: bool = False) -> str:
    """Delete or space out punctuation, then drop periods not followed by a digit.

    A mark is deleted when "<mark><space>" or "<space><mark>" occurs anywhere in the ORIGINAL
    text, or when the text contains a digit-comma-digit; otherwise it becomes a space
    ("t-shirt" -> "t shirt", "1,000 t-shirts" -> "1000 tshirts").
    """
    comma_rule = _DIGIT_COMMA_OFFICIAL if official else _DIGIT_COMMA_EVALAI
    delete_all = comma_rule.search(text) is not None
    out = text
    for mark in PUNCTUATION:
        if delete_all or (mark + " ") in text or (" " + mark) in text:
            out = out.replace(mark, "")
        else:
            out = out.replace(mark, " ")
    return _PERIOD.sub("", out, count=_PERIOD_MAX_REMOVALS)


def process_digit_article(text: str) -> str:
    """Lower-case, map number words to digits, drop articles, restore contractions."""
    words = []
    for word in text.lower().split():
        word = NUMBER_WORDS.get(word, word)
        if word not in ARTICLES:
            words.append(CONTRACTIONS.get(word, word))
    return " ".join(words)


def _clean_whitespace(text: str) -> str:
    return text.replace("\n", " ").replace("\t", " ").strip()


def normalize_evalai(text: str) -> str:
    """The full EvalAI answer processor (``vqa_acc``).

    First a crude word tokenisation: lower-case, delete "," and "?" ("red,white" ->
    "redwhite"), split off "'s" ("what's" -> "what 's"); then the punctuation and
    number/article/contraction steps. Because commas are gone before the punctuation step, the
    digit-comma-digit rule can never fire here.
    """
    text = _check_text(text, "answer").lower()
    text = text.replace(",", "").replace("?", "").replace("'s", " 's").strip()
    text = _clean_whitespace(text)
    return process_digit_article(process_punctuation(text))


def normalize_lmms(text: str) -> str:
    """lmms-eval's VQAv2 normalisation from v0.4.1 (``vqa_acc_lmms``): punctuation + digit/article only."""
    text = _clean_whitespace(_check_text(text, "answer"))
    return process_digit_article(process_punctuation(text))


def normalize_official(text: str) -> str:
    """The official script's normalisation (applied by it only when the answers differ)."""
    text = _clean_whitespace(_check_text(text, "answer"))
    return process_digit_article(process_punctuation(text, official=True))


def leave_one_out_accuracy(prediction: str, answers: Sequence[str]) -> float:
    """Mean over rounds i of min(1, #{j != i : answers[j] == prediction} / 3).

    With m of the n answers equal to the prediction, a round that drops a non-matching answer
    sees m matches and a round that drops a matching one sees m - 1, so for n = 10:
    m = 1 -> 9 * (1/3) / 10 = 0.3, m = 2 -> 0.6, m = 3 -> (7 * 1 + 3 * 2/3) / 10 = 0.9,
    m >= 4 -> 1.0.
    """
    if not answers:
        raise DataError("VQA scoring: a question has no human answers; check the annotation file")
    matches = sum(1 for a in answers if a == prediction)
    total = 0.0
    for answer in answers:
        others = matches - (1 if answer == prediction else 0)
        total += min(1.0, others / 3.0)
    return total / len(answers)


def vqa_acc(prediction: str, answers: Sequence[str]) -> float:
    """EvalAI/m4c accuracy: the full processor on the prediction and on every answer."""
    answers = [normalize_evalai(a) for a in answers]
    return leave_one_out_accuracy(normalize_evalai(_check_text(prediction, "prediction")), answers)


def vqa_acc_lmms(prediction: str, answers: Sequence[str]) -> float:
    """lmms-eval's VQAv2 accuracy from v0.4.1: strip, punctuation + digit/article steps, always."""
    answers = [normalize_lmms(a) for a in answers]
    return leave_one_out_accuracy(normalize_lmms(prediction), answers)


def vqa_acc_lmms_v03(prediction: str, answers: Sequence[str]) -> float:
    """lmms-eval's VQAv2 accuracy up to v0.3.4: the full EvalAI processor on the prediction; the
    punctuation + digit/article steps on the answers and again on the prediction only when the
    (whitespace-cleaned) answers differ; otherwise the answers are compared raw."""
    pred = normalize_evalai(_check_text(prediction, "prediction"))
    cleaned = [_clean_whitespace(_check_text(a, "answer")) for a in answers]
    if len(set(cleaned)) > 1:
        cleaned = [process_digit_article(process_punctuation(a)) for a in cleaned]
        pred = process_digit_article(process_punctuation(pred))
    return leave_one_out_accuracy(pred, cleaned)


def vqa_acc_official(prediction: str, answers: Sequence[str]) -> float:
    """The official VQA script: normalise prediction and answers only if the answers differ."""
    cleaned = [_clean_whitespace(_check_text(a, "answer")) for a in answers]
    pred = _clean_whitespace(_check_text(prediction, "prediction"))
    if len(set(cleaned)) > 1:
        cleaned = [normalize_official(a) for a in cleaned]
        pred = normalize_official(pred)
    return leave_one_out_accuracy(pred, cleaned)


def vqa_scores(prediction: str, answers: Sequence[str]) -> dict[str, float]:
    """All four accuracies of one question, under their report names (values 0..1)."""
    _check_text(prediction, "prediction")
    answers = list(answers)
    return {
        "vqa_acc": vqa_acc(prediction, answers),
        "vqa_acc_lmms": vqa_acc_lmms(prediction, answers),
        "vqa_acc_lmms_v03": vqa_acc_lmms_v03(prediction, answers),
        "vqa_acc_official": vqa_acc_official(prediction, answers),
    }
