"""One training step (forward, backward, AdamW) of SuperClass vs CLIP, sc-eval vs its peers.

Four contenders on the same ViT-B/16 at 224 px, the same batch and precision, each in its own
subprocess so that peak memory is its own:

- ``superclass``: sc-eval's SuperClass model (timm tower, LayerNorm/Linear head) + SuperClassLoss
- ``clip``: sc-eval's CLIP baseline on the same tower (text tower 512 x 12, embedding 512)
- ``open_clip``: ``open_clip.create_model('ViT-B-16')`` (random init) + ``open_clip.ClipLoss``
- ``official_superclass``: the official model rebuilt from open_clip's VisionTransformer
  (mean pooling, no projection) + LayerNorm/Linear head + the official loss (a dense float32
  multi-hot, the IDF re-weighting, L1 normalisation, full log_softmax)

Each runs with its own tool's optimizer settings (sc-eval: fused AdamW; open_clip_train: torch's
default AdamW). Prints ONE JSON object: ``<name>_step_s`` (median), ``<name>_peak_mb`` and the ratios the
targets are stated in. Peak memory is the process's peak RSS above its RSS before the model was
built (CPU) or ``torch.cuda.max_memory_allocated`` (CUDA).

    python benchmarks/pretrain_step.py --precision fp32 --batch-size 8 --iters 3
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
            targets = torch.zeros(b, V, dtype=torch.float32).scatter_(1, ids, 1.0)
            self.cap_fq += targets.sum(0, keepdim=True) / b
            self.num_samples += 1
            w = torch.log((self.num_samples + 1.0 / b) / (self.cap_fq + 1.0 / b)).to(targets.dtype)
            targets = F.normalize(targets * w, p=1, dim=1)
            return -(F.log_softmax(logits, dim=1) * targets).sum(1).mean()

    return Official()


def build(kind: str):
    """-> (model, step_loss(images, ids) -> scalar)."""
    if kind == "superclass":
        from sc_eval.pretrain.loss import SuperClassLoss
        from sc_eval.pretrain.models import SuperClassModel

        model, crit = SuperClassModel("vit-b-16"), SuperClassLoss()
        return model, lambda x, t: crit(model(x), t)
    if kind == "clip":
        from sc_eval.pretrain.models import ClipLoss, ClipModel

        model, crit = ClipModel("vit-b-16"), ClipLoss()
        return model, lambda x, t: crit(*model(x, t))
    if kind == "open_clip":
        import open_clip

        model, crit = open_clip.create_model("ViT-B-16"), open_clip.ClipLoss()

        def step(x, t):
            out = model(x, t)
            if isinstance(out, dict):
                return crit(out["image_features"], out["text_features"], out["logit_scale"])
            return crit(*out[:3])
        return model, step
    if kind == "official_superclass":
        model = _official_superclass()
        return model, lambda x, t: model(x, t)
    raise SystemExit(f"unknown kind {kind}")


def _rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def worker(args) -> dict:
    import contextlib

    import torch

    from sc_eval.pretrain.models import param_groups

    torch.set_num_threads(args.threads or torch.get_num_threads())
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    torch.manual_seed(0)
    base = _rss_mb()
    model, step_loss = build(args.worker)
    model.to(device).train()
    # Each tool's own optimizer: sc-eval's trainer uses fused AdamW; open_clip's training
    # script (and so the official code) uses torch's default AdamW.
    ours = args.worker in ("superclass", "clip")
    opt = torch.optim.AdamW(param_groups(model, 0.2), lr=1e-4, betas=(0.9, 0.98), eps=1e-6, fused=True if ours else None)
    x = torch.randn(args.batch_size, 3, 224, 224, device=device)
    ids = _tokens(args.batch_size).to(device)
    amp = (torch.autocast(device.type, dtype=torch.bfloat16) if args.precision == "bf16"
           else contextlib.nullcontext())
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    times = []
    for i in range(args.warmup + args.iters):
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with amp:
            loss = step_loss(x, ids)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if cuda:
            torch.cuda.synchronize()
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else _rss_mb() - base
    return {"step_s": statistics.median(times), "peak_mb": peak, "loss": float(loss),
            "params_m": sum(p.numel() for p in model.parameters()) / 1e6}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--iters", type=int, default=3, help="timed steps (median reported)")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--only", default=",".join(KINDS), help="comma-separated subset of " + ",".join(KINDS))
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args)))
        return 0
    out = {"precision": args.precision, "batch_size": args.batch_size, "device": args.device,
           "model": "ViT-B/16 224px", "iters": args.iters}
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    for kind in args.only.split(","):
        cmd = [sys.executable, __file__, "--worker", kind, "--precision", args.precision, "--batch-size",
               str(args.batch_size), "--iters", str(args.iters), "--warmup", str(args.warmup), "--device", args.device]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        r = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if r.returncode:
            print(r.stderr[-3000:], file=sys.stderr)
            return r.returncode
        res = json.loads(r.stdout.strip().splitlines()[-1])
        out[f"{kind}_step_s"] = round(res["step_s"], 4)
        out[f"{kind}_peak_mb"] = round(res["peak_mb"], 1)
        out[f"{kind}_params_m"] = round(res["params_m"], 2)

    def ratio(a, b):
        return round(out[a] / out[b], 3) if a in out and b in out and out[b] else None

    out["open_clip_over_superclass_step"] = ratio("open_clip_step_s", "superclass_step_s")  # target >= 1.25
    out["official_over_superclass_step"] = ratio("official_superclass_step_s", "superclass_step_s")  # >= 1.1
    out["clip_over_open_clip_step"] = ratio("clip_step_s", "open_clip_step_s")  # target <= 1.0
    out["superclass_over_clip_peak_mem"] = ratio("superclass_peak_mb", "clip_peak_mb")  # <= 0.8 at batch 32
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
