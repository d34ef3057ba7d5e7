"""The SuperClass loss: caption subword ids -> IDF-weighted multi-hot target -> classification loss.

Default = what the official x-cls/superclass code does, where it and the paper's text differ:

- the multi-hot target covers ALL context ids of the caption (SOT, EOT and the pad id 0 too),
  each distinct id once;
- the IDF is *online* and cumulative over the run: the batch's document counts (DF) and its
  size (N) are added to float64 running totals (summed over ranks) BEFORE the weights
  ``w_c = ln((N + 1) / (DF_c + 1))`` are used on that same batch;
- the weighted target is L1-normalised and the loss is the softmax cross-entropy, averaged
  over the batch.

Why not copy the official implementation: it builds a dense float64 target of
``[B, 49408]`` per step and a full ``log_softmax``. Here the target stays sparse (at most 77
ids per caption), so the loss is ``sum(t) * logsumexp(z) - sum_j t_j z[id_j]``: one reduction
over the vocabulary plus a gather. Same value, far less memory at large batch.

Options for the paper's ablations (Tables 6 and 7): ``idf="paper"`` (static |D|:
``ln(|D| / (1 + DF))``), ``idf="none"`` (plain multi-hot), ``mask_special=True`` (drop
SOT/EOT/pad from the target), and ``loss_type`` in softmax | bce | softmargin | asl | twoway.
"""
from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from sc_eval.errors import ConfigError

IDF_MODES = ("online", "paper", "none")
LOSS_TYPES = ("softmax", "bce", "softmargin", "asl", "twoway")


def unique_ids(token_ids: torch.Tensor):
    """Per-row distinct ids: (sorted ids [B, L], mask [B, L] True at each id's first copy)."""
    ids, _ = torch.sort(token_ids.long(), dim=1)
    first = torch.ones_like(ids, dtype=torch.bool)
    first[:, 1:] = ids[:, 1:] != ids[:, :-1]
    return ids, first


class SuperClassLoss(nn.Module):
    """``loss(logits [B, V], token_ids [B, L]) -> scalar``; owns the float64 DF/N state.

    The state lives in buffers (``df`` [V], ``num_samples`` [1]) so that it moves with
    ``.to(device)`` and round-trips through ``state_dict``/``load_state_dict`` (checkpoints,
    exact resume). It is all-reduced (SUM) across ranks only when a process group exists.
    """

    def __init__(self, vocab_size: int = 49408, idf: str = "online", loss_type: str = "softmax",
                 mask_special: bool = False, special_ids=(0, 49406, 49407),
                 dataset_size: int | None = None, update_state: bool = True,
                 asl_gamma_neg: float = 4.0, asl_gamma_pos: float = 0.0, asl_clip: float = 0.05):
        super().__init__()
        if idf not in IDF_MODES:
            raise ConfigError(f"SuperClassLoss: idf={idf!r} is not one of {', '.join(IDF_MODES)}")
        if loss_type not in LOSS_TYPES:
            raise ConfigError(f"SuperClassLoss: loss_type={loss_type!r} is not one of {', '.join(LOSS_TYPES)}")
        if idf == "paper" and not dataset_size:
            raise ConfigError("SuperClassLoss: idf='paper' needs dataset_size (|D| in ln(|D| / (1 + df)))")
        self.vocab_size = int(vocab_size)
        self.idf = idf
        self.loss_type = loss_type
        self.mask_special = bool(mask_special)
        self.special_ids = tuple(int(i) for i in special_ids)
        self.dataset_size = dataset_size
        self.update_state = update_state
        self.asl = (asl_gamma_neg, asl_gamma_pos, asl_clip)
        self.register_buffer("df", torch.zeros(self.vocab_size, dtype=torch.float64))
        self.register_buffer("num_samples", torch.zeros(1, dtype=torch.float64))
        # moved with .to(device) once, so masking needs no host-to-device copy per step
        self.register_buffer("special", torch.tensor(self.special_ids, dtype=torch.long), persistent=False)

    def extra_repr(self) -> str:
        return (f"vocab_size={self.vocab_size}, idf={self.idf}, loss_type={self.loss_type}, "
                f"mask_special={self.mask_special}")

    # -- IDF state -------------------------------------------------------------------------
    @torch.no_grad()
    def update(self, ids: torch.Tensor, first: torch.Tensor) -> None:
        """Add this batch's document frequencies and size (summed over ranks) to the totals."""
        counts = torch.zeros(self.vocab_size, dtype=torch.float64, device=ids.device)
        # each distinct id of a caption counts once; later copies add 0 (no host sync needed)
        counts.index_add_(0, ids.reshape(-1), first.reshape(-1).to(torch.float64))
        n = torch.full((1,), float(ids.shape[0]), dtype=torch.float64, device=ids.device)

        if dist.is_available() and dist.is_initialized():
            both = torch.cat([counts, n])
            dist.all_reduce(both, op=dist.ReduceOp.SUM)
            counts, n = both[:-1], both[-1:]
        self.df += counts.to(self.df.device)
        self.num_samples += n.to(self.num_samples.device)

    @torch.no_grad()
    def load_official_state(self, cap_fq: torch.Tensor, num_samples: torch.Tensor, global_batch: int) -> None:
        """Adopt the official buffers. The official code keeps per-step *fractions*
        (``cap_fq += DF_batch / B``, ``num_samples += 1``, averaged over ranks) and weights with
        ``ln((num_samples + 1/B) / (cap_fq + 1/B))``: at a constant global batch B this is
        exactly our count form with ``DF = B * cap_fq`` and ``N = B * num_samples``."""
        self.df.copy_(cap_fq.reshape(-1).to(torch.float64) * global_batch)
        self.num_samples.copy_(num_samples.reshape(-1)[:1].to(torch.float64) * global_batch)

    def weights(self) -> torch.Tensor:
        """Current per-class weights [V] (float64)."""
        if self.idf == "none":
            return torch.ones_like(self.df)
        if self.idf == "paper":
            return torch.log(float(self.dataset_size) / (1.0 + self.df))
        return torch.log((self.num_samples + 1.0) / (self.df + 1.0))

    def targets(self, token_ids: torch.Tensor):
        """Sparse L1-normalised targets: (ids [B, L], t [B, L] float64, zero where not used).

        Updates the IDF state first (when ``update_state``), as the official code does.
        """
        if token_ids.dim() != 2:
            raise ConfigError(f"SuperClassLoss: token_ids must be [B, L], got shape {tuple(token_ids.shape)}")
        ids, first = unique_ids(token_ids)
        # Checked where it costs nothing: reading a device tensor's max would wait for the device
        # every step (the trainer checks its ids on the host before copying them).
        if ids.device.type == "cpu" and (int(ids.max()) >= self.vocab_size or int(ids.min()) < 0):
            raise ConfigError(f"SuperClassLoss: token id {int(ids.max())} outside the vocabulary of "
                              f"{self.vocab_size}; set vocab_size to the tokenizer's size")
        if self.mask_special and self.special_ids:
            first = first & ~torch.isin(ids, self.special.to(ids.device))
        if self.update_state and self.training:
            self.update(ids, first)
        w = self.weights().to(ids.device)[ids] * first
        total = w.sum(dim=1, keepdim=True)
        # The official code divides by zero here (a caption whose every id has weight 0, e.g.
        # a batch of identical captions) and returns NaN; an all-zero target row is kept instead.
        t = torch.where(total > 0, w / total.clamp_min(torch.finfo(torch.float64).tiny), torch.zeros_like(w))
        return ids, t, first

    def dense_targets(self, token_ids: torch.Tensor) -> torch.Tensor:
        """[B, V] float64 targets, for inspection and tests (does NOT update the state)."""
        ids, first = unique_ids(token_ids)
        if self.mask_special and self.special_ids:
            first = first & ~torch.isin(ids, self.special.to(ids.device))
        w = self.weights().to(ids.device)[ids] * first
        total = w.sum(dim=1, keepdim=True)
        t = torch.where(total > 0, w / total.clamp_min(1e-300), torch.zeros_like(w))
        out = torch.zeros(ids.shape[0], self.vocab_size, dtype=torch.float64, device=ids.device)
        return out.scatter_add_(1, ids, t)

    # -- losses ----------------------------------------------------------------------------
    def forward(self, logits: torch.Tensor, token_ids: torch.Tensor) -> torch.Tensor:
        if logits.dim() != 2 or logits.shape[1] != self.vocab_size:
            raise ConfigError(f"SuperClassLoss: logits must be [B, {self.vocab_size}], got {tuple(logits.shape)}")
        ids, t, first = self.targets(token_ids)
        # Half-precision logits are upcast; float32/float64 are kept (float64 for exact checks).
        z = logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits
        if self.loss_type == "softmax":
            t32 = t.to(z.dtype)
            picked = z.gather(1, ids)
            per = t32.sum(1) * torch.logsumexp(z, dim=1) - (t32 * picked).sum(1)
            return per.mean()
        y = torch.zeros_like(z).scatter_(1, ids, first.to(z.dtype))  # multi-hot, distinct ids
        if self.loss_type in ("bce", "softmargin"):
            # Weighted binary CE; with idf != none the positives carry the IDF weights. "bce"
            # sums over classes (one binary problem per token), "softmargin" averages
            # (torch's MultiLabelSoftMarginLoss), as in the paper's Table 6 comparison.
            pos_w = torch.zeros_like(z).scatter_(1, ids, (t * first.sum(1, keepdim=True)).to(z.dtype))
            per_class = F.binary_cross_entropy_with_logits(z, y, reduction="none")
            per_class = torch.where(y > 0, per_class * pos_w, per_class)
            per = per_class.sum(1) if self.loss_type == "bce" else per_class.mean(1)
            return per.mean()
        if self.loss_type == "asl":
            # Asymmetric loss (Ben-Baruch et al., ICCV 2021): focusing gamma- on negatives with
            # probability shifting by `clip`, gamma+ on positives; the usual multi-label
            # alternative to BCE when negatives (49k classes) vastly outnumber positives.
            g_neg, g_pos, clip = self.asl
            p = torch.sigmoid(z)
            p_neg = (p - clip).clamp_min(0) if clip else p
            lp = F.logsigmoid(z) * (1 - p).pow(g_pos)
            ln = torch.log((1 - p_neg).clamp_min(1e-8)) * p_neg.pow(g_neg)
            return -(y * lp + (1 - y) * ln).sum(1).mean()
        # twoway: Kobayashi's two-way multi-label loss with unit temperatures,
        # softplus(logsumexp over negatives + logsumexp over -positives).
        neg_inf = torch.finfo(z.dtype).min
        lse_neg = torch.logsumexp(torch.where(y > 0, torch.full_like(z, neg_inf), z), dim=1)
        lse_pos = torch.logsumexp(torch.where(y > 0, -z, torch.full_like(z, neg_inf)), dim=1)
        return F.softplus(lse_neg + lse_pos).mean()

