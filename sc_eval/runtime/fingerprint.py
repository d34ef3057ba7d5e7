"""Fingerprints: short names for everything a result, a cache entry or an artefact depends on.

A fingerprint is the sha256 of what it covers, cut to ``LENGTH`` (16) hex characters. Runs store
them (predictions' ``.meta.json``, ``results.json``, adapter configs) and refuse to mix work done
under another setup; caches name their files and folders by them.

Stored fingerprints are compared with :func:`same`, never with ``==``: two fingerprints of the
same content are prefixes of the same sha256, so one cut at another length (run directories
written when some fingerprints were cut to 20 characters) still matches.

The one digest kept whole is an encoder's (``Encoder.fingerprint``): the fingerprints of results,
adapters and feature caches hash it as part of their content, so its text must stay what it was
for theirs to.
"""
from __future__ import annotations

import hashlib
import json
import os

LENGTH = 16


class Hasher:
    """An incremental sha256: feed it what a fingerprint covers, in a fixed order; each feeding
    method returns the hasher, so calls chain."""

    def __init__(self):
        self._h = hashlib.sha256()

    def bytes(self, data: bytes) -> "Hasher":
        self._h.update(data)
        return self

    def text(self, text: str) -> "Hasher":
        return self.bytes(text.encode())

    def json(self, obj) -> "Hasher":
        """Canonical JSON: sorted keys, anything not JSON by its ``str``."""
        return self.text(json.dumps(obj, sort_keys=True, default=str))

    def tensors(self, state: dict) -> "Hasher":
        """Every tensor of a state dict in name order: ``name|dtype|shape|`` and its raw bytes
        (the same weights hash the same however they were loaded; non-tensors are skipped)."""
        import torch

        for name in sorted(state):
            t = state[name]
            if not torch.is_tensor(t):
                continue
            t = t.detach().to("cpu").contiguous()
            self.text(f"{name}|{t.dtype}|{tuple(t.shape)}|")
            if t.numel():
                self.bytes(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        return self

    def file(self, path: str | os.PathLike) -> "Hasher":
        """A file's contents, read 1 MiB at a time."""
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                self.bytes(chunk)
        return self

    def hex(self, length: int | None = LENGTH) -> str:
        """The fingerprint: the first ``length`` hex characters (``None``: the whole digest)."""
        return self._h.hexdigest()[:length]


def digest(obj) -> str:
    """The fingerprint of a JSON-able description (canonical JSON, see :meth:`Hasher.json`)."""
    return Hasher().json(obj).hex()


def precision_fields(precision: str) -> dict:
    """What ``--precision`` adds to a fingerprint's content: ``{"precision": p}``, and nothing for
    fp32, so that fingerprints made in fp32 stay what they were before precision was a setting
    (run directories and caches written then still match)."""
    return {} if precision == "fp32" else {"precision": precision}


def same(stored, new) -> bool:
    """Whether a stored fingerprint names what ``new`` names: equal, or, both at least
    ``LENGTH`` characters long, one a prefix of the other (one digest cut at two lengths)."""
    if stored is None or new is None:
        return stored is new
    stored, new = str(stored), str(new)
    if stored == new:
        return True
    if min(len(stored), len(new)) < LENGTH:
        return False
    return stored.startswith(new) or new.startswith(stored)
