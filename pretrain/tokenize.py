"""Caption tokenizers for pretraining labels (and the CLIP baseline's text tower).

The default is the OpenAI CLIP BPE that SuperClass used (open_clip's ``SimpleTokenizer``, which
ships its vocabulary inside the open-clip-torch wheel): 49,408 ids, SOT 49406, EOT 49407,
pad 0, context 77. Any local Hugging Face tokenizer directory can replace it; the head size
then becomes that tokenizer's vocabulary and its special ids are what ``--mask-special`` masks.
"""
from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoTokenizer

from sc_eval.errors import ConfigError
from sc_eval.models.tokenizers import clip_tokenizer

CONTEXT_LENGTH = 77


class CaptionTokenizer:
    """``tok(list[str]) -> LongTensor [B, 77]``; plain attributes so it pickles to workers."""

    name: str
    vocab_size: int
    special_ids: tuple
    eot_id: int | None
    pad_id: int

    def __call__(self, texts):  # pragma: no cover - interface
        raise NotImplementedError


class ClipBPE(CaptionTokenizer):
    def __init__(self, context_length: int = CONTEXT_LENGTH):
        self._tok = clip_tokenizer(context_length)
        self.name = "clip-bpe"
        self.context_length = context_length
        self.vocab_size = int(self._tok.vocab_size)
        self.eot_id = int(self._tok.eot_token_id)
        self.pad_id = 0
        self.special_ids = (0, int(self._tok.sot_token_id), self.eot_id)

    def __call__(self, texts):
        return self._tok(list(texts), context_length=self.context_length)


class HFTokenizer(CaptionTokenizer):
    """A local tokenizer directory (``AutoTokenizer``, offline, no remote code)."""

    def __init__(self, path: str, context_length: int = CONTEXT_LENGTH):
        p = Path(path)
        if not p.is_dir():
            raise ConfigError(f"--tokenizer {path}: not a directory; use 'clip' or a local Hugging Face "
                              "tokenizer folder (tokenizer.json / tokenizer_config.json)")

        try:
            self._tok = AutoTokenizer.from_pretrained(str(p), local_files_only=True, trust_remote_code=False)
        except Exception as e:  # transformers raises many types for unreadable folders
            raise ConfigError(f"--tokenizer {path}: cannot load a tokenizer from it ({e})") from None
        self.name = str(p.resolve())
        self.context_length = context_length
        self.vocab_size = len(self._tok)
        pad = self._tok.pad_token_id
        self.pad_id = int(pad) if pad is not None else 0
        self.eot_id = self._tok.eos_token_id
        self.special_ids = tuple(sorted({int(i) for i in self._tok.all_special_ids} | {self.pad_id}))

    def __call__(self, texts):
        rows = self._tok(list(texts), add_special_tokens=True, truncation=True,
                         max_length=self.context_length)["input_ids"]
        out = torch.full((len(rows), self.context_length), self.pad_id, dtype=torch.long)
        for i, r in enumerate(rows):
            out[i, :len(r)] = torch.tensor(r, dtype=torch.long)
        return out


def build_tokenizer(spec: str | None) -> CaptionTokenizer:
    """'clip' (default) or a local HF tokenizer directory."""
    if spec in (None, "", "clip", "clip-bpe"):
        return ClipBPE()
    return HFTokenizer(spec)
