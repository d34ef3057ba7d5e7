"""Tiny causal language models trained on the embedded world's text, for the demo.

The frozen-LM protocols (ClipCap with a frozen GPT-2, LLaVA with a frozen or LoRA-tuned LLM) only
make sense if the LM already knows the language it must produce. The demo runs where no
pretrained weights can be downloaded, so ``train_tiny_lm`` trains a small GPT-2 (real GPT-2 BPE, 50,257 ids) or Llama
(SentencePiece, 32,000 ids) on the world's ``text/corpus.txt`` for a fixed number of steps (about
a minute on 2 CPU cores) and writes a normal Hugging Face model directory with its tokenizer, so
``AutoModelForCausalLM`` / ``AutoTokenizer.from_pretrained(dir)`` load it offline.

``ensure_tiny_lm`` trains once and caches the directory next to the world it was trained on;
the demo hands it to ``sc-eval caption --lm`` and ``sc-eval llava --llm``.
The step budget is fixed (not a wall-clock budget) so the same seed gives the same model.

Speed: a full 50,257-way softmax costs most of a CPU step, yet the world's text uses a few hundred
distinct ids. The embedding rows of ids absent from the corpus are set to zero and stay zero (they
never receive a gradient), so each of their logits is exactly 0 and the full softmax's normaliser
is ``logsumexp(used logits, log(number of unused ids))``: the loss is the exact full-vocabulary
cross-entropy, computed over the used ids only. The saved model is an ordinary full-vocabulary LM.
"""
from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, GPT2Config, LlamaConfig

from sc_eval.adapters.llava.templates import IMAGE_TOKEN, build_example
from sc_eval.errors import ConfigError, DataError
from sc_eval.io import atomic_directory, read_json
from sc_eval.models import tokenizers as assets
from sc_eval.runtime.fingerprint import digest
from sc_eval.runtime.schedules import warmup_cosine
from sc_eval.world.build import ensure_world

log = logging.getLogger(__name__)

KINDS = ("gpt2", "llama")
VERSION = 2  # bump when a default below changes: cached models are keyed by it

# Model sizes. GPT-2: the 50,257 x 128 embedding dominates (~7.3M parameters in all). Llama:
# ~2.6M parameters, tied embeddings (trained in about a minute).
MODEL_DEFAULTS = {
    "gpt2": dict(n_embd=128, n_layer=4, n_head=4, n_positions=256),
    "llama": dict(hidden_size=72, intermediate_size=256, num_hidden_layers=4, num_attention_heads=4,
                  num_key_value_heads=4, max_position_embeddings=1024, tie_word_embeddings=True),
}
# Training: the world's text is short and repetitive, a high learning rate learns it in minutes.
# The Llama also learns the vicuna_v1 dialogues (a ~40-token system prompt before each question),
# so it reads longer windows for longer: with 150 steps it answered every question alike.
TRAIN_DEFAULTS = {
    "gpt2": dict(steps=150, batch_size=16, seq_len=64, lr=3e-3, warmup=20, weight_decay=0.01),
    "llama": dict(steps=600, batch_size=16, seq_len=128, lr=3e-3, warmup=20, weight_decay=0.01),
}


def _tokenizer(kind: str):
    return assets.lm_tokenizer(kind)


def tiny_config(kind: str, vocab_size: int, **overrides):
    """A transformers config for a tiny model of ``kind`` (overrides win over MODEL_DEFAULTS)."""
    if kind not in KINDS:
        raise ConfigError(f"unknown tiny LM kind {kind!r}: choose one of {', '.join(KINDS)}")
    params = {**MODEL_DEFAULTS[kind], **overrides}
    if kind == "gpt2":
        return GPT2Config(vocab_size=vocab_size, bos_token_id=vocab_size - 1, eos_token_id=vocab_size - 1,
                          **params)

    return LlamaConfig(vocab_size=vocab_size, bos_token_id=1, eos_token_id=2, pad_token_id=0, **params)


def build_tiny_lm(kind: str, seed: int = 0, **overrides):
    """(model with random weights, tokenizer): tests use this to get a small LM quickly."""
    tok = _tokenizer(kind)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(tiny_config(kind, len(tok), **overrides))
    return model, tok


def save_lm(model, tokenizer, out_dir, info: dict | None = None) -> Path:
    """save_pretrained model + tokenizer into ``out_dir``, which appears whole or not at all."""
    out = Path(out_dir)
    with atomic_directory(out) as tmp:
        model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        if info is not None:
            (tmp / "tinylm.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return out


def _chat_documents(tok, chat_path: Path) -> list[list[int]]:
    """The LLaVA conversations of ``chat_path`` as text-only vicuna_v1 dialogues (image dropped).

    A real LLaVA starts from a chat-tuned LLM (Vicuna) that already answers a USER turn in the
    ASSISTANT's voice and stops; the tiny Llama learns the same from the world's training
    conversations, so LLaVA's stage 2 only has to learn to look at the image.
    """
    records = read_json(chat_path)
    if not isinstance(records, list):
        raise DataError(f"{chat_path}: expected a JSON list of LLaVA conversations")
    docs = []
    for i, rec in enumerate(records):
        conv = [{**m, "value": str(m.get("value", "")).replace(IMAGE_TOKEN, "").strip()}
                for m in rec.get("conversations", [])]
        ids, _ = build_example(conv, tok, "vicuna_v1", where=f"{chat_path} record {i}")
        docs.append(ids)
    return docs


def _token_stream(tok, kind: str, corpus_path: Path, chat_path: Path | None = None, seed: int = 0):
    """Corpus lines (each closed by EOS; llama: opened by BOS) and, if given, chat dialogues,
    shuffled as documents with ``seed`` and joined into one stream."""
    if not corpus_path.exists():
        raise DataError(f"{corpus_path}: corpus not found; write the world with `sc-eval world --out DIR`")
    lines = [ln.strip() for ln in corpus_path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    if not lines:
        raise DataError(f"{corpus_path}: the corpus is empty")
    docs = [([tok.bos_token_id] if kind == "llama" else []) + tok.encode(ln, add_special_tokens=False)
            + [tok.eos_token_id] for ln in lines]
    if chat_path is not None:
        docs += _chat_documents(tok, Path(chat_path))
        order = torch.randperm(len(docs), generator=torch.Generator().manual_seed(seed)).tolist()
        docs = [docs[i] for i in order]
    ids = [t for d in docs for t in d]
    return torch.tensor(ids, dtype=torch.long), len(docs)


def train_tiny_lm(kind: str, out_dir, corpus_path, steps: int | None = None, seed: int = 0,
                  batch_size: int | None = None, seq_len: int | None = None, lr: float | None = None,
                  chat_path=None, **model_overrides) -> Path:
    """Train a tiny ``kind`` LM on ``corpus_path`` (plus the LLaVA conversations of
    ``chat_path``, text only, in the vicuna_v1 template) and save it with its tokenizer."""
    if kind not in KINDS:
        raise ConfigError(f"unknown tiny LM kind {kind!r}: choose one of {', '.join(KINDS)}")
    hp = dict(TRAIN_DEFAULTS[kind])
    hp.update({k: v for k, v in dict(steps=steps, batch_size=batch_size, seq_len=seq_len, lr=lr).items()
               if v is not None})
    model, tok = build_tiny_lm(kind, seed=seed, **model_overrides)
    stream, n_lines = _token_stream(tok, kind, Path(corpus_path), chat_path, seed)
    seq = min(hp["seq_len"], stream.numel() - 1)
    if seq < 2:
        raise DataError(f"{corpus_path}: too little text to train a language model")
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=hp["lr"], betas=(0.9, 0.95),
                            weight_decay=hp["weight_decay"])

    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(hp["warmup"], hp["steps"], floor=0.1))
    used, local = _zero_unused_rows(model, stream)
    n_unused = model.get_output_embeddings().weight.shape[0] - used.numel()
    model.train()
    first = last = None
    for step in range(hp["steps"]):
        starts = torch.randint(0, stream.numel() - seq, (hp["batch_size"],), generator=gen)
        x = torch.stack([stream[s: s + seq] for s in starts.tolist()])
        loss = _exact_lm_loss(model, x, used, local[x[:, 1:]], n_unused)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        last = float(loss.detach())
        first = last if first is None else first
        if step % 50 == 0 or step == hp["steps"] - 1:
            log.info("tiny %s LM step %d/%d loss %.3f", kind, step + 1, hp["steps"], last)
    model.eval()
    info = {"kind": kind, "seed": seed, "corpus": str(corpus_path), "chat": str(chat_path) if chat_path else None,
            "documents": n_lines,
            "corpus_tokens": int(stream.numel()), "first_loss": first, "final_loss": last,
            "n_params": sum(p.numel() for p in model.parameters()), "version": VERSION, **hp}
    return save_lm(model, tok, out_dir, info)


def _zero_unused_rows(model, stream):
    """Zero the (tied) embedding rows of ids absent from the corpus; return the used ids and a
    map from vocabulary id to position among the used ids."""
    emb = model.get_output_embeddings().weight
    if emb.data_ptr() != model.get_input_embeddings().weight.data_ptr():
        raise ConfigError("the tiny LM must tie its input and output embeddings")
    used = torch.unique(stream)
    keep = torch.zeros(emb.shape[0], dtype=torch.bool)
    keep[used] = True
    with torch.no_grad():
        emb[~keep] = 0.0
    local = torch.full((emb.shape[0],), -1, dtype=torch.long)
    local[used] = torch.arange(used.numel())
    return used, local


def _exact_lm_loss(model, x, used, targets_local, n_unused: int):
    """Next-token cross-entropy over the full vocabulary, with unused rows known to be zero."""
    h = model.base_model(input_ids=x).last_hidden_state[:, :-1]      # [B, T-1, H]
    w = model.get_output_embeddings().weight[used]                   # [U, H]
    logits = (h @ w.t()).float()                                     # [B, T-1, U]
    if n_unused > 0:
        rest = torch.full_like(logits[..., :1], math.log(n_unused))  # the n_unused zero logits
        log_z = torch.logsumexp(torch.cat([logits, rest], dim=-1), dim=-1)
    else:
        log_z = torch.logsumexp(logits, dim=-1)
    target = logits.gather(-1, targets_local.unsqueeze(-1)).squeeze(-1)
    return (log_z - target).mean()


def tiny_lm_key(kind: str, seed: int, steps: int | None) -> str:
    train = TRAIN_DEFAULTS[kind]
    key = digest({"model": MODEL_DEFAULTS[kind], "train": {**train, "steps": steps or train["steps"]}})
    return f"tinylm-{kind}-s{seed}-v{VERSION}-{key}"


def _saved(folder: Path) -> bool:
    return (folder / "config.json").exists() and (folder / "tinylm.json").exists()


def ensure_tiny_lm(kind: str = "gpt2", world_root=None, seed: int = 0, steps: int | None = None) -> Path:
    """The cached tiny LM trained on ``world_root``'s text (trained on first use, ~1 minute).

    Cached next to the world: ``<world_root parent>/<world name>-<tinylm key>/``.
    """
    if kind not in KINDS:
        raise ConfigError(f"unknown tiny LM kind {kind!r}: choose one of {', '.join(KINDS)}")
    if world_root is None:
        world_root = ensure_world()
    world_root = Path(world_root)
    out = world_root.parent / f"{world_root.name}-{tiny_lm_key(kind, seed, steps)}"
    if _saved(out):
        return out
    # The same model saved under the key cut to 8 characters (before fingerprints had one
    # length): reused, so that adapters which recorded its path still find it.
    stem, _, key = out.name.rpartition("-")
    for old in sorted(out.parent.glob(f"{stem}-*")):
        short = old.name.rpartition("-")[2]
        if len(short) >= 8 and key.startswith(short) and _saved(old):
            return old
    log.info("training the tiny %s LM on %s (once; cached in %s)", kind, world_root / "text/corpus.txt", out)
    chat = world_root / "llava" / "finetune.json" if kind == "llama" else None
    return train_tiny_lm(kind, out, world_root / "text" / "corpus.txt", steps=steps, seed=seed,
                         chat_path=chat if chat is not None and chat.exists() else None)
