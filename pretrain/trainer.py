"""The pretraining loop: one code path for 1 process or N (torchrun: DDP, or FSDP for large
towers), SuperClass or CLIP.

Read top to bottom: ``train(args)`` resolves the device and run directory, builds tokenizer,
model, loss, optimizer and schedule, restores a checkpoint when resuming, then steps. Every
piece of state that changes the next step is checkpointed (weights, AdamW moments, schedule,
fp16 scaler, the IDF counts, RNG, and the data position: the next global batch and where each
data lane stands), which is why a killed run resumed with ``--resume latest`` ends bitwise equal
to an uninterrupted one on CPU, whatever the number of processes and workers on either side.

A step never waits for the device: batches arrive in pinned memory and are copied without
blocking, the loss stays on the device, and the host reads losses (one synchronisation) only
when it logs or saves, which is also where a non-finite loss stops the run.
"""
from __future__ import annotations

import json
import logging
import math
import shutil
import time
from pathlib import Path

from sc_eval.errors import ConfigError, ScEvalError
from sc_eval.runtime.precision import autocast, check_precision, grad_scaler
from sc_eval.runtime.schedules import warmup_cosine

log = logging.getLogger("sc_eval.pretrain")


class TrainingDiverged(ScEvalError):
    """The loss became NaN or infinite."""


def _check_args(args, world: int):
    if args.steps <= 0:
        raise ConfigError(f"--steps must be positive, got {args.steps}")
    per = world * args.grad_accum
    if args.batch_size <= 0 or args.batch_size % per:
        raise ConfigError(f"--batch-size {args.batch_size} must be a positive multiple of processes x "
                          f"--grad-accum = {world} x {args.grad_accum}")
    check_precision(args.precision, args.device)


def _prepare_run_dir(args, is_main: bool):
    """Create or reopen the run directory; refuse to clobber a run unless told."""
    from sc_eval.rundir import RunDir, default_output_dir, lock_run_dir
    from sc_eval.runtime import dist as D

    out = Path(args.output_dir) if args.output_dir else default_output_dir("pretrain")
    if D.world_size() > 1:  # every rank must use rank 0's (time-stamped) directory
        import torch.distributed as tdist

        box = [str(out)]
        tdist.broadcast_object_list(box, src=0)
        out = Path(box[0])
    lock_run_dir(out, main_process=is_main, collective=True)  # before --overwrite deletes anything
    ckpts = out / "checkpoints"
    exists = ckpts.exists() and any(ckpts.iterdir())
    if exists and not args.resume and not args.overwrite:
        raise ConfigError(f"{out}: a pretraining run is already there; pass --resume latest to continue it, "
                          "--overwrite to start over, or another --output-dir")
    D.barrier()
    if is_main and args.overwrite and not args.resume:
        for name in ("checkpoints", "encoder", "metrics.jsonl", "tb"):
            p = out / name
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
    D.barrier()
    return RunDir.create(out, "pretrain", args, main_process=is_main)


def _truncate_metrics(path: Path, step: int) -> None:
    """After a resume, drop logged steps past the checkpoint (they are trained again)."""
    if not path.exists():
        return
    from sc_eval.io import atomic_write_text

    keep = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            if json.loads(line).get("step", 0) <= step:
                keep.append(line)
        except json.JSONDecodeError:
            break  # torn last line from a kill
    atomic_write_text(path, "".join(x + "\n" for x in keep))


def _model_spec(model: str):
    """A bundled config name, or a JSON file holding a tower config."""
    if not str(model).endswith(".json"):
        return model
    try:
        return json.loads(Path(model).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"--model {model}: cannot read the tower config ({e})") from None


def _resume_batch(data: dict, args, ckpt) -> int:
    """The next micro-batch index for this run's batch layout. The stream is defined in samples,
    so a resume may change the number of processes, but the per-micro-step global batch
    (--batch-size / --grad-accum) must divide the position reached."""
    micro = args.batch_size // args.grad_accum
    sample = int(data.get("next_sample", data["next_batch"] * data.get("micro_batch", micro)))
    if sample % micro:
        raise ConfigError(f"{ckpt}: stopped at sample {sample}, which --batch-size {args.batch_size} / "
                          f"--grad-accum {args.grad_accum} does not divide; resume with the original batch settings")
    return sample // micro


def _tensorboard(path: Path):
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(path))


def train(args) -> dict:
    import torch

    from sc_eval.io import AppendLog
    from sc_eval.models import resolve_config
    from sc_eval.runtime import dist as D

    from sc_eval.pretrain.checkpoint import (clean_partial, find_checkpoint, load_checkpoint, rng_state,
                                             save_checkpoint, set_rng_state)
    from sc_eval.pretrain.data import PretrainStream, make_loader, open_source, resolve_decode, to_device
    from sc_eval.pretrain import parallel
    from sc_eval.pretrain.loss import SuperClassLoss
    from sc_eval.pretrain.models import build_model, clip_criterion, named_param_groups, param_groups
    from sc_eval.pretrain.tokenize import build_tokenizer

    args.device = D.resolve_device(args.device)
    D.init_distributed(args.device)
    rank, world, is_main = D.rank(), D.world_size(), D.is_main()
    _check_args(args, world)
    if args.threads:
        torch.set_num_threads(args.threads)
    run = _prepare_run_dir(args, is_main)
    D.seed_everything(args.seed)

    vit_cfg = resolve_config(_model_spec(args.model))
    tokenizer = build_tokenizer(args.tokenizer)
    model = build_model(args.objective, vit_cfg, tokenizer, lean=getattr(args, "lean_blocks", True))
    if args.objective == "superclass":
        criterion = SuperClassLoss(tokenizer.vocab_size, idf=args.idf, loss_type=args.loss,
                                   mask_special=args.mask_special, special_ids=tokenizer.special_ids,
                                   dataset_size=args.dataset_size)
    else:
        criterion = clip_criterion(rank, world)
    ckpt_config = {"model": vit_cfg, "objective": args.objective, "tokenizer": tokenizer.name,
                   "vocab_size": tokenizer.vocab_size, "text": getattr(model, "text_cfg", None),
                   "idf": args.idf, "loss": args.loss, "global_batch": args.batch_size}

    n_params = sum(p.numel() for p in model.parameters())
    log.info("model %s (%s objective): %.2fM parameters, vocabulary %d (%s)", vit_cfg.get("name", "custom"),
             args.objective, n_params / 1e6, tokenizer.vocab_size, tokenizer.name)

    device = torch.device(args.device)
    model.to(device)
    criterion.to(device)

    start_step, next_batch, corrupt_total = 0, 0, 0
    ckpt = find_checkpoint(run.path, args.resume) if args.resume else None
    if args.resume and ckpt is None:
        log.info("--resume %s: no checkpoint yet in %s, starting from step 0", args.resume, run.path)
    state = None
    if ckpt is not None:
        if is_main:
            clean_partial(run.path / "checkpoints")
        state = load_checkpoint(ckpt, model, ckpt_config)  # full weights, before any sharding

    if args.grad_checkpointing:
        model.set_grad_checkpointing(True)
    raw_model = model
    strategy = getattr(args, "strategy", "ddp") or "ddp"
    if strategy == "fsdp" and world > 1:  # shards raw_model's parameters in place
        model = parallel.wrap(model, "fsdp", device, world)
        log.info("FSDP: parameters, gradients and optimizer states sharded over %d processes (%d units)",
                 world, len(parallel.shard_units(raw_model)) + 1)
    elif strategy == "fsdp":
        log.info("--strategy fsdp with one process: nothing to shard, training unwrapped")
    compile_model = getattr(args, "compile", None)
    if compile_model is None:
        compile_model = device.type == "cuda"
    if compile_model:
        log.info("torch.compile: the first steps include compilation")
        model = torch.compile(model)
    if strategy != "fsdp" and world > 1:
        model = parallel.wrap(model, "ddp", device, world)

    # Fused AdamW (CPU and CUDA): one kernel over all tensors, no foreach temporaries. On a CPU
    # it is several times faster than the default loop and saves ~1 copy of the weights in peak
    # memory; it is deterministic, so resumed runs stay bitwise equal. Built after sharding, so
    # under FSDP each rank holds the moments of its own shards only.
    group_names = named_param_groups(raw_model)
    optimizer = torch.optim.AdamW(param_groups(raw_model, args.wd), lr=args.lr, betas=(0.9, args.beta2),
                                  eps=1e-6, fused=device.type in ("cuda", "cpu"))
    warmup = args.warmup if args.warmup is not None else min(500, args.steps // 10)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(warmup, args.steps))
    scaler = grad_scaler(device, args.precision)
    amp = autocast(device, args.precision)
    if state is not None:
        parallel.load_optimizer_state(raw_model, optimizer, state["optimizer"], group_names)
        scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        if state.get("idf") is not None:
            criterion.load_state_dict(state["idf"])
        set_rng_state(state["rng"])
        start_step = int(state["step"])
        next_batch = _resume_batch(state["data"], args, ckpt)
        corrupt_total = int(state["data"].get("n_corrupt", 0))
        log.info("resumed from %s (step %d, next global batch %d)", ckpt, start_step, next_batch)
    if start_step >= args.steps:
        log.info("already trained %d steps (--steps %d): nothing to do", start_step, args.steps)

    micro_batch = args.batch_size // args.grad_accum
    local_batch = micro_batch // world
    source = open_source(args.data)
    saved = state["data"] if state is not None else {}
    lanes = getattr(args, "lanes", None)
    if saved.get("lanes") and lanes and lanes != saved["lanes"]:
        raise ConfigError(f"{ckpt}: the run reads its data in {saved['lanes']} lanes; resume without --lanes "
                          f"(or with --lanes {saved['lanes']}) to continue its data order")
    decode = resolve_decode(getattr(args, "decode", "cpu"), args.device, args.workers)
    stream = PretrainStream(source, tokenizer, vit_cfg["image_size"], micro_batch, lanes=saved.get("lanes") or lanes,
                            rank=rank, world=world, seed=args.seed, start_batch=next_batch,
                            lane_state=saved.get("lane_state"), decode=decode,
                            shuffle_buffer=getattr(args, "shuffle_buffer", 8192))
    batches = iter(make_loader(stream, args.workers, pin=device.type == "cuda"))
    lane_pos: dict = {}  # lane -> (epoch, offset) after the last batch trained on
    log.info("data: %s in %d lanes, %s decoding; global batch %d = %d process(es) x %d x %d accumulation",
             source.describe, stream.lanes, decode, args.batch_size, world, local_batch, args.grad_accum)

    metrics = AppendLog(run.path / "metrics.jsonl") if is_main else None
    if is_main:  # a resumed (or restarted) run logs each step once
        metrics.close()
        _truncate_metrics(run.path / "metrics.jsonl", start_step)
        metrics = AppendLog(run.path / "metrics.jsonl")
    tb = _tensorboard(run.path / "tb") if is_main else None
    bar = None
    if is_main and not args.no_progress:
        from tqdm import tqdm

        bar = tqdm(total=args.steps, initial=start_step, desc="pretrain", unit="step", dynamic_ncols=True)

    sharded = parallel.is_sharded(raw_model)

    def data_state() -> dict:
        positions = dict(lane_pos)
        if world > 1:  # each rank knows the lanes it reads
            import torch.distributed as tdist

            everyone = [None] * world
            tdist.all_gather_object(everyone, positions)
            for part in everyone:
                positions.update(part)
        return {"next_batch": next_batch, "micro_batch": micro_batch, "next_sample": next_batch * micro_batch,
                "n_corrupt": corrupt_total, "lanes": stream.lanes,
                "lane_state": {str(k): [int(e), int(o)] for k, (e, o) in sorted(positions.items())}}

    def save(step_done: int):
        # Under FSDP gathering the full weights and optimizer state is collective: every rank
        # takes part, rank 0 receives them and writes the same files as an unsharded run.
        data = data_state()
        if is_main or sharded:
            model_state = parallel.full_model_state(raw_model)
            optim_state = parallel.full_optimizer_state(raw_model, optimizer, group_names)
        if is_main:
            train_state = {
                "step": step_done, "optimizer": optim_state, "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict() if scaler.is_enabled() else None,
                "idf": criterion.state_dict() if args.objective == "superclass" else None,
                "rng": rng_state(), "data": data,
            }
            path = save_checkpoint(run.path / "checkpoints", step_done, model_state, train_state, ckpt_config)
            _export(model_state, vit_cfg, run.path / "encoder", args.objective, step_done)
            log.info("saved %s", path)
        D.barrier()

    # Steps run without waiting for the device: losses stay on it, and the host reads them (one
    # synchronisation) only when it logs or saves, where a non-finite loss also stops the run.
    pending: list[dict] = []

    def flush(done: int):
        nonlocal corrupt_total, last, window_t, window_imgs
        losses = torch.stack([p["loss"] for p in pending])  # float64 on the device
        corrupt = torch.tensor([p["n_corrupt"] for p in pending], dtype=torch.float64, device=device)
        if world > 1:
            import torch.distributed as tdist

            tdist.all_reduce(losses)
            losses /= world
            tdist.all_reduce(corrupt)
        scales = torch.stack([p["scale"] for p in pending]).tolist() if args.objective == "clip" else None
        rows, corrupt = losses.tolist(), [int(c) for c in corrupt.tolist()]
        now = time.perf_counter()
        rate = window_imgs / max(now - window_t, 1e-9)
        lines = []
        for n, (p, loss, nc) in enumerate(zip(pending, rows, corrupt)):
            if not math.isfinite(loss):
                raise TrainingDiverged(
                    f"loss is {loss} at step {p['step']}; stopped without saving. The last good checkpoint is "
                    f"kept in {run.path / 'checkpoints'} (resume with --resume latest after lowering --lr or "
                    "raising --warmup)")
            corrupt_total += nc
            line = {"step": p["step"], "loss": loss, "lr": p["lr"], "images_per_s": rate,
                    "samples_seen": p["samples_seen"], "n_corrupt": corrupt_total}
            if scales is not None:
                line["logit_scale"] = scales[n]
            lines.append(line)
        pending.clear()
        last = lines[-1]
        if is_main:
            metrics.write_many(lines)
            if tb is not None:
                for line in lines:
                    for k in ("loss", "lr", "images_per_s"):
                        tb.add_scalar(f"train/{k}", line[k], line["step"])
            if bar is not None:
                bar.set_postfix(loss=f"{last['loss']:.4f}")
            if done % args.log_every == 0 or done == args.steps:
                log.info("step %d/%d loss %.4f lr %.3g %.1f images/s%s", done, args.steps, last["loss"], last["lr"],
                         rate, f" ({corrupt_total} corrupt samples skipped)" if corrupt_total else "")
        window_t, window_imgs = now, 0

    model.train()
    criterion.train()
    last = {"loss": float("nan")}
    window_t, window_imgs = time.perf_counter(), 0
    step = start_step
    vocab = tokenizer.vocab_size
    try:
        for step in range(start_step, args.steps):
            total = torch.zeros((), device=device, dtype=torch.float64)
            n_corrupt = 0
            for micro in range(args.grad_accum):
                batch = next(batches)
                if batch["batch_index"] != next_batch:
                    raise RuntimeError(f"data order broken: got batch {batch['batch_index']}, expected {next_batch}")
                next_batch += 1
                lane_pos.update(batch["lanes"])
                if len(batch["tokens"]) and int(batch["tokens"].max()) >= vocab:  # host tensor: no device sync
                    raise ConfigError(f"token id {int(batch['tokens'].max())} outside the vocabulary of {vocab} "
                                      f"({tokenizer.name})")
                images, tokens, n_failed = to_device(batch, device, args.seed, vit_cfg["mean"], vit_cfg["std"])
                n_corrupt += batch["n_corrupt"] + n_failed
                sync = world > 1 and micro < args.grad_accum - 1
                with parallel.no_sync(model, sync), amp:
                    if args.objective == "superclass":
                        loss = criterion(model(images), tokens)
                    else:
                        loss = criterion(*model(images, tokens))
                scaler.scale(loss / args.grad_accum).backward()
                total += loss.detach().double()
            parallel.reduce_replicated_grads(raw_model, world)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            lr = optimizer.param_groups[0]["lr"]
            scheduler.step()
            done = step + 1
            window_imgs += args.batch_size
            pending.append({"step": done, "loss": total / args.grad_accum, "lr": lr, "n_corrupt": n_corrupt,
                            "samples_seen": next_batch * micro_batch,
                            "scale": raw_model.logit_scale.detach().exp() if args.objective == "clip" else None})
            if bar is not None:
                bar.update(1)
            saving = done % args.save_every == 0 or done == args.steps
            if saving or done % args.log_every == 0:
                flush(done)
            if saving:
                save(done)
    finally:
        if bar is not None:
            bar.close()
        if tb is not None:
            tb.close()
        if metrics is not None:
            metrics.close()
    if start_step >= args.steps and (sharded or (is_main and not (run.path / "encoder").exists())):
        model_state = parallel.full_model_state(raw_model)  # collective under FSDP: every rank calls it
        if is_main and not (run.path / "encoder").exists():
            _export(model_state, vit_cfg, run.path / "encoder", args.objective, start_step)
    if start_step >= args.steps:
        return {"run_dir": str(run.path), "steps": start_step, "loss": float("nan"), "already_done": True}
    return {"run_dir": str(run.path), "steps": step + 1, **last}


def _export(model_state: dict, vit_cfg, out, objective, step):
    """Write ``encoder/`` from a full (unsharded) model state dict: the tower and, for
    SuperClass, its head (kept for inspection)."""
    from sc_eval.encoders import save_encoder_dir

    def part(prefix):
        return {k[len(prefix):]: v for k, v in model_state.items() if k.startswith(prefix)}

    head = part("head.") if objective == "superclass" else None
    save_encoder_dir(part("visual."), vit_cfg, out, head=head,
                     extra={"source": "sc-eval pretrain", "objective": objective, "step": step})
