"""The demo pipeline behind `sc-eval demo` (its flags: sc_eval/demo/command.py).

Every stage is a normal sc-eval command run in-process with its own --output-dir, so what the
demo does is exactly what a user would type; each stage's `.done` marker records that command line.
No pretrained language model is at hand on the demo's machine, so the ClipCap and LLaVA stages
are given tiny LMs trained on the world's text (``tiny_lm``) with ``--lm`` / ``--llm``.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from sc_eval import cli
from sc_eval.demo import tiny_lm
from sc_eval.errors import ConfigError, ScEvalError
from sc_eval.io import atomic_write_text
from sc_eval.report.build import build_report
from sc_eval.runtime.rundir import lock_run_dir
from sc_eval.world.build import ensure_world

log = logging.getLogger(__name__)

# Budgets sized for 2 CPU cores (9 to 19 minutes in all, by the machine); --quick shrinks them for smoke tests.
FULL = {
    "pretrain": ["--batch-size", "64"],
    "caption": ["--steps", "500", "--limit", "100", "--beam", "3"],
    # The tiny LLM needs the projector to keep learning in stage 2: LLaVA's 2e-5 leaves it
    # answering from question priors alone at this budget. 3e-3 separated the towers on VQAv2
    # and GQA where 1e-3 did not (6e-3 did no better); LoRA dropout's random masks were 12% of
    # a stage-2 step, so they go.
    "llava": ["--stage1-steps", "200", "--stage2-steps", "300", "--lora-r", "16", "--lora-alpha", "32",
              "--lora-dropout", "0", "--projector-lr", "3e-3", "--stage2-lr", "3e-3",
              "--tasks", "vqav2_val,textvqa_val,textvqa_val_ocr,gqa_testdev_balanced,pope", "--limit", "150"],
    "probe": ["--tasks", "linear,fewshot", "--epochs", "30", "--warmup-epochs", "1"],
}
QUICK = {
    "pretrain": ["--batch-size", "16"],
    "caption": ["--steps", "20", "--limit", "8", "--greedy"],
    "llava": ["--stage1-steps", "4", "--stage2-steps", "4", "--lora-r", "4", "--lora-alpha", "8",
              "--tasks", "vqav2_val,pope", "--limit", "8"],
    "probe": ["--tasks", "fewshot", "--shots", "2", "--seeds", "1"],
}


def _stage(name: str, out: Path, argv: list[str], more=None) -> Path:
    """Run one sc-eval command into out/name unless it already finished with the same command.

    The `.done` marker records the command line; a finished stage asked to run with other
    settings (another budget, say) is an error rather than a silent reuse of the old numbers.
    ``more()``: flags added when the stage runs but not recorded with its settings (the tiny LM's
    folder, which the world and the seed in ``argv`` determine), so they are made only then.
    """
    run_dir = out / name
    done = run_dir / ".done"
    if done.exists():
        before = _done_argv(done)  # recorded without --output-dir: a moved demo stays reusable
        if before is not None and before != argv:
            raise ConfigError(
                f"demo stage {name} in {run_dir} finished with other settings:\n  before: sc-eval "
                f"{' '.join(before)}\n  now:    sc-eval {' '.join(argv)}\n"
                "use another --output-dir, or delete that stage's directory to redo it")
        log.info("demo: %s already finished, reusing %s", name, run_dir)
        return run_dir
    full = [*argv, *(more() if more is not None else []), "--output-dir", str(run_dir)]
    log.info("demo: %s: sc-eval %s", name, " ".join(full))
    t0 = time.time()
    rc = cli.main(full)
    if rc != 0:
        raise ScEvalError(f"demo stage {name} failed (exit {rc}); see {run_dir / 'log.txt'}; "
                          "rerun `sc-eval demo` to resume from there")
    atomic_write_text(done, json.dumps({"seconds": round(time.time() - t0, 1), "argv": argv}) + "\n")
    return run_dir


def _done_argv(done: Path) -> list[str] | None:
    """The command line a `.done` marker recorded (None for markers that predate the record)."""
    try:
        return json.loads(done.read_text()).get("argv")
    except (ValueError, AttributeError):
        return None


def _budget(args) -> dict:
    """The stage arguments: FULL or QUICK, with --llava-steps / --llava-limit applied."""
    budget = {k: list(v) for k, v in (QUICK if args.quick else FULL).items()}
    llava = budget["llava"]
    steps, limit = args.llava_steps, args.llava_limit
    if steps is not None:
        if steps < 1:
            raise ConfigError(f"--llava-steps {steps}: use at least 1")
        llava[llava.index("--stage2-steps") + 1] = str(steps)
    if limit is not None:
        if limit < 0:
            raise ConfigError(f"--llava-limit {limit}: use 0 (whole splits) or a positive count")
        i = llava.index("--limit")
        if limit == 0:
            del llava[i:i + 2]
        else:
            llava[i + 1] = str(limit)
    return budget


def _tiny_lm_flags(command: str, world: Path, seed: int):
    """A function giving the flag that names ``command``'s tiny LM, trained on the world's text on
    first use (about a minute) and cached beside it: ClipCap's GPT-2 (``--lm``, seed 0 whatever
    --seed is), LLaVA's Llama (``--llm``, --seed)."""
    if command == "caption":
        return lambda: ["--lm", str(tiny_lm.ensure_tiny_lm("gpt2", world, 0))]
    return lambda: ["--llm", str(tiny_lm.ensure_tiny_lm("llama", world, seed))]


def run_demo(args) -> int:
    out = Path(args.output_dir or "runs/demo")
    lock_run_dir(out)  # one demo at a time in a folder; each stage also locks its own directory
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    encoders = [e.strip() for e in args.encoders.split(",") if e.strip()]
    unknown = [e for e in encoders if e not in ("superclass", "clip", "random")]
    if unknown:
        raise ConfigError(f"--encoders: unknown {unknown}; choose from superclass, clip, random")
    budget = _budget(args)
    common = ["--seed", str(args.seed), "--device", args.device, "--precision", args.precision]
    t_start = time.time()
    world = ensure_world(seed=args.seed)
    log.info("demo: embedded world at %s", world)

    specs, pretrain_dirs = {}, []
    for enc in encoders:
        if enc == "random":
            specs[enc] = "random:sc-vit-tiny"
            continue
        name = f"pretrain-{enc}"
        run_dir = out / name
        if "pretrain" in stages or (run_dir / ".done").exists():
            # --resume latest: a stage killed mid-way continues from its last checkpoint
            # (a fresh one starts at step 0); the other commands resume by themselves.
            _stage(name, out, ["pretrain", "--objective", enc, "--steps", str(args.pretrain_steps),
                               *budget["pretrain"], "--resume", "latest", *common])
        elif not (run_dir / "encoder").exists():
            raise ConfigError(f"encoder {enc} needs the pretrain stage first ({run_dir} is missing)")
        specs[enc] = str(run_dir / "encoder")
        pretrain_dirs.append(run_dir)

    eval_dirs, labels = [], {}
    for stage, command in (("caption", "caption"), ("llava", "llava"), ("probe", "probe")):
        if stage not in stages:
            continue
        for enc, spec in specs.items():
            argv = [command, "--encoder", spec, *budget[stage], *common]
            more = None
            if command in ("caption", "llava"):
                argv += ["--data-root", str(world)]
                more = _tiny_lm_flags(command, world, args.seed)
            run_dir = _stage(f"{stage}-{enc}", out, argv, more)
            eval_dirs.append(run_dir)
            labels[str(run_dir)] = enc

    if "report" in stages and eval_dirs:
        table = build_report(eval_dirs, out / "report", labels=labels, extra_runs=pretrain_dirs,
                             baseline="random" if "random" in specs else None)
        print(table)
        log.info("demo: report in %s (%.0f s in all)", out / "report", time.time() - t_start)
    return 0
