"""The pretraining loop: one code path for 1 process or N (torchrun: DDP, or FSDP for large
towers), SuperClass or CLIP.

Read top to bottom: ``train(args)`` sets up the process and run directory (``setup``), builds
tokenizer, model and loss (``build``), loads the checkpoint to resume from (``find_resume``),
wraps the model for its strategy (``wrap``), makes the optimizer and schedule
(``make_optimizer``), restores their state and the data position (``restore``), opens the data
(``open_data``), then steps (``train_step``), reporting through ``progress.TrainLog`` and saving
every --save-every steps (``save``). Every piece of state that changes the next step is
checkpointed (weights, AdamW moments, schedule, fp16 scaler, the IDF counts, RNG, and the data
position: the next global batch and where each data lane stands), which is why a killed run
resumed with ``--resume latest`` ends bitwise equal to an uninterrupted one on CPU, whatever the
number of processes and workers on either side. The order of the parts is part of that promise:
the model draws its initial weights before anything else draws random numbers, and the RNG
state is restored before the data loader starts.

A step never waits for the device: batches arrive in pinned memory and are copied without
blocking, the loss stays on the device, and the host reads losses (one synchronisation) only
when it logs or saves, which is also where a non-finite loss stops the run.
"""
from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as tdist

from sc_eval.encoders import save_encoder_dir
from sc_eval.errors import ConfigError
from sc_eval.io import clean_partial
from sc_eval.models import resolve_config
from sc_eval.pretrain import parallel
from sc_eval.pretrain.checkpoint import find_checkpoint, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from sc_eval.pretrain.data import PretrainStream, make_loader, open_source, resolve_decode, to_device
from sc_eval.pretrain.loss import SuperClassLoss
from sc_eval.pretrain.models import build_model, clip_criterion, named_param_groups, param_groups
from sc_eval.pretrain.progress import TrainLog
from sc_eval.pretrain.tokenize import build_tokenizer
from sc_eval.runtime import dist as D
from sc_eval.runtime.precision import autocast, check_precision, grad_scaler
from sc_eval.runtime.rundir import RunDir, default_output_dir, lock_run_dir
from sc_eval.runtime.schedules import warmup_cosine

log = logging.getLogger("sc_eval.pretrain")


@dataclass
class Env:
    """Where this process trains."""
    device: torch.device
    rank: int
    world: int
    is_main: bool
    run: RunDir


@dataclass
class Parts:
    """What is trained: the model (unwrapped), its loss, and what a checkpoint records of them."""
    vit_cfg: dict
    tokenizer: object
    model: torch.nn.Module
    criterion: torch.nn.Module
    ckpt_config: dict


@dataclass
class Optim:
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: object
    group_names: tuple


@dataclass
class Position:
    """Where the run stands; saved in every checkpoint."""
    step: int = 0                  # optimizer steps done
    next_batch: int = 0            # the next global micro-batch to train on
    n_corrupt: int = 0             # corrupt samples skipped so far, all ranks
    lanes: dict = field(default_factory=dict)  # this rank's lanes: lane -> (epoch, offset) after its last batch


# -- setting up -------------------------------------------------------------------------------
def _check_args(args, world: int):
    if args.steps <= 0:
        raise ConfigError(f"--steps must be positive, got {args.steps}")
    per = world * args.grad_accum
    if args.batch_size <= 0 or args.batch_size % per:
        raise ConfigError(f"--batch-size {args.batch_size} must be a positive multiple of processes x "
                          f"--grad-accum = {world} x {args.grad_accum}")
    check_precision(args.precision, args.device, training=True)


def _prepare_run_dir(args, is_main: bool) -> RunDir:
    """Create or reopen the run directory; refuse to clobber a run unless told."""
    out = Path(args.output_dir) if args.output_dir else default_output_dir("pretrain")
    if D.world_size() > 1:  # every rank must use rank 0's (time-stamped) directory
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


def setup(args) -> Env:
    """Resolve the device, join the process group, check the flags, open the run directory, seed."""
    args.device = D.resolve_device(args.device)
    D.init_distributed(args.device)
    world, is_main = D.world_size(), D.is_main()
    _check_args(args, world)
    if args.threads:
        torch.set_num_threads(args.threads)
    run = _prepare_run_dir(args, is_main)
    D.seed_everything(args.seed)
    return Env(torch.device(args.device), D.rank(), world, is_main, run)


def _model_spec(model: str):
    """A bundled config name, or a JSON file holding a tower config."""
    if not str(model).endswith(".json"):
        return model
    try:
        return json.loads(Path(model).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"--model {model}: cannot read the tower config ({e})") from None


def build(args, env: Env) -> Parts:
    """Tokenizer, model (its initial weights: the first random numbers drawn) and loss, on the device."""
    vit_cfg = resolve_config(_model_spec(args.model))
    tokenizer = build_tokenizer(args.tokenizer)
    model = build_model(args.objective, vit_cfg, tokenizer, lean=getattr(args, "lean_blocks", True))
    if args.objective == "superclass":
        criterion = SuperClassLoss(tokenizer.vocab_size, idf=args.idf, loss_type=args.loss,
                                   mask_special=args.mask_special, special_ids=tokenizer.special_ids,
                                   dataset_size=args.dataset_size)
    else:
        criterion = clip_criterion(env.rank, env.world)
    ckpt_config = {"model": vit_cfg, "objective": args.objective, "tokenizer": tokenizer.name,
                   "vocab_size": tokenizer.vocab_size, "text": getattr(model, "text_cfg", None),
                   "idf": args.idf, "loss": args.loss, "global_batch": args.batch_size}
    n_params = sum(p.numel() for p in model.parameters())
    log.info("model %s (%s objective): %.2fM parameters, vocabulary %d (%s)", vit_cfg.get("name", "custom"),
             args.objective, n_params / 1e6, tokenizer.vocab_size, tokenizer.name)
    model.to(env.device)
    criterion.to(env.device)
    return Parts(vit_cfg, tokenizer, model, criterion, ckpt_config)


def find_resume(args, env: Env, parts: Parts):
    """(checkpoint directory, its training state) to resume from, or (None, None); the full
    weights are loaded into the model now, before any sharding."""
    ckpt = find_checkpoint(env.run.path, args.resume) if args.resume else None
    if args.resume and ckpt is None:
        log.info("--resume %s: no checkpoint yet in %s, starting from step 0", args.resume, env.run.path)
    if ckpt is None:
        return None, None
    if env.is_main:
        clean_partial(env.run.path / "checkpoints")
    return ckpt, load_checkpoint(ckpt, parts.model, parts.ckpt_config)


def wrap(model, args, env: Env):
    """The module the steps call: gradient checkpointing, then FSDP (shards ``model`` in place),
    torch.compile, or DDP."""
    if args.grad_checkpointing:
        model.set_grad_checkpointing(True)
    raw_model, device, world = model, env.device, env.world
    strategy = getattr(args, "strategy", "ddp") or "ddp"
    if strategy == "fsdp" and world > 1:
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
    return model


def make_optimizer(raw_model, args, env: Env) -> Optim:
    """AdamW, warm-up + cosine schedule, and the fp16 grad scaler.

    Fused AdamW (CPU and CUDA): one kernel over all tensors, no foreach temporaries. On a CPU it
    is several times faster than the default loop and saves ~1 copy of the weights in peak
    memory; it is deterministic, so resumed runs stay bitwise equal. Built after sharding, so
    under FSDP each rank holds the moments of its own shards only."""
    group_names = named_param_groups(raw_model)
    optimizer = torch.optim.AdamW(param_groups(raw_model, args.wd), lr=args.lr, betas=(0.9, args.beta2),
                                  eps=1e-6, fused=env.device.type in ("cuda", "cpu"))
    warmup = args.warmup if args.warmup is not None else min(500, args.steps // 10)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(warmup, args.steps))
    return Optim(optimizer, scheduler, grad_scaler(env.device, args.precision), group_names)


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


def restore(state, ckpt, opt: Optim, parts: Parts, args) -> Position:
    """Optimizer, schedule, scaler, IDF counts and RNG from ``state``; where the run stands."""
    if state is None:
        return Position()
    parallel.load_optimizer_state(parts.model, opt.optimizer, state["optimizer"], opt.group_names)
    opt.scheduler.load_state_dict(state["scheduler"])
    if state.get("scaler"):
        opt.scaler.load_state_dict(state["scaler"])
    if state.get("idf") is not None:
        parts.criterion.load_state_dict(state["idf"])
    set_rng_state(state["rng"])
    pos = Position(step=int(state["step"]), next_batch=_resume_batch(state["data"], args, ckpt),
                   n_corrupt=int(state["data"].get("n_corrupt", 0)))
    log.info("resumed from %s (step %d, next global batch %d)", ckpt, pos.step, pos.next_batch)
    if pos.step >= args.steps:
        log.info("already trained %d steps (--steps %d): nothing to do", pos.step, args.steps)
    return pos


def open_data(args, env: Env, parts: Parts, pos: Position, state, ckpt):
    """(iterator of micro-batches from ``pos.next_batch`` on, the stream) for this rank."""
    micro_batch = args.batch_size // args.grad_accum
    source = open_source(args.data)
    saved = state["data"] if state is not None else {}
    lanes = getattr(args, "lanes", None)
    if saved.get("lanes") and lanes and lanes != saved["lanes"]:
        raise ConfigError(f"{ckpt}: the run reads its data in {saved['lanes']} lanes; resume without --lanes "
                          f"(or with --lanes {saved['lanes']}) to continue its data order")
    decode = resolve_decode(getattr(args, "decode", "cpu"), args.device, args.workers)
    stream = PretrainStream(source, parts.tokenizer, parts.vit_cfg["image_size"], micro_batch,
                            lanes=saved.get("lanes") or lanes, rank=env.rank, world=env.world, seed=args.seed,
                            start_batch=pos.next_batch, lane_state=saved.get("lane_state"), decode=decode,
                            shuffle_buffer=getattr(args, "shuffle_buffer", 8192))
    batches = iter(make_loader(stream, args.workers, pin=env.device.type == "cuda"))
    log.info("data: %s in %d lanes, %s decoding; global batch %d = %d process(es) x %d x %d accumulation",
             source.describe, stream.lanes, decode, args.batch_size, env.world, micro_batch // env.world,
             args.grad_accum)
    return batches, stream


# -- one step ---------------------------------------------------------------------------------
def train_step(model, parts: Parts, opt: Optim, batches, pos: Position, args, env: Env, amp) -> dict:
    """--grad-accum micro-batches forward and backward, then one optimizer and schedule step.
    Returns what the log needs of the step (its loss still on the device)."""
    device, world, vocab = env.device, env.world, parts.tokenizer.vocab_size
    micro_batch = args.batch_size // args.grad_accum
    total = torch.zeros((), device=device, dtype=torch.float64)
    n_corrupt = 0
    data_wait = 0.0  # host seconds blocked on the loader: the GPU starves when this is a large share
    for micro in range(args.grad_accum):
        t0 = time.perf_counter()
        batch = next(batches)
        data_wait += time.perf_counter() - t0
        if batch["batch_index"] != pos.next_batch:
            raise RuntimeError(f"data order broken: got batch {batch['batch_index']}, expected {pos.next_batch}")
        pos.next_batch += 1
        pos.lanes.update(batch["lanes"])
        if len(batch["tokens"]) and int(batch["tokens"].max()) >= vocab:  # host tensor: no device sync
            raise ConfigError(f"token id {int(batch['tokens'].max())} outside the vocabulary of {vocab} "
                              f"({parts.tokenizer.name})")
        images, tokens, n_failed = to_device(batch, device, args.seed, parts.vit_cfg["mean"], parts.vit_cfg["std"])
        n_corrupt += batch["n_corrupt"] + n_failed
        sync = world > 1 and micro < args.grad_accum - 1
        with parallel.no_sync(model, sync), amp:
            if args.objective == "superclass":
                loss = parts.criterion(model(images), tokens)
            else:
                loss = parts.criterion(*model(images, tokens))
        opt.scaler.scale(loss / args.grad_accum).backward()
        total += loss.detach().double()
    parallel.reduce_replicated_grads(parts.model, world)
    opt.scaler.step(opt.optimizer)
    opt.scaler.update()
    opt.optimizer.zero_grad(set_to_none=True)
    lr = opt.optimizer.param_groups[0]["lr"]
    opt.scheduler.step()
    pos.step += 1
    return {"step": pos.step, "loss": total / args.grad_accum, "lr": lr, "n_corrupt": n_corrupt, "data_wait_s": data_wait,
            "samples_seen": pos.next_batch * micro_batch,
            "scale": parts.model.logit_scale.detach().exp() if args.objective == "clip" else None}


# -- saving -----------------------------------------------------------------------------------
def _data_state(pos: Position, stream, args, world: int) -> dict:
    """The data position as a checkpoint stores it (every rank's lanes: gathered, collective)."""
    micro_batch = args.batch_size // args.grad_accum
    positions = dict(pos.lanes)
    if world > 1:  # each rank knows the lanes it reads
        everyone = [None] * world
        tdist.all_gather_object(everyone, positions)
        for part in everyone:
            positions.update(part)
    return {"next_batch": pos.next_batch, "micro_batch": micro_batch, "next_sample": pos.next_batch * micro_batch,
            "n_corrupt": pos.n_corrupt, "lanes": stream.lanes,
            "lane_state": {str(k): [int(e), int(o)] for k, (e, o) in sorted(positions.items())}}


def save(env: Env, parts: Parts, opt: Optim, pos: Position, stream, args) -> None:
    """Checkpoint ``pos.step`` and export ``encoder/``. Every rank calls it: under FSDP gathering
    the full weights and optimizer state is collective, and rank 0 receives them and writes the
    same files as an unsharded run."""
    data = _data_state(pos, stream, args, env.world)
    if env.is_main or parallel.is_sharded(parts.model):
        model_state = parallel.full_model_state(parts.model)
        optim_state = parallel.full_optimizer_state(parts.model, opt.optimizer, opt.group_names)
    if env.is_main:
        train_state = {
            "step": pos.step, "optimizer": optim_state, "scheduler": opt.scheduler.state_dict(),
            "scaler": opt.scaler.state_dict() if opt.scaler.is_enabled() else None,
            "idf": parts.criterion.state_dict() if args.objective == "superclass" else None,
            "rng": rng_state(), "data": data,
        }
        path = save_checkpoint(env.run.path / "checkpoints", pos.step, model_state, train_state, parts.ckpt_config)
        _export(model_state, parts.vit_cfg, env.run.path / "encoder", args.objective, pos.step)
        log.info("saved %s", path)
    D.barrier()


def _export(model_state: dict, vit_cfg, out, objective, step):
    """Write ``encoder/`` from a full (unsharded) model state dict: the tower and, for
    SuperClass, its head (kept for inspection)."""
    def part(prefix):
        return {k[len(prefix):]: v for k, v in model_state.items() if k.startswith(prefix)}

    head = part("head.") if objective == "superclass" else None
    save_encoder_dir(part("visual."), vit_cfg, out, head=head,
                     extra={"source": "sc-eval pretrain", "objective": objective, "step": step})


def finish_done_run(env: Env, parts: Parts, args, step: int) -> dict:
    """A run asked for no more steps than it has: export ``encoder/`` if it is missing."""
    encoder = env.run.path / "encoder"
    if parallel.is_sharded(parts.model) or (env.is_main and not encoder.exists()):
        model_state = parallel.full_model_state(parts.model)  # collective under FSDP: every rank calls it
        if env.is_main and not encoder.exists():
            _export(model_state, parts.vit_cfg, encoder, args.objective, step)
    return {"run_dir": str(env.run.path), "steps": step, "loss": float("nan"), "already_done": True}


# -- the run ----------------------------------------------------------------------------------
def train_and_report(args) -> int:
    """`sc-eval pretrain`: train, then say on rank 0 what the run directory holds."""
    result = train(args)
    if D.is_main():
        if result.get("already_done"):
            print(f"pretrain: {result['run_dir']} already has {result['steps']} steps; raise --steps to train on")
        else:
            print(f"pretrain: {result['steps']} steps, final loss {result['loss']:.4f}; "
                  f"encoder exported to {result['run_dir']}/encoder")
    return 0


def train(args) -> dict:
    env = setup(args)
    parts = build(args, env)
    ckpt, state = find_resume(args, env, parts)
    model = wrap(parts.model, args, env)
    opt = make_optimizer(parts.model, args, env)
    pos = restore(state, ckpt, opt, parts, args)
    batches, stream = open_data(args, env, parts, pos, state, ckpt)
    if pos.step >= args.steps:
        return finish_done_run(env, parts, args, pos.step)

    amp = autocast(env.device, args.precision)
    model.train()
    parts.criterion.train()
    with TrainLog(env.run.path, args, pos.step, env.device, env.world, env.is_main) as tlog:
        while pos.step < args.steps:
            tlog.add(train_step(model, parts, opt, batches, pos, args, env, amp))
            saving = pos.step % args.save_every == 0 or pos.step == args.steps
            if saving or pos.step % args.log_every == 0:
                tlog.flush(pos.step, pos)
            if saving:
                save(env, parts, opt, pos, stream, args)
    return {"run_dir": str(env.run.path), "steps": pos.step, **tlog.last}
