"""Images: open one as RGB, or fail with a DataError that names the file; write the images
that benchmarks ship as bytes to files.

Every task and the feature cache load images through here, so a missing or truncated file in
a 5,000-image benchmark is reported by name instead of as a PIL traceback deep in a batch.

Docs name images by path (the adapters and the predictions log never carry pixels), so images
embedded in a benchmark's files (MMBench's base64 cells, MMMU's parquet) are decoded once into a
cache folder keyed by the source file's path, size and mtime: a second load reuses the files, a
changed source gets a fresh folder.
"""
from __future__ import annotations

import os
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from sc_eval.errors import DataError
from sc_eval.io import atomic_write_bytes
from sc_eval.runtime.fingerprint import Hasher
from sc_eval.runtime.home import cache_dir


def load_image(path) -> Image.Image:
    """The image at `path`, fully decoded, in RGB mode (palette, grey, RGBA and CMYK converted)."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()  # decode now: truncated files fail here, not later in a worker
            return im.convert("RGB")
    except FileNotFoundError:
        raise DataError(f"{path}: image not found; check the data root or re-download the "
                        "benchmark's images") from None
    except IsADirectoryError:
        raise DataError(f"{path}: expected an image file but found a directory") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DataError(f"{path}: corrupt or unreadable image ({e}); replace or re-download "
                        "that file") from None


def image_suffix(data: bytes) -> str:
    """File extension from an encoded image's magic bytes (PIL opens by content; the name is for
    people and tools): .png, .jpg, .gif, .webp, .bmp, else .img."""
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return ".png"
    if data[:3] == b"\xff\xd8\xff":
        return ".jpg"
    if data[:4] == b"GIF8":
        return ".gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    if data[:2] == b"BM":
        return ".bmp"
    return ".img"


def embedded_images_dir(source: Path, dataset: str) -> Path:
    """The cache folder for the images embedded in ``source`` (a TSV, a parquet file)."""
    st = Path(source).stat()
    key = f"{os.path.abspath(source)}|{st.st_size}|{st.st_mtime_ns}"
    return cache_dir("images") / dataset / Hasher().text(key).hex()


def materialize(folder: Path, name: str, data: bytes) -> str:
    """Write ``data`` as ``folder/name<ext>`` unless it is already there; return the path."""
    path = Path(folder) / (name + image_suffix(data))
    if not path.exists():
        atomic_write_bytes(path, data)
    return os.path.abspath(path)
