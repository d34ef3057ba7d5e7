"""Training data for the two stages: LLaVA json conversations -> (ids, labels, pixels).

The file layout is LLaVA's (LCS-558K for stage 1, mix665k for stage 2):
``[{"id", "image" (relative to the image folder, optional), "conversations": [{"from", "value"}]}]``.
Images are opened when a batch is built (never preloaded), padded to square with the encoder's
mean colour and passed through the encoder's own transform.
"""
from __future__ import annotations

import logging

import torch

from sc_eval.adapters.llava.model import image_tensor
from sc_eval.adapters.llava.templates import IMAGE_TOKEN, build_example, n_targets, truncate
from sc_eval.data.formats import read_llava_json
from sc_eval.data.images import load_image
from sc_eval.errors import DataError

log = logging.getLogger(__name__)


def read_conversations(path, image_root) -> list[dict]:
    """[{"doc_id", "image" (absolute path or None), "conversations"}] from a LLaVA json file."""
    return read_llava_json(path, image_root)


class ConversationData:
    """Indexable dataset of tokenised conversations; an example = (ids, labels, image path|None)."""

    def __init__(self, docs, tokenizer, template: str, max_length: int = 2048, source: str = "data"):
        self.items = []
        dropped = 0
        for d in docs:
            where = f"{source}, record {d['doc_id']}"
            conv = [dict(t) for t in d["conversations"]]
            has_tag = any(IMAGE_TOKEN in str(t.get("value", "")) for t in conv)
            if d.get("image") and not has_tag and conv:
                conv[0]["value"] = f"{IMAGE_TOKEN}\n{conv[0].get('value', '')}"  # as LLaVA's data has it
            elif has_tag and not d.get("image") and template != "plain":
                raise DataError(f"{where}: the text has {IMAGE_TOKEN} but the record names no image")
            ids, labels = build_example(conv, tokenizer, template, where=where)
            ids, labels = truncate(ids, labels, max_length)
            # An example with nothing to learn is LLaVA's silent zero loss: drop it, say so.
            if n_targets(labels) == 0:
                dropped += 1
                continue
            self.items.append((ids, labels, d.get("image")))
        if dropped:
            log.warning("%s: %d conversations have no answer tokens left after truncation to %d; skipped",
                        source, dropped, max_length)
        if not self.items:
            raise DataError(f"{source}: no usable conversation (all empty or truncated away)")

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def collate(examples, encoder, device):
    """(ids_list, labels_list, pixels [B,3,H,W]); text-only samples get a zero image they never use."""
    ids, labels, pixels = [], [], []
    blank = None
    for tok_ids, lab, img in examples:
        ids.append(tok_ids)
        labels.append(lab)
        if img is not None:
            pixels.append(image_tensor(encoder, load_image(img)))
        else:
            pixels.append(None)
    shape = next((p.shape for p in pixels if p is not None), None)
    if shape is None:
        return ids, labels, None
    blank = torch.zeros(shape)
    return ids, labels, torch.stack([p if p is not None else blank for p in pixels]).to(device)
