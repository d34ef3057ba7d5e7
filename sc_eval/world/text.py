"""Words about a scene: captions, VQA-style questions, and ten human-like answers.

Everything is derived from the scene, so text and pixels always agree. The variation mimics
the real datasets: COCO captions differ in order, detail and punctuation; VQAv2/TextVQA humans
answer with different case, articles ("a red"), number words ("two" vs "2"), synonyms
("grey"/"gray"), trailing periods and the occasional wrong answer. The canonical answer is
always the most frequent of the ten, as `multiple_choice_answer` is in VQAv2.
"""
from __future__ import annotations

from sc_eval.world.scene import COLOURS, POSITIONS, SHAPES, TEXT_COLOUR, Scene

NUMBER_WORDS = {0: "zero", 1: "one", 2: "two", 3: "three", 4: "four", 5: "five"}
WHERE = {"left": "on the left", "right": "on the right", "top": "at the top",
         "bottom": "at the bottom", "center": "in the center"}
PLURAL = {"cross": "crosses"}
SYNONYMS = {"gray": ["grey"], "cross": ["plus", "plus sign"], "circle": ["round"],
            "big": ["large"], "small": ["tiny", "little"], "square": ["box"]}
OPENERS = ["a picture of", "an image of", "there is", "a drawing of", "a white background with"]


def _pick(rng, seq):
    return seq[int(rng.integers(len(seq)))]


def an(word: str) -> str:
    """The indefinite article for `word`: 'an orange star', 'a red circle'."""
    return "an" if word[:1] in "aeiou" else "a"


def plural(shape: str, n: int) -> str:
    return shape if n == 1 else PLURAL.get(shape, shape + "s")


def join_and(parts: list[str]) -> str:
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def phrase(colour: str, shape: str, objs, with_size: bool = False, with_pos: bool = False) -> str:
    """'a big red circle on the left', 'two blue squares at the top and on the right'."""
    n = len(objs)
    size = f"{objs[0].size} " if with_size and n == 1 else ""
    first = size or colour
    head = f"{an(first)} {size}{colour} {shape}" if n == 1 else f"{NUMBER_WORDS[n]} {colour} {plural(shape, n)}"
    if with_pos:
        head += " " + join_and([WHERE[o.position] for o in objs])
    return head


def _finish(rng, text: str) -> str:
    # COCO captions: about half start with a capital, about half end with a period.
    if rng.random() < 0.5:
        text = text[0].upper() + text[1:]
    if rng.random() < 0.5:
        text += "."
    return text


def captions(scene: Scene, rng, k: int = 5) -> list[str]:
    """`k` (<= 5) different captions, each naming colour, shape and count; some the positions."""
    groups = scene.groups()
    word = f'the word "{scene.word}" written in {TEXT_COLOUR}' if scene.word else None
    with_pos = join_and([phrase(c, s, o, with_pos=True) for c, s, o in groups])
    shuffled = [groups[i] for i in rng.permutation(len(groups))]
    plain = join_and([phrase(c, s, o) for c, s, o in shuffled])
    sized = join_and([phrase(c, s, o, with_size=True) for c, s, o in groups])
    total = "a single shape" if scene.n == 1 else f"{NUMBER_WORDS[scene.n]} shapes"
    located = " and ".join(
        f"the {c} {plural(s, len(o))} {'is' if len(o) == 1 else 'are'} "
        + join_and([WHERE[x.position] for x in o]) for c, s, o in groups)
    out = [
        with_pos + (f" and {word}" if word else ""),
        plain + (f', with the word "{scene.word}"' if word else ""),
        f"{_pick(rng, OPENERS)} {sized}" + (f" and {word}" if word else ""),
        f"{total}: {plain}" + (f' and the text "{scene.word}"' if word else ""),
        located + (f' and "{scene.word}" is written at the bottom' if word else ""),
    ]
    order = rng.permutation(len(out))[:k]
    return [_finish(rng, out[i]) for i in order]


# ---- questions -------------------------------------------------------------------------------

def _q(question, answer, kind, answer_type, question_type):
    return {"question": question, "answer": answer, "kind": kind,
            "answer_type": answer_type, "question_type": question_type}


def vqa_candidates(scene: Scene, rng) -> list[dict]:
    """Every question this scene can answer unambiguously (VQAv2 style, lower-case answers)."""
    qs = []
    for shape in scene.shape_kinds():
        cols = {o.colour for o in scene.objects if o.shape == shape}
        if len(cols) == 1:
            qs.append(_q(f"What color is the {shape}?", cols.pop(), "colour", "other", "what color is the"))
    for o in scene.objects:
        qs.append(_q(f"What shape is {WHERE[o.position]}?", o.shape, "shape", "other", "what"))
    qs.append(_q("How many shapes are there?", str(scene.n), "number", "number", "how many"))
    colour = _pick(rng, list(COLOURS))
    qs.append(_q(f"How many {colour} shapes are in the image?", str(scene.count(colour=colour)),
                 "number", "number", "how many"))
    for c, s, objs in scene.groups():
        if len(objs) == 1:
            qs.append(_q(f"Where is the {c} {s}?", objs[0].position, "position", "other", "where is the"))
            qs.append(_q(f"Is the {c} {s} big or small?", objs[0].size, "size", "other", "is the"))
    # Presence, balanced: one present and one absent (colour, shape) pair.
    o = _pick(rng, scene.objects)
    qs.append(_q(f"Is there {an(o.colour)} {o.colour} {o.shape}?", "yes", "yesno", "yes/no", "is there a"))
    for _ in range(20):
        c, s = _pick(rng, list(COLOURS)), _pick(rng, SHAPES)
        if scene.count(c, s) == 0:
            qs.append(_q(f"Is there {an(c)} {c} {s}?", "no", "yesno", "yes/no", "is there a"))
            break
    qs += presence_questions(scene, rng)
    if scene.word:
        qs.append(_q("What word is written in the image?", scene.word, "word", "other", "what"))
    return qs


def presence_questions(scene: Scene, rng) -> list[dict]:
    """Object presence by shape alone (the POPE question form): one present, one absent."""
    s = _pick(rng, scene.shape_kinds())
    qs = [_q(f"Is there a {s} in the image?", "yes", "yesno", "yes/no", "is there a")]
    absent = [x for x in SHAPES if x not in scene.shape_kinds()]
    if absent:
        qs.append(_q(f"Is there a {_pick(rng, absent)} in the image?", "no", "yesno", "yes/no", "is there a"))
    return [qs[i] for i in rng.permutation(len(qs))]


def vqa_questions(scene: Scene, rng, k: int) -> list[dict]:
    """`k` distinct questions for one image (fewer if the scene offers fewer)."""
    cands = vqa_candidates(scene, rng)
    idx = rng.permutation(len(cands))[:k]
    return [cands[i] for i in sorted(idx)]


def _variants(answer: str, kind: str) -> list[str]:
    v = [answer.capitalize(), answer + "."] + SYNONYMS.get(answer, [])
    if kind == "number":
        word = NUMBER_WORDS.get(int(answer), answer)
        v += [word, word.capitalize()]
    elif kind == "colour":
        v += [f"{an(answer)} {answer}", f"{answer} color", f"it is {answer}"]
    elif kind == "shape":
        v += [f"a {answer}", f"{answer}s" if answer != "cross" else "crosses"]
    elif kind == "position":
        v += [WHERE[answer], f"{answer} side"]
    elif kind == "size":
        v += [f"{answer} one"]
    elif kind == "yesno":
        v += [answer.upper(), "yep" if answer == "yes" else "nope"]
    elif kind == "word":
        v += [answer.upper(), f"the word {answer}", f'"{answer}"']
    return [x for i, x in enumerate(v) if x != answer and x not in v[:i]]


def _wrong(answer: str, kind: str, rng) -> str:
    pool = {"colour": list(COLOURS), "shape": list(SHAPES), "number": ["0", "1", "2", "3", "4"],
            "position": list(POSITIONS), "size": ["big", "small"], "yesno": ["yes", "no"],
            "word": ["cat", "car", "sun", "son", "bird", "box"]}.get(kind, [answer])
    wrong = [x for x in pool if x != answer]
    return _pick(rng, wrong) if wrong else answer


def human_answers(answer: str, kind: str, rng) -> list[tuple[str, str]]:
    """Ten (answer, answer_confidence) pairs: 5-9 canonical, the rest variants or mistakes."""
    n_canon = int(rng.integers(5, 10))
    variants = _variants(answer, kind)
    out = [(answer, "yes")] * n_canon
    for _ in range(10 - n_canon):
        if rng.random() < 0.2:
            out.append((_wrong(answer, kind, rng), _pick(rng, ["maybe", "no", "yes"])))
        else:
            out.append((_pick(rng, variants), "yes" if rng.random() < 0.85 else "maybe"))
    return [out[i] for i in rng.permutation(10)]


def most_common(answers: list[str]) -> str:
    """The most frequent answer, ties broken by first occurrence (VQAv2's multiple_choice_answer)."""
    counts: dict[str, int] = {}
    for a in answers:
        counts[a] = counts.get(a, 0) + 1
    return max(counts, key=lambda a: (counts[a], -answers.index(a)))


def textvqa_questions(scene: Scene, rng) -> list[dict]:
    """Questions whose answer is the rendered word (TextVQA)."""
    forms = ["what word is written in the image?", "what does the text say?",
             "what is written at the bottom?", "what word is shown below the shapes?"]
    return [_q(_pick(rng, forms), scene.word, "word", "other", "what")]


# What an OCR engine misreads in a small rendered word (Rosetta's tokens on TextVQA are often
# wrong in exactly this way), one confusion per misread.
MISREADS = {"o": "0", "l": "1", "i": "l", "a": "o", "e": "c", "m": "rn", "n": "h", "c": "e",
            "s": "5", "b": "6", "t": "f", "r": "n", "h": "b", "d": "cl", "k": "x", "f": "t",
            "u": "v", "g": "9", "w": "vv", "p": "q", "y": "v"}


def ocr_tokens(word: str, rng) -> list[str]:
    """What OCR reports for a rendered word: right (60%, a tenth of those upper-cased), misread
    (25%: one character confused) or nothing (15%). Reading the image beats copying the token."""
    u = rng.random()
    if u < 0.6:
        return [word.upper() if rng.random() < 0.1 else word]
    if u < 0.85:
        spots = [i for i, ch in enumerate(word) if ch in MISREADS]
        i = spots[int(rng.integers(len(spots)))]
        return [word[:i] + MISREADS[word[i]] + word[i + 1:]]
    return []


def gqa_candidates(scene: Scene, rng) -> list[dict]:
    """GQA-style questions: capitalised, lower-case one-word answers, a full-sentence answer."""
    qs = []
    def add(question, answer, full, structural, semantic, detailed):
        qs.append({"question": question, "answer": answer, "fullAnswer": full,
                   "types": {"structural": structural, "semantic": semantic, "detailed": detailed}})
    for shape in scene.shape_kinds():
        cols = {o.colour for o in scene.objects if o.shape == shape}
        if len(cols) == 1:
            c = cols.pop()
            add(f"What color is the {shape}?", c, f"The {shape} is {c}.", "query", "attr", "color")
    for c, s, objs in scene.groups():
        if len(objs) == 1 and objs[0].position in ("left", "right"):
            p = objs[0].position
            add(f"On which side of the image is the {c} {s}?", p,
                f"The {c} {s} is on the {p} of the image.", "query", "rel", "positionQuery")
    o = _pick(rng, scene.objects)
    add(f"Is there {an(o.colour)} {o.colour} {o.shape} in the picture?", "yes",
        f"Yes, there is {an(o.colour)} {o.colour} {o.shape}.", "verify", "obj", "existAttr")
    for _ in range(20):
        c, s = _pick(rng, list(COLOURS)), _pick(rng, SHAPES)
        if scene.count(c, s) == 0:
            add(f"Is there {an(c)} {c} {s} in the picture?", "no",
                f"No, there is no {c} {s}.", "verify", "obj", "existAttrNot")
            break
    left, right = scene.at("left"), scene.at("right")
    if left and right and (left.colour, left.shape) != (right.colour, right.shape):
        a, b = (left, right) if rng.random() < 0.5 else (right, left)
        side = "left" if a is left else "right"
        add(f"Is the {a.colour} {a.shape} to the left or to the right of the {b.colour} {b.shape}?",
            side, f"The {a.colour} {a.shape} is to the {side} of the {b.colour} {b.shape}.",
            "choose", "rel", "positionChoose")
    return qs
