"""What an sc-shapes image contains: 1-3 coloured shapes at named positions, maybe a word.

A scene is plain data (no pixels): the renderer draws it and the text module describes it, so
captions and answers can never disagree with the image. All randomness comes from the
`numpy.random.Generator` passed in, never from global state: same seed, same world.

Layout: positions are fixed anchors (left/right/top/bottom at 18% from the border, center);
a multi-object scene never uses the center, and a scene with a word keeps the bottom free for
it. With radii of 17% (big) and 12% (small) of the image side, no two shapes overlap, so
shape and colour stay recoverable at 64 px.
"""
from __future__ import annotations

from dataclasses import dataclass

COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (235, 200, 30),
    "purple": (140, 60, 190),
    "orange": (245, 140, 30),
    "gray": (128, 128, 128),
    "brown": (130, 80, 40),
}
SHAPES = ("circle", "square", "triangle", "cross", "star")
SIZES = ("big", "small")
POSITIONS = ("left", "right", "top", "bottom", "center")
WORDS = ("cat", "dog", "sun", "box", "tree", "bird", "fish", "moon",
         "book", "cake", "frog", "lamp", "ship", "milk", "rain", "house")
TEXT_COLOUR = "black"

# Anchor of each position, as a fraction of the image side (x, y).
ANCHORS = {
    "left": (0.18, 0.5),
    "right": (0.82, 0.5),
    "top": (0.5, 0.18),
    "bottom": (0.5, 0.82),
    "center": (0.5, 0.5),
}
RADIUS = {"big": 0.17, "small": 0.12}
# Filled area of each shape in units of radius squared (as drawn by render.py).
AREA = {"circle": 3.14, "square": 3.10, "triangle": 1.80, "cross": 2.36, "star": 1.32}


def area(o: "Obj") -> float:
    """Area as a fraction of the image: what "largest shape" means for classification labels."""
    return AREA[o.shape] * RADIUS[o.size] ** 2


@dataclass(frozen=True)
class Obj:
    shape: str
    colour: str
    size: str
    position: str


@dataclass(frozen=True)
class Scene:
    objects: tuple[Obj, ...]
    word: str | None = None
    background: tuple[int, int, int] = (255, 255, 255)

    @property
    def n(self) -> int:
        return len(self.objects)

    def groups(self) -> list[tuple[str, str, list[Obj]]]:
        """Objects grouped by (colour, shape), in order of first appearance."""
        out: dict[tuple[str, str], list[Obj]] = {}
        for o in self.objects:
            out.setdefault((o.colour, o.shape), []).append(o)
        return [(c, s, objs) for (c, s), objs in out.items()]

    def shape_kinds(self) -> list[str]:
        return sorted({o.shape for o in self.objects}, key=SHAPES.index)

    def count(self, colour: str | None = None, shape: str | None = None) -> int:
        return sum(1 for o in self.objects
                   if (colour is None or o.colour == colour) and (shape is None or o.shape == shape))

    def at(self, position: str) -> Obj | None:
        return next((o for o in self.objects if o.position == position), None)

    def largest(self) -> Obj:
        """The object covering most pixels (first one on ties): the classification label."""
        return max(self.objects, key=area)


def _pick(rng, seq):
    return seq[int(rng.integers(len(seq)))]


def _background(rng) -> tuple[int, int, int]:
    # Near-white with a faint tint: enough variation that pixels are not trivially constant.
    base = int(rng.integers(236, 256))
    return tuple(min(255, base + int(rng.integers(-6, 7))) for _ in range(3))


def sample_scene(rng, word_prob: float = 0.3, force_word: bool = False) -> Scene:
    """One random scene: 1-3 objects, sometimes repeated (colour, shape) so counts vary."""
    colours = list(COLOURS)
    word = _pick(rng, WORDS) if (force_word or rng.random() < word_prob) else None
    n = int(rng.integers(1, 4))
    if word is not None:
        slots = ["top", "left", "right"]
    elif n == 1:
        slots = list(POSITIONS)
    else:
        slots = ["left", "right", "top", "bottom"]
    order = rng.permutation(len(slots))[:n]
    positions = [slots[i] for i in order]
    first = (_pick(rng, SHAPES), _pick(rng, colours))
    repeat = n > 1 and rng.random() < 0.45   # e.g. "two blue squares"
    objs = []
    for i, pos in enumerate(positions):
        if i == 0 or (repeat and i == 1) or (repeat and i == 2 and rng.random() < 0.5):
            shape, colour = first
        else:
            shape, colour = _pick(rng, SHAPES), _pick(rng, colours)
        size = "big" if rng.random() < 0.6 else "small"
        objs.append(Obj(shape, colour, size, pos))
    return Scene(tuple(objs), word, _background(rng))


def sample_class_scene(rng, colour: str) -> Scene:
    """A classification image: one big shape of `colour`, sometimes a small distractor whose
    area is well below the main shape's, so the label is the image's dominant colour."""
    pos = _pick(rng, POSITIONS if rng.random() < 0.7 else ("left", "right", "top", "bottom"))
    main = Obj(_pick(rng, SHAPES), colour, "big", pos)
    objs = [main]
    if pos != "center" and rng.random() < 0.3:
        others = [p for p in ("left", "right", "top", "bottom") if p != pos]
        other_colours = [c for c in COLOURS if c != colour]
        shapes = [s for s in SHAPES if area(Obj(s, colour, "small", pos)) < 0.7 * area(main)]
        if shapes:
            objs.append(Obj(_pick(rng, shapes), _pick(rng, other_colours), "small", _pick(rng, others)))
    return Scene(tuple(objs), None, _background(rng))
