"""Batched vs one-at-a-time greedy answers of the LLaVA adapter, in one run.

A Llama of about 100M parameters with random weights (no download) behind a tiny random ViT
answers the same questions twice: in left-padded batches and one question at a time (LLaVA's
reference evaluation is batch 1). Prints one JSON object: questions/s of each, their ratio, and
whether every answer is identical (batching must never change an answer).

    python benchmarks/llava_generate.py [--n 64] [--batch-size 16] [--threads 2]
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

QUESTIONS = ["What colour is the circle?", "How many shapes are there?", "Is there a red square?",
             "What word is written in the image?", "Where is the blue triangle?", "What shape is on the left?",
             "Is the cross bigger than the circle in the top right corner of the picture?", "Count the squares."]


class _Task:
    def __init__(self, max_new_tokens: int):
        self.generation_kwargs = {"max_new_tokens": max_new_tokens}

    def prompt_for(self, doc):
        return doc["question"] + "\nAnswer the question using a single word or phrase."


def _setup(args, tmp: Path):
    import numpy as np
    import torch
    from PIL import Image
    from transformers import LlamaConfig, LlamaForCausalLM

    from sc_eval import load_encoder
    from sc_eval.adapters.llava.generate import LlavaAdapter
    from sc_eval.adapters.llava.model import LlavaConfig, build, load_llm
    from sc_eval.models.tokenizers import llama_tokenizer

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=32000, hidden_size=args.hidden, intermediate_size=args.hidden * 8 // 3,
                      num_hidden_layers=args.layers, num_attention_heads=args.hidden // 64,
                      num_key_value_heads=args.hidden // 64, max_position_embeddings=1024)
    llm_dir = tmp / "llm"
    LlamaForCausalLM(cfg).save_pretrained(llm_dir)
    llama_tokenizer().save_pretrained(llm_dir)
    llm, tok = load_llm(llm_dir)
    encoder = load_encoder(args.encoder)
    model = build(encoder, llm, tok, LlavaConfig(encoder=args.encoder, llm=str(llm_dir)))
    rng = np.random.default_rng(0)
    docs = []
    for i in range(args.n):
        p = tmp / f"{i}.png"
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype="uint8")).save(p)
        docs.append({"doc_id": str(i), "image": str(p), "question": QUESTIONS[i % len(QUESTIONS)]})
    n_params = sum(p.numel() for p in llm.parameters())
    return LlavaAdapter(model), docs, n_params


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=64, help="questions")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--hidden", type=int, default=768)
    ap.add_argument("--max-new-tokens", type=int, default=16)
    ap.add_argument("--encoder", default="random:sc-vit-tiny")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as d:
        adapter, docs, n_params = _setup(args, Path(d))
        task = _Task(args.max_new_tokens)
        adapter.predict(docs[:2], task)  # warm-up (allocations, first-call overheads)
        t = time.perf_counter()
        batched = []
        for i in range(0, len(docs), args.batch_size):
            batched += adapter.predict(docs[i:i + args.batch_size], task)
        t_batched = time.perf_counter() - t
        t = time.perf_counter()
        single = [adapter.predict([doc], task)[0] for doc in docs]
        t_single = time.perf_counter() - t
    print(json.dumps({
        "benchmark": "llava_generate", "questions": len(docs), "batch_size": args.batch_size,
        "llm_params_m": round(n_params / 1e6, 1), "llm_layers": args.layers, "llm_hidden": args.hidden,
        "encoder": args.encoder, "max_new_tokens": args.max_new_tokens, "threads": args.threads,
        "batched_questions_per_s": round(len(docs) / t_batched, 2),
        "single_questions_per_s": round(len(docs) / t_single, 2),
        "speedup": round(t_single / t_batched, 2),
        "identical_answers": batched == single,
        "n_distinct_answers": len(set(batched)),
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
