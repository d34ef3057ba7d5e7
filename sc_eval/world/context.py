"""Shared state of one world being written: root, seeded random streams, counts, text corpus.

Each part of the world draws from its own random stream, derived from (seed, part name), so
resizing one part (more GQA images, say) never changes the pixels or text of another.
"""
from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sc_eval.io import atomic_write_bytes, atomic_write_text
from sc_eval.world.sizes import WorldSizes


@dataclass
class Item:
    """One rendered image: its official id, its scene and its path relative to the world root."""

    id: object
    scene: object
    path: str
    extra: dict = field(default_factory=dict)


class Context:
    def __init__(self, root: Path, seed: int, sizes: WorldSizes):
        self.root = Path(root)
        self.seed = int(seed)
        self.sizes = sizes
        self.counts: dict = {}
        self.corpus: list[str] = []

    def rng(self, part: str):
        return np.random.default_rng([self.seed, zlib.crc32(part.encode("utf-8"))])

    def write_image(self, rel: str, data: bytes) -> None:
        # Images are written plainly (no fsync each): a world is made atomic as a whole by
        # ensure_world (temp directory + rename) and world.json is written last.
        p = self.root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)

    def write_json(self, rel: str, obj, indent: int | None = None) -> None:
        text = json.dumps(obj, indent=indent, ensure_ascii=False)
        atomic_write_text(self.root / rel, text + "\n")

    def write_jsonl(self, rel: str, records) -> None:
        lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        atomic_write_text(self.root / rel, lines)

    def write_bytes(self, rel: str, data: bytes) -> None:
        atomic_write_bytes(self.root / rel, data)

    def add_text(self, *lines: str) -> None:
        """Add training-split text to the corpus (never held-out captions or questions)."""
        self.corpus.extend(x for x in lines if x)


def unique_ints(rng, n: int, low: int, high: int, exclude=()) -> list[int]:
    """`n` distinct integers in [low, high) not in `exclude`, in random order."""
    taken = set(exclude)
    out: list[int] = []
    while len(out) < n:
        batch = rng.integers(low, high, size=2 * (n - len(out)) + 8)
        for v in batch.tolist():
            if v not in taken:
                taken.add(v)
                out.append(v)
                if len(out) == n:
                    break
    return out
