"""Draw a scene into a small RGB image, and encode it as JPEG or PNG bytes.

Shapes are drawn at 3x and downsampled with a box filter, which anti-aliases the edges so a
64 px image still shows a recognisable triangle or star. Words use Pillow's bundled font at a
size tied to the image side, shrunk until the word fits: large enough to be readable.
Encoding is deterministic for a given Pillow build (fixed quality, no metadata), which is what
makes two worlds of the same seed byte-identical.
"""
from __future__ import annotations

import io
import math
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

from sc_eval.world.scene import ANCHORS, COLOURS, RADIUS, Scene

SUPERSAMPLE = 3
JPEG_QUALITY = 92


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
    big = size * SUPERSAMPLE
    img = Image.new("RGB", (big, big), scene.background)
    draw = ImageDraw.Draw(img)
    for o in scene.objects:
        ax, ay = ANCHORS[o.position]
        _draw_shape(draw, o.shape, ax * big, ay * big, RADIUS[o.size] * big, COLOURS[o.colour])
    if scene.word:
        _draw_word(img, scene.word, big)
    return img.resize((size, size), Image.Resampling.BOX)


def jpeg_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=JPEG_QUALITY, subsampling=0)
    return buf.getvalue()


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False)
    return buf.getvalue()
