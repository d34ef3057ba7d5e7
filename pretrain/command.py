"""`sc-eval pretrain`: train a SuperClass ViT (or the CLIP baseline) and export its encoder.

With no arguments it trains the tiny ViT (sc-vit-tiny) on the embedded world for a couple of
minutes on a CPU and writes ``<run>/encoder/``. The official recipe at scale:

    torchrun --nproc_per_node 8 -m sc_eval pretrain --config pretrain/configs/superclass-b16.yaml \\
        --data '/data/datacomp/{00000..13999}.tar' --output-dir runs/sc-b16

For L towers add ``--fsdp`` (``--strategy fsdp``): weights, gradients and AdamW moments are
sharded per transformer block instead of replicated (the L/16 config sets it).

Only argparse happens here; the trainer (torch, timm, open_clip) is imported by ``run``.
"""
from __future__ import annotations

import argparse

from sc_eval.cli import nonneg_float, nonneg_int, open_unit, positive_float, positive_int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("pretraining")
    g.add_argument("--model", default="sc-vit-tiny",
                   help="vision tower config name (sc-vit-micro, sc-vit-tiny, vit-s-16, vit-b-16, vit-l-16, vit-l-14) or a .json")
    g.add_argument("--data", default=None,
                   help="webdataset shards ('dir/{00000..00099}.tar', a folder of .tar), a .jsonl of {image, caption}, "
                        "or a datasets.save_to_disk folder (default: the embedded world)")
    g.add_argument("--objective", default="superclass", choices=["superclass", "clip"],
                   help="SuperClass subword classification, or the CLIP contrastive baseline on the same tower")
    g.add_argument("--steps", type=positive_int, default=400, help="optimizer steps")
    g.add_argument("--lr", type=positive_float, default=1e-3, help="peak learning rate (official recipe: 5e-4 at batch 16k)")
    g.add_argument("--warmup", type=nonneg_int, default=None, help="warm-up steps (None: min(500, steps // 10))")
    g.add_argument("--wd", type=nonneg_float, default=0.2, help="AdamW weight decay (not on norms, biases, 1-D params)")
    g.add_argument("--beta2", type=open_unit, default=0.98, help="AdamW beta2 (0.95 for the large-batch recipe)")
    g.add_argument("--grad-accum", type=positive_int, default=1, help="micro-batches per optimizer step")
    g.add_argument("--grad-checkpointing", action="store_true", help="recompute activations in backward")
    g.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="torch.compile the model (default: on for CUDA, where it measured 1.5x faster steps for "
                        "ViT-B/16 bf16 after about 40 s of compilation; off on a CPU)")
    g.add_argument("--lean-blocks", action=argparse.BooleanOptionalAction, default=True,
                   help="memory-lean transformer blocks: identical gradients, ~1/3 less activation memory "
                        "for ~3%% more compute (recomputed LayerNorm/GELU); --no-lean-blocks for timm's own")
    g.add_argument("--strategy", default="ddp", choices=["ddp", "fsdp"],
                   help="under torchrun: DDP (full copy per process) or FSDP (weights, gradients and AdamW "
                        "states sharded per transformer block: for L towers); checkpoints are the same either way")
    g.add_argument("--fsdp", dest="strategy", action="store_const", const="fsdp", help="same as --strategy fsdp")
    g.add_argument("--workers", type=nonneg_int, default=1, help="DataLoader worker processes per rank")
    g.add_argument("--decode", default="auto", choices=["cpu", "gpu", "auto"],
                   help="where images are decoded and cropped: cpu (in the workers; a reduced-size JPEG draft when "
                        "the crop allows), gpu (nvjpeg on the training GPU, batched, then crop and resize there), "
                        "auto (gpu on CUDA with --workers 0, else cpu)")
    g.add_argument("--lanes", type=positive_int, default=None,
                   help="shard streams each global batch draws from (default: min(64, shards, batch)); fixed for a "
                        "run and kept on resume, so batches do not depend on the number of processes or workers")
    g.add_argument("--shuffle-buffer", type=positive_int, default=8192,
                   help="samples held for webdataset's buffer shuffle, over all lanes (shards are also shuffled "
                        "each epoch)")
    g.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads (None: torch's choice)")
    g.add_argument("--tokenizer", default="clip", help="'clip' (the CLIP BPE, 49,408 ids) or a local HF tokenizer folder")
    g.add_argument("--save-every", type=positive_int, default=100, help="checkpoint (and export the encoder) every N steps")
    g.add_argument("--log-every", type=positive_int, default=20, help="log loss and images/s every N steps")
    g.add_argument("--resume", nargs="?", const="latest", default=None,
                   help="'latest' (the run's last checkpoint; starts fresh if none) or a checkpoints/step_N folder")
    g.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")
    a = parser.add_argument_group("SuperClass loss (ablations)")
    a.add_argument("--idf", default="online", choices=["online", "paper", "none"],
                   help="online cumulative IDF (official code), the paper's static |D| formula, or none")
    a.add_argument("--dataset-size", type=positive_int, default=None, help="|D| for --idf paper")
    a.add_argument("--loss", default="softmax", choices=["softmax", "bce", "softmargin", "asl", "twoway"],
                   help="classification loss (paper Table 6); softmax is the official one")
    a.add_argument("--mask-special", action="store_true", help="leave SOT/EOT/pad out of the targets")


def run(args) -> int:
    from sc_eval.pretrain.trainer import train_and_report

    if args.batch_size is None:
        args.batch_size = 64
    return train_and_report(args)
