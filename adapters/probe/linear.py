"""Linear classifiers on frozen features: the paper's probe and the cheaper logistic regression.

``train_linear_probe`` is the MAE/MILAN recipe the SuperClass paper used (Table 1): a freshly
initialised ``BatchNorm1d(affine=False)`` followed by ``Linear``, trained with SGD or AdamW on a
cosine schedule (90 epochs, 10 of warm-up, no weight decay, as MAE). Unlike MAE, the optimizer is
SGD with momentum rather than LARS and the lr is not scaled by batch / 256 (MAE: base 0.1 at
batch 16,384, so 6.4); at the default batch of 256 both rules give 0.1. The encoder is frozen
and no augmentation is applied, so training on cached pooled features is the same computation as
training through the tower, only far cheaper.

``fit_logreg`` / ``logreg_sweep`` is the CLIP-paper / CLIP_benchmark variant: multinomial
logistic regression (full batch, L-BFGS, in torch: no scikit-learn) on standardised features,
its L2 weight decay chosen on a validation split. Everything is deterministic given the seed.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from sc_eval.errors import ConfigError
from sc_eval.runtime.schedules import warmup_cosine

log = logging.getLogger(__name__)

# Decades 1e-6 .. 1e2, then a half-decade refinement around the best (CLIP_benchmark-style).
DEFAULT_WD_GRID = tuple(10.0 ** e for e in range(-6, 3))


@dataclass
class ProbeConfig:
    epochs: int = 90          # MAE's probe recipe
    lr: float = 0.1           # SGD with momentum 0.9; AdamW wants ~1e-3
    batch_size: int = 256
    optimizer: str = "sgd"    # sgd | adamw
    weight_decay: float = 0.0  # MAE's probe uses none: BatchNorm already normalises
    warmup_epochs: int = 10   # MAE: 10 of 90 (capped at half the run)
    seed: int = 0


def build_probe_head(width: int, num_classes: int):
    """BatchNorm without affine parameters, then Linear (weights N(0, 0.01), bias 0: MAE's init)."""
    head = nn.Sequential(nn.BatchNorm1d(width, affine=False, eps=1e-6), nn.Linear(width, num_classes))
    nn.init.trunc_normal_(head[1].weight, std=0.01)
    nn.init.zeros_(head[1].bias)
    return head.to(torch.float32)


def train_linear_probe(x, y, num_classes: int, cfg: ProbeConfig | None = None, device: str = "cpu"):
    """Fit BN+Linear on features ``x`` [N, D] with labels ``y`` [N]; returns the head in eval mode
    (on the CPU). ``device`` only says where the epochs run."""
    cfg = cfg or ProbeConfig()
    if cfg.optimizer not in ("sgd", "adamw"):
        raise ConfigError(f"probe optimizer {cfg.optimizer!r}: use sgd or adamw")
    if cfg.epochs < 1 or cfg.batch_size < 2 or cfg.lr <= 0:
        raise ConfigError(f"probe schedule needs epochs >= 1, batch size >= 2 and lr > 0 (got {cfg})")
    x = torch.as_tensor(x, dtype=torch.float32).to(device)
    y = torch.as_tensor(y, dtype=torch.long).to(device)
    gen = torch.Generator().manual_seed(cfg.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        head = build_probe_head(x.shape[1], num_classes).to(device)
    if cfg.optimizer == "sgd":
        opt = torch.optim.SGD(head.parameters(), lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)
    else:
        opt = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    n = x.shape[0]
    bs = min(cfg.batch_size, n)
    steps_per_epoch = max(1, n // bs)  # drop the ragged last batch: BatchNorm needs > 1 sample
    total = cfg.epochs * steps_per_epoch
    warmup = min(cfg.warmup_epochs * steps_per_epoch, total // 2)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(warmup, total))
    head.train()
    for epoch in range(cfg.epochs):
        order = torch.randperm(n, generator=gen)
        for i in range(steps_per_epoch):
            idx = order[i * bs:(i + 1) * bs].to(device)
            loss = F.cross_entropy(head(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        if epoch == cfg.epochs - 1 or (epoch + 1) % 10 == 0:
            log.debug("probe epoch %d/%d loss %.4f", epoch + 1, cfg.epochs, loss.item())
    return head.cpu().eval()


def predict_scores(head, x, batch_size: int = 4096):
    x = torch.as_tensor(x, dtype=torch.float32)
    with torch.no_grad():
        return torch.cat([head(x[i:i + batch_size]) for i in range(0, x.shape[0], batch_size)])


class LogReg:
    """A fitted multinomial logistic regression: standardise with train stats, then W x + b."""

    def __init__(self, mean, std, weight, bias, weight_decay: float):
        self.mean, self.std, self.weight, self.bias = mean, std, weight, bias
        self.weight_decay = weight_decay

    def scores(self, x):
        x = (torch.as_tensor(x, dtype=torch.float32) - self.mean) / self.std
        return x @ self.weight.T + self.bias


def fit_logreg(x, y, num_classes: int, weight_decay: float, max_iter: int = 300) -> LogReg:
    """Minimise mean cross-entropy + weight_decay/2 * ||W||^2 (bias unpenalised) with L-BFGS.

    Zero initialisation and full-batch steps make the fit a deterministic function of the data.
    """
    x = torch.as_tensor(x, dtype=torch.float32)
    y = torch.as_tensor(y, dtype=torch.long)
    mean = x.mean(0)
    std = x.std(0, unbiased=False).clamp_min(1e-6)
    z = (x - mean) / std
    w = torch.zeros(num_classes, x.shape[1], requires_grad=True)
    b = torch.zeros(num_classes, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=max_iter, history_size=20,
                            tolerance_grad=1e-6, tolerance_change=1e-9, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(z @ w.T + b, y) + 0.5 * weight_decay * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return LogReg(mean, std, w.detach(), b.detach(), weight_decay)


def _accuracy(model: LogReg, x, y) -> float:
    return (model.scores(x).argmax(1) == torch.as_tensor(y)).float().mean().item()


def logreg_sweep(train_x, train_y, val_x, val_y, num_classes: int, grid=DEFAULT_WD_GRID,
                 max_iter: int = 300) -> tuple[float, dict]:
    """Pick the weight decay with the best validation accuracy (ties: the larger, simpler model).

    A decade grid, then the two half-decade neighbours of the winner. Returns (best, {wd: acc}).
    """
    tried: dict[float, float] = {}

    def score(wd):
        if wd not in tried:
            tried[wd] = _accuracy(fit_logreg(train_x, train_y, num_classes, wd, max_iter), val_x, val_y)
        return tried[wd]

    for wd in grid:
        score(wd)
    best = max(tried, key=lambda wd: (tried[wd], wd))
    for wd in (best / math.sqrt(10.0), best * math.sqrt(10.0)):
        score(wd)
    best = max(tried, key=lambda wd: (tried[wd], wd))
    log.info("logreg weight decay sweep: best %.3g (val acc %.4f)", best, tried[best])
    return best, tried
