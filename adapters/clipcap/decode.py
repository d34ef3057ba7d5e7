"""Batched beam search and greedy decoding for ClipCap.

The search follows the ClipCap reference's semantics: at every step each image keeps the ``beam``
best hypotheses ranked by their length-normalised log-probability (sum / number of tokens); a
hypothesis that emitted a stop token ("." or EOS) is frozen and competes with its final score;
an image is done when all its hypotheses are frozen, or after ``max_new_tokens`` tokens. The
answer is the hypothesis with the best normalised score. Greedy is the same search with beam 1.

Batching: B images x ``beam`` hypotheses share one forward pass per step. Every prefix has the
same length K, so there is no padding and no position shift: an image's rows see exactly what
they would see alone, which is why a batched caption equals the caption decoded alone (the test
suite checks it in fp32). Images that finish leave the batch.

Beyond the LM's matrix products, beam search spends its time moving caches and scanning the
vocabulary; this module keeps that overhead small (figures: benchmarks/README.md):
- The LM's key/value cache is used for every step; the prefix runs through the LM once per
  image, and only its last position goes through the 50k-wide output layer.
- For GPT-2 (:class:`_SharedPrefixGPT2`), the prefix's keys/values are stored once per image,
  not once per beam, and the generated tokens' keys/values are written in place and never
  reordered: each hypothesis attends to its ancestors through a mask built from back-pointers,
  where transformers' cache would copy the whole cache twice a step (concatenate, then reorder
  by beam). Other causal LMs use transformers' cache.
- Each hypothesis only contributes its ``beam`` best next tokens to the ranking (the
  normalisation divides a whole row by one length, so no other token can rank higher), and
  those come from the output layer in vocabulary chunks (:func:`_top_log_probs`), so no
  [rows, vocabulary] tensor is written or scanned.
- ``cache=False`` is the reference's cache-free search, kept as the benchmark's baseline.
"""
from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from transformers.activations import NewGELUActivation

from sc_eval.models import hf
from sc_eval.runtime.precision import autocast

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
                stop_ids, eos_id: int, shared_prefix: bool | None = None,
                cache: bool = True) -> list[list[int]]:
    """Token ids (stop token "." kept, EOS removed) of the best caption for each row of ``feats``.

    ``model`` is a ClipCapModel (mapper + LM); ``feats`` is [B, D] on the model's device.
    ``shared_prefix``: use the GPT-2 decoder that shares the prefix cache across beams (None:
    whenever the LM is a GPT-2; False: the library's cache, as for any other LM).
    ``cache=False``: no key/value cache at all, the whole sequence recomputed at every step (the
    reference implementation's way; only the speed benchmark's baseline uses it).
    """
    if beam < 1:
        raise ValueError("beam must be >= 1")
    b = feats.shape[0]
    if b == 0:
        return []
    device = feats.device
    stop = torch.tensor(sorted(set(int(s) for s in stop_ids)), device=device)
    results: list[list[int] | None] = [None] * b

    with torch.inference_mode():
        stepper = _stepper(model.lm, max_new_tokens, shared_prefix) if cache else _Recompute(model.lm)
        w = min(beam, model.lm.get_output_embeddings().weight.shape[0])
        scores, tokens = stepper.start(model.prefix_embeds(feats), w)   # [B, W] log-probs, ids
        seqs = tokens.new_zeros(b, w, max_new_tokens)               # token t of each hypothesis
        seqs[:, :, 0] = tokens
        lengths = torch.ones_like(scores)                           # tokens before the stop, incl.
        stopped = torch.isin(tokens, stop)
        alive = torch.arange(b, device=device)                      # original image of each row
        stepper.expand(w)
        # A frozen hypothesis has one continuation, a placeholder EOS that costs nothing and adds
        # no length (cut off at the end); its other candidate slots are impossible.
        frozen_logp = torch.full((w,), float("-inf"), device=device)
        frozen_logp[0] = 0.0

        for t in range(1, max_new_tokens):
            done = stopped.all(dim=1)
            if bool(done.any()):
                for i in done.nonzero().flatten().tolist():
                    results[alive[i]] = _best(seqs[i], scores[i], lengths[i])
                keep = (~done).nonzero().flatten()
                if keep.numel() == 0:
                    break
                stepper.keep(keep)
                alive, seqs, scores = alive[keep], seqs[keep], scores[keep]
                lengths, stopped = lengths[keep], stopped[keep]
            n = alive.shape[0]
            cand, cand_tok = stepper.step(seqs[:, :, t - 1], w)        # [n * W, W] each
            cand = torch.where(stopped[:, :, None], frozen_logp, cand.view(n, w, w))
            cand_tok = cand_tok.view(n, w, w).masked_fill(stopped[:, :, None], eos_id)
            new_len = lengths + (~stopped).float()
            total = (scores[:, :, None] + cand).view(n, w * w)
            _, idx = (total.view(n, w, w) / new_len[:, :, None]).view(n, w * w).topk(w, dim=-1)
            src = idx // w                                           # parent hypothesis
            tok = cand_tok.view(n, w * w).gather(1, idx)
            scores = total.gather(1, idx)
            lengths = new_len.gather(1, src)
            stopped = stopped.gather(1, src) | torch.isin(tok, stop)
            seqs = seqs.gather(1, src[:, :, None].expand_as(seqs))
            seqs[:, :, t] = tok
            stepper.reorder(src)
        for i in range(alive.shape[0]):
            if results[alive[i]] is None:
                results[alive[i]] = _best(seqs[i], scores[i], lengths[i])
    return [[t for t in r if t != eos_id] for r in results]


def _best(seqs, scores, lengths) -> list[int]:
    """Tokens of the hypothesis with the best length-normalised score (ties: lowest index)."""
    norm = scores / lengths
    j = int(norm.argmax())
    return seqs[j, : int(lengths[j])].tolist()


def _top_log_probs(h, head, k: int, chunk: int = 2048):
    """The ``k`` best (log-probability, id) pairs of each row of ``head(h)``, without writing
    the [rows, vocabulary] logits: the output layer runs ``chunk`` vocabulary rows at a time and
    each chunk's top-k and log-sum-exp are taken while it is still in cache (about a third
    faster than logits, log_softmax, topk at 160 rows on a CPU)."""
    weight, bias = head.weight, getattr(head, "bias", None)
    h = h.reshape(-1, h.shape[-1])
    tops, ids, maxes, sums = [], [], [], []
    for lo in range(0, weight.shape[0], chunk):
        logits = torch.nn.functional.linear(
            h, weight[lo: lo + chunk], None if bias is None else bias[lo: lo + chunk]).float()
        val, idx = logits.topk(min(k, logits.shape[-1]), dim=-1)
        m = val[:, :1]
        tops.append(val)
        ids.append(idx + lo)
        maxes.append(m)
        sums.append((logits - m).exp_().sum(dim=-1, keepdim=True))
    m, z = torch.cat(maxes, dim=1), torch.cat(sums, dim=1)
    top = m.amax(dim=1, keepdim=True)
    lse = top + (z * (m - top).exp()).sum(dim=1, keepdim=True).log()
    val, j = torch.cat(tops, dim=1).topk(k, dim=-1)
    return val - lse, torch.cat(ids, dim=1).gather(1, j)


def shares_prefix_cache(lm) -> bool:
    """Whether :func:`beam_search` decodes this LM with the shared-prefix GPT-2 decoder."""
    return _SharedPrefixGPT2.supports(lm)


def _stepper(lm, max_new_tokens: int, shared_prefix: bool | None):
    fast = _SharedPrefixGPT2.supports(lm)
    if shared_prefix and not fast:
        raise ValueError(f"shared_prefix decoding needs a GPT-2 LM, not {type(lm).__name__}")
    if fast and shared_prefix is not False:
        return _SharedPrefixGPT2(lm, max_new_tokens)
    return _LibraryCache(lm)


class _LibraryCache:
    """Any HF causal LM, through its own key/value cache (one cache row per hypothesis).

    Protocol shared with :class:`_SharedPrefixGPT2`: ``start(prefix [B,K,H], k)`` gives the k
    best (log-probability, id) pairs [B, k] of the first token; ``expand(w)`` makes ``w``
    hypotheses per image; ``step(tokens [n,w], k)`` gives those pairs [n*w, k] for the next
    token; ``reorder(src [n,w])`` after ranking (new hypothesis j continues hypothesis src[j]);
    ``keep(idx)`` drops finished images.
    """

    def __init__(self, lm):
        self.lm = lm
        self.cache_kw, self.last_only = hf.cache_kw(lm), hf.last_logits_only(lm)
        self.cache, self.w = None, 1

    def _run(self, k, **kw):
        out = self.lm(use_cache=True, **kw)
        self.cache = hf.returned_cache(out)
        return torch.log_softmax(out.logits[:, -1].float(), dim=-1).topk(k, dim=-1)

    def start(self, prefix, k: int):
        return self._run(k, inputs_embeds=prefix, **self.last_only)

    def expand(self, w: int):
        self.w = w
        self.cache = hf.cache_repeat(self.cache, w)                 # row b*W + j

    def step(self, tokens, k: int):
        return self._run(k, input_ids=tokens.reshape(-1, 1), **{self.cache_kw: self.cache})

    def reorder(self, src):
        n = src.shape[0]
        rows = (src + torch.arange(n, device=src.device)[:, None] * self.w).flatten()
        self.cache = hf.cache_select(self.cache, rows)

    def keep(self, idx):
        self.cache = hf.cache_select(self.cache, _hypothesis_rows(idx, self.w))


class _Recompute:
    """No cache: every step runs the prefix and all tokens so far through the LM, as the
    reference ClipCap's beam search does. Same protocol as :class:`_LibraryCache`."""

    def __init__(self, lm):
        self.lm, self.w = lm, 1
        self.emb = lm.get_input_embeddings()

    def _run(self, embeds, k: int):
        logits = self.lm(inputs_embeds=embeds, use_cache=False).logits[:, -1].float()
        return torch.log_softmax(logits, dim=-1).topk(k, dim=-1)

    def start(self, prefix, k: int):
        self.prefix = prefix
        return self._run(prefix, k)

    def expand(self, w: int):
        self.w = w
        self.prefix = self.prefix.repeat_interleave(w, dim=0)        # row b*W + j
        self.tokens = self.prefix.new_zeros(self.prefix.shape[0], 0, dtype=torch.long)

    def step(self, tokens, k: int):
        self.tokens = torch.cat([self.tokens, tokens.reshape(-1, 1)], dim=1)
        return self._run(torch.cat([self.prefix, self.emb(self.tokens)], dim=1), k)

    def reorder(self, src):
        n = src.shape[0]
        self.tokens = self.tokens[(src + torch.arange(n, device=src.device)[:, None] * self.w).flatten()]

    def keep(self, idx):
        rows = _hypothesis_rows(idx, self.w)
        self.prefix, self.tokens = self.prefix[rows], self.tokens[rows]


def _hypothesis_rows(groups, w: int):
    """Rows (image * W + j) of every hypothesis of the images ``groups``."""
    return (groups[:, None] * w + torch.arange(w, device=groups.device)).flatten()


class _SharedPrefixGPT2:
    """GPT-2 decoding with the prefix cached once per image and a never-reordered token cache.

    Runs the LM's own modules (ln_1, c_attn, c_proj, ln_2, mlp, ln_f, lm_head: GPT-2's checkpoint
    layout, the same in every transformers version) and replaces only the attention over the
    cache, whose score scale it takes from the config as GPT-2 defines it. Per layer it keeps
    the prefix keys/values [n, H, K, d] and the generated ones [n, H, T*W, d] where generated
    token t of beam slot j sits at t*W + j. A hypothesis's ancestry (the slot of its ancestor at
    each step, ``anc`` [n, W, T]) becomes an additive mask, so a beam reorder only permutes
    ``anc``. The attention computes all W slots of each step (W times the attention flops on
    generated positions, a few percent of a step) in exchange for moving no cache memory.
    """

    @staticmethod
    def supports(lm) -> bool:
        cfg = getattr(lm, "config", None)
        tr = getattr(lm, "transformer", None)
        return (getattr(cfg, "model_type", None) == "gpt2" and tr is not None
                and not getattr(cfg, "add_cross_attention", False))

    def __init__(self, lm, max_new_tokens: int):
        self.lm, self.tr = lm, lm.transformer
        self.heads = lm.config.n_head
        self.scales = _gpt2_attention_scales(lm.config, len(self.tr.h))
        self.max_steps = max_new_tokens
        self.kp = self.vp = self.kg = self.vg = None
        self.t = 0

    def _mlp(self, blk, h):
        """The block's MLP; GPT-2's ``gelu_new`` runs as torch's fused tanh-GELU (the same formula,
        which transformers itself offers as ``gelu_pytorch_tanh``), one pass instead of seven."""
        mlp = blk.mlp
        if type(mlp.act) is not NewGELUActivation:
            return mlp(h)
        return mlp.c_proj(F.gelu(mlp.c_fc(h), approximate="tanh"))

    def _split_heads(self, qkv):
        """[..., L, 3E] -> q, k, v as [..., H, L, d]."""
        e = qkv.shape[-1] // 3
        return [z.unflatten(-1, (self.heads, e // self.heads)).transpose(-3, -2)
                for z in qkv.split(e, dim=-1)]

    def start(self, prefix, k: int):
        n, length, e = prefix.shape
        self.prefix_len = length
        x = prefix + self.tr.wpe(torch.arange(length, device=prefix.device))
        self.kp, self.vp = [], []
        for blk, scale in zip(self.tr.h, self.scales):
            q, kk, v = self._split_heads(blk.attn.c_attn(blk.ln_1(x)))
            self.kp.append(kk.contiguous())
            self.vp.append(v.contiguous())
            a = F.scaled_dot_product_attention(q, kk, v, is_causal=True, scale=scale)
            x = x + blk.attn.c_proj(a.transpose(1, 2).reshape(n, length, e))
            x = x + self._mlp(blk, blk.ln_2(x))
        return _top_log_probs(self.tr.ln_f(x[:, -1]), self.lm.lm_head, k)

    def expand(self, w: int):
        self.w = w
        n = self.kp[0].shape[0]
        self.anc = torch.zeros(n, w, self.max_steps, dtype=torch.long, device=self.kp[0].device)
        self.kg = [None] * len(self.kp)
        self.vg = [None] * len(self.kp)
        self._grow(min(self.max_steps, 16))

    def _grow(self, steps: int):
        """Room for ``steps`` generated tokens (doubling: amortised, and no 67-step buffer for a
        batch whose captions end after ten)."""
        self.cap = steps
        used = self.t * self.w
        for i, ref in enumerate(self.kp):
            n, h, _, d = ref.shape
            for bufs in (self.kg, self.vg):
                new = ref.new_empty(n, h, steps * self.w, d)
                if used:
                    new[:, :, :used] = bufs[i][:, :, :used]
                bufs[i] = new

    def step(self, tokens, k: int):
        n, w = tokens.shape
        t = self.t
        if t == self.cap:
            self._grow(min(self.max_steps, 2 * self.cap))
        x = self.tr.wte(tokens) + self.tr.wpe.weight[self.prefix_len + t]  # [n, W, E]
        e = x.shape[-1]
        slots = torch.arange(w, device=tokens.device)
        self.anc[:, :, t] = slots
        hi = (t + 1) * w
        # slot j of step s is visible to hypothesis i iff it is i's ancestor at step s
        allowed = (self.anc[:, :, : t + 1, None] == slots).view(n, 1, w, hi)
        mask = torch.zeros(allowed.shape, dtype=x.dtype, device=x.device)
        mask.masked_fill_(~allowed, float("-inf"))
        kp = self.prefix_len
        for i, blk in enumerate(self.tr.h):
            q, kk, v = self._split_heads(blk.attn.c_attn(blk.ln_1(x)))   # [n, H, W, d]
            self.kg[i][:, :, t * w: hi] = kk
            self.vg[i][:, :, t * w: hi] = v
            kg, vg = self.kg[i][:, :, :hi], self.vg[i][:, :, :hi]
            s = torch.cat([q @ self.kp[i].transpose(-1, -2), q @ kg.transpose(-1, -2)], dim=-1)
            s = s.mul_(self.scales[i])
            s[..., kp:] += mask
            p = torch.softmax(s, dim=-1)
            a = p[..., :kp] @ self.vp[i] + p[..., kp:] @ vg                  # [n, H, W, d]
            x = x + blk.attn.c_proj(a.transpose(1, 2).reshape(n, w, e))
            x = x + self._mlp(blk, blk.ln_2(x))
        self.t += 1
        return _top_log_probs(self.tr.ln_f(x), self.lm.lm_head, k)

    def reorder(self, src):
        self.anc = self.anc.gather(1, src[:, :, None].expand_as(self.anc))

    def keep(self, idx):
        used = self.t * self.w
        self.kp = [z[idx] for z in self.kp]
        self.vp = [z[idx] for z in self.vp]
        self.anc = self.anc[idx]
        for bufs in (self.kg, self.vg):
            for i, z in enumerate(bufs):
                new = z.new_empty(idx.shape[0], *z.shape[1:])
                new[:, :, :used] = z[idx, :, :used]
                bufs[i] = new


def _gpt2_attention_scales(cfg, n_layers: int) -> list[float]:
    """GPT-2's attention-score scale of each layer, from its config: 1/sqrt(head width) when
    ``scale_attn_weights`` (the default), further divided by the layer's number (1-based) when
    ``scale_attn_by_inverse_layer_idx``."""
    head_dim = cfg.n_embd // cfg.n_head
    base = head_dim ** -0.5 if getattr(cfg, "scale_attn_weights", True) else 1.0
    by_layer = getattr(cfg, "scale_attn_by_inverse_layer_idx", False)
    return [base / (i + 1) if by_layer else base for i in range(n_layers)]


def generate_captions(model, tokenizer, feats, *, beam: int = 5, max_new_tokens: int = MAX_NEW_TOKENS,
                      batch_size: int = 32, stop_ids=None, precision: str = "fp32") -> list[str]:
    """Captions for [N, D] features, decoded ``batch_size`` images at a time under autocast in
    ``precision`` (bf16: the LM's matrix products in bfloat16; ranking and scores in float32)."""
    stop_ids = stop_ids if stop_ids is not None else stop_token_ids(tokenizer)
    eos = int(tokenizer.eos_token_id)
    model.eval()
    device = next(model.parameters()).device
    caps: list[str] = []
    for i in range(0, feats.shape[0], batch_size):
        chunk = feats[i: i + batch_size].to(device)
        with autocast(device, precision):
            out = beam_search(model, chunk, beam=beam, max_new_tokens=max_new_tokens, stop_ids=stop_ids, eos_id=eos)
        caps.extend(tokenizer.decode(ids, skip_special_tokens=True).strip() for ids in out)
    return caps
