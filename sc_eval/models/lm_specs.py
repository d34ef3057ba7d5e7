"""The names of the real-size language models that ``random:`` specs build (``--lm random:gpt2``,
``--llm random:vicuna-7b``): architecture family, published dimensions, what each is. A table
only (``sc-eval ls models`` lists it); ``lm`` builds the models.
"""
from __future__ import annotations

from sc_eval.errors import ConfigError, did_you_mean

PREFIX = "random:"
RANDOM_SEED = 0

# name -> (family, config fields, what it is). Dimensions from the models' published configs.
_LLAMA_7B = dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
                 num_key_value_heads=32)
_LLAMA_13B = dict(hidden_size=5120, intermediate_size=13824, num_hidden_layers=40, num_attention_heads=40,
                  num_key_value_heads=40)
RANDOM_LMS = {
    "gpt2": ("gpt2", dict(n_embd=768, n_layer=12, n_head=12, n_positions=1024), "GPT-2 small (124M)"),
    "gpt2-medium": ("gpt2", dict(n_embd=1024, n_layer=24, n_head=16, n_positions=1024), "GPT-2 medium (355M)"),
    "gpt2-large": ("gpt2", dict(n_embd=1280, n_layer=36, n_head=20, n_positions=1024), "GPT-2 large (774M)"),
    "gpt2-xl": ("gpt2", dict(n_embd=1600, n_layer=48, n_head=25, n_positions=1024), "GPT-2 XL (1.5B)"),
    "gpt2-tiny": ("gpt2", dict(n_embd=64, n_layer=2, n_head=2, n_positions=256), "GPT-2 BPE, 2 x 64 (tests)"),
    "vicuna-7b": ("llama", dict(_LLAMA_7B, max_position_embeddings=4096, rms_norm_eps=1e-5),
                  "Vicuna-7B v1.5 / Llama-2-7B shape (6.74B)"),
    "llama-7b": ("llama", dict(_LLAMA_7B, max_position_embeddings=2048, rms_norm_eps=1e-6),
                 "LLaMA-7B shape (6.74B)"),
    "vicuna-13b": ("llama", dict(_LLAMA_13B, max_position_embeddings=4096, rms_norm_eps=1e-5),
                   "Vicuna-13B v1.5 / Llama-2-13B shape (13.0B)"),
    "llama-13b": ("llama", dict(_LLAMA_13B, max_position_embeddings=2048, rms_norm_eps=1e-6),
                  "LLaMA-13B shape (13.0B)"),
    "llama-tiny": ("llama", dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                                 num_key_value_heads=4, max_position_embeddings=2048, rms_norm_eps=1e-5),
                   "LLaMA SentencePiece, 2 x 64 (tests)"),
}


def list_random_lms() -> list[tuple[str, str, str]]:
    """(name, family, description) of every random LM."""
    return [(name, fam, what) for name, (fam, _, what) in RANDOM_LMS.items()]


def is_random_lm(spec) -> bool:
    return isinstance(spec, str) and spec.startswith(PREFIX)


def random_lm_name(spec: str) -> str:
    """The RANDOM_LMS name of ``random:NAME`` (or NAME); a ConfigError for an unknown one."""
    name = spec[len(PREFIX):] if spec.startswith(PREFIX) else spec
    if name not in RANDOM_LMS:
        raise ConfigError(f"{spec}: unknown random language model {name!r}{did_you_mean(name, RANDOM_LMS)}; "
                          f"choose one of {', '.join(RANDOM_LMS)} (`sc-eval ls models`)")
    return name
