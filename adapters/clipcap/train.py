"""Training the ClipCap mapper on frozen image features: AdamW, linear warm-up, linear decay.

One example is one (image, caption) pair: an image with five captions appears five times per
epoch, as in the reference. Each batch is padded to its longest caption; the padding is masked
by the attention mask and excluded from the loss (model.py).

Resume: ``<run>/checkpoints/last.pt`` (atomic) holds the mapper (and the LM when it is trained),
optimizer, scheduler, step and RNG state. The data order of every epoch is a pure function of
(seed, epoch), so a run killed at step N and rerun continues with exactly the batches it would
have seen. Mapper snapshots ``step_<N>.safetensors`` are kept every ``save_every`` steps.

Precision: the forward and the loss run under ``--precision``'s autocast (bf16: the mapper's
and the LM's matrix products in bfloat16, the loss in float32; fp16 with loss scaling); weights
and AdamW state stay float32. Throughput (``images_per_s``: (image, caption) examples a second)
and peak memory are logged with the loss and returned in the summary.
"""
from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from sc_eval.errors import CheckpointError
from sc_eval.io import atomic_save_safetensors, atomic_torch_save
from sc_eval.runtime.meter import Meter
from sc_eval.runtime.precision import autocast, grad_scaler
from sc_eval.runtime.schedules import warmup_linear
from sc_eval.runtime.seeding import epoch_order

from .model import caption_token_ids

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    epochs: float = 10           # reference: 10
    steps: int | None = None     # overrides epochs when given
    batch_size: int = 40         # reference: 40
    lr: float = 2e-5             # reference: 2e-5
    warmup: int = 5000           # reference: 5000 steps (capped at 10% of the run for short runs)
    weight_decay: float = 0.0    # reference: none
    max_caption_tokens: int = 40  # EOS included; longer captions are truncated
    save_every: int = 500        # steps between checkpoints
    grad_clip: float = 0.0        # max grad norm; 0: none (reference: none)
    precision: str = "fp32"       # autocast of the forward and loss (--precision)
    log_every: int = 50           # steps between log lines (loss, images/s, peak memory)


def tokenize_captions(tokenizer, captions_per_image, max_tokens: int):
    """[(image index, token ids with EOS)] for every caption of every image."""
    eos = int(tokenizer.eos_token_id)
    out = []
    for i, caps in enumerate(captions_per_image):
        for c in caps:
            if c and c.strip():
                out.append((i, caption_token_ids(tokenizer, c, eos, max_tokens)))
    return out


def collate(examples, pad_id: int):
    """(image indices [B], input_ids [B, T], attention_mask [B, T]) padded on the right."""
    t = max(len(ids) for _, ids in examples)
    ids = torch.full((len(examples), t), pad_id, dtype=torch.long)
    mask = torch.zeros((len(examples), t), dtype=torch.long)
    for r, (_, toks) in enumerate(examples):
        ids[r, : len(toks)] = torch.tensor(toks, dtype=torch.long)
        mask[r, : len(toks)] = 1
    idx = torch.tensor([i for i, _ in examples], dtype=torch.long)
    return idx, ids, mask


def total_steps(cfg: TrainConfig, n_examples: int) -> tuple[int, int]:
    """(steps per epoch, total steps)."""
    per_epoch = max(1, math.ceil(n_examples / cfg.batch_size))
    total = cfg.steps if cfg.steps is not None else max(1, math.ceil(cfg.epochs * per_epoch))
    return per_epoch, total


def fit(model, feats, examples, cfg: TrainConfig, ckpt_dir=None, seed: int = 0, device="cpu",
        on_log=None) -> dict:
    """Train ``model`` (a ClipCapModel) on ``feats`` [N, D] and ``examples``; resumes from
    ``ckpt_dir/last.pt`` when present. ``on_log(step, total, loss, perf)`` is called every
    ``cfg.log_every`` steps (``perf``: images_per_s and peak memory since the last call).
    Returns {"steps", "losses": [(step, loss)], "resumed_from", "warmup", "perf"}."""
    amp = autocast(device, cfg.precision)  # refuses a precision the device cannot run, first
    scaler = grad_scaler(device, cfg.precision)

    if not examples:
        raise ValueError("no training captions")
    n = len(examples)
    per_epoch, total = total_steps(cfg, n)
    warmup = min(cfg.warmup, max(1, total // 10))
    params = model.trainable_parameters()
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_linear(warmup, total))
    pad_id = int(getattr(model.lm.config, "eos_token_id", 0) or 0)

    step, resumed = 0, None
    last = Path(ckpt_dir) / "last.pt" if ckpt_dir else None
    if last is not None and last.exists():
        try:
            state = torch.load(last, map_location="cpu", weights_only=True)
            model.mapper.load_state_dict(state["mapper"])
            if "lm" in state:
                model.lm.load_state_dict(state["lm"])
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            torch.set_rng_state(state["rng"])
            if "scaler" in state and scaler.is_enabled():  # fp16 on CUDA: the loss scale goes on where it was
                scaler.load_state_dict(state["scaler"])
        except (RuntimeError, KeyError, EOFError) as e:
            raise CheckpointError(f"{last}: cannot resume from it ({e}); delete it to start over") from None
        if state.get("total") != total:
            raise CheckpointError(f"{last}: was made for a {state.get('total')}-step run, this one has "
                                  f"{total} steps; use the same settings or another --output-dir")
        step = resumed = int(state["step"])
        log.info("resuming ClipCap training at step %d/%d", step, total)

    def save(step_now):
        if last is None:
            return
        state = {"mapper": model.mapper.state_dict(), "optimizer": opt.state_dict(),
                 "scheduler": sched.state_dict(), "rng": torch.get_rng_state(), "step": step_now,
                 "total": total, "config": asdict(cfg)}
        if not model.lm_frozen:
            state["lm"] = model.lm.state_dict()
        if scaler.is_enabled():
            state["scaler"] = scaler.state_dict()
        atomic_torch_save(last, state)
        atomic_save_safetensors(Path(ckpt_dir) / f"step_{step_now}.safetensors", model.mapper.state_dict())

    feats = feats.to(device)
    model.to(device).train()
    losses = []
    order, order_epoch = None, -1
    meter = Meter("images", device)
    while step < total:
        epoch, pos = divmod(step, per_epoch)
        if epoch != order_epoch:
            order, order_epoch = epoch_order(n, seed, epoch), epoch
        batch = [examples[j] for j in order[pos * cfg.batch_size: (pos + 1) * cfg.batch_size].tolist()]
        idx, ids, mask = collate(batch, pad_id)
        with amp:
            loss = model(feats[idx.to(device)], ids.to(device), mask.to(device))
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if cfg.grad_clip:
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        scaler.step(opt)
        scaler.update()
        sched.step()
        step += 1
        lv = float(loss.detach())  # waits for the step: the meter times finished work
        meter.step(len(batch))
        losses.append((step, lv))
        if on_log and (step % cfg.log_every == 0 or step == total or step == 1):
            on_log(step, total, lv, meter.window())
        if cfg.save_every and (step % cfg.save_every == 0) and step < total:
            save(step)
    save(step)
    model.eval()
    return {"steps": total, "losses": losses, "resumed_from": resumed, "warmup": warmup, "perf": meter.summary()}
