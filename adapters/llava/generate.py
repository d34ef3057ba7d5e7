"""Batched greedy generation whose answers never depend on the batch, and the runner adapter.

Batches are LEFT-padded so every prompt ends at the same column and the next token is read from
the last position; the attention mask hides the padding and position ids count only real tokens
(``cumsum(mask) - 1``), so a prompt sees exactly the same positions and keys whether it runs
alone or among longer batch mates. The text before the image (system prompt and ``USER:``, the
same in every LLaVA prompt) runs once and its keys/values are shared across the batch. A
finished sequence leaves the batch (its cache rows too); caches that cannot drop rows keep
feeding it EOS, masked out of the answer, until the whole batch stops or ``max_new_tokens``.
"""
from __future__ import annotations

import dataclasses
import logging

import torch

from sc_eval.adapters.llava.model import image_tensor
from sc_eval.adapters.llava.templates import IMAGE_INDEX, build_prompt
from sc_eval.data.images import load_image
from sc_eval.errors import ConfigError
from sc_eval.models import hf
from sc_eval.runtime.fingerprint import Hasher, precision_fields
from sc_eval.runtime.precision import autocast

log = logging.getLogger(__name__)

DEFAULT_MAX_NEW_TOKENS = 128  # LLaVA's evaluation default for short answers


def greedy_generate(model, prompts: list[list[int]], pixels, max_new_tokens: int,
                    eos_token_id: int) -> list[list[int]]:
    """Greedy token ids (EOS excluded) for each prompt; ``pixels`` [B,3,H,W] or None (no image).

    Each prompt splits at its image: the text before it (the template's system prompt and
    ``USER:``, the same for every question) runs once per distinct prefix and its keys/values
    are shared by the batch; the rest runs left-padded. A prompt alone takes the same two steps,
    so its answer does not depend on its batch mates.
    """
    with torch.inference_mode():
        imgs = model.image_tokens(pixels) if pixels is not None else None
        groups: dict[tuple, list[int]] = {}
        for i, ids in enumerate(prompts):
            k = ids.index(IMAGE_INDEX) if imgs is not None and IMAGE_INDEX in ids else 0
            groups.setdefault(tuple(ids[:k]), []).append(i)
        answers: list[list[int]] = [[] for _ in prompts]
        for prefix, rows in groups.items():
            sub = imgs[rows] if imgs is not None else None
            got = _generate_group(model, list(prefix), [prompts[i][len(prefix):] for i in rows], sub,
                                  max_new_tokens, eos_token_id)
            for i, a in zip(rows, got):
                answers[i] = a
    return answers


def _shared_prefix_cache(llm, prefix: list[int], rows: int):
    """Keys/values of ``prefix`` computed once (batch 1) and repeated for ``rows`` rows, or None
    when this LM's cache cannot be repeated (then every row runs its whole prompt)."""
    emb = llm.get_input_embeddings()
    ids = torch.tensor([prefix], dtype=torch.long, device=emb.weight.device)
    out = llm(inputs_embeds=emb(ids), attention_mask=torch.ones_like(ids), use_cache=True,
              **hf.last_logits_only(llm))
    past = hf.returned_cache(out)
    if not hf.cache_resizable(past):
        return None
    return hf.cache_repeat(past, rows) if rows > 1 else past


def _generate_group(model, prefix: list[int], rests: list[list[int]], images, max_new_tokens: int,
                    eos_token_id: int) -> list[list[int]]:
    """Greedy answers for prompts ``prefix + rest``: the prefix runs once, the rests left-padded."""
    llm = model.llm
    emb = llm.get_input_embeddings()
    kw, last_only = hf.cache_kw(llm), hf.last_logits_only(llm)
    B = len(rests)
    past = _shared_prefix_cache(llm, prefix, B) if prefix else None
    if prefix and past is None:  # no shareable cache: whole prompts, as one block
        rests, prefix = [prefix + r for r in rests], []
    embeds, mask, pos, _ = model.splice(rests, images, left_pad=True)
    extra = {}
    if past is not None:  # [prefix | left padding | rest]: the padding is masked, positions continue
        P = len(prefix)
        mask = torch.cat([mask.new_ones(B, P), mask], 1)
        pos = pos + P
        extra = {kw: past}
    out = llm(inputs_embeds=embeds, attention_mask=mask, position_ids=pos, use_cache=True,
              **last_only, **extra)
    past = hf.returned_cache(out)
    logits = out.logits[:, -1].float()
    answers: list[list[int]] = [[] for _ in range(B)]
    alive = list(range(B))  # row j of the running batch answers prompt alive[j]
    done = [False] * B
    droppable = hf.cache_resizable(past)
    for step in range(max_new_tokens):
        nxt = logits.argmax(-1)
        for j, i in enumerate(alive):
            if not done[j]:
                if int(nxt[j]) == eos_token_id:
                    done[j] = True
                else:
                    answers[i].append(int(nxt[j]))
        if all(done) or step == max_new_tokens - 1:
            break
        if droppable and any(done):  # finished rows leave the batch, their cache rows too
            keep = [j for j in range(len(alive)) if not done[j]]
            idx = torch.tensor(keep, device=nxt.device)
            past = hf.cache_select(past, idx)
            mask, pos, nxt = mask[idx], pos[idx], nxt[idx]
            alive, done = [alive[j] for j in keep], [False] * len(keep)
        # (caches that cannot drop rows keep feeding finished rows EOS; their output is ignored)
        nxt = torch.where(torch.tensor(done, device=nxt.device), torch.full_like(nxt, eos_token_id), nxt)
        mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], 1)
        pos = pos[:, -1:] + 1
        out = llm(inputs_embeds=emb(nxt[:, None]), attention_mask=mask, position_ids=pos,
                  use_cache=True, **last_only, **{kw: past})
        past = hf.returned_cache(out)
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
        """The fingerprint of the config, the precision and every trained tensor (projector, LoRA),
        computed once: a bf16 run never reuses an fp32 run's answers."""
        if self._fp is None:
            h = Hasher().json({**dataclasses.asdict(self.model.config), **precision_fields(self.precision)})
            for name, t in sorted(self.model.projector.state_dict().items()):
                h.text(name).bytes(t.detach().float().cpu().numpy().tobytes())
            for name, p in sorted(self.model.llm.named_parameters()):
                if "lora_" in name:
                    h.text(name).bytes(p.detach().float().cpu().numpy().tobytes())
            self._fp = h.hex()
        return self._fp

    def prompt_ids(self, text: str, with_image: bool = True) -> list[int]:
        return build_prompt(text, self.model.tokenizer, self.model.config.template, with_image=with_image)

    def pixels(self, docs):
        return torch.stack([image_tensor(self.model.encoder, load_image(d["image"])) for d in docs]).to(self.device)

    def predict(self, docs: list[dict], task) -> list[str]:
        max_new = check_generation_kwargs(dict(task.generation_kwargs or {}))
        ids = [self.prompt_ids(task.prompt_for(d)) for d in docs]
        pixels = self.pixels(docs)
        self.model.eval()
        with autocast(self.device, self.precision):
            out = greedy_generate(self.model, ids, pixels, max_new, self.model.tokenizer.eos_token_id)
        return [self.model.tokenizer.decode(o, skip_special_tokens=True).strip() for o in out]
