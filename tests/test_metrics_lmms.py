"""lmms-eval's scorers beside LLaVA's and the official ones, on cases worked out by hand.

The SuperClass paper scored its LLaVA battery with lmms-eval of late 2024, whose VQAv2,
ScienceQA, POPE and GQA rules differ from LLaVA-1.5's scripts. Each expected value below follows
from the rule as stated in the comment, computed by hand, never by the code under test.
"""
import pytest

from sc_eval.errors import DataError
from sc_eval.metrics.choice import scienceqa_correct, scienceqa_correct_lmms_v03
from sc_eval.metrics.gqa import gqa_correct, gqa_correct_lmms
from sc_eval.metrics.pope import pope_metrics_lmms, pope_parse_lmms
from sc_eval.metrics.vqa import vqa_acc_lmms_v03, vqa_scores

# ---- VQAv2: vqa_acc_lmms_v03 (lmms-eval up to v0.3.4) ---------------------------------------------
# p' = EvalAI processor(prediction). If the ten stripped answers are not all identical: every
# answer and p' go through punctuation then digit/article; else the answers stay raw.


@pytest.mark.parametrize("prediction, answers, expected", [
    # EvalAI turns "t-shirt" into "t shirt"; ten identical raw "t-shirt" never match it -> 0.
    # vqa_acc / vqa_acc_lmms normalise both sides ("t shirt"); official compares raw strings.
    ("t-shirt", ["t-shirt"] * 10, {"vqa_acc": 1.0, "vqa_acc_lmms": 1.0, "vqa_acc_lmms_v03": 0.0,
                                   "vqa_acc_official": 1.0}),
    # EvalAI maps "two" -> "2", equal to the raw answers -> 1; official: raw "two" != "2" -> 0.
    ("two", ["2"] * 10, {"vqa_acc": 1.0, "vqa_acc_lmms": 1.0, "vqa_acc_lmms_v03": 1.0,
                         "vqa_acc_official": 0.0}),
    # EvalAI lower-cases "Yes" -> "yes" = the raw answers -> 1; official: "Yes" != "yes" -> 0.
    ("Yes", ["yes"] * 10, {"vqa_acc": 1.0, "vqa_acc_lmms": 1.0, "vqa_acc_lmms_v03": 1.0,
                           "vqa_acc_official": 0.0}),
    # Ten identical capitalised answers: v03 lower-cases the prediction but not the raw answers,
    # so even the exact string scores 0 there; official compares raw: equal -> 1.
    ("Red", ["Red"] * 10, {"vqa_acc": 1.0, "vqa_acc_lmms": 1.0, "vqa_acc_lmms_v03": 0.0,
                           "vqa_acc_official": 1.0}),
])
def test_vqa_variants_on_identical_answers(prediction, answers, expected):
    assert vqa_scores(prediction, answers) == expected


def test_vqa_v03_digit_comma_digit_rule_when_answers_differ():
    # 4 x "1,000 t-shirts" + 6 x "many": the answers differ, so all are normalised. The answer
    # holds a digit-comma-digit, so the punctuation step deletes every mark: "1000 tshirts".
    answers = ["1,000 t-shirts"] * 4 + ["many"] * 6
    # Prediction "1000 tshirts": EvalAI leaves it as is -> 4 matches -> 1.0. The EvalAI processor
    # on the answers (vqa_acc) first deletes the comma, so the rule cannot fire and "-" becomes a
    # space: "1000 t shirts" != "1000 tshirts" -> 0.
    assert vqa_scores("1000 tshirts", answers) == {"vqa_acc": 0.0, "vqa_acc_lmms": 1.0,
                                                   "vqa_acc_lmms_v03": 1.0, "vqa_acc_official": 1.0}
    # Prediction "1,000 t-shirts" itself: v03's EvalAI step deletes its comma first, so its "-"
    # becomes a space ("1000 t shirts"), while the answers lose the "-" ("1000 tshirts") -> 0.
    # vqa_acc processes both sides alike ("1000 t shirts"), lmms and official alike ("1000 tshirts").
    assert vqa_scores("1,000 t-shirts", answers) == {"vqa_acc": 1.0, "vqa_acc_lmms": 1.0,
                                                     "vqa_acc_lmms_v03": 0.0, "vqa_acc_official": 1.0}


def test_vqa_v03_uses_evalai_comma_detector_on_the_answers():
    # lmms-eval's detector is EvalAI's "digit, one or more commas, digit"; the official script's
    # wants exactly one comma. Answers 4 x "1,,2 a-b" + 6 x "x" (they differ):
    #   EvalAI rule fires -> every mark deleted -> "12 ab";
    #   official rule does not fire -> "," and "-" become spaces -> "1  2 a b" -> words "1 2 a b".
    answers = ["1,,2 a-b"] * 4 + ["x"] * 6
    assert vqa_acc_lmms_v03("12 ab", answers) == 1.0           # 4 matches
    assert vqa_scores("12 ab", answers)["vqa_acc_official"] == 0.0


def test_vqa_v03_splits_possessives_of_the_prediction_only():
    # EvalAI's word step turns "man's" into "man 's" (prediction only, in v03); the answers'
    # punctuation step keeps "'" -> "man's". 4 x "man's" + 6 x "woman" differ, so all normalised.
    answers = ["man's"] * 4 + ["woman"] * 6
    assert vqa_scores("man's", answers) == {"vqa_acc": 1.0, "vqa_acc_lmms": 1.0,
                                            "vqa_acc_lmms_v03": 0.0, "vqa_acc_official": 1.0}


def test_vqa_v03_leave_one_out_on_differing_answers():
    # 3 x "two dogs" + 7 x "cats": answers normalised to "2 dogs" / "cats". "The two dogs." ->
    # EvalAI "2 dogs" -> 3 matches: 7 rounds see 3 (1.0), 3 rounds see 2 (2/3): (7 + 2) / 10 = 0.9.
    answers = ["two dogs"] * 3 + ["cats"] * 7
    assert vqa_acc_lmms_v03("The two dogs.", answers) == pytest.approx(0.9)
    # Whitespace: answers are stripped before the "all identical" test (" no" and "no" agree),
    # so ten raw "no" stay raw and the EvalAI-processed "No" matches them all.
    assert vqa_acc_lmms_v03("No", [" no"] * 5 + ["no\n"] * 5) == 1.0
    with pytest.raises(DataError):
        vqa_acc_lmms_v03(None, ["yes"] * 10)


# ---- ScienceQA-IMG: accuracy_lmms_v03 ------------------------------------------------------------
# lmms-eval v0.2.2-v0.3.4: stripped, lower-cased output == the lower-cased answer letter.
# LLaVA: exactly a letter, "X. ...", or one "The answer is X" + a character.

@pytest.mark.parametrize("text, llava, lmms", [
    ("B", 1.0, 1.0),
    ("b", 0.0, 1.0),                 # LLaVA wants a capital letter
    ("B.", 0.0, 0.0),                # LLaVA needs ". " after the letter; lmms-eval an exact "b"
    ("B. dog", 1.0, 0.0),
    (" B\n", 0.0, 1.0),              # only lmms-eval strips
    ("The answer is B.", 1.0, 0.0),
    ("A", 0.0, 0.0),
])
def test_scienceqa_llava_and_lmms_rules(text, llava, lmms):
    # answer index 1 = "B" of three options
    assert scienceqa_correct(text, 1, 3) == llava
    assert scienceqa_correct_lmms_v03(text, 1) == lmms


def test_scienceqa_lmms_rejects_a_bad_answer_index():
    with pytest.raises(DataError, match="answer index"):
        scienceqa_correct_lmms_v03("a", -1)
    with pytest.raises(DataError, match="answer index"):
        scienceqa_correct_lmms_v03("a", "B")


# ---- GQA: accuracy_lmms --------------------------------------------------------------------------
# lmms-eval: lower-case both sides, delete every ASCII punctuation character, compare.
# LLaVA: prediction.rstrip(".").lower() == answer.

@pytest.mark.parametrize("prediction, answer, llava, lmms", [
    ("Yes.", "yes", 1.0, 1.0),
    ("Yes!", "yes", 0.0, 1.0),          # only trailing periods go in LLaVA's rule
    ("..no", "no", 0.0, 1.0),
    ("tshirt", "t-shirt", 0.0, 1.0),    # lmms-eval deletes the answer's "-" too
    ("T-Shirt.", "t-shirt", 1.0, 1.0),
    ("t shirt", "t-shirt", 0.0, 0.0),   # a deleted "-" is not a space
    ("yes ", "yes", 0.0, 0.0),          # neither strips whitespace
    ("yes\u3002", "yes", 0.0, 0.0),     # an ideographic full stop is not ASCII punctuation
    ("two", "2", 0.0, 0.0),             # no number words
])
def test_gqa_llava_and_lmms_rules(prediction, answer, llava, lmms):
    assert gqa_correct(prediction, answer) == llava
    assert gqa_correct_lmms(prediction, answer) == lmms


# ---- POPE: *_lmms --------------------------------------------------------------------------------

def test_pope_lmms_parse_is_exact():
    assert [pope_parse_lmms(t) for t in ("Yes", " no\n", "No.", "yes, there is", "NO", "")] == \
        ["yes", "no", None, None, "no", None]


def test_pope_lmms_counts_other_answers_as_wrong_and_neither_class():
    # labels:  yes    no     yes            no     yes   no
    # answers: Yes    No.    yes, a dog     yes    no    No
    # parsed:  yes    -      -              yes    no    no
    #          TP     other  other          FP     FN    TN
    # accuracy (TP + TN) / 6 = 2/6; precision TP / (TP + FP) = 1/2; recall TP / (TP + FN) = 1/2;
    # F1 = 2 * 1/2 * 1/2 / 1 = 1/2. (LLaVA's parse would read "No." as no and "yes, a dog" as yes.)
    got = pope_metrics_lmms(["Yes", "No.", "yes, a dog", "yes", "no", "No"],
                            ["yes", "no", "yes", "no", "yes", "no"])
    assert got == pytest.approx({"accuracy_lmms": 100 / 3, "precision_lmms": 50.0, "recall_lmms": 50.0,
                                 "f1_lmms": 50.0})


def test_pope_lmms_without_a_yes_answer_is_zero_not_a_crash():
    # nothing said "yes": precision and recall undefined -> 0, as lmms-eval; accuracy 1/2
    got = pope_metrics_lmms(["no", "no"], ["yes", "no"])
    assert got == pytest.approx({"accuracy_lmms": 50.0, "precision_lmms": 0.0, "recall_lmms": 0.0,
                                 "f1_lmms": 0.0})
    with pytest.raises(DataError, match="label"):
        pope_metrics_lmms(["yes"], ["maybe"])
