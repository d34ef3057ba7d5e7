"""Batched versus one-image-at-a-time ClipCap beam search, in one run, on the same model.

A GPT-2-small-sized language model (12 layers, 768 wide, 50,257 ids; random weights: none can be
downloaded) with the reference transformer mapper (K = C = 40) captions the same image features
twice: ``--batch`` images per beam search, then one image per search. Both use the same code path
(sc_eval.adapters.clipcap.decode.beam_search, with its key/value cache: the one-image baseline is
that decoder run on one image, not the reference's cache-free loop, which recomputes the whole
sequence at every step and would be far slower). Prints one JSON object: images/s of each, their
ratio, and whether every caption is identical (it must be: batching must not change a caption).
``--library-cache`` measures the generic decoder (transformers' cache) instead of the GPT-2 one
that shares the prefix cache across beams.

The reference's own way (one image at a time and no cache: the prefix and every token so far
recomputed at each step) is timed too, on the first ``--reference-images`` images only (a rate,
images/s, needs no more; 0 skips it): ``reference_images_per_s`` and ``speedup_vs_reference``,
with its captions checked against the batched ones.

What bounds the ratio on a CPU: one image (5 hypotheses) is a 5-row matrix product per layer, so
each step streams all ~500 MB of weights from memory; 32 images make it 160 rows and the same
step becomes arithmetic-bound. The ratio is therefore about (memory time of the weights) /
(arithmetic time of 5 rows), a property of the machine; on a shared machine, other processes
change both (the JSON records the load average before and after).

The features are random vectors of the encoder width: the encoder is not part of what is timed.
A random LM rarely emits "." or EOS, so most captions run to --max-new-tokens, the worst case.

    python benchmarks/caption_decode.py [--images 64] [--batch 32] [--max-new-tokens 67] [--device cpu]
                                        [--threads N] [--reference-images 8] [--library-cache]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time


def build(args, torch):
    from transformers import GPT2Config, GPT2LMHeadModel

    from sc_eval.adapters.clipcap.mapper import MapperConfig
    from sc_eval.adapters.clipcap.model import build_model

    torch.manual_seed(args.seed)
    lm = GPT2LMHeadModel(GPT2Config(vocab_size=50257, n_layer=args.layers, n_embd=args.width,
                                    n_head=args.width // 64, n_positions=1024))
    cfg = MapperConfig(kind="transformer", input_width=args.feature_width, lm_width=args.width,
                       prefix_length=40, clip_length=40, num_layers=8, num_heads=8)
    return build_model(cfg, lm, lm_frozen=True).to(args.device).eval()


def timed(fn, sync):
    sync()
    t = time.perf_counter()
    out = fn()
    sync()
    return out, time.perf_counter() - t


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--images", type=int, default=64)
    p.add_argument("--batch", type=int, default=32, help="images per batched beam search")
    p.add_argument("--beam", type=int, default=5)
    p.add_argument("--max-new-tokens", type=int, default=67)
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--width", type=int, default=768)
    p.add_argument("--feature-width", type=int, default=768, help="the encoder's pooled width")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--reference-images", type=int, default=8,
                   help="images decoded the reference's way (one at a time, no cache); 0: skip")
    p.add_argument("--library-cache", action="store_true",
                   help="decode with transformers' cache (the path of non-GPT-2 LMs)")
    args = p.parse_args(argv)

    import torch

    from sc_eval.adapters.clipcap.decode import beam_search, shares_prefix_cache

    if args.threads:
        torch.set_num_threads(args.threads)
    model = build(args, torch)
    feats = torch.randn(args.images, args.feature_width, generator=torch.Generator().manual_seed(1))
    feats = feats.to(args.device)
    eos, dot = 50256, 13
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)

    shared = False if args.library_cache else None
    decoder = ("shared-prefix GPT-2" if shares_prefix_cache(model.lm) and shared is None
               else "transformers cache")

    def search(x):
        return beam_search(model, x, beam=args.beam, max_new_tokens=args.max_new_tokens,
                           stop_ids=[dot, eos], eos_id=eos, shared_prefix=shared)

    load_before = _load()

    search(feats[:2])  # warm-up (allocator, kernels)
    batched, t_batched = timed(lambda: [c for i in range(0, args.images, args.batch)
                                        for c in search(feats[i:i + args.batch])], sync)
    single, t_single = timed(lambda: [search(feats[i:i + 1])[0] for i in range(args.images)], sync)
    same = [a == b for a, b in zip(batched, single)]
    n_ref = min(args.reference_images, args.images)
    ref = {}
    if n_ref > 0:
        reference, t_ref = timed(lambda: [beam_search(model, feats[i:i + 1], beam=args.beam,
                                                      max_new_tokens=args.max_new_tokens, stop_ids=[dot, eos],
                                                      eos_id=eos, cache=False)[0] for i in range(n_ref)], sync)
        ref_same = [a == b for a, b in zip(batched[:n_ref], reference)]
        ref = {"reference_images": n_ref, "reference_images_per_s": n_ref / t_ref,
               "speedup_vs_reference": (t_ref / n_ref) / (t_batched / args.images),
               "reference_identical_captions": all(ref_same)}
    result = {
        "benchmark": "clipcap beam search, batched vs one image at a time",
        "model": f"GPT-2 {args.layers}x{args.width} (random), transformer mapper K=C=40",
        "device": args.device if not args.device.startswith("cuda") else torch.cuda.get_device_name(),
        "threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(), "load_average_1m": [load_before, _load()], "decoder": decoder,
        "images": args.images, "batch": args.batch, "beam": args.beam,
        "max_new_tokens": args.max_new_tokens,
        "mean_caption_tokens": sum(len(c) for c in batched) / max(1, len(batched)),
        "batched_images_per_s": args.images / t_batched,
        "single_images_per_s": args.images / t_single,
        "speedup": t_single / t_batched,
        "identical_captions": all(same),
        "n_identical": sum(same),
        **ref,
        "torch": torch.__version__,
    }
    print(json.dumps(result))
    return 0 if all(same) and ref.get("reference_identical_captions", True) else 1


def _load():
    """1-minute load average (None where the OS has none): other processes slow both timings."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


if __name__ == "__main__":
    raise SystemExit(main())
