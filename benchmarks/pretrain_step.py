"""One training step (forward, backward, AdamW) of SuperClass vs CLIP, sc-eval vs its peers.

Four contenders on the same ViT-B/16 at 224 px, the same batch and precision, each in its own
subprocess so that peak memory is its own:

- ``superclass``: sc-eval's SuperClass model (timm tower, LayerNorm/Linear head) + SuperClassLoss
- ``clip``: sc-eval's CLIP baseline on the same tower (text tower 512 x 12, embedding 512)
- ``open_clip``: ``open_clip.create_model('ViT-B-16')`` (random init) + ``open_clip.ClipLoss``
- ``official_superclass``: the official model rebuilt from open_clip's VisionTransformer
  (mean pooling, no projection) + LayerNorm/Linear head + the official loss (a dense float32
  multi-hot, the IDF re-weighting, L1 normalisation, full log_softmax)

``--only superclass,superclass_compiled`` (likewise ``clip_compiled``, ``open_clip_compiled``)
adds the model through ``torch.compile``, as ``sc-eval pretrain`` trains it on CUDA:
``<name>_compile_s`` is its warm-up time beyond that many steady steps (the compilation), and
``<name>_over_eager_step`` the compiled / eager step ratio. ``--compile`` compiles every
contender instead. ``--flops`` counts each model's FLOPs per image (matmul, convolution and
attention, torch's FlopCounterMode, forward + backward) and reports ``<name>_tflops``,
``<name>_mfu`` (against ``--peak-tflops``) and ``<name>_of_matmul`` (against this device's
measured dense matmul rate, ``matmul_tflops``).

Each runs with its own tool's optimizer settings (sc-eval: fused AdamW; open_clip_train: torch's
default AdamW, which on a CPU is the per-tensor loop). sc-eval's models train with the
memory-lean blocks of ``sc_eval.models.lean`` as the trainer does (``--stock-blocks``: timm's
blocks, to measure what they cost or save). Prints ONE JSON object: ``<name>_step_s`` (median of
all timed steps), ``<name>_peak_mb`` and the ratios the targets are stated in. Peak memory is the
process's peak RSS above its RSS before the model was built (CPU) or
``torch.cuda.max_memory_allocated`` (CUDA).

On a shared machine the load drifts while the contenders run one after the other: ``--rounds N``
runs the whole sequence N times (in alternating order) and also reports each ratio's range over
the rounds (``*_range``), which is what to quote.

    python benchmarks/pretrain_step.py --precision fp32 --batch-size 8 --iters 3 --rounds 2
    python benchmarks/pretrain_step.py --device cuda --precision bf16 --batch-size 256 \
        --only superclass,superclass_compiled,open_clip --flops --iters 10 --warmup 3
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

KINDS = ("superclass", "clip", "open_clip", "official_superclass")
COMPILED = ("superclass_compiled", "clip_compiled", "open_clip_compiled")  # opt-in via --only
V = 49408


def _tokens(batch: int):
    """Caption-like ids: SOT, 8-20 random word ids, EOT, then pad 0 (CLIP BPE layout)."""
    import torch

    g = torch.Generator().manual_seed(0)
    ids = torch.zeros(batch, 77, dtype=torch.long)
    for i in range(batch):
        n = int(torch.randint(8, 21, (1,), generator=g))
        ids[i, 0] = 49406
        ids[i, 1:n + 1] = torch.randint(1, 49000, (n,), generator=g)
        ids[i, n + 1] = 49407
    return ids


def _official_superclass():
    """The official model and loss, rebuilt: open_clip ViT (avg pool, no proj) + LN/Linear head;
    dense float32 multi-hot targets re-weighted by the online IDF, full log_softmax."""
    import torch
    import torch.nn.functional as F
    from open_clip.transformer import LayerNorm, VisionTransformer
    from torch import nn

    class Official(nn.Module):
        def __init__(self):
            super().__init__()
            self.visual = VisionTransformer(image_size=224, patch_size=16, width=768, layers=12, heads=12,
                                            mlp_ratio=4.0, output_dim=768, pool_type="avg")
            self.visual.proj = None
            self.ln_mlp = LayerNorm(768)
            self.text_projection = nn.Linear(768, V)
            self.register_buffer("cap_fq", torch.zeros(1, V, dtype=torch.float64))
            self.register_buffer("num_samples", torch.zeros(1, 1, dtype=torch.float64))

        def forward(self, images, ids):
            logits = self.text_projection(self.ln_mlp(self.visual(images)))
            b = logits.shape[0]
            targets = torch.zeros(b, V, dtype=torch.float32, device=logits.device).scatter_(1, ids, 1.0)
            self.cap_fq += targets.sum(0, keepdim=True) / b
            self.num_samples += 1
            w = torch.log((self.num_samples + 1.0 / b) / (self.cap_fq + 1.0 / b)).to(targets.dtype)
            targets = F.normalize(targets * w, p=1, dim=1)
            return -(F.log_softmax(logits, dim=1) * targets).sum(1).mean()

    return Official()


def build(kind: str, lean: bool = True):
    """-> (model, step_loss(module, images, ids) -> scalar); ``module`` is the model or its
    ``torch.compile`` (the ``<kind>_compiled`` contenders, as ``sc-eval pretrain --compile``)."""
    if kind == "superclass":
        from sc_eval.pretrain.loss import SuperClassLoss
        from sc_eval.pretrain.models import SuperClassModel

        model, crit = SuperClassModel("vit-b-16", lean=lean), SuperClassLoss()
        return model, lambda m, x, t: crit(m(x), t)
    if kind == "clip":
        from sc_eval.pretrain.models import ClipModel, clip_criterion

        model, crit = ClipModel("vit-b-16", lean=lean), clip_criterion()
        return model, lambda m, x, t: crit(*m(x, t))
    if kind == "open_clip":
        import open_clip

        model, crit = open_clip.create_model("ViT-B-16"), open_clip.ClipLoss()

        def step(m, x, t):
            out = m(x, t)
            if isinstance(out, dict):
                return crit(out["image_features"], out["text_features"], out["logit_scale"])
            return crit(*out[:3])
        return model, step
    if kind == "official_superclass":
        return _official_superclass(), lambda m, x, t: m(x, t)
    raise SystemExit(f"unknown kind {kind}")


def _rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _exact_rss() -> None:
    """Make peak RSS follow live tensor bytes: glibc otherwise raises its mmap threshold after
    the first large free and serves later tensors from per-thread heaps whose freed pages it
    keeps, so the same program's peak RSS varied by ~15% from run to run. With a fixed 1 MiB
    threshold every tensor above it is its own mapping, returned to the system when freed."""
    import ctypes

    libc = ctypes.CDLL("libc.so.6")
    libc.mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD (fixed: disables the dynamic adjustment)
    libc.mallopt(-1, 1 << 20)  # M_TRIM_THRESHOLD


def _flops_per_image(module, step_loss, x, ids) -> float:
    """Matmul/conv/attention FLOPs of one forward + backward, per image (torch's FlopCounterMode).
    Attention is counted through SDPA's math backend, whose matrix products the counter sees on
    every device (it has no formula for the CPU's fused attention kernel)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, sdpa_kernel(SDPBackend.MATH):
        step_loss(module, x, ids).backward()
    return counter.get_total_flops() / x.shape[0]


def worker(args) -> dict:
    if args.exact_rss:
        _exact_rss()
    import torch

    from sc_eval.pretrain.models import param_groups
    from sc_eval.runtime.precision import autocast

    torch.set_num_threads(args.threads or torch.get_num_threads())
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    torch.manual_seed(0)
    base = _rss_mb()
    kind = args.worker
    compiled = kind.endswith("_compiled") or args.compile
    model, step_loss = build(kind.removesuffix("_compiled"), lean=not args.stock_blocks)
    model.to(device).train()
    module = torch.compile(model) if compiled else model
    # Each tool's own optimizer: sc-eval's trainer uses fused AdamW; open_clip's training
    # script (and so the official code) uses torch's default AdamW.
    ours = kind.removesuffix("_compiled") in ("superclass", "clip")
    opt = torch.optim.AdamW(param_groups(model, 0.2), lr=1e-4, betas=(0.9, 0.98), eps=1e-6, fused=True if ours else None)
    x = torch.randn(args.batch_size, 3, 224, 224, device=device)
    ids = _tokens(args.batch_size).to(device)
    amp = autocast(device, args.precision)
    flops = None
    if args.flops:  # eager, 2 images: counted before the timed steps, gradients dropped
        with amp:
            flops = _flops_per_image(model, step_loss, x[:2], ids[:2])
        opt.zero_grad(set_to_none=True)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    times = []
    for i in range(args.warmup + args.iters):
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with amp:
            loss = step_loss(module, x, ids)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else _rss_mb() - base
    timed = times[args.warmup:]
    return {"times": timed, "warmup_s": sum(times[:args.warmup]), "peak_mb": peak, "loss": float(loss),
            "params_m": sum(p.numel() for p in model.parameters()) / 1e6, "flops_per_image": flops}


def _matmul_tflops(device: str, precision: str) -> float:
    """The device's achievable dense matmul rate (8192^3, bf16 or fp32), TFLOP/s."""
    import torch

    from sc_eval.runtime.precision import compute_dtype

    dtype = compute_dtype(precision)
    n = 8192 if device.startswith("cuda") else 1024
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    reps, t0 = 20, time.perf_counter()
    for _ in range(reps):
        a @ b
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return 2 * n**3 * reps / (time.perf_counter() - t0) / 1e12


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--iters", type=int, default=3, help="timed steps (median reported)")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--only", default=",".join(KINDS),
                   help="comma-separated subset of " + ",".join(KINDS + COMPILED) + " (the _compiled ones: "
                        "torch.compile'd model; their first steps, compilation included, give <name>_compile_s)")
    p.add_argument("--compile", action="store_true", help="torch.compile every contender's model")
    p.add_argument("--flops", action="store_true",
                   help="count FLOPs per image (FlopCounterMode) and report TFLOP/s, MFU against --peak-tflops "
                        "and against the measured dense matmul rate")
    p.add_argument("--peak-tflops", type=float, default=None,
                   help="the device's peak for MFU (default: 790 for bf16 on CUDA, as quoted for the H200 runs)")
    p.add_argument("--rounds", type=int, default=1, help="repeat the sequence of contenders (order alternates)")
    p.add_argument("--stock-blocks", action="store_true", help="sc-eval models with timm's blocks (no lean blocks)")
    p.add_argument("--exact-rss", action="store_true",
                   help="CPU memory runs: fixed glibc mmap threshold so peak RSS tracks live tensors (slower steps)")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker == "matmul":
        print(json.dumps({"tflops": _matmul_tflops(args.device, args.precision)}))
        return 0
    if args.worker:
        print(json.dumps(worker(args)))
        return 0
    out = {"precision": args.precision, "batch_size": args.batch_size, "device": args.device,
           "model": "ViT-B/16 224px", "iters": args.iters, "rounds": args.rounds,
           "blocks": "stock" if args.stock_blocks else "lean", "exact_rss": args.exact_rss}
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    kinds = args.only.split(",")
    unknown = [k for k in kinds if k not in KINDS + COMPILED]
    if unknown:
        raise SystemExit(f"--only: unknown contender(s) {', '.join(unknown)}; known: {', '.join(KINDS + COMPILED)}")
    if args.compile:
        out["compile"] = True
    times = {k: [] for k in kinds}
    flops: dict = {}
    per_round = []
    for r in range(args.rounds):
        medians = {}
        for kind in (kinds if r % 2 == 0 else kinds[::-1]):
            cmd = [sys.executable, __file__, "--worker", kind, "--precision", args.precision, "--batch-size",
                   str(args.batch_size), "--iters", str(args.iters), "--warmup", str(args.warmup), "--device", args.device]
            if args.threads:
                cmd += ["--threads", str(args.threads)]
            if args.stock_blocks:
                cmd += ["--stock-blocks"]
            if args.exact_rss:
                cmd += ["--exact-rss"]
            if args.compile:
                cmd += ["--compile"]
            if args.flops:
                cmd += ["--flops"]
            res = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if res.returncode:
                print(res.stderr[-3000:], file=sys.stderr)
                return res.returncode
            got = json.loads(res.stdout.strip().splitlines()[-1])
            times[kind] += got["times"]
            medians[kind] = statistics.median(got["times"])
            out[f"{kind}_peak_mb"] = round(max(out.get(f"{kind}_peak_mb", 0.0), got["peak_mb"]), 1)
            out[f"{kind}_params_m"] = round(got["params_m"], 2)
            if kind.endswith("_compiled") or args.compile:  # warm-up minus as many steady steps
                extra = got["warmup_s"] - args.warmup * statistics.median(got["times"])
                out[f"{kind}_compile_s"] = round(max(out.get(f"{kind}_compile_s", 0.0), extra), 1)
            if got["flops_per_image"]:
                flops[kind] = got["flops_per_image"]
        per_round.append(medians)
    for kind in kinds:
        out[f"{kind}_step_s"] = round(statistics.median(times[kind]), 4)

    def ratio(a, b):
        return round(out[a] / out[b], 3) if a in out and b in out and out[b] else None

    targets = {  # name: (numerator, denominator); targets in the comments
        "open_clip_over_superclass_step": ("open_clip", "superclass"),  # >= 1.25
        "official_over_superclass_step": ("official_superclass", "superclass"),  # >= 1.1
        "clip_over_open_clip_step": ("clip", "open_clip"),  # <= 1.0
    }
    for name, (a, b) in targets.items():
        out[name] = ratio(f"{a}_step_s", f"{b}_step_s")
        if args.rounds > 1 and a in kinds and b in kinds:
            rs = [m[a] / m[b] for m in per_round]
            out[name + "_range"] = [round(min(rs), 3), round(max(rs), 3)]
    out["superclass_over_clip_peak_mem"] = ratio("superclass_peak_mb", "clip_peak_mb")  # <= 0.8 at batch 32
    for kind in kinds:
        eager = kind.removesuffix("_compiled")
        if kind.endswith("_compiled") and eager in kinds:
            out[f"{kind}_over_eager_step"] = ratio(f"{kind}_step_s", f"{eager}_step_s")
            if args.rounds > 1:
                rs = [m[kind] / m[eager] for m in per_round]
                out[f"{kind}_over_eager_step_range"] = [round(min(rs), 3), round(max(rs), 3)]
    if flops:
        peak = args.peak_tflops or (790.0 if args.precision == "bf16" and args.device.startswith("cuda") else None)
        res = subprocess.run([sys.executable, __file__, "--worker", "matmul", "--device", args.device,
                              "--precision", args.precision], capture_output=True, text=True, env=env)
        matmul = json.loads(res.stdout.strip().splitlines()[-1])["tflops"] if res.returncode == 0 else None
        out["matmul_tflops"] = round(matmul, 3) if matmul else None
        out["peak_tflops"] = peak
        for kind, f in flops.items():
            tflops = f * args.batch_size / out[f"{kind}_step_s"] / 1e12
            out[f"{kind}_gflop_per_image"] = round(f / 1e9, 2)
            out[f"{kind}_tflops"] = round(tflops, 3)
            out[f"{kind}_images_per_s"] = round(args.batch_size / out[f"{kind}_step_s"], 2)
            if peak:
                out[f"{kind}_mfu"] = round(tflops / peak, 3)
            if matmul:
                out[f"{kind}_of_matmul"] = round(tflops / matmul, 3)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
