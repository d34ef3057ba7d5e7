"""Faithful re-implementations of each benchmark's official scorer.

Per-question functions return 0..1 (the runner averages and multiplies by 100); corpus-level
functions (captions, POPE, MME, CircularEval) return percent, MME as its summed score.
Everything here is pure Python except ``caption`` (pycocoevalcap, which needs Java) and
``classification`` (torch); the package exports the pure-Python scorers only.
"""
from sc_eval.metrics.choice import (FAILED, circular_accuracy, circular_rotations, mmbench_correct, mmbench_extract,
                                    parse_scienceqa, scienceqa_correct, scienceqa_correct_lmms_v03, seed_correct)
from sc_eval.metrics.gqa import gqa_correct, gqa_correct_lmms, gqa_normalize, gqa_normalize_lmms
from sc_eval.metrics.mme import COGNITION, PERCEPTION, mme_correct, mme_parse, mme_scores
from sc_eval.metrics.pope import pope_metrics, pope_metrics_lmms, pope_parse, pope_parse_lmms, pope_summary
from sc_eval.metrics.vqa import (normalize_evalai, normalize_lmms, normalize_official, vqa_acc, vqa_acc_lmms,
                                 vqa_acc_lmms_v03, vqa_acc_official, vqa_scores)

__all__ = [
    "FAILED", "COGNITION", "PERCEPTION", "circular_accuracy", "circular_rotations", "gqa_correct",
    "gqa_correct_lmms", "gqa_normalize", "gqa_normalize_lmms", "mmbench_correct", "mmbench_extract",
    "mme_correct", "mme_parse", "mme_scores", "normalize_evalai", "normalize_lmms", "normalize_official",
    "parse_scienceqa", "pope_metrics", "pope_metrics_lmms", "pope_parse", "pope_parse_lmms",
    "pope_summary", "scienceqa_correct",
    "scienceqa_correct_lmms_v03", "seed_correct", "vqa_acc", "vqa_acc_lmms", "vqa_acc_lmms_v03", "vqa_acc_official",
    "vqa_scores",
]
