"""`sc-eval caption`: train a ClipCap mapper on a frozen encoder, caption the test split, score it.

    sc-eval caption --encoder SPEC [--lm DIR] [--mapper transformer|mlp] [--task coco_caption]

The LM is ``--lm`` (a GPT-2 folder, or ``random:NAME``); without it, GPT-2 small from the local
Hugging Face cache (the paper's ClipCap LM; never downloaded).

Steps (each resumable: rerun the same command after a kill):
1. encode the training images through the feature cache (never twice for the same encoder);
2. train the mapper (checkpoints/last.pt every --save-every steps), save ``<run>/adapter/``;
3. caption each task's docs through the runner (predictions/<task>.jsonl, append-only);
4. score (BLEU, METEOR, ROUGE-L, CIDEr-D) into results.json / results.md.

``--adapter DIR`` skips 1-2 and evaluates a saved adapter; ``--predict-only`` skips 4 (no Java
needed: score the predictions later with ``sc-eval score``). ``--precision`` applies to the
feature pass, training and decoding (autocast). Defaults come from a recipe:
``reference`` is the ClipCap/SuperClass setting for real COCO (lr 2e-5, 5,000 warm-up steps,
batch 40, 10 epochs, K = C = 40); ``world`` is sized for the embedded world on a CPU (a few
minutes). ``auto`` picks ``world`` when the data root is an embedded world. Any flag given
explicitly wins over the recipe.
"""
from __future__ import annotations

from sc_eval.cli import nonneg_int, positive_float, positive_int


def add_arguments(p) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--encoder", required=True, help="encoder spec: anything `sc_eval.load_encoder` accepts "
                   "(encoder dir, pretrain run, timm:NAME, open_clip:NAME, hf:DIR, random:NAME)")
    g.add_argument("--encoder-config", default=None, help="model config for official .pt checkpoints")
    g.add_argument("--lm", default=None, help="GPT-2 directory (save_pretrained layout), or random:NAME for a "
                   "real-size GPT-2 with random weights (random:gpt2, random:gpt2-medium; `sc-eval ls models`); "
                   "default: GPT-2 small (124M, the paper's ClipCap LM) from the local Hugging Face cache "
                   "(openai-community/gpt2), never downloaded")
    g.add_argument("--mapper", choices=["transformer", "mlp"], default="transformer",
                   help="transformer: GPT-2 frozen (the SuperClass setting); mlp: GPT-2 fine-tuned")
    g.add_argument("--prefix-length", type=positive_int, default=None, help="K prefix tokens (recipe default)")
    g.add_argument("--clip-length", type=positive_int, default=None, help="C tokens made from the feature "
                   "(transformer mapper)")
    g.add_argument("--mapper-layers", type=positive_int, default=None, help="transformer mapper depth")
    g.add_argument("--adapter", default=None, help="evaluate this saved adapter directory (no training)")
    t = p.add_argument_group("training")
    t.add_argument("--recipe", choices=["auto", "reference", "world"], default="auto",
                   help="default hyper-parameters (see the command's description)")
    t.add_argument("--train-data", default=None, help="Karpathy dataset_coco.json (train + restval) or a "
                   "COCO captions_*.json; default: <data-root>/coco/dataset_coco.json")
    t.add_argument("--train-images", default=None, help="image folder for --train-data (default: "
                   "<data-root>/coco/images for Karpathy, <data-root>/coco/images/train2014 for captions json)")
    t.add_argument("--epochs", type=positive_float, default=None, help="training epochs over the caption pairs (recipe default)")
    t.add_argument("--steps", type=nonneg_int, default=None,
                   help="train this many steps (overrides --epochs; 0: evaluate the mapper as initialised)")
    t.add_argument("--lr", type=positive_float, default=None, help="peak AdamW learning rate (recipe default: 2e-5 reference, 1e-3 world)")
    t.add_argument("--warmup", type=nonneg_int, default=None, help="warm-up steps (capped at 10%% of the run)")
    t.add_argument("--save-every", type=positive_int, default=None, help="steps between checkpoints")
    d = p.add_argument_group("evaluation")
    d.add_argument("--task", default="coco_caption", help="task name(s), comma separated")
    d.add_argument("--include-tasks", action="append", default=[], metavar="DIR",
                   help="extra task folders (same layout as tasks/)")
    d.add_argument("--data-root", default=None, help="dataset root (default: the embedded world)")
    b = d.add_mutually_exclusive_group()
    b.add_argument("--beam", type=positive_int, default=None, help="beam size (default: the task's, 5)")
    b.add_argument("--greedy", action="store_true", help="greedy decoding (beam 1)")
    d.add_argument("--max-new-tokens", type=positive_int, default=None, help="default: the task's (67)")
    d.add_argument("--decode-batch-size", type=positive_int, default=32, help="images decoded together")
    d.add_argument("--predict-only", action="store_true",
                   help="write the captions but do not score them (the PTB tokenizer and METEOR need Java); "
                        "score later with `sc-eval score coco_caption --predictions <run>/predictions/...`")


def run(args) -> int:
    from sc_eval.adapters.clipcap.pipeline import run_caption

    return run_caption(args)
