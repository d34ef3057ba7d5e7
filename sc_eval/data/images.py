"""Open an image as RGB, or fail with a DataError that names the file.

Every task and the feature cache load images through here, so a missing or truncated file in
a 5,000-image benchmark is reported by name instead of as a PIL traceback deep in a batch.
"""
from __future__ import annotations

from pathlib import Path

from sc_eval.errors import DataError


def load_image(path) -> "PIL.Image.Image":  # noqa: F821
    """The image at `path`, fully decoded, in RGB mode (palette, grey, RGBA and CMYK converted)."""
    from PIL import Image, UnidentifiedImageError

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
