"""`sc-eval llava` (flags: ``command``): stage 1 (projector) and stage 2 (LoRA or the full LLM),
each resumable, or a saved adapter; then the tasks through the runner, results.md with the
battery in the paper's Table 11 columns.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path

import torch

from sc_eval import load_encoder
from sc_eval.adapters.llava.data import ConversationData, read_conversations
from sc_eval.adapters.llava.generate import LlavaAdapter
from sc_eval.adapters.llava.model import LlavaConfig, add_lora, build, load_llm
from sc_eval.adapters.llava.projector import export_mm_projector
from sc_eval.adapters.llava.saving import check_adapter, load_adapter, save_adapter
from sc_eval.adapters.llava.train import StageConfig, train_stage
from sc_eval.errors import ConfigError
from sc_eval.evaluation import tasks as tasks_api
from sc_eval.evaluation.results import results_markdown as scores
from sc_eval.evaluation.runner import evaluate, preload_docs
from sc_eval.models.lm_specs import is_random_lm
from sc_eval.report.table11 import battery_markdown
from sc_eval.runtime.dist import barrier, init_distributed, is_main, resolve_device, seed_everything
from sc_eval.runtime.precision import check_precision
from sc_eval.runtime.rundir import RunDir
from sc_eval.world.build import ensure_world

log = logging.getLogger(__name__)


def results_markdown(results: dict) -> str:
    """A LLaVA run's results.md: every task's scores, then the battery in the paper's Table 11
    columns (when the run holds two or more of its tasks)."""

    battery = battery_markdown(results)
    return scores(results) + ("\n" + battery.rstrip("\n") + "\n" if battery else "")


def _steps(given, n: int, batch: int) -> int:
    return given if given is not None else max(1, math.ceil(n / batch))


def train(args, encoder, root: Path, run, device: str):
    """Stage 1 then stage 2 (each resumable); returns the trained model, adapter written."""
    llm_dir = args.llm if is_random_lm(args.llm) else Path(args.llm)
    llm, tok = load_llm(llm_dir, device=device, precision=args.precision, quantize_4bit=args.four_bit)
    lora = {"r": args.lora_r, "alpha": args.lora_alpha, "dropout": args.lora_dropout} if args.lora_r > 0 else None
    cfg = LlavaConfig(encoder=args.encoder, llm=str(llm_dir), projector=args.projector,
                      select_layer=args.select_layer, template="vicuna_v1", lora=lora, full_finetune=lora is None)
    # The projector's initial weights come from the seed alone, whatever drew random numbers
    # before it in this process (`sc-eval demo` trains its tiny Llama on a first run only).

    seed_everything(args.seed)
    model = build(encoder, llm, tok, cfg, device=device)
    images = Path(args.image_folder) if args.image_folder else root
    bs = args.batch_size or 16

    # Stage 1: projector only, LLM frozen, plain template (image -> caption).
    model.llm.requires_grad_(False)
    model.projector.requires_grad_(True)
    s1 = Path(args.stage1_data) if args.stage1_data else root / "llava" / "pretrain.json"
    d1 = ConversationData(read_conversations(s1, Path(args.stage1_image_folder or images)), tok, "plain", args.max_length, source=str(s1))
    sum1 = train_stage(model, d1, StageConfig("stage1", _steps(args.stage1_steps, len(d1), bs), bs, lr=args.stage1_lr,
                                              grad_accum=args.grad_accum, grad_checkpointing=args.grad_checkpointing,
                                              save_every=args.save_every, seed=args.seed, precision=args.precision), run.checkpoints, device)

    if is_main():  # the stage-1 projector under LLaVA's keys, for its --pretrain_mm_mlp_adapter

        export_mm_projector(model.projector, Path(run.checkpoints) / "stage1" / "mm_projector.bin")

    # Stage 2: vicuna_v1 conversations, LoRA on every LLM linear (or the full LLM) + projector.
    if lora:
        model.llm = add_lora(model.llm, lora["r"], lora["alpha"], lora["dropout"], quantized=args.four_bit)
        lr, plr = args.stage2_lr or 2e-4, args.projector_lr
    else:
        model.llm.requires_grad_(True)
        lr = args.stage2_lr or 2e-5
        plr = None
    model.projector.requires_grad_(True)
    s2 = Path(args.stage2_data) if args.stage2_data else root / "llava" / "finetune.json"
    d2 = ConversationData(read_conversations(s2, Path(args.stage2_image_folder or images)), tok, "vicuna_v1", args.max_length, source=str(s2))
    sum2 = train_stage(model, d2, StageConfig("stage2", _steps(args.stage2_steps, len(d2), bs), bs, lr=lr,
                                              projector_lr=plr, grad_accum=args.grad_accum,
                                              grad_checkpointing=args.grad_checkpointing,
                                              save_every=args.save_every, seed=args.seed, precision=args.precision),
                       run.checkpoints, device)
    log.info("stage 1 loss %.3f -> %.3f; stage 2 loss %.3f -> %.3f", sum1["first_loss"] or 0, sum1["final_loss"] or 0,
             sum2["first_loss"] or 0, sum2["final_loss"] or 0)
    if is_main():
        save_adapter(model, run.path / "adapter", merge_lora=args.merge_lora)
    barrier()
    return model, {"stage1": sum1, "stage2": sum2}


def run_llava(args) -> int:
    if not args.adapter and args.lora_r == 0 and args.precision == "fp16":
        raise ConfigError("--lora-r 0 (full fine-tuning) with --precision fp16 would train the LLM's own float16 "
                          "weights, which fp16 loss scaling cannot unscale; use --precision bf16, or LoRA (--lora-r 128)")
    device = resolve_device(args.device)
    check_precision(args.precision, device, training=not args.adapter)
    init_distributed(device)
    seed_everything(args.seed)
    tasks = tasks_api.resolve(args.tasks, args.include_tasks, adapter_kind="generate")  # fail on a bad name before any work
    if not args.adapter and not args.llm:
        raise ConfigError("--llm not given: training needs the LLM, --llm DIR (a local causal LM written by "
                          "save_pretrained, e.g. vicuna-7b-v1.5), or --llm random:vicuna-7b for its architecture "
                          "with random weights (`sc-eval ls models`); to evaluate a trained adapter pass --adapter DIR")
    adapter_cfg = check_adapter(args.adapter) if args.adapter else None  # damaged or foreign: refused first
    # The tower is small beside the LLM; loaded first, a block index it lacks (--select-layer, or
    # the adapter's own) is refused before the run directory is touched or the LLM loaded.
    encoder = load_encoder(args.encoder, device=device)
    if adapter_cfg is None:
        encoder.check_layer(args.select_layer, flag="--select-layer")
    else:
        encoder.check_layer(adapter_cfg.get("select_layer", -2), flag=f"select_layer in {Path(args.adapter) / 'config.json'}")
    run_dir = RunDir.create(args.output_dir, "llava", args, main_process=is_main())
    log.info("encoder %s: %s", args.encoder, encoder.describe())
    if args.data_root:
        root = Path(args.data_root)
    else:
        root = ensure_world()
    group = tasks_api.names_a_group(args.tasks, args.include_tasks)
    docs = preload_docs(tasks, root, skip_missing_data=group)
    info = {"encoder": args.encoder}
    if args.adapter:
        model = load_adapter(args.adapter, encoder, device=device, precision=args.precision, llm_path=args.llm)
        info["adapter_dir"] = str(args.adapter)
    else:
        model, summaries = train(args, encoder, root, run_dir, device)
        perf = ("tokens_per_s", "peak_memory_mb", "peak_memory_kind")
        info["training"] = {k: {"steps": v["steps"], "first_loss": v["first_loss"], "final_loss": v["final_loss"],
                                **{f: v[f] for f in perf if f in v}}
                            for k, v in summaries.items()}
        info["adapter_dir"] = str(run_dir.path / "adapter")
    if torch.cuda.is_available() and device.startswith("cuda"):
        torch.cuda.empty_cache()
    adapter = LlavaAdapter(model, device=device, precision=args.precision)
    # A group (`all`, `llava`) skips benchmarks whose files are absent; a task named outright must exist.
    evaluate(tasks, adapter, run_dir.path, root, limit=args.limit, batch_size=args.eval_batch_size,
             overwrite=args.overwrite, info=info, skip_missing_data=group, docs=docs, markdown=results_markdown)
    return 0
