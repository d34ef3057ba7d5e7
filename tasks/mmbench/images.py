"""Images that benchmarks ship as bytes (MMBench base64 cells, MMMU parquet) written to files.

Docs name images by path (the adapters and the predictions log never carry pixels), so embedded
images are decoded once into a cache folder keyed by the source file's path, size and mtime: a
second load reuses the files, a changed source gets a fresh folder.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path


def cache_root() -> Path:
    """``$SC_EVAL_HOME/images`` (default ``~/.cache/sc-eval/images``), like the world cache."""
    home = os.environ.get("SC_EVAL_HOME") or Path.home() / ".cache" / "sc-eval"
    return Path(home) / "images"


def cache_dir_for(source: Path, dataset: str) -> Path:
    st = Path(source).stat()
    key = f"{os.path.abspath(source)}|{st.st_size}|{st.st_mtime_ns}"
    return cache_root() / dataset / hashlib.sha256(key.encode()).hexdigest()[:16]


def image_ext(data: bytes) -> str:
    """File extension from the magic bytes (PIL opens by content, the name is for people)."""
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return ".png"
    if data[:3] == b"\xff\xd8\xff":
        return ".jpg"
    if data[:4] in (b"GIF8",):
        return ".gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    if data[:2] == b"BM":
        return ".bmp"
    return ".img"


def materialize(folder: Path, name: str, data: bytes) -> str:
    """Write ``data`` as ``folder/name<ext>`` unless it is already there; return the path."""
    from sc_eval.io import atomic_write_bytes

    path = Path(folder) / (name + image_ext(data))
    if not path.exists():
        atomic_write_bytes(path, data)
    return os.path.abspath(path)
