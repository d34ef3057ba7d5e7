"""`sc-eval demo`: the paper's comparison in miniature, on the embedded world, on a CPU.

Stages, each an ordinary sc-eval run directory under --output-dir (default runs/demo):
  pretrain-superclass, pretrain-clip   tiny ViTs on the same data and budget
  <stage>-<encoder>                    caption (CIDEr), llava (VQA tasks, POPE), probe
  report/                              the comparison table and plots
A stage that finished is reused on the next run (its `.done` marker); a killed stage resumes.
"""
from __future__ import annotations

from sc_eval.cli import nonneg_int, positive_int

ENCODERS = ("superclass", "clip", "random")


def add_arguments(parser) -> None:
    parser.add_argument("--stages", default="pretrain,caption,llava,probe,report",
                        help="comma list of stages to run (pretrain, caption, llava, probe, report)")
    parser.add_argument("--encoders", default=",".join(ENCODERS),
                        help="encoders to compare: superclass, clip (both pretrained here) and random (the floor)")
    parser.add_argument("--pretrain-steps", type=positive_int, default=300, help="optimizer steps per pretraining run")
    parser.add_argument("--llava-steps", type=positive_int, default=None,
                        help="LLaVA stage-2 steps per encoder (default 300; 1500 lets the towers' "
                             "differences show, see docs/demo-findings.md)")
    parser.add_argument("--llava-limit", type=nonneg_int, default=None,
                        help="questions per LLaVA task (default 150; 0 = whole splits)")
    parser.add_argument("--quick", action="store_true", help="a much smaller budget (smoke test; numbers are noise)")


def run(args) -> int:
    from sc_eval.demo.pipeline import run_demo

    return run_demo(args)
