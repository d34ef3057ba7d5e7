"""End-to-end ``sc-eval pretrain`` from JPEG shards against the training step alone.

Is the GPU fed? The same model, batch and precision, in one run: (1) the SuperClass step alone
on a batch already on the device (forward, loss, backward, fused AdamW: what the trainer does
per step, without data), then (2) ``sc-eval pretrain`` itself from img2dataset-layout shards of
224-px JPEGs (written as ``benchmarks/loader.py`` writes them) with ``--workers`` workers, once per
``--decode`` mode. The trainer's images/s comes from its own ``metrics.jsonl``, over the steps
after ``--skip`` (start-up, shuffle buffers, allocator warm-up). Target: end-to-end >= 0.95 of the
step alone.

On CUDA the trainer also runs under ``torch.cuda.set_sync_debug_mode("warn")``: every operation
that makes the host wait for the device is counted up to the first checkpoint save
(``<mode>_syncs``); the trainer should wait only when it logs (``--log-every``), so that count
should be about steps / log-every.

Prints ONE JSON object: ``step_images_per_s``, ``<mode>_images_per_s``,
``<mode>_over_step``, ``<mode>_data_wait`` (the share of the trainer's time spent waiting for
the loader's next batch, from metrics.jsonl: near 0 when the loader keeps up) and
``<mode>_syncs``.

    python benchmarks/pretrain_e2e.py --device cuda --model vit-b-16 --precision bf16 \\
        --batch-size 256 --workers 14 --steps 40 --skip 20 --decode cpu,gpu
    python benchmarks/pretrain_e2e.py --model sc-vit-tiny --batch-size 64 --workers 1 --steps 30 --skip 10
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path


def step_alone(args) -> float:
    """images/s of the SuperClass step on a device-resident batch (the trainer's step, no data)."""
    import torch

    from sc_eval.models import resolve_config
    from sc_eval.pretrain.loss import SuperClassLoss
    from sc_eval.pretrain.models import SuperClassModel, param_groups
    from sc_eval.runtime.precision import autocast

    device = torch.device(args.device)
    cfg = resolve_config(args.model)
    model = SuperClassModel(cfg).to(device).train()
    module = torch.compile(model) if args.compile else model
    crit = SuperClassLoss().to(device).train()
    opt = torch.optim.AdamW(param_groups(model, 0.2), lr=1e-4, betas=(0.9, 0.98), eps=1e-6, fused=True)
    size = cfg["image_size"]
    x = torch.randn(args.batch_size, 3, size, size, device=device)
    g = torch.Generator().manual_seed(0)
    ids = torch.zeros(args.batch_size, 77, dtype=torch.long)
    ids[:, 0], ids[:, 1:13], ids[:, 13] = 49406, torch.randint(1, 49000, (args.batch_size, 12), generator=g), 49407
    ids = ids.to(device)
    amp = autocast(device, args.precision)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    def run(n):
        for _ in range(n):
            with amp:
                loss = crit(module(x), ids)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

    run(args.skip // 4 + 2)
    sync()
    n = max(3, args.steps - args.skip)
    t0 = time.perf_counter()
    run(n)
    sync()
    return args.batch_size * n / (time.perf_counter() - t0)


def end_to_end(args, data: str, decode: str, out: Path) -> tuple[float, float, int | None]:
    """(images/s and the share of time waiting for data over steps after --skip, host-device
    synchronisations before the first save)."""
    import torch

    from sc_eval.cli import main
    from sc_eval.pretrain import parallel

    argv = ["pretrain", "--model", args.model, "--data", data, "--steps", str(args.steps), "--batch-size",
            str(args.batch_size), "--precision", args.precision, "--device", args.device, "--workers",
            str(args.workers), "--decode", decode, "--log-every", str(args.log_every), "--save-every",
            str(args.steps), "--output-dir", str(out), "--overwrite", "--no-progress"]
    argv.append("--compile" if args.compile else "--no-compile")
    cuda = args.device.startswith("cuda")
    syncs: dict = {}
    real_state = parallel.full_model_state

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")

        def counted_state(model):  # the first save: stop counting (saving copies to the host)
            syncs.setdefault("n", sum("synchroniz" in str(w.message) for w in caught))
            return real_state(model)

        parallel.full_model_state = counted_state
        if cuda:
            torch.cuda.set_sync_debug_mode("warn")
        try:
            rc = main(argv)
        finally:
            parallel.full_model_state = real_state
            if cuda:
                torch.cuda.set_sync_debug_mode("default")
    if rc != 0:
        raise SystemExit(f"sc-eval pretrain exited with {rc}")
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    # images_per_s is a per-window average, logged on every line of its window
    windows = {}
    for r in rows:
        if r["step"] > args.skip:
            windows[r["images_per_s"]] = windows.get(r["images_per_s"], 0) + 1
    total = sum(windows.values())
    rate = total / sum(n / v for v, n in windows.items()) if total else float("nan")
    waits = [r["data_wait"] for r in rows if r["step"] > args.skip]
    wait = sum(waits) / len(waits) if waits else float("nan")
    return rate, wait, (syncs.get("n") if cuda else None)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--model", default="sc-vit-tiny")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--decode", default="cpu", help="comma-separated modes for the trainer (cpu, gpu)")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--skip", type=int, default=10, help="steps left out of the rates (start-up)")
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--compile", action="store_true", help="torch.compile the model (both measurements)")
    p.add_argument("--data", default=None, help="existing shards; default: write them")
    p.add_argument("--n-shards", type=int, default=64)
    p.add_argument("--per-shard", type=int, default=128)
    args = p.parse_args(argv)
    if args.skip % args.log_every:
        raise SystemExit("--skip must be a multiple of --log-every (rates are logged per window)")

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from loader import write_shards

    tmp = Path(tempfile.mkdtemp(prefix="sc-eval-e2e-"))
    try:
        t0 = time.perf_counter()
        data = args.data or write_shards(tmp / "shards", args.n_shards, args.per_shard, 224,
                                         processes=max(1, args.workers))
        out = {"device": args.device, "model": args.model, "precision": args.precision,
               "batch_size": args.batch_size, "workers": args.workers, "steps": args.steps, "skip": args.skip,
               "compile": args.compile, "cpu_cores": os.cpu_count(), "shards_s": round(time.perf_counter() - t0, 1)}
        out["step_images_per_s"] = round(step_alone(args), 1)
        for mode in args.decode.split(","):
            rate, wait, syncs = end_to_end(args, data, mode, tmp / f"run-{mode}")
            out[f"{mode}_images_per_s"] = round(rate, 1)
            out[f"{mode}_over_step"] = round(rate / out["step_images_per_s"], 3)
            out[f"{mode}_data_wait"] = round(wait, 3)
            if syncs is not None:
                out[f"{mode}_syncs"] = syncs
    finally:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
