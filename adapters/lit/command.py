"""`sc-eval zeroshot`: LiT zero-shot classification of a frozen encoder (the paper's Table 3).

    sc-eval zeroshot --encoder RUN_DIR                         # train LiT on the world's pairs
    sc-eval zeroshot --encoder RUN_DIR --pairs shards/ --steps 2000 --data imagenet/
    sc-eval zeroshot --encoder RUN_DIR --lit runs/zeroshot-1/lit --templates my_prompts.txt

Without --lit, a projection and a text tower are trained from scratch with the CLIP loss on
--pairs (saved under the run's lit/); with --lit, a saved one is loaded. Then every class name
of --data is filled into the prompt templates (CLIP's 80 ImageNet prompts by default) and the
eval split is classified by cosine similarity. Result: ``zeroshot_lit`` in results.json.
``--precision`` applies to the encoder's features, LiT's training and the class embeddings
(autocast); the final cosine scores are computed in float32.
"""
from __future__ import annotations

from sc_eval.cli import positive_float, positive_int


def add_arguments(parser):
    parser.add_argument("--encoder", required=True, help="encoder spec (anything sc_eval.load_encoder accepts)")
    parser.add_argument("--encoder-config", default=None, help="model config for an official epoch_K.pt checkpoint")
    parser.add_argument("--data", default=None, help="ImageFolder root or hf:DIR to classify; "
                        "None: the embedded world's classification set")
    parser.add_argument("--pairs", default=None, help="image-text pairs for LiT: a .jsonl, a .tar shard or a "
                        "directory of shards; None: the embedded world's pretrain/pairs.jsonl")
    parser.add_argument("--templates", default=None, help="prompt templates file, one per line with {}; "
                        "None: CLIP's 80 ImageNet templates")
    parser.add_argument("--lit", default=None, help="a saved LiT directory (a previous run's lit/): skip training")
    parser.add_argument("--steps", type=positive_int, default=300, help="LiT training steps")
    parser.add_argument("--lr", type=positive_float, default=1e-3, help="LiT peak learning rate (AdamW, cosine)")
    parser.add_argument("--embed-dim", type=positive_int, default=128, help="joint embedding size")
    parser.add_argument("--text-width", type=positive_int, default=128, help="text transformer width")
    parser.add_argument("--text-layers", type=positive_int, default=3, help="text transformer depth")
    parser.add_argument("--context-length", type=positive_int, default=32, help="text tokens per caption (CLIP: 77)")
    parser.add_argument("--max-pairs", type=positive_int, default=None, help="use only the first N pairs")


def run(args) -> int:
    from sc_eval.adapters.lit.pipeline import run_zeroshot

    return run_zeroshot(args)
