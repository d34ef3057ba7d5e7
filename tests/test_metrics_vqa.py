"""VQA accuracy variants against hand-computed values and the scorers' documented quirks.

Every expected value below was worked out by hand from the rules of the official VQA script,
EvalAI's answer processor (LLaVA m4c, lmms-eval TextVQA/VizWiz) and lmms-eval's VQAv2 scorer.
"""
import pytest

from sc_eval.errors import DataError
from sc_eval.metrics.vqa import (leave_one_out_accuracy, normalize_evalai, normalize_lmms,
                                 normalize_official, vqa_acc, vqa_acc_lmms, vqa_acc_official,
                                 vqa_scores)


def test_capitalised_yes_against_ten_identical_answers():
    # The official script normalises only when the ten answers differ: "Yes" != "yes" there.
    s = vqa_scores("Yes", ["yes"] * 10)
    # lmms-eval up to v0.3.4: "Yes" goes through the EvalAI processor ("yes"); answers stay raw.
    assert s == {"vqa_acc": 1.0, "vqa_acc_lmms": 1.0, "vqa_acc_lmms_v03": 1.0, "vqa_acc_official": 0.0}


def test_trailing_period_against_identical_answers():
    s = vqa_scores("yes.", ["yes"] * 10)
    assert s["vqa_acc"] == 1.0 and s["vqa_acc_lmms"] == 1.0 and s["vqa_acc_official"] == 0.0
    assert s["vqa_acc_lmms_v03"] == 1.0  # the EvalAI processor drops the "." before the raw compare


@pytest.mark.parametrize("m, expected", [(0, 0.0), (1, 0.3), (2, 0.6), (3, 0.9), (4, 1.0), (10, 1.0)])
def test_leave_one_out_by_hand(m, expected):
    # m matching humans of 10: (10-m) rounds see m matches, m rounds see m-1, each capped at 3.
    # m=1: 9 * (1/3) / 10 = 0.3; m=3: (7 * 1 + 3 * 2/3) / 10 = 0.9. If a round dropped every
    # identical answer (not exactly one), m=3 would give 0.7 instead.
    answers = ["cat"] * m + [f"other{i}" for i in range(10 - m)]
    assert leave_one_out_accuracy("cat", answers) == pytest.approx(expected, abs=1e-12)
    assert vqa_acc("cat", answers) == pytest.approx(expected, abs=1e-12)
    assert vqa_acc_official("cat", answers) == pytest.approx(expected, abs=1e-12)


def test_number_words_and_articles():
    answers = ["2"] * 9 + ["two"]
    assert vqa_scores("Two", answers) == {"vqa_acc": 1.0, "vqa_acc_lmms": 1.0, "vqa_acc_lmms_v03": 1.0,
                                          "vqa_acc_official": 1.0}
    # Ten identical "2": the official script compares raw strings, so "two" scores 0 there.
    s = vqa_scores("two", ["2"] * 10)
    assert s["vqa_acc"] == 1.0 and s["vqa_acc_official"] == 0.0
    answers = ["dog"] * 4 + ["cat"] * 6
    assert vqa_scores("a dog", answers) == {"vqa_acc": 1.0, "vqa_acc_lmms": 1.0, "vqa_acc_lmms_v03": 1.0,
                                            "vqa_acc_official": 1.0}
    assert normalize_evalai("The three dogs") == "3 dogs"


def test_article_alone_and_none_quirks():
    assert normalize_evalai("a") == "" and normalize_official("a") == "" and normalize_lmms("a") == ""
    # "the" and "an" also normalise to "", so they match human answers "a".
    assert vqa_acc("the", ["a"] * 4 + ["b"] * 6) == 1.0
    assert normalize_evalai("none") == "0" and normalize_official("None") == "0"
    assert vqa_scores("none", ["0"] * 5 + ["1"] * 5) == {"vqa_acc": 1.0, "vqa_acc_lmms": 1.0,
                                                         "vqa_acc_lmms_v03": 1.0, "vqa_acc_official": 1.0}


def test_digit_comma_digit_switches_punctuation_to_deletion():
    # Official (and lmms-eval's VQAv2 path): a digit-comma-digit deletes every mark.
    assert normalize_official("1,000 t-shirts") == "1000 tshirts"
    assert normalize_lmms("1,000 t-shirts") == "1000 tshirts"
    # EvalAI deletes commas first, so the rule never fires and "-" becomes a space.
    assert normalize_evalai("1,000 t-shirts") == "1000 t shirts"
    assert normalize_official("t-shirt") == "t shirt"
    # A mark touching a space anywhere is deleted everywhere.
    assert normalize_official("left - right") == "left right"
    assert normalize_official("a-b -c") == "ab c"


def test_evalai_comma_question_mark_and_possessive():
    assert normalize_evalai("red,white") == "redwhite"
    assert normalize_official("red,white") == "red white"
    assert normalize_lmms("red,white") == "red white"
    s = vqa_scores("red,white", ["red white"] * 10)
    # EvalAI: "redwhite" != "red white"; lmms: equal; official: answers identical -> raw compare;
    # lmms up to v0.3.4: the EvalAI processor's "redwhite" against the raw answers.
    assert s == {"vqa_acc": 0.0, "vqa_acc_lmms": 1.0, "vqa_acc_lmms_v03": 0.0, "vqa_acc_official": 0.0}
    assert normalize_evalai("what's") == "what 's"
    assert normalize_official("what's") == "what's"
    assert normalize_evalai("Why?") == "why"


def test_periods_and_contractions():
    assert normalize_evalai("2.5") == "2.5"
    assert normalize_evalai("3.14.") == "3.14"
    assert normalize_official("yes.") == "yes"
    assert normalize_evalai("dont") == "don't"
    assert normalize_evalai("whats") == "what's"
    # The period substitution was capped at 32 removals (re.UNICODE passed as sub's count).
    assert normalize_evalai("." * 40) == "." * 8


def test_whitespace_and_newlines():
    assert vqa_acc_official(" yes\n", ["yes"] * 10) == 1.0
    assert vqa_acc_lmms("  Yes\t", ["yes"] * 10) == 1.0


def test_bad_input_is_a_data_error():
    with pytest.raises(DataError):
        vqa_scores(None, ["yes"] * 10)
    with pytest.raises(DataError):
        vqa_acc("yes", [])
