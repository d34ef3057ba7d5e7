"""The runner-facing ClipCap adapter: ``fingerprint()`` and ``predict(docs, task)``.

It bundles a trained mapper + LM with the frozen encoder that feeds it. Features of the images
to caption can be handed in precomputed (the command takes them from the feature cache, so a
rerun never re-encodes); any image not among them is encoded on the fly.

Decoding settings: an explicit ``beam`` (the CLI's --beam/--greedy) wins; otherwise the task's
generation_kwargs (``num_beams``, ``max_new_tokens``) apply, defaulting to beam 5 and 67 tokens.
"""
from __future__ import annotations

import torch

from sc_eval.data.images import load_image
from sc_eval.runtime.fingerprint import Hasher, precision_fields
from sc_eval.runtime.precision import autocast

from .decode import MAX_NEW_TOKENS, generate_captions


class ClipCapAdapter:
    kind = "caption"

    def __init__(self, model, tokenizer, encoder, *, adapter_config: dict, beam: int | None = None,
                 max_new_tokens: int | None = None, decode_batch_size: int = 32, features=None,
                 precision: str = "fp32"):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.encoder = encoder
        self.adapter_config = adapter_config
        self.beam = beam
        self.max_new_tokens = max_new_tokens
        self.decode_batch_size = decode_batch_size
        self.precision = precision  # autocast of decoding and of encoding images not handed in
        self._features = dict(features or {})  # image path -> [D] tensor
        self._fp = None

    def fingerprint(self) -> str:
        """Encoder + mapper weights + LM + decoding overrides: what changes a caption."""
        if self._fp is None:
            h = Hasher().text(str(getattr(self.encoder, "fingerprint", "")))
            for k, v in sorted(self.model.mapper.state_dict().items()):
                h.text(k).bytes(v.detach().cpu().contiguous().numpy().tobytes())
            if not self.model.lm_frozen:
                for k, v in sorted(self.model.lm.state_dict().items()):
                    h.text(k).bytes(v.detach().cpu().contiguous().numpy().tobytes())
            decoding = {"lm": self.adapter_config.get("lm_fingerprint"), "mapper": self.adapter_config.get("mapper"),
                        "beam": self.beam, "max_new_tokens": self.max_new_tokens, **precision_fields(self.precision)}
            self._fp = "clipcap-" + h.json(decoding).hex()
        return self._fp

    def decoding(self, task=None) -> tuple[int, int]:
        kw = dict(getattr(task, "generation_kwargs", None) or {})
        beam = self.beam if self.beam is not None else int(kw.get("num_beams", 5))
        mnt = self.max_new_tokens if self.max_new_tokens is not None else int(kw.get("max_new_tokens",
                                                                                     MAX_NEW_TOKENS))
        return beam, mnt

    def features(self, paths):
        """[N, D] features for image paths: precomputed ones, the rest encoded now."""
        missing = [p for p in dict.fromkeys(paths) if p not in self._features]
        if missing:
            with torch.inference_mode(), autocast(self.encoder.device, self.precision):
                for i in range(0, len(missing), 64):
                    chunk = missing[i: i + 64]
                    x = torch.stack([self.encoder.transform(load_image(p)) for p in chunk])
                    out = self.encoder.forward_pooled(x).float().cpu()
                    self._features.update(zip(chunk, out))
        return torch.stack([self._features[p] for p in paths])

    def caption_features(self, feats, task=None) -> list[str]:
        beam, mnt = self.decoding(task)
        return generate_captions(self.model, self.tokenizer, feats, beam=beam, max_new_tokens=mnt,
                                 batch_size=self.decode_batch_size, precision=self.precision)

    def predict(self, docs, task) -> list[str]:
        if not docs:
            return []
        feats = self.features([str(d["image"]) for d in docs])
        return self.caption_features(feats, task)
