"""GQA, POPE, ScienceQA, SEED, MMBench/CircularEval and MME scoring against hand-worked cases."""
import pytest

from sc_eval.errors import DataError
from sc_eval.metrics import (FAILED, circular_accuracy, circular_rotations, gqa_correct,
                             mmbench_extract, mme_parse, mme_scores, parse_scienceqa,
                             pope_metrics, pope_parse, pope_summary, scienceqa_correct,
                             seed_correct)


def test_gqa_only_strips_trailing_periods_and_lowercases():
    assert gqa_correct("Yes.", "yes") == 1.0
    assert gqa_correct("left..", "left") == 1.0
    assert gqa_correct(" yes", "yes") == 0.0  # no whitespace strip
    assert gqa_correct("two", "2") == 0.0  # no number words
    assert gqa_correct("The dog", "dog") == 0.0  # no articles


@pytest.mark.parametrize("text, parsed", [
    ("Yes", "yes"), ("No.", "no"), ("NO", "yes"), ("Nope", "yes"), ("No!", "yes"),
    ("not sure", "no"), ("Yes, there is.", "yes"), ("There is no dog.", "no"),
    ("No, there is not.", "no"), ("Yes. No.", "yes"), ("", "yes"),
])
def test_pope_parse_llava_rule(text, parsed):
    assert pope_parse(text) == parsed


def test_pope_metrics_by_hand():
    preds = ["Yes", "No.", "NO", "Nope", "not sure", "Yes, there is.", "There is no dog.", "No!"]
    labels = ["yes", "no", "no", "yes", "yes", "yes", "no", "no"]
    # parsed: Y N Y Y N Y N Y -> TP 3 (1,4,6), TN 2 (2,7), FP 2 (3,8), FN 1 (5)
    m = pope_metrics(preds, labels)
    assert m["accuracy"] == pytest.approx(62.5)
    assert m["precision"] == pytest.approx(60.0)
    assert m["recall"] == pytest.approx(75.0)
    assert m["f1"] == pytest.approx(200 * 0.6 * 0.75 / 1.35)
    assert m["yes_ratio"] == pytest.approx(62.5)


def test_pope_no_positive_prediction_is_zero_not_a_crash():
    m = pope_metrics(["No."] * 4, ["yes", "no", "yes", "no"])
    assert m == {"accuracy": 50.0, "precision": 0.0, "recall": 0.0, "f1": 0.0, "yes_ratio": 0.0}


def test_pope_bad_input_and_summary():
    with pytest.raises(DataError):
        pope_metrics(["yes"], ["yes", "no"])
    with pytest.raises(DataError):
        pope_metrics(["yes"], ["maybe"])
    splits = {"random": {"accuracy": 90, "precision": 80, "recall": 70, "f1": 60, "yes_ratio": 50},
              "popular": {"accuracy": 80, "precision": 70, "recall": 60, "f1": 50, "yes_ratio": 40},
              "adversarial": {"accuracy": 70, "precision": 60, "recall": 50, "f1": 40, "yes_ratio": 30}}
    s = pope_summary(splits)
    assert s["f1"] == pytest.approx(50.0) and s["adversarial_f1"] == 40


@pytest.mark.parametrize("text, letter", [
    ("B", "B"), ("C. dog", "C"), ("B.", FAILED), ("The answer is C.", "C"),
    ("The answer is C", FAILED),  # the pattern wants one more character after the letter
    ("E", FAILED),  # beyond the 4 options: counted wrong
    ("The answer is E.", FAILED), ("", FAILED), ("b", FAILED), ("C.dog", FAILED),
    ("The answer is A. The answer is B.", FAILED), ("I think so. The answer is D!", "D"),
])
def test_scienceqa_parse(text, letter):
    assert parse_scienceqa(text, 4) == letter


def test_scienceqa_correct():
    assert scienceqa_correct("C. dog", 2, 4) == 1.0
    assert scienceqa_correct("C. dog", 1, 4) == 0.0
    assert scienceqa_correct("B.", 1, 4) == 0.0
    assert scienceqa_correct("E", 4, 5) == 1.0


def test_seed_first_character_rule():
    assert seed_correct(" B ", "B") == 1.0
    assert seed_correct("b) a dog", "B") == 1.0
    assert seed_correct("The answer is B", "B") == 0.0
    assert seed_correct("", "A") == 0.0


@pytest.mark.parametrize("text, letter", [
    ("B", "B"), ("(C)", "C"), ("D.", "D"), ("A. cat", "A"), ("The answer is D", "D"),
    ("Answer: B", "B"), ("dog", "B"), ("I think it is a bird.", "C"), ("cat or dog", None),
    ("", None), ("E", None),
])
def test_mmbench_extract(text, letter):
    options = {"A": "cat", "B": "dog", "C": "bird", "D": "fish"}
    assert mmbench_extract(text, options) == letter


def test_circular_eval():
    passes = circular_rotations(["a", "b", "c", "d"], 1)
    assert passes == [(["a", "b", "c", "d"], "B"), (["b", "c", "d", "a"], "A"),
                      (["c", "d", "a", "b"], "D"), (["d", "a", "b", "c"], "C")]
    assert circular_accuracy({"q1": [True] * 4, "q2": [True, False, True, True]}) == 50.0


@pytest.mark.parametrize("text, parsed", [
    ("Yes", "yes"), ("no", "no"), ("Yes, it is.", "yes"), ("Not really", "no"),
    ("nope", "no"), ("There is a dog", "other"), ("y", "other"),
])
def test_mme_parse(text, parsed):
    assert mme_parse(text) == parsed


def test_mme_scores_by_hand():
    recs = [
        {"category": "existence", "image": "1.jpg", "answer": "Yes", "prediction": "Yes"},
        {"category": "existence", "image": "1.jpg", "answer": "No", "prediction": "No"},
        {"category": "existence", "image": "2.jpg", "answer": "Yes", "prediction": "yes"},
        {"category": "existence", "image": "2.jpg", "answer": "No", "prediction": "Yes"},
        {"category": "code_reasoning", "image": "3.png", "answer": "Yes", "prediction": "Yes, it is"},
        {"category": "code_reasoning", "image": "3.png", "answer": "No", "prediction": "There is no code"},
    ]
    s = mme_scores(recs)
    # existence: 3/4 questions, 1/2 images -> 75 + 50; code: 1/2, 0/1 -> 50 + 0
    assert s["existence_acc"] == 75.0 and s["existence_acc_plus"] == 50.0 and s["existence"] == 125.0
    assert s["code_reasoning"] == 50.0
    assert s["perception"] == 125.0 and s["cognition"] == 50.0


def test_mme_bad_records():
    with pytest.raises(DataError, match="color"):
        mme_scores([{"category": "colour", "image": "x", "answer": "Yes", "prediction": "Yes"}])
    with pytest.raises(DataError, match="two questions"):
        mme_scores([{"category": "OCR", "image": "x", "answer": "Yes", "prediction": "Yes"}])


def test_mean_stderr_is_the_sample_std_over_sqrt_n():
    import statistics

    from sc_eval.metrics.stderr import mean_stderr

    vals = [1, 0, 1, 1, 0.5, 0, 1, 0.3]
    assert mean_stderr(vals) == pytest.approx(100 * statistics.stdev(vals) / len(vals) ** 0.5)
    # half right on 100 questions: sqrt(0.25 * 100/99 / 100) = 5.03 points
    assert mean_stderr([1] * 50 + [0] * 50) == pytest.approx(5.0252, abs=1e-4)
    assert mean_stderr([1.0]) is None and mean_stderr([]) is None
    assert mean_stderr([1.0, float("nan"), 0.0]) is None  # no number rather than a nan one


def test_pope_standard_errors_resample_images_across_the_splits():
    import random
    import statistics

    from sc_eval.metrics.pope import pope_stderr

    labels = ["yes", "no"] * 30
    rng = random.Random(5)
    preds = [g if rng.random() < 0.75 else ("no" if g == "yes" else "yes") for g in labels]
    one = [("random", f"img{i}", p, g) for i, (p, g) in enumerate(zip(preds, labels))]  # an image each
    se = pope_stderr(one)
    acc = pope_metrics(preds, labels)["accuracy"] / 100
    assert se["accuracy"] == pytest.approx(100 * (acc * (1 - acc) / 60) ** 0.5, rel=0.1)
    # an independent bootstrap: resample the 60 (prediction, label) pairs, rescore with pope_metrics
    pairs = list(zip(preds, labels))
    f1s = [pope_metrics(*zip(*[pairs[rng.randrange(60)] for _ in range(60)]))["f1"] for _ in range(2000)]
    assert se["f1"] == pytest.approx(statistics.stdev(f1s), rel=0.1)
    # two splits asking the same questions of the same images (as POPE's splits share their "yes"
    # questions) move together: no smaller error than one split; on other images, sqrt(2) smaller
    shared = one + [("popular", im, p, g) for _, im, p, g in one]
    assert pope_stderr(shared)["f1"] == pytest.approx(se["f1"], rel=0.1)
    apart = one + [("popular", im + "b", p, g) for _, im, p, g in one]
    assert pope_stderr(apart)["f1"] == pytest.approx(se["f1"] / 2 ** 0.5, rel=0.1)
    # a model that says "no" to everything has F1 0 on every resample
    assert pope_stderr([("random", f"img{i}", "no", g) for i, g in enumerate(labels)])["f1"] == 0.0


def test_pope_lmms_standard_errors_are_binomial_on_independent_images():
    from sc_eval.metrics.pope import pope_lmms_stderr

    # 400 images, a question each, "yes" said to all: accuracy = precision = the 75% of "yes"
    # labels, a binomial proportion with standard error sqrt(p (1 - p) / n); recall is 100 on
    # every resample
    labels = ["yes"] * 300 + ["no"] * 100
    se = pope_lmms_stderr([("random", f"img{i}", "yes", g) for i, g in enumerate(labels)])
    binomial = 100 * (0.75 * 0.25 / 400) ** 0.5  # 2.165
    assert se["accuracy_lmms"] == pytest.approx(binomial, rel=0.1)
    assert se["precision_lmms"] == pytest.approx(binomial, rel=0.1)
    assert se["recall_lmms"] == 0.0
    # an answer that is neither "yes" nor "no" lowers accuracy only: half "maybe" on "yes" labels
    # is accuracy 50 +- 2.5, precision and recall 100 on every resample
    se = pope_lmms_stderr([("random", f"img{i}", "yes" if i % 2 else "maybe", "yes") for i in range(400)])
    assert se["accuracy_lmms"] == pytest.approx(2.5, rel=0.1)
    assert se["precision_lmms"] == se["recall_lmms"] == se["f1_lmms"] == 0.0
    # the three splits ask the same question of the same image: pooled, one image's questions move
    # together, so the error is that of the images, not three times as many questions
    one = [("random", f"img{i}", "yes", g) for i, g in enumerate(labels)]
    shared = one + [(split, im, p, g) for split in ("popular", "adversarial") for _, im, p, g in one]
    assert pope_lmms_stderr(shared)["accuracy_lmms"] == pytest.approx(binomial, rel=0.1)


def test_clustered_stderr_by_hand_and_without_clusters():
    import statistics

    from sc_eval.metrics.stderr import clustered_mean_stderr, mean_stderr

    vals = [1, 0, 1, 1, 0, 0, 1, 1]
    assert clustered_mean_stderr(vals, range(8)) == pytest.approx(mean_stderr(vals))
    assert mean_stderr(vals) == pytest.approx(100 * statistics.stdev(vals) / 8 ** 0.5)
    # rows 1,1,0 | 1,1,1,1 | 1,1 in three clusters: mean 8/9; cluster residuals -2/3, 4/9, 2/9;
    # 3/2 x (36 + 16 + 4) / 81 = 84/81; sqrt(84/81) / 9 = 0.11315
    got = clustered_mean_stderr([1, 1, 0, 1, 1, 1, 1, 1, 1], [0, 0, 0, 1, 1, 1, 1, 2, 2])
    assert got == pytest.approx(100 * (84 / 81) ** 0.5 / 9)
    assert clustered_mean_stderr([1, 0], ["a", "a"]) is None  # one cluster: no spread to measure


def test_paired_p_value_is_the_sign_test_on_wins_and_losses():
    import math

    from sc_eval.metrics.stderr import paired_p_value

    def sign_test(wins, losses):  # two-sided binomial sign test, computed from the binomial law
        n, k = wins + losses, max(wins, losses)
        tail = sum(math.exp(math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) - n * math.log(2))
                   for i in range(k, n + 1))
        return min(1.0, 2 * tail)

    # 7 questions lost, 1 won, 142 tied: exact, p = 18/256 (a normal approximation says 0.03)
    assert paired_p_value([-1.0] * 7 + [1.0] + [0.0] * 142) == pytest.approx(sign_test(1, 7)) == pytest.approx(18 / 256)
    assert paired_p_value([0.0] * 10) == 1.0 and paired_p_value([0.5, -0.5]) == 1.0
    with pytest.raises(ValueError, match="finite"):
        paired_p_value([1.0, float("nan")])
    # 60 won, 40 lost (seeded random sign patterns) and 1,100 won, 1,000 lost (normal approximation)
    assert paired_p_value([1.0] * 60 + [-1.0] * 40) == pytest.approx(sign_test(60, 40), rel=0.1)
    assert paired_p_value([1.0] * 1100 + [-1.0] * 1000) == pytest.approx(sign_test(1100, 1000), rel=0.1)


def test_pope_paired_bootstrap_compares_two_runs_on_the_same_questions():
    import random
    import statistics

    from sc_eval.evaluation import tasks as tasks_api
    from sc_eval.metrics.pope import pope_paired

    labels = ["yes", "no"] * 30
    rng = random.Random(3)
    good = list(labels)                                                   # all right
    fair = [g if rng.random() < 0.7 else ("no" if g == "yes" else "yes") for g in labels]
    qa = [("random", f"img{i}", p, g) for i, (p, g) in enumerate(zip(good, labels))]
    qb = [("random", f"img{i}", p, g) for i, (p, g) in enumerate(zip(fair, labels))]
    got = pope_paired(qa, qb)
    diff, se, p = got["f1"]
    assert diff == pytest.approx(100.0 - pope_metrics(fair, labels)["f1"])
    # an independent paired bootstrap: resample question indices, rescore both with pope_metrics
    diffs = []
    for _ in range(2000):
        idx = [rng.randrange(60) for _ in range(60)]
        diffs.append(pope_metrics([good[i] for i in idx], [labels[i] for i in idx])["f1"]
                     - pope_metrics([fair[i] for i in idx], [labels[i] for i in idx])["f1"])
    assert se == pytest.approx(statistics.stdev(diffs), rel=0.15)
    assert p < 0.01  # 100 against about 70: far beyond the noise of 60 questions
    assert pope_paired(qa, qa)["f1"] == (0.0, 0.0, 1.0)  # a run against itself

    # the task's hook pairs records by doc_id, whatever folder each run read its images from
    def records(preds, folder):
        return [{"doc_id": f"random/{i}", "image": f"{folder}/img{i}.jpg", "prediction": p, "targets": g}
                for i, (p, g) in enumerate(zip(preds, labels))]
    task = tasks_api.discover()["pope"]
    hooked = task.fn(task.paired)(records(good, "/here"), list(reversed(records(fair, "/there"))))
    assert hooked["f1"][0] == pytest.approx(diff)


def test_pope_resample_without_a_split_averages_the_splits_it_drew():
    from sc_eval.metrics.pope import pope_stderr

    # every answer right: F1 100 in every split a resample draws; a --limit that kept only two
    # images of the second split must not count that split as F1 0 when a resample misses it
    right = [("random", f"img{i}", g, g) for i, g in enumerate(["yes", "no"] * 30)]
    right += [("popular", "img0", "yes", "yes"), ("popular", "img2", "yes", "yes")]
    assert pope_stderr(right) == {"f1": 0.0, "accuracy": 0.0}
