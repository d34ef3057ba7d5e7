"""Batched beam search and greedy decoding for ClipCap, with the LM's key/value cache.

The search follows the ClipCap reference's semantics: at every step each image keeps the ``beam``
best hypotheses ranked by their length-normalised log-probability (sum / number of tokens); a
hypothesis that emitted a stop token ("." or EOS) is frozen and competes with its final score;
an image is done when all its hypotheses are frozen, or after ``max_new_tokens`` tokens. The
answer is the hypothesis with the best normalised score. Greedy is the same search with beam 1.

Batching: B images x ``beam`` hypotheses share one forward pass per step. Every prefix has the
same length K, so there is no padding and no position shift: an image's rows see exactly what
they would see alone, which is why a batched caption equals the caption decoded alone (the test
suite checks it in fp32). Images that finish leave the batch (their cache rows are dropped).
"""
from __future__ import annotations

import inspect
import logging

log = logging.getLogger(__name__)

MAX_NEW_TOKENS = 67  # the reference's limit


def stop_token_ids(tokenizer) -> list[int]:
    """EOS and the id of "." (the reference stops on "."; we also stop on the EOS we trained)."""
    ids = {int(tokenizer.eos_token_id)}
    dot = tokenizer.encode(".", add_special_tokens=False)
    if len(dot) == 1:
        ids.add(int(dot[0]))
    return sorted(ids)


def beam_search(model, feats, *, beam: int = 5, max_new_tokens: int = MAX_NEW_TOKENS,
                stop_ids, eos_id: int) -> list[list[int]]:
    """Token ids (stop token "." kept, EOS removed) of the best caption for each row of ``feats``.

    ``model`` is a ClipCapModel (mapper + LM); ``feats`` is [B, D] on the model's device.
    """
    import torch

    if beam < 1:
        raise ValueError("beam must be >= 1")
    lm = model.lm
    cache_kw = _cache_keyword(lm)
    b = feats.shape[0]
    if b == 0:
        return []
    device = feats.device
    stop = torch.tensor(list(stop_ids), device=device)
    results: list[list[int] | None] = [None] * b

    with torch.no_grad():
        prefix = model.prefix_embeds(feats)
        out = lm(inputs_embeds=prefix, use_cache=True)
        cache = _cache_of(out)
        logp = torch.log_softmax(out.logits[:, -1].float(), dim=-1)  # [B, V]
        vocab = logp.shape[-1]
        w = min(beam, vocab)
        scores, tokens = logp.topk(w, dim=-1)                       # [B, W]
        seqs = tokens.unsqueeze(-1)                                  # [B, W, T]
        lengths = torch.ones_like(scores)
        stopped = torch.isin(tokens, stop)
        cache.batch_repeat_interleave(w)                             # row b*W + j
        alive = torch.arange(b, device=device)                       # original image of each row group

        for _ in range(1, max_new_tokens):
            done = stopped.all(dim=1)
            if done.any():
                for i in done.nonzero().flatten().tolist():
                    results[alive[i]] = _best(seqs[i], scores[i], lengths[i])
                keep = (~done).nonzero().flatten()
                if keep.numel() == 0:
                    break
                rows = (keep[:, None] * w + torch.arange(w, device=device)).flatten()
                cache.batch_select_indices(rows)
                alive, seqs, scores = alive[keep], seqs[keep], scores[keep]
                lengths, stopped = lengths[keep], stopped[keep]
            n = alive.shape[0]
            out = lm(input_ids=seqs[:, :, -1].reshape(n * w, 1), use_cache=True, **{cache_kw: cache})
            cache = _cache_of(out)
            logp = torch.log_softmax(out.logits[:, -1].float(), dim=-1).view(n, w, vocab)
            # A frozen hypothesis has one continuation, a placeholder that costs nothing and adds
            # no length; it is cut off at the end.
            logp = logp.masked_fill(stopped[:, :, None], float("-inf"))
            logp[..., eos_id] = logp[..., eos_id].masked_fill(stopped, 0.0)
            new_len = lengths + (~stopped).float()
            total = scores[:, :, None] + logp                          # [n, W, V]
            norm = (total / new_len[:, :, None]).view(n, w * vocab)
            _, idx = norm.topk(w, dim=-1)                            # [n, W]
            src = idx // vocab
            tok = idx % vocab
            scores = total.view(n, w * vocab).gather(1, idx)
            lengths = new_len.gather(1, src)
            was_stopped = stopped.gather(1, src)
            seqs = torch.cat([seqs.gather(1, src[:, :, None].expand(-1, -1, seqs.shape[2])),
                              tok[:, :, None]], dim=2)
            stopped = was_stopped | torch.isin(tok, stop)
            cache.reorder_cache((src + torch.arange(n, device=device)[:, None] * w).flatten())
        for i in range(alive.shape[0]):
            if results[alive[i]] is None:
                results[alive[i]] = _best(seqs[i], scores[i], lengths[i])
    return [[t for t in r if t != eos_id] for r in results]


def _cache_keyword(lm) -> str:
    """transformers 5.2x names the key/value cache argument ``cache``; earlier versions
    ``past_key_values``."""
    return "cache" if "cache" in inspect.signature(lm.forward).parameters else "past_key_values"


def _cache_of(out):
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values


def _best(seqs, scores, lengths) -> list[int]:
    """Tokens of the hypothesis with the best length-normalised score (ties: lowest index)."""
    norm = scores / lengths
    j = int(norm.argmax())
    return seqs[j, : int(lengths[j])].tolist()


def generate_captions(model, tokenizer, feats, *, beam: int = 5, max_new_tokens: int = MAX_NEW_TOKENS,
                      batch_size: int = 32, stop_ids=None) -> list[str]:
    """Captions for [N, D] features, decoded ``batch_size`` images at a time."""
    stop_ids = stop_ids if stop_ids is not None else stop_token_ids(tokenizer)
    eos = int(tokenizer.eos_token_id)
    model.eval()
    device = next(model.parameters()).device
    caps: list[str] = []
    for i in range(0, feats.shape[0], batch_size):
        chunk = feats[i: i + batch_size].to(device)
        for ids in beam_search(model, chunk, beam=beam, max_new_tokens=max_new_tokens,
                               stop_ids=stop_ids, eos_id=eos):
            caps.append(tokenizer.decode(ids, skip_special_tokens=True).strip())
    return caps
