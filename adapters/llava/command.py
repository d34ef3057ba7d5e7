"""`sc-eval llava`: train the projector (stage 1) and LoRA/full LLM (stage 2), then run tasks.

    sc-eval llava --encoder SPEC --llm DIR --tasks vqav2,gqa [--lora-r 128]
    sc-eval llava --encoder SPEC --adapter DIR --tasks vqav2,gqa

Training needs ``--llm`` (a local causal LM such as vicuna-7b-v1.5, or ``random:NAME``); an
adapter evaluated with ``--adapter`` names its own. With no data flags the training data and the
tasks come from the embedded world (its LLaVA json files, its benchmarks). Rerunning the same
command in the same --output-dir resumes: finished stages are reloaded, unfinished ones continue
from their last checkpoint, and tasks skip the documents already predicted.
"""
from __future__ import annotations

from sc_eval.cli import fraction, nonneg_int, positive_float, positive_int


def add_arguments(p) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--encoder", required=True, help="vision encoder spec (sc-eval ls encoders)")
    g.add_argument("--llm", default=None,
                   help="local Hugging Face causal-LM directory, or random:NAME for the real architecture with random "
                        "weights built on the device (random:vicuna-7b, random:llama-13b; `sc-eval ls models`); "
                        "needed to train (with --adapter: the LLM the adapter names)")
    g.add_argument("--adapter", default=None, help="evaluate this trained adapter directory; no training")
    g.add_argument("--projector", default="mlp2x_gelu", help="linear | mlp{N}x_gelu | identity")
    g.add_argument("--select-layer", type=int, default=-2, help="encoder block whose patch tokens feed the LLM")
    g.add_argument("--lora-r", type=nonneg_int, default=128, help="LoRA rank (0: full fine-tuning of the LLM)")
    g.add_argument("--lora-alpha", type=positive_int, default=256, help="LoRA alpha (LLaVA-1.5: 256)")
    g.add_argument("--lora-dropout", type=fraction, default=0.05, help="LoRA dropout (LLaVA-1.5: 0.05)")
    g.add_argument("--4bit", dest="four_bit", action="store_true",
                   help="QLoRA: load the LLM in 4-bit nf4 (needs bitsandbytes and a CUDA GPU)")
    g.add_argument("--merge-lora", action="store_true", help="also export the LLM with LoRA merged in")
    t = p.add_argument_group("training")
    t.add_argument("--stage1-data", default=None, help="LLaVA json for stage 1 (default: world llava/pretrain.json)")
    t.add_argument("--stage2-data", default=None, help="LLaVA json for stage 2 (default: world llava/finetune.json)")
    t.add_argument("--image-folder", default=None, help="root of the images named in the json (default: data root)")
    t.add_argument("--stage1-image-folder", default=None,
                   help="image root for --stage1-data only (LCS-558K: LLaVA-Pretrain/images); default --image-folder")
    t.add_argument("--stage2-image-folder", default=None,
                   help="image root for --stage2-data only (mix665k: the folder holding coco/, gqa/, ...)")
    t.add_argument("--stage1-steps", type=positive_int, default=None, help="default: one epoch")
    t.add_argument("--stage2-steps", type=positive_int, default=None, help="default: one epoch")
    t.add_argument("--stage1-lr", type=positive_float, default=1e-3, help="stage-1 projector learning rate (LLaVA-1.5: 1e-3)")
    t.add_argument("--stage2-lr", type=positive_float, default=None, help="default 2e-4 with LoRA, 2e-5 full")
    t.add_argument("--projector-lr", type=positive_float, default=2e-5, help="stage-2 projector lr (LoRA)")
    t.add_argument("--max-length", type=positive_int, default=2048, help="tokens per example (image counts as one)")
    t.add_argument("--grad-accum", type=positive_int, default=1, help="micro-batches per optimizer step")
    t.add_argument("--grad-checkpointing", action="store_true", help="recompute LLM activations in backward (saves memory)")
    t.add_argument("--save-every", type=nonneg_int, default=0, help="checkpoint every N steps (0: end of stage)")
    e = p.add_argument_group("evaluation")
    e.add_argument("--tasks", default="llava", help="comma list of tasks, aliases or groups")
    e.add_argument("--data-root", default=None, help="benchmark data root (default: the embedded world)")
    e.add_argument("--eval-batch-size", type=positive_int, default=16, help="questions per generation batch")
    e.add_argument("--include-tasks", action="append", default=[], metavar="DIR",
                   help="extra task folders (same layout as tasks/)")


def run(args) -> int:
    from sc_eval.adapters.llava.pipeline import run_llava

    return run_llava(args)
