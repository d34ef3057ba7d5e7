"""Prompt templates for zero-shot classifiers: CLIP's 80 ImageNet prompts by default.

A classifier weight is the normalised mean of the text embeddings of every template filled with
the class name. Users pass their own set as a text file, one template per line with ``{}``
where the class name goes (blank lines and lines starting with ``#`` are skipped).
"""
from __future__ import annotations

from pathlib import Path

from sc_eval.errors import ConfigError, DataError

# The 80 prompt templates OpenAI published with CLIP for ImageNet (prompt ensembling).
OPENAI_IMAGENET_TEMPLATES = (
    "a bad photo of a {}.", "a photo of many {}.", "a sculpture of a {}.",
    "a photo of the hard to see {}.", "a low resolution photo of the {}.", "a rendering of a {}.",
    "graffiti of a {}.", "a bad photo of the {}.", "a cropped photo of the {}.", "a tattoo of a {}.",
    "the embroidered {}.", "a photo of a hard to see {}.", "a bright photo of a {}.",
    "a photo of a clean {}.", "a photo of a dirty {}.", "a dark photo of the {}.", "a drawing of a {}.",
    "a photo of my {}.", "the plastic {}.", "a photo of the cool {}.", "a close-up photo of a {}.",
    "a black and white photo of the {}.", "a painting of the {}.", "a painting of a {}.",
    "a pixelated photo of the {}.", "a sculpture of the {}.", "a bright photo of the {}.",
    "a cropped photo of a {}.", "a plastic {}.", "a photo of the dirty {}.",
    "a jpeg corrupted photo of a {}.", "a blurry photo of the {}.", "a photo of the {}.",
    "a good photo of the {}.", "a rendering of the {}.", "a {} in a video game.", "a photo of one {}.",
    "a doodle of a {}.", "a close-up photo of the {}.", "a photo of a {}.", "the origami {}.",
    "the {} in a video game.", "a sketch of a {}.", "a doodle of the {}.", "a origami {}.",
    "a low resolution photo of a {}.", "the toy {}.", "a rendition of the {}.",
    "a photo of the clean {}.", "a photo of a large {}.", "a rendition of a {}.",
    "a photo of a nice {}.", "a photo of a weird {}.", "a blurry photo of a {}.", "a cartoon {}.",
    "art of a {}.", "a sketch of the {}.", "a embroidered {}.", "a pixelated photo of a {}.",
    "itap of the {}.", "a jpeg corrupted photo of the {}.", "a good photo of a {}.", "a plushie {}.",
    "a photo of the nice {}.", "a photo of the small {}.", "a photo of the weird {}.",
    "the cartoon {}.", "art of the {}.", "a drawing of the {}.", "a photo of the large {}.",
    "a black and white photo of a {}.", "the plushie {}.", "a dark photo of a {}.", "itap of a {}.",
    "graffiti of the {}.", "a toy {}.", "itap of my {}.", "a photo of a cool {}.",
    "a photo of a small {}.", "a tattoo of the {}.",
)


def load_templates(path: str | Path | None = None) -> list[str]:
    """The OpenAI set when ``path`` is None, else the file's templates (each must contain ``{}``)."""
    if path is None:
        return list(OPENAI_IMAGENET_TEMPLATES)
    path = Path(path)
    if not path.is_file():
        raise DataError(f"--templates {path}: file not found (one template per line, with {{}} for the class)")
    out = []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DataError(f"--templates {path}: not a text file (not UTF-8); give one template per line, "
                        "with {} for the class") from None
    for n, line in enumerate(text.splitlines(), 1):
        t = line.strip()
        if not t or t.startswith("#"):
            continue
        if t.count("{}") != 1:
            raise ConfigError(f"{path}:{n}: template {t!r} must contain exactly one '{{}}' for the class name")
        out.append(t)
    if not out:
        raise DataError(f"--templates {path}: no templates in the file")
    return out
