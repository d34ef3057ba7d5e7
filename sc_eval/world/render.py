"""Draw a scene into a small RGB image, and encode it as JPEG or PNG bytes.

Shapes are drawn at 3x and downsampled with a box filter, which anti-aliases the edges so a
64 px image still shows a recognisable triangle or star. Words use Pillow's bundled font at a
size tied to the image side, shrunk until the word fits: large enough to be readable.
Encoding is deterministic for a given Pillow build (fixed quality, no metadata), which is what
makes two worlds of the same seed byte-identical.

By default every shape sits exactly on its anchor at one of two sizes on a flat background, so
a tower whose tokens are nearly linear in the pixels (a random-init one) already separates
shapes. ``style(jitter_pct, scale_pct, noise)`` makes the pictures harder for the writes inside
it: shapes moved by up to ``jitter_pct``% of the side and scaled by up to ``scale_pct``%, and
Gaussian pixel noise of standard deviation ``noise`` (0-255 levels), all drawn from the scene's
own content so the same seed still gives the same bytes. The limits keep every answer true:
positions stay apart, a big shape stays bigger than a small one, shapes stay inside the image.
"""
from __future__ import annotations

import io
import math
import random
import zlib
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from sc_eval.world.scene import ANCHORS, COLOURS, RADIUS, Scene

SUPERSAMPLE = 3
JPEG_QUALITY = 92


@dataclass(frozen=True)
class Style:
    jitter: float = 0.0  # fraction of the side
    scale: float = 0.0  # fraction of the radius
    noise: float = 0.0  # standard deviation, 0-255 levels

    def plain(self) -> bool:
        return not (self.jitter or self.scale or self.noise)


_STYLE: ContextVar[Style] = ContextVar("sc_world_render_style", default=Style())


@contextmanager
def style(jitter_pct: int = 0, scale_pct: int = 0, noise: int = 0):
    """Render harder pictures inside the block (see the module docstring); 0, 0, 0 is the default.
    WorldSizes checks the values against its RENDER_LIMITS."""
    token = _STYLE.set(Style(jitter_pct / 100.0, scale_pct / 100.0, float(noise)))
    try:
        yield
    finally:
        _STYLE.reset(token)


def _polygon(shape: str, cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    if shape == "triangle":
        # Equilateral, pointing up, centred on its bounding box so it fills the slot.
        h = r * 1.8
        return [(cx, cy - h / 2), (cx - r, cy + h / 2), (cx + r, cy + h / 2)]
    if shape == "star":
        pts = []
        for k in range(10):
            rad = r if k % 2 == 0 else r * 0.45
            a = -math.pi / 2 + k * math.pi / 5
            pts.append((cx + rad * math.cos(a), cy + rad * math.sin(a) + r * 0.08))
        return pts
    if shape == "cross":
        w = r * 0.36  # arm half-width: thick enough to survive downsampling
        return [(cx - w, cy - r), (cx + w, cy - r), (cx + w, cy - w), (cx + r, cy - w),
                (cx + r, cy + w), (cx + w, cy + w), (cx + w, cy + r), (cx - w, cy + r),
                (cx - w, cy + w), (cx - r, cy + w), (cx - r, cy - w), (cx - w, cy - w)]
    raise ValueError(f"unknown polygon shape {shape!r}")


def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float, fill) -> None:
    if shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif shape == "square":
        h = r * 0.88  # about the same area as the circle
        draw.rectangle([cx - h, cy - h, cx + h, cy + h], fill=fill)
    else:
        draw.polygon(_polygon(shape, cx, cy, r), fill=fill)


@lru_cache(maxsize=16)
def _font(px: int):
    try:
        return ImageFont.load_default(size=px)
    except TypeError:  # Pillow < 10.1: only the small bitmap font exists
        return ImageFont.load_default()


def _draw_word(img: Image.Image, word: str, side: int) -> None:
    """Centre `word` in the bottom band (y around 83% of the side), black, as large as fits."""
    draw = ImageDraw.Draw(img)
    px = int(side * 0.26)
    while True:
        font = _font(px)
        x0, y0, x1, y1 = draw.textbbox((0, 0), word, font=font)
        if (x1 - x0) <= side * 0.86 or px <= 6:
            break
        px -= max(1, px // 12)
    cx, cy = side * 0.5, side * 0.83
    draw.text((cx - (x0 + x1) / 2, cy - (y0 + y1) / 2), word, fill=(0, 0, 0), font=font)


def render(scene: Scene, size: int = 64) -> Image.Image:
    """The scene as a `size` x `size` RGB image."""
    st = _STYLE.get()
    seed = None if st.plain() else zlib.crc32(repr(scene).encode("utf-8"))
    rng = None if seed is None else random.Random(seed)
    big = size * SUPERSAMPLE
    img = Image.new("RGB", (big, big), scene.background)
    draw = ImageDraw.Draw(img)
    for o in scene.objects:
        ax, ay = ANCHORS[o.position]
        r = RADIUS[o.size]
        if rng is not None:
            r *= 1.0 + rng.uniform(-st.scale, st.scale)
            ax, ay = (min(max(c + rng.uniform(-st.jitter, st.jitter), r), 1.0 - r) for c in (ax, ay))
        _draw_shape(draw, o.shape, ax * big, ay * big, r * big, COLOURS[o.colour])
    if scene.word:
        _draw_word(img, scene.word, big)
    img = img.resize((size, size), Image.Resampling.BOX)
    if st.noise:
        a = np.asarray(img, dtype=np.float32)
        a = a + np.random.default_rng(seed).normal(0.0, st.noise, a.shape)
        img = Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8))
    return img


def jpeg_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=JPEG_QUALITY, subsampling=0)
    return buf.getvalue()


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False)
    return buf.getvalue()
