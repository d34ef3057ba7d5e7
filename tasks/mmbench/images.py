"""Images that benchmarks ship as bytes (MMBench base64 cells, MMMU parquet) written to files.

Docs name images by path (the adapters and the predictions log never carry pixels), so embedded
images are decoded once into a cache folder keyed by the source file's path, size and mtime: a
second load reuses the files, a changed source gets a fresh folder.
"""
from __future__ import annotations

import os
from pathlib import Path

from sc_eval.data.images import image_suffix
from sc_eval.runtime.fingerprint import Hasher
from sc_eval.runtime.home import cache_dir


def cache_dir_for(source: Path, dataset: str) -> Path:
    st = Path(source).stat()
    key = f"{os.path.abspath(source)}|{st.st_size}|{st.st_mtime_ns}"
    return cache_dir("images") / dataset / Hasher().text(key).hex()


def materialize(folder: Path, name: str, data: bytes) -> str:
    """Write ``data`` as ``folder/name<ext>`` unless it is already there; return the path."""
    from sc_eval.io import atomic_write_bytes

    path = Path(folder) / (name + image_suffix(data))
    if not path.exists():
        atomic_write_bytes(path, data)
    return os.path.abspath(path)
