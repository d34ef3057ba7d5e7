"""ClipCap model: mapper + causal LM, the caption loss, and the adapter directory format.

Adapter directory (``<run>/adapter/``)::

    config.json          {"format": "sc-eval-clipcap", "mapper": {...}, "lm": <path or "lm">,
                          "lm_frozen": bool, "encoder_fingerprint": ..., "eos_token_id": ...,
                          "stop_token_ids": [...], "max_caption_tokens": ...}
    mapper.safetensors   the mapper weights (always)
    lm/                  only when the LM was fine-tuned (mlp mapper): save_pretrained + tokenizer

A frozen LM is referenced by path, never copied: it is not part of what was trained.

Training fixes three traps of the reference implementation: every caption ends with EOS (so the
model learns to stop), padding is excluded from the loss by the attention mask (the reference
padded with id 0, which is GPT-2's real "!" token), and features are normalised by the same
function in training and decoding.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from sc_eval.errors import CheckpointError
from sc_eval.io import atomic_save_safetensors, atomic_write_json
from sc_eval.models.lm import load_causal_lm
from sc_eval.models.lm_specs import RANDOM_SEED, is_random_lm
from sc_eval.runtime.artefacts import check_hf_model_dir, check_safetensors, read_json_object, require_dir
from sc_eval.runtime.fingerprint import Hasher

from .mapper import MapperConfig, build_mapper, normalize_features

FORMAT = "sc-eval-clipcap"


def lm_fingerprint(lm_dir) -> str:
    """Hash of the LM's config and weight file sizes/names: cheap, changes when the LM does."""
    h = Hasher()
    if is_random_lm(str(lm_dir)):  # seeded weights: the spec and the seed name them
        return h.text(f"{lm_dir}|seed={RANDOM_SEED}").hex()
    lm_dir = Path(lm_dir)
    for p in sorted(lm_dir.iterdir()):
        if p.is_file():
            h.text(p.name).text(str(p.stat().st_size))
            if p.suffix == ".json":
                h.bytes(p.read_bytes())
    return h.hex()


def caption_token_ids(tokenizer, caption: str, eos_id: int, max_tokens: int) -> list[int]:
    """GPT-2 BPE ids of one caption, truncated to ``max_tokens - 1``, with EOS appended."""
    ids = tokenizer.encode(caption.strip(), add_special_tokens=False)
    return ids[: max_tokens - 1] + [eos_id]


class ClipCapModel(nn.Module):
    """The mapper (image features -> a prefix of LM input embeddings) in front of ``lm``, frozen
    or trained with it."""

    def __init__(self, cfg: MapperConfig, lm, lm_frozen: bool):
        super().__init__()
        self.cfg = cfg
        self.mapper = build_mapper(cfg)
        self.lm = lm
        self.lm_frozen = lm_frozen
        live, self.n_zero_rows = (None, 0)
        if lm_frozen:
            self.lm.requires_grad_(False)
            live, self.n_zero_rows = _zero_row_shortcut(lm)
        self.register_buffer("live_rows", live, persistent=False)  # follows .to(device)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.lm_frozen:
            self.lm.eval()  # a frozen LM never runs dropout
        return self

    def prefix_embeds(self, feats):
        """[B, D] image features -> [B, K, H] LM input embeddings."""
        x = normalize_features(feats.float(), self.cfg.normalize_prefix)
        return self.mapper(x)

    def forward(self, feats, input_ids, attention_mask):
        """Mean cross-entropy over caption tokens (EOS included, padding excluded)."""
        prefix = self.prefix_embeds(feats)
        tok = self.lm.get_input_embeddings()(input_ids)
        embeds = torch.cat([prefix, tok], dim=1)
        k = prefix.shape[1]
        mask = torch.cat([attention_mask.new_ones(attention_mask.shape[0], k), attention_mask], 1)
        labels = input_ids.masked_fill(attention_mask == 0, -100)
        if self.live_rows is not None:
            return self._loss_skipping_zero_rows(embeds, mask, k, labels)
        logits = self.lm(inputs_embeds=embeds, attention_mask=mask).logits
        # position k-1+i predicts caption token i
        pred = logits[:, k - 1:-1].float()
        return nn.functional.cross_entropy(pred.reshape(-1, pred.shape[-1]), labels.reshape(-1),
                                           ignore_index=-100)

    def _loss_skipping_zero_rows(self, embeds, mask, k, labels):
        """The same full-vocabulary cross-entropy, exactly, without computing the logits of
        output rows that are all zero (the tiny LMs zero the ids their corpus never uses):
        each of those logits is 0, so they enter the normaliser as log(their count)."""
        h = self.lm.base_model(inputs_embeds=embeds, attention_mask=mask).last_hidden_state
        h = h[:, k - 1:-1].float()
        keep = labels != -100
        h, y = h[keep], labels[keep]
        w = self.lm.get_output_embeddings().weight.float()
        live = h @ w[self.live_rows].t()
        rest = torch.full_like(live[:, :1], math.log(self.n_zero_rows))
        log_z = torch.logsumexp(torch.cat([live, rest], dim=1), dim=1)
        return (log_z - (h * w[y]).sum(-1)).mean()

    def trainable_parameters(self):
        return [p for p in self.parameters() if p.requires_grad]


def build_model(cfg: MapperConfig, lm, lm_frozen: bool):
    """A ClipCapModel around an already-loaded LM."""
    return ClipCapModel(cfg, lm, lm_frozen)


def _zero_row_shortcut(lm):
    """(indices of non-zero output rows, number of zero rows) when the loss may skip zero rows
    exactly: a frozen GPT-2/Llama head (plain matmul, no bias) with some all-zero rows."""
    head = lm.get_output_embeddings()
    if getattr(lm.config, "model_type", None) not in ("gpt2", "llama") or getattr(head, "bias", None) is not None:
        return None, 0
    zero = (head.weight == 0).all(dim=1)
    n_zero = int(zero.sum())
    if n_zero == 0:
        return None, 0
    return torch.nonzero(~zero).flatten(), n_zero


def save_adapter(model, out_dir, *, lm_dir, tokenizer, encoder_fingerprint: str, extra: dict | None = None):
    """Write the adapter directory (atomic per file; the LM copy only when it was fine-tuned)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lm_ref = str(lm_dir) if is_random_lm(str(lm_dir)) else str(Path(lm_dir).resolve())
    if not model.lm_frozen:
        model.lm.save_pretrained(str(out / "lm"))
        tokenizer.save_pretrained(str(out / "lm"))
        lm_ref = "lm"
    state = {k: v for k, v in model.mapper.state_dict().items()}
    atomic_save_safetensors(out / "mapper.safetensors", state, metadata={"format": FORMAT})
    cfg = {
        "format": FORMAT,
        "mapper": model.cfg.to_dict(),
        "lm": lm_ref,
        "lm_fingerprint": lm_fingerprint(lm_dir if model.lm_frozen else out / "lm"),
        "lm_frozen": model.lm_frozen,
        "encoder_fingerprint": encoder_fingerprint,
        "eos_token_id": int(tokenizer.eos_token_id),
        **(extra or {}),
    }
    atomic_write_json(out / "config.json", cfg)
    return out


WHAT = "`sc-eval caption --adapter` takes a directory written by `sc-eval caption` (<run>/adapter); copy it whole"


def check_adapter(adapter_dir) -> dict:
    """Every file of a ClipCap adapter directory present and whole (see `sc_eval.runtime.artefacts`),
    before any model is built; returns its config. Another command's artefact is named as such."""

    adir = require_dir(adapter_dir, WHAT)
    if not (adir / "config.json").exists():
        raise CheckpointError(f"--adapter {adir}: no config.json; {WHAT}")
    cfg = read_json_object(adir / "config.json", WHAT)
    if cfg.get("format") != FORMAT:
        kind = ("a LLaVA adapter (written by `sc-eval llava`; evaluate it with `sc-eval llava --adapter`)"
                if "projector" in cfg else f"format {cfg.get('format')!r}, not {FORMAT!r}")
        raise CheckpointError(f"--adapter {adir}: {kind}; {WHAT}")
    if not isinstance(cfg.get("mapper"), dict) or not isinstance(cfg.get("lm"), str):
        raise CheckpointError(f"{adir / 'config.json'}: lacks its 'mapper' or 'lm' entry; {WHAT}")
    check_safetensors(adir / "mapper.safetensors", WHAT)
    if cfg["lm"] == "lm":
        check_hf_model_dir(adir / "lm", WHAT)
    return cfg


def load_adapter(adapter_dir, device="cpu", lm_dir=None):
    """(model, tokenizer, config dict) from an adapter directory.

    ``lm_dir`` overrides the recorded frozen-LM path (an adapter moved to another machine).
    """
    adir = Path(adapter_dir)
    cfg_path = adir / "config.json"
    cfg = check_adapter(adir)
    lm_path = adir / "lm" if cfg["lm"] == "lm" else (lm_dir or cfg["lm"])
    lm_path = lm_path if is_random_lm(str(lm_path)) else Path(lm_path)
    if not is_random_lm(str(lm_path)) and not lm_path.exists():
        raise CheckpointError(f"{cfg_path}: its language model {lm_path} is missing; pass --lm DIR")
    lm, tok = load_causal_lm(lm_path, device)
    model = build_model(MapperConfig.from_dict(cfg["mapper"]), lm, lm_frozen=cfg["lm_frozen"])
    try:
        model.mapper.load_state_dict(load_file(str(adir / "mapper.safetensors")))
    except (RuntimeError, FileNotFoundError, OSError) as e:
        raise CheckpointError(f"{adir / 'mapper.safetensors'}: cannot load the mapper ({e})") from None
    cfg["lm_path"] = str(lm_path)
    return model.to(device).eval(), tok, cfg
