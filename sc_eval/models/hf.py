"""The calls into transformers models whose form differs across the versions sc-eval supports.

pyproject promises a range of transformers releases (see docs/compat.md). Within it the keyword
for a model's dtype, the name of the cache argument, the keyword that limits the logits to the
last position, and the type of the key/value cache a model returns all changed. Each helper
here detects what the installed library does (a keyword in a forward's signature, the type of
a returned object, a refused keyword) or avoids the changed API altogether; none reads a version
number. The adapters (ClipCap, LLaVA) go through these helpers, and ``make test-compat`` runs
their tests against the oldest promised versions as ``make test`` does against the newest.
"""
from __future__ import annotations

import inspect
import logging

import torch

log = logging.getLogger(__name__)


def from_pretrained(cls, path, dtype, **kwargs):
    """``cls.from_pretrained(path, ...)`` with the weights in ``dtype``, whatever the installed
    transformers calls that keyword: ``dtype`` now, ``torch_dtype`` in older releases (which
    refuse ``dtype`` with a TypeError before reading any weights)."""
    try:
        return cls.from_pretrained(path, dtype=dtype, **kwargs)
    except TypeError as e:
        if "dtype" not in str(e):
            raise
    return cls.from_pretrained(path, torch_dtype=dtype, **kwargs)


def core_model(llm):
    """The transformers model itself: a PEFT wrapper's base model (its LoRA layers in place)."""
    return llm.get_base_model() if hasattr(llm, "get_base_model") else llm


def forward_params(llm) -> set[str]:
    """Named arguments of the model's own forward (through a PEFT wrapper, whose forward takes
    ``**kwargs`` and passes them on)."""
    return set(inspect.signature(core_model(llm).forward).parameters)


def cache_kw(llm) -> str:
    """The forward keyword that takes a key/value cache: ``cache`` where the model's forward
    names it so, else ``past_key_values``."""
    return "cache" if "cache" in forward_params(llm) else "past_key_values"


def last_logits_only(llm) -> dict:
    """Forward keywords that make the model compute logits for the last position only
    (``logits_to_keep=1``, formerly ``num_logits_to_keep=1``), or {} when it takes neither."""
    params = forward_params(llm)
    for name in ("logits_to_keep", "num_logits_to_keep"):
        if name in params:
            return {name: 1}
    return {}


def returned_cache(out):
    """The key/value cache of a forward's output, under either of its names."""
    c = getattr(out, "cache", None)
    return c if c is not None else getattr(out, "past_key_values", None)


def cache_resizable(cache) -> bool:
    """Whether :func:`cache_repeat` and :func:`cache_select` can change ``cache``'s batch rows."""
    return (hasattr(cache, "batch_repeat_interleave") and hasattr(cache, "batch_select_indices")) \
        or (isinstance(cache, (tuple, list)) and all(isinstance(layer, (tuple, list)) for layer in cache))


def cache_repeat(cache, n: int):
    """Each batch row of ``cache`` repeated ``n`` times in place (row b -> rows b*n .. b*n+n-1).

    A cache object does it itself; a legacy cache (a tuple per layer of key and value tensors,
    what older releases return unless given a cache object) is rebuilt. Returns the cache to use.
    """
    if hasattr(cache, "batch_repeat_interleave"):
        cache.batch_repeat_interleave(n)
        return cache
    return _map_legacy(cache, lambda t: t.repeat_interleave(n, dim=0))


def cache_select(cache, rows):
    """The batch rows ``rows`` (a 1-D index tensor, repeats allowed) of ``cache``, in that order.
    Returns the cache to use (a cache object changes in place)."""
    if hasattr(cache, "batch_select_indices"):
        cache.batch_select_indices(rows)
        return cache
    return _map_legacy(cache, lambda t: t.index_select(0, rows))


def _map_legacy(cache, fn):
    if not isinstance(cache, (tuple, list)):
        raise TypeError(f"unsupported key/value cache type {type(cache).__name__}")
    return tuple(tuple(fn(t) for t in layer) for layer in cache)


def decoder_body(llm):
    """The decoder stack of a causal LM: the module whose ``last_hidden_state`` the output head
    turns into logits (``get_decoder()``, else the ``base_model`` backbone), found through a PEFT
    wrapper; None when the model exposes neither."""
    core = core_model(llm)
    for get in (lambda: core.get_decoder(), lambda: core.base_model):
        try:
            body = get()
        except (AttributeError, NotImplementedError):
            continue
        if body is not None and body is not core:
            return body
    return None


def logits_are_head_of_body(llm, body) -> bool:
    """Whether the LM's logits are exactly its output layer applied to ``body``'s last hidden
    states, checked once on a few tokens (eval mode, no gradients).

    True for Llama, Vicuna, Mistral, GPT-2; False for models that rescale or soft-cap their
    logits after the output layer, whose loss then has to come from the model's own forward.
    """
    head = llm.get_output_embeddings()
    if body is None or head is None:
        return False
    emb = llm.get_input_embeddings()
    n = min(8, emb.weight.shape[0])
    ids = torch.arange(n, device=emb.weight.device)[None]
    was_training = llm.training
    llm.eval()
    try:
        with torch.no_grad():
            want = llm(input_ids=ids, use_cache=False).logits.float()
            got = head(body(input_ids=ids, use_cache=False).last_hidden_state).float()
    finally:
        llm.train(was_training)
    if got.shape != want.shape:
        return False
    tol = 1e-3 * float(want.abs().max()) + 1e-6
    return bool(torch.allclose(got, want, rtol=1e-3, atol=tol))
