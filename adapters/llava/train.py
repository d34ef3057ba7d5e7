"""One training stage (projector-only stage 1, LoRA/full stage 2): the fit loop with resume.

A stage lives in ``<checkpoints>/<stage>/``: ``step_N/`` directories (trainable weights as
safetensors + optimizer/scheduler/RNG state loadable with ``weights_only=True``), a ``latest``
pointer replaced atomically, ``metrics.jsonl`` (append-only loss log) and ``done.json`` once the
stage has finished. Rerunning the same command resumes from ``latest`` (the data order is a pure
function of seed and step) or, for a finished stage, just reloads its weights.

Every ``log_every`` steps the log and ``metrics.jsonl`` get the loss, the learning rate, the
throughput in ``tokens_per_s`` (the real tokens of the global batch the LLM reads, image tokens
included, padding not) and the peak memory so far (``peak_memory_mb``: CUDA's max allocated, or
the process's peak RSS on a CPU); ``done.json`` (the stage summary) has the whole stage's figures.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from sc_eval.adapters.llava.data import collate
from sc_eval.adapters.llava.templates import IGNORE_INDEX, IMAGE_INDEX
from sc_eval.errors import CheckpointError
from sc_eval.io import (AppendLog, atomic_directory, atomic_save_safetensors, atomic_torch_save, atomic_write_json,
                        atomic_write_text, clean_partial, read_json)
from sc_eval.runtime import dist
from sc_eval.runtime.meter import Meter
from sc_eval.runtime.precision import autocast, grad_scaler
from sc_eval.runtime.schedules import warmup_cosine
from sc_eval.runtime.seeding import epoch_order

log = logging.getLogger(__name__)


@dataclass
class StageConfig:
    name: str                      # "stage1" | "stage2" (the checkpoint sub-folder)
    steps: int
    batch_size: int = 8            # global batch (LLaVA: 256 stage 1, 128 stage 2)
    grad_accum: int = 1            # micro-batches per step: batch_size / grad_accum per forward
    lr: float = 1e-3               # stage 1: 1e-3 (LLaVA); stage 2 LoRA: 2e-4, full: 2e-5
    projector_lr: float | None = None  # stage 2 LoRA: 2e-5 (LLaVA's mm_projector_lr)
    warmup_ratio: float = 0.03     # LLaVA: 3% linear warm-up then cosine to 0
    weight_decay: float = 0.0
    grad_checkpointing: bool = False
    save_every: int = 0            # steps between checkpoints (0: only at the end)
    log_every: int = 10
    seed: int = 0
    precision: str = "fp32"


def _batch_indices(n: int, batch_size: int, step: int, seed: int) -> list[int]:
    """Indices of batch ``step``: epoch-wise permutations seeded by (seed, epoch); resumable."""
    out = []
    pos = step * batch_size
    while len(out) < batch_size:
        epoch, off = divmod(pos, n)
        take = epoch_order(n, seed, epoch).tolist()[off:off + batch_size - len(out)]
        out += take
        pos += len(take)
    return out


def _n_predicted(labels: list[int]) -> int:
    """Label tokens that the loss sees (the first position is never predicted)."""
    return sum(1 for x in labels[1:] if x != IGNORE_INDEX)


def _image_tokens(model, pixels) -> int:
    """LLM positions one image takes: the encoder's patch count (asked of the model if unknown)."""
    n = getattr(model.encoder, "num_patches", None)
    if n:
        return int(n)

    with torch.no_grad():
        return int(model.image_tokens(pixels[:1]).shape[1])


def _n_tokens(example, image_tokens: int | None) -> int:
    """Real (non-pad) positions the LLM reads for one example: its text tokens, the image's
    placeholder replaced by the image's tokens."""
    ids, _, image = example
    n_img = sum(1 for x in ids if x == IMAGE_INDEX)
    return len(ids) - n_img + (n_img * (image_tokens or 0) if image is not None else 0)


def trainable_state(model) -> dict:
    return {n: p.detach().cpu().contiguous() for n, p in model.named_parameters() if p.requires_grad}


def load_trainable(model, path) -> None:
    state = load_file(str(path))
    params = dict(model.named_parameters())
    missing = [n for n, p in params.items() if p.requires_grad and n not in state]
    if missing:
        raise CheckpointError(f"{path}: lacks {len(missing)} trainable tensors (first {missing[0]}); "
                              "it was written by a different setup: use a fresh --output-dir")

    with torch.no_grad():
        for n, t in state.items():
            if n in params:
                params[n].copy_(t)


def _save(stage_dir: Path, step: int, model, opt, sched, scaler=None) -> None:
    state = {"step": step, "optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "rng": torch.get_rng_state()}
    if scaler is not None and scaler.is_enabled():  # fp16 on CUDA: the loss scale resumes where it was
        state["scaler"] = scaler.state_dict()
    with atomic_directory(stage_dir / f"step_{step}") as tmp:  # a re-saved step is replaced whole
        atomic_save_safetensors(tmp / "trainable.safetensors", trainable_state(model))
        atomic_torch_save(tmp / "state.pt", state)
    atomic_write_text(stage_dir / "latest", f"step_{step}\n")


def _save_main(stage_dir: Path, step: int, model, opt, sched, scaler=None) -> None:
    """Rank 0 writes (all ranks hold the same weights); the others wait for it."""
    if dist.is_main():
        _save(stage_dir, step, model, opt, sched, scaler)
    dist.barrier()


def _latest(stage_dir: Path) -> Path | None:
    p = stage_dir / "latest"
    if not p.exists():
        return None
    d = stage_dir / p.read_text().strip()
    return d if d.is_dir() else None


def train_stage(model, data, cfg: StageConfig, ckpt_root, device: str = "cpu", progress: bool = True) -> dict:
    """Train the parameters of ``model`` that require grad for ``cfg.steps`` steps; resumable."""
    stage_dir = Path(ckpt_root) / cfg.name
    stage_dir.mkdir(parents=True, exist_ok=True)
    if dist.is_main():
        clean_partial(stage_dir)  # what a save killed midway left
    done = stage_dir / "done.json"
    last = _latest(stage_dir)
    if done.exists() and last is not None:
        load_trainable(model, last / "trainable.safetensors")
        log.info("%s already finished (%s); weights reloaded", cfg.name, last.name)
        return read_json(done)

    proj = [p for p in model.projector.parameters() if p.requires_grad]
    proj_ids = {id(p) for p in proj}
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in proj_ids]
    groups = [{"params": g, "lr": lr} for g, lr in
              ((proj, cfg.projector_lr or cfg.lr), (rest, cfg.lr)) if g]
    if not groups:
        raise RuntimeError(f"{cfg.name}: nothing to train (no parameter requires grad)")
    opt = torch.optim.AdamW(groups, weight_decay=cfg.weight_decay, betas=(0.9, 0.999))
    # warm-up over ceil(ratio * steps) steps, then cosine to 0
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(math.ceil(cfg.warmup_ratio * cfg.steps), cfg.steps))
    scaler = grad_scaler(device, cfg.precision)  # fp16 on CUDA scales the loss; a pass-through otherwise
    start = 0
    if last is not None:
        load_trainable(model, last / "trainable.safetensors")
        st = torch.load(last / "state.pt", map_location="cpu", weights_only=True)
        opt.load_state_dict(st["optimizer"])
        sched.load_state_dict(st["scheduler"])
        torch.set_rng_state(st["rng"])
        if "scaler" in st and scaler.is_enabled():
            scaler.load_state_dict(st["scaler"])
        start = int(st["step"])
        log.info("%s: resuming from %s", cfg.name, last.name)
    if cfg.grad_checkpointing and hasattr(model.llm, "gradient_checkpointing_enable"):
        model.llm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})

    rank, world = dist.rank(), dist.world_size()
    step_fn = model
    if world > 1:  # torchrun: each rank takes a slice of the global batch, DDP averages gradients

        dev_ids = [torch.device(device).index or 0] if str(device).startswith("cuda") else None
        step_fn = DistributedDataParallel(model, device_ids=dev_ids)
    model.train()
    model.encoder.eval()

    amp = autocast(device, cfg.precision)
    meter = Meter("tokens", device)
    image_tokens = None  # LLM positions one image takes (the encoder's patch tokens)
    bar = None
    if progress and rank == 0 and start < cfg.steps:
        bar = tqdm(total=cfg.steps, initial=start, desc=cfg.name, unit="step")
    t0, window, losses = time.time(), [], []
    with AppendLog(stage_dir / (f"metrics.rank{rank}.jsonl" if rank else "metrics.jsonl")) as mlog:
        for step in range(start, cfg.steps):
            everyone = _batch_indices(len(data), cfg.batch_size, step, cfg.seed)
            idx = everyone[rank::world]
            micro = max(1, math.ceil(len(idx) / cfg.grad_accum))
            # Token-weighted mean over the whole batch, however it is split into micro-batches.
            n_tok = sum(_n_predicted(data[i][1]) for i in idx)
            opt.zero_grad(set_to_none=True)
            loss_sum = 0.0
            for j in range(0, len(idx), micro):
                part = idx[j:j + micro]
                ids, labels, pixels = collate([data[i] for i in part], model.encoder, device)
                if image_tokens is None and pixels is not None:
                    image_tokens = _image_tokens(model, pixels)
                with amp:
                    loss = step_fn(ids, pixels, labels, reduction="sum") / n_tok
                if not torch.isfinite(loss):
                    raise RuntimeError(f"{cfg.name}: loss is {loss.item()} at step {step}; lower the learning rate")
                scaler.scale(loss).backward()
                loss_sum += loss.item()
            loss = torch.tensor(loss_sum)
            scaler.step(opt)  # skipped by the scaler when fp16 gradients overflowed
            scaler.update()
            sched.step()
            meter.step(sum(_n_tokens(data[i], image_tokens) for i in everyone))
            window.append(loss.item())
            losses.append(loss.item())
            n = step + 1
            if n % cfg.log_every == 0 or n == cfg.steps:
                rec = {"stage": cfg.name, "step": n, "loss": sum(window) / len(window),
                       "lr": sched.get_last_lr()[-1], "steps_per_s": len(window) / max(1e-9, time.time() - t0),
                       **meter.window()}
                mlog.write_many([rec])
                log.info("%s step %d/%d loss %.4f lr %.2e, %.0f tokens/s, peak memory %.0f MB", cfg.name, n,
                         cfg.steps, rec["loss"], rec["lr"], rec["tokens_per_s"], rec["peak_memory_mb"])
                t0, window = time.time(), []
            if cfg.save_every and n % cfg.save_every == 0 and n < cfg.steps:
                _save_main(stage_dir, n, model, opt, sched, scaler)
            if bar:
                bar.update(1)
    if bar:
        bar.close()
    if cfg.grad_checkpointing and hasattr(model.llm, "gradient_checkpointing_disable"):
        model.llm.gradient_checkpointing_disable()
    _save_main(stage_dir, cfg.steps, model, opt, sched, scaler)
    summary = {"stage": cfg.name, "steps": cfg.steps, "config": asdict(cfg),
               "first_loss": losses[0] if losses else None,
               "final_loss": sum(losses[-10:]) / len(losses[-10:]) if losses else None,
               "resumed_from": start or None, **meter.summary()}
    if rank == 0:
        atomic_write_json(done, summary)
    dist.barrier()
    model.eval()
    return summary
