"""Batched greedy generation whose answers never depend on the batch, and the runner adapter.

Batches are LEFT-padded so every prompt ends at the same column and the next token is read from
the last position; the attention mask hides the padding and position ids count only real tokens
(``cumsum(mask) - 1``), so a prompt sees exactly the same positions and keys whether it runs
alone or among longer batch mates. A finished sequence keeps being fed EOS (masked out of the
answer) until the whole batch stops or ``max_new_tokens`` is reached.
"""
from __future__ import annotations

import hashlib
import json
import logging

from sc_eval.errors import ConfigError

log = logging.getLogger(__name__)

DEFAULT_MAX_NEW_TOKENS = 128  # LLaVA's evaluation default for short answers


def _cache_kw(llm) -> str:
    """transformers renamed ``past_key_values`` to ``cache`` (5.x); pass whichever forward takes."""
    import inspect

    base = llm.get_base_model() if hasattr(llm, "get_base_model") else llm
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


def _past(out):
    c = getattr(out, "cache", None)
    return c if c is not None else getattr(out, "past_key_values", None)


def greedy_generate(model, prompts: list[list[int]], pixels, max_new_tokens: int,
                    eos_token_id: int) -> list[list[int]]:
    """Greedy token ids (EOS excluded) for each prompt; ``pixels`` [B,3,H,W] or None (no image)."""
    import torch

    llm = model.llm
    emb = llm.get_input_embeddings()
    B = len(prompts)
    kw = _cache_kw(llm)
    with torch.inference_mode():
        imgs = model.image_tokens(pixels) if pixels is not None else None
        embeds, mask, pos, _ = model.splice(prompts, imgs, left_pad=True)
        out = llm(inputs_embeds=embeds, attention_mask=mask, position_ids=pos, use_cache=True,
                  logits_to_keep=1)
        past = _past(out)
        logits = out.logits[:, -1].float()
        done = torch.zeros(B, dtype=torch.bool, device=logits.device)
        answers: list[list[int]] = [[] for _ in range(B)]
        for step in range(max_new_tokens):
            nxt = logits.argmax(-1)
            nxt = torch.where(done, torch.full_like(nxt, eos_token_id), nxt)
            for i in range(B):
                if not done[i] and int(nxt[i]) != eos_token_id:
                    answers[i].append(int(nxt[i]))
            done |= nxt == eos_token_id
            if bool(done.all()) or step == max_new_tokens - 1:
                break
            mask = torch.cat([mask, mask.new_ones(B, 1)], 1)
            pos = pos[:, -1:] + 1
            out = llm(inputs_embeds=emb(nxt[:, None]), attention_mask=mask, position_ids=pos,
                      use_cache=True, logits_to_keep=1, **{kw: past})
            past = _past(out)
            logits = out.logits[:, -1].float()
    return answers


def check_generation_kwargs(kwargs: dict) -> int:
    """The decoding settings this adapter honours: greedy only; returns max_new_tokens."""
    if kwargs.get("do_sample") or (kwargs.get("num_beams") or 1) > 1 or (kwargs.get("temperature") or 0) > 0:
        raise ConfigError(f"generation_kwargs {kwargs}: the LLaVA adapter decodes greedily "
                          "(do_sample false, num_beams 1, temperature 0), as LLaVA's evaluation does")
    return int(kwargs.get("max_new_tokens", DEFAULT_MAX_NEW_TOKENS))


class LlavaAdapter:
    """What the runner calls: ``fingerprint()`` and ``predict(docs, task) -> list[str]``."""

    def __init__(self, model, device: str = "cpu", precision: str = "fp32"):
        self.model, self.device, self.precision = model, device, precision
        self._fp = None

    def fingerprint(self) -> str:
        """sha256 over the config and every trained tensor (projector, LoRA), computed once."""
        if self._fp is None:
            import dataclasses

            h = hashlib.sha256(json.dumps(dataclasses.asdict(self.model.config), sort_keys=True).encode())
            for name, t in sorted(self.model.projector.state_dict().items()):
                h.update(name.encode())
                h.update(t.detach().float().cpu().numpy().tobytes())
            for name, p in sorted(self.model.llm.named_parameters()):
                if "lora_" in name:
                    h.update(name.encode())
                    h.update(p.detach().float().cpu().numpy().tobytes())
            self._fp = h.hexdigest()[:20]
        return self._fp

    def prompt_ids(self, text: str, with_image: bool = True) -> list[int]:
        from sc_eval.adapters.llava.templates import build_prompt

        return build_prompt(text, self.model.tokenizer, self.model.config.template, with_image=with_image)

    def pixels(self, docs):
        import torch

        from sc_eval.adapters.llava.model import image_tensor
        from sc_eval.data.images import load_image

        return torch.stack([image_tensor(self.model.encoder, load_image(d["image"])) for d in docs]).to(self.device)

    def predict(self, docs: list[dict], task) -> list[str]:
        import torch

        max_new = check_generation_kwargs(dict(task.generation_kwargs or {}))
        ids = [self.prompt_ids(task.prompt_for(d)) for d in docs]
        pixels = self.pixels(docs)
        self.model.eval()
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)
        dev_type = "cuda" if str(self.device).startswith("cuda") else "cpu"
        with torch.autocast(dev_type, dtype=dtype or torch.float32, enabled=dtype is not None):
            out = greedy_generate(self.model, ids, pixels, max_new, self.model.tokenizer.eos_token_id)
        return [self.model.tokenizer.decode(o, skip_special_tokens=True).strip() for o in out]
