"""Writers for the rest of the LLaVA battery: VizWiz, MME, MMBench, SEED-Bench and MMMU.

Each writes the file layout the task's loader reads from the real download (tasks/<name>/), at
the task's default path under the world root, so `sc-eval llava --tasks all` runs every
benchmark end to end on the embedded world. Every question is about the picture (colour, shape,
count, position, the rendered word), and answers are balanced by construction: option letters
are dealt in turn (A, B, C, D, A, ...) and MME's yes/no pairs hold one Yes and one No, so a model
that ignores the image scores chance and a good encoder can beat a random one.

The LLaVA stage-2 conversations in the benchmarks' own formats (lettered options -> letter,
yes/no -> Yes/No, "unanswerable" for a blank or blurred photo) are built from TRAINING images
drawn for that purpose alone: no evaluation image or question is ever trained on.
"""
from __future__ import annotations

import base64
import dataclasses
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import ImageFilter

from sc_eval.world.context import Context
from sc_eval.world.render import jpeg_bytes, png_bytes, render
from sc_eval.world.scene import COLOURS, POSITIONS, SHAPES, WORDS, Scene, sample_scene
from sc_eval.world.text import NUMBER_WORDS, WHERE, human_answers, vqa_questions
from sc_eval.world.writers import SHORT_ANSWER, conversation

MC_SUFFIX = "\nAnswer with the option's letter from the given choices directly."
UNANSWERABLE_HINT = "\nWhen the provided information is insufficient, respond with 'Unanswerable'."
ASK_YES_NO = " Please answer yes or no."
LETTERS = "ABCDE"
MME_FOLDER = "mme/MME_Benchmark_release_version"
# Things everyone knows the colour of (MME commonsense_reasoning, asked about a shape's colour).
COLOUR_OF = {"red": "a ripe tomato", "green": "fresh grass", "blue": "a clear summer sky",
             "yellow": "a ripe banana", "purple": "a plum", "orange": "a carrot",
             "gray": "an elephant", "brown": "milk chocolate"}
PLACE = {"left": "on the left side of the image", "right": "on the right side of the image",
         "top": "at the top of the image", "bottom": "at the bottom of the image",
         "center": "in the center of the image"}


@dataclass
class Battery:
    """What the stage-2 training set and the LM corpus gain from this module."""

    conversations: list[dict] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)


def _pick(rng, seq):
    return seq[int(rng.integers(len(seq)))]


def _shuffled(rng, seq) -> list:
    seq = list(seq)
    return [seq[i] for i in rng.permutation(len(seq)).tolist()]


# ---- multiple-choice questions shared by MMBench, SEED-Bench, MMMU and training -----------------

def _unique(scene: Scene) -> list:
    """Objects alone of their (colour, shape): "the red circle" names exactly one of them."""
    return [objs[0] for _, _, objs in scene.groups() if len(objs) == 1]


def choice_question(scene: Scene, kind: str, rng) -> tuple[str, str, list[str]] | None:
    """(question, right option, pool of wrong options) about `scene`, None if it cannot ask it."""
    if kind == "colour":
        o = _pick(rng, scene.objects)
        return f"What color is the shape {WHERE[o.position]}?", o.colour, list(COLOURS)
    if kind == "shape":
        o = _pick(rng, scene.objects)
        return f"Which shape is {WHERE[o.position]}?", o.shape, list(SHAPES)
    if kind == "count":
        return "How many shapes are in the image?", str(scene.n), ["1", "2", "3", "4"]
    if kind == "position":
        objs = _unique(scene)
        if not objs:
            return None
        o = _pick(rng, objs)
        return f"Where is the {o.colour} {o.shape}?", WHERE[o.position], [WHERE[p] for p in POSITIONS]
    if kind == "word":
        if not scene.word:
            return None
        return "What word is written in the image?", scene.word, list(WORDS)
    if kind == "relation":
        left, right = scene.at("left"), scene.at("right")
        if not left or not right or (left.colour, left.shape) == (right.colour, right.shape):
            return None
        a, b = (left, right) if rng.random() < 0.5 else (right, left)
        side = "left" if a is left else "right"
        return (f"Is the {a.colour} {a.shape} to the left or to the right of the {b.colour} {b.shape}?",
                side, ["left", "right"])
    raise ValueError(f"unknown question kind {kind!r}")


def _scene_for(kind: str, rng) -> tuple[Scene, tuple]:
    """A fresh scene that can answer a `kind` question, and that question."""
    while True:
        scene = sample_scene(rng, word_prob=1.0 if kind == "word" else 0.3)
        q = choice_question(scene, kind, rng)
        if q is not None:
            return scene, q


def deal_options(right: str, pool: list[str], n: int, answer: int, rng) -> list[str]:
    """`n` distinct options with `right` at index `answer`, the others drawn from `pool`."""
    wrong = _shuffled(rng, [x for x in pool if x != right])[: n - 1]
    return wrong[:answer] + [right] + wrong[answer:]


def lettered(question: str, options: list[str]) -> str:
    return question + "".join(f"\n{LETTERS[i]}. {o}" for i, o in enumerate(options))


# ---- VizWiz ----------------------------------------------------------------------------------------

UNANSWERABLE_QUESTIONS = ["What color is this?", "What is this?", "What does this say?",
                          "How many shapes are there?", "What shape is this?"]


def _unanswerable(scene: Scene, rng, size: int):
    """(image, question) nobody could answer: an empty photo, or one blurred past recognition
    (then not asked its colour, which a blur keeps)."""
    if rng.random() < 0.5:
        return render(Scene((), None, scene.background), size), _pick(rng, UNANSWERABLE_QUESTIONS)
    img = render(scene, size).filter(ImageFilter.GaussianBlur(radius=size * 0.2))
    return img, _pick(rng, [q for q in UNANSWERABLE_QUESTIONS if "color" not in q])


def write_vizwiz(ctx: Context) -> None:
    """vizwiz/{val,test}.json + vizwiz/{val,test}/VizWiz_<split>_%08d.jpg; one question per
    image. A quarter of val (exactly: round(n / 4)) is unanswerable, answered by 7-10 people
    "unanswerable" and the rest "unsuitable"; test has no answers, as upstream."""
    rng, size = ctx.rng("vizwiz"), ctx.sizes.image_size
    counts = {}
    for split, n in (("val", ctx.sizes.vizwiz_val), ("test", ctx.sizes.vizwiz_test)):
        blind = set(rng.permutation(n)[: round(n / 4)].tolist())
        records = []
        for i in range(n):
            name = f"VizWiz_{split}_{i:08d}.jpg"
            scene = sample_scene(rng)
            if i in blind:
                img, question = _unanswerable(scene, rng, size)
                k = int(rng.integers(7, 11))
                answers = ["unanswerable"] * k + ["unsuitable"] * (10 - k)
                answers = [(a, "yes") for a in _shuffled(rng, answers)]
                rec = {"image": name, "question": question, "answerable": 0, "answer_type": "unanswerable"}
            else:
                img = render(scene, size)
                q = vqa_questions(scene, rng, 1)[0]
                question = q["question"]
                answers = human_answers(q["answer"], q["kind"], rng)
                answer_type = {"yes/no": "yes/no", "number": "number"}.get(q["answer_type"], "other")
                rec = {"image": name, "question": question, "answerable": 1, "answer_type": answer_type}
            ctx.write_image(f"vizwiz/{split}/{name}", jpeg_bytes(img))
            if split == "val":
                rec["answers"] = [{"answer": a, "answer_confidence": c} for a, c in answers]
            else:
                rec = {"image": name, "question": question}
            records.append(rec)
        ctx.write_json(f"vizwiz/{split}.json", records)
        counts[split] = {"questions": n, **({"unanswerable": len(blind)} if split == "val" else {})}
    ctx.counts["vizwiz"] = counts


# ---- MME -------------------------------------------------------------------------------------------

def _yes_no_pair(scene: Scene, category: str, rng) -> tuple[str, str] | None:
    """(question whose answer is Yes, question whose answer is No) for one MME category."""
    if category == "existence":
        have = scene.shape_kinds()
        absent = [s for s in SHAPES if s not in have]
        return f"Is there a {_pick(rng, have)} in this image?", f"Is there a {_pick(rng, absent)} in this image?"
    if category == "count":
        wrong = _pick(rng, [k for k in (1, 2, 3, 4) if k != scene.n])
        return tuple("Is there only one shape in the image?" if k == 1
                     else f"Are there {NUMBER_WORDS[k]} shapes in the image?" for k in (scene.n, wrong))
    if category == "position":
        objs = _unique(scene)
        if not objs:
            return None
        o = _pick(rng, objs)
        wrong = _pick(rng, [p for p in POSITIONS if p != o.position])
        return (f"Is the {o.colour} {o.shape} {PLACE[o.position]}?",
                f"Is the {o.colour} {o.shape} {PLACE[wrong]}?")
    if category in ("color", "commonsense_reasoning"):
        o = _pick(rng, scene.objects)
        wrong = _pick(rng, [c for c in COLOURS if c != o.colour])
        if category == "color":
            return tuple(f"Is the shape {WHERE[o.position]} {c}?" for c in (o.colour, wrong))
        return tuple(f"Does the shape {WHERE[o.position]} have the color of {COLOUR_OF[c]}?"
                     for c in (o.colour, wrong))
    if category == "OCR":
        wrong = _pick(rng, [w for w in WORDS if w != scene.word])
        return f'Is the word in the image "{scene.word}"?', f'Is the word in the image "{wrong}"?'
    if category == "numerical_calculation":
        a, b = (int(x) for x in scene.word.split("+"))
        wrong = a + b + _pick(rng, [-2, -1, 1, 2])
        return tuple(f"Is the answer to the arithmetic question in the image {v}?" for v in (a + b, wrong))
    raise ValueError(f"no MME questions for category {category!r}")


# The categories the world can ask about (the metric's names); the other seven need photos.
MME_CATEGORIES = ("existence", "count", "position", "color", "OCR",
                  "numerical_calculation", "commonsense_reasoning")


def _mme_scene(category: str, rng) -> Scene:
    if category == "OCR":
        return sample_scene(rng, force_word=True)
    if category == "numerical_calculation":
        a, b = int(rng.integers(1, 6)), int(rng.integers(1, 6))
        return dataclasses.replace(sample_scene(rng, force_word=True), word=f"{a}+{b}")
    return sample_scene(rng, word_prob=0.0)


def write_mme(ctx: Context) -> None:
    """<MME_FOLDER>/<category>/<stem>.{jpg,png} + <stem>.txt: two lines "question<TAB>Yes|No"
    per image (one of each, in random order), each question ending " Please answer yes or no."."""
    rng, size = ctx.rng("mme"), ctx.sizes.image_size
    counts = {}
    for category in MME_CATEGORIES:
        for k in range(ctx.sizes.mme_images):
            while True:
                scene = _mme_scene(category, rng)
                pair = _yes_no_pair(scene, category, rng)
                if pair is not None:
                    break
            lines = [(pair[0], "Yes"), (pair[1], "No")]
            if rng.random() < 0.5:
                lines.reverse()
            stem = f"{category}/{k + 1:04d}"
            img = render(scene, size)
            if category in ("OCR", "numerical_calculation"):
                ctx.write_image(f"{MME_FOLDER}/{stem}.png", png_bytes(img))
            else:
                ctx.write_image(f"{MME_FOLDER}/{stem}.jpg", jpeg_bytes(img))
            text = "".join(f"{q}{ASK_YES_NO}\t{a}\n" for q, a in lines)
            ctx.write_bytes(f"{MME_FOLDER}/{stem}.txt", text.encode("utf-8"))
        counts[category] = 2 * ctx.sizes.mme_images
    ctx.counts["mme"] = counts


# ---- MMBench ---------------------------------------------------------------------------------------

# kind -> (options, MMBench category, l2-category)
MMBENCH_KINDS = {
    "colour": (4, "attribute_recognition", "finegrained_perception (instance-level)"),
    "shape": (4, "object_localization", "finegrained_perception (instance-level)"),
    "word": (3, "ocr", "finegrained_perception (instance-level)"),
    "relation": (2, "spatial_relationship", "finegrained_perception (cross-instance)"),
}
MMBENCH_COLUMNS = ["index", "question", "hint", "A", "B", "C", "D", "answer", "category",
                   "l2-category", "image", "source", "split", "comment"]


def _tsv_cell(value) -> str:
    return str(value).replace("\t", " ").replace("\r", " ").replace("\n", "\\n")


MMBENCH_COPY_OFFSET = 1_000_000  # the k-th rotated copy of question i is row i + k * 1,000,000


def _mmbench_copies(cells: list[dict]) -> list[dict]:
    """The official TSVs' CircularEval rows: for each question with n options, n - 1 copies with
    the options shifted left by k = 1..n-1 (the answer letter following its option), at index
    i + k * 1e6, after all the originals, in index order."""
    copies = []
    for k in range(1, len(LETTERS)):
        for cell in cells:
            options = [cell[x] for x in "ABCD" if cell[x] != "nan"]
            if k >= len(options):
                continue
            shifted = options[k:] + options[:k]
            answer = LETTERS[(LETTERS.index(cell["answer"]) - k) % len(options)]
            copies.append({**cell, "index": cell["index"] + k * MMBENCH_COPY_OFFSET, "answer": answer,
                           **dict(zip("ABCD", shifted + ["nan"] * (4 - len(shifted))))})
    return copies


def _mmbench_tsv(rng, n: int, size: int, split: str) -> bytes:
    kinds = list(MMBENCH_KINDS)
    dealt = {k: 0 for k in kinds}
    columns = [c for c in MMBENCH_COLUMNS if split != "test" or c != "answer"]
    cells = []
    for i in range(n):
        kind = kinds[i % len(kinds)]
        n_opts, category, l2 = MMBENCH_KINDS[kind]
        scene, (question, right, pool) = _scene_for(kind, rng)
        answer = dealt[kind] % n_opts
        dealt[kind] += 1
        options = deal_options(right, pool, n_opts, answer, rng)
        hint = "The picture shows flat shapes on a plain background." if rng.random() < 0.3 else "nan"
        image = base64.b64encode(png_bytes(render(scene, size))).decode("ascii")
        cell = {"index": i, "question": question, "hint": hint, "answer": LETTERS[answer],
                "category": category, "l2-category": l2, "image": image, "source": "sc-shapes",
                "split": split, "comment": "nan",
                **dict(zip("ABCD", options + ["nan"] * (4 - n_opts)))}
        cells.append(cell)
    rows = ["\t".join(columns)]
    rows += ["\t".join(_tsv_cell(cell[c]) for c in columns) for cell in cells + _mmbench_copies(cells)]
    return ("\n".join(rows) + "\n").encode("utf-8")


def write_mmbench(ctx: Context) -> None:
    """mmbench/mmbench_dev_20230712.tsv and mmbench_test_en_20231003.tsv (no answer column): the
    official columns, base64 PNG images, 2-4 options (kinds asked in turn), "nan" in unused
    option cells; the answer letter of each kind is dealt A, B, C, ... so every letter is
    equally often right. As in the official files, each question's rotated copies (CircularEval)
    follow the originals as rows of their own."""
    size = ctx.sizes.image_size
    ctx.write_bytes("mmbench/mmbench_dev_20230712.tsv",
                    _mmbench_tsv(ctx.rng("mmbench"), ctx.sizes.mmbench_dev, size, "dev"))
    ctx.write_bytes("mmbench/mmbench_test_en_20231003.tsv",
                    _mmbench_tsv(ctx.rng("mmbench-test"), ctx.sizes.mmbench_test, size, "test"))
    ctx.counts["mmbench"] = {"dev": ctx.sizes.mmbench_dev, "test": ctx.sizes.mmbench_test}


# ---- SEED-Bench ------------------------------------------------------------------------------------

SEED_TYPES = {"Scene Understanding": 1, "Instance Identity": 2, "Instance Attributes": 3,
              "Instance Location": 4, "Instances Counting": 5, "Spatial Relation": 6,
              "Instance Interaction": 7, "Visual Reasoning": 8, "Text Understanding": 9,
              "Action Recognition": 10, "Action Prediction": 11, "Procedure Understanding": 12}
SEED_KINDS = [("shape", 2), ("colour", 3), ("position", 4), ("count", 5), ("word", 9)]


def write_seedbench(ctx: Context) -> None:
    """seedbench/SEED-Bench.json + SEED-Bench-image/<data_id>: four options per question, the
    answer dealt A, B, C, D in turn; two video questions (no file) that image loaders skip."""
    rng, size = ctx.rng("seedbench"), ctx.sizes.image_size
    questions = []
    for i in range(ctx.sizes.seedbench):
        kind, type_id = SEED_KINDS[i % len(SEED_KINDS)]
        scene, (question, right, pool) = _scene_for(kind, rng)
        options = deal_options(right, pool, 4, i % 4, rng)
        data_id = f"{i + 1:07d}_{rng.bytes(4).hex()}.jpg"
        ctx.write_image(f"seedbench/SEED-Bench-image/{data_id}", jpeg_bytes(render(scene, size)))
        questions.append({"answer": LETTERS[i % 4], "choice_a": options[0], "choice_b": options[1],
                          "choice_c": options[2], "choice_d": options[3], "data_id": data_id,
                          "data_type": "image", "question": question, "question_id": str(i + 1),
                          "question_type_id": type_id})
    for j, type_id in enumerate((10, 12)):
        questions.append({"answer": "B", "choice_a": "waving", "choice_b": "turning", "choice_c": "jumping",
                          "choice_d": "sitting", "data_id": f"v_{j:04d}.mp4", "data_type": "video",
                          "question": "What does the shape do in the video?",
                          "question_id": f"v{j + 1}", "question_type_id": type_id,
                          "segment": [0.0, 4.0]})
    ctx.write_json("seedbench/SEED-Bench.json", {"question_type": SEED_TYPES, "questions": questions})
    ctx.counts["seedbench"] = {"image": ctx.sizes.seedbench, "video": 2}


# ---- MMMU ------------------------------------------------------------------------------------------

def _mmmu_item(kind: str, letter: int, rng) -> dict:
    """One MMMU row (minus id/images bytes): subject, question, options, answer, images."""
    if kind == "open":
        scene = sample_scene(rng, word_prob=0.0)
        return {"subject": "Math", "subfield": "Arithmetic", "question_type": "open", "options": [],
                "question": "How many shapes are there in <image 1>?", "answer": str(scene.n),
                "images": [scene]}
    if kind == "multi":
        # Which of two pictures holds a shape of a colour: answer dealt among the four cases.
        colour = _pick(rng, list(COLOURS))
        want = [(True, False), (False, True), (True, True), (False, False)][letter]
        scenes = []
        for has in want:
            while True:
                s = sample_scene(rng, word_prob=0.0)
                if (s.count(colour=colour) > 0) == has:
                    scenes.append(s)
                    break
        options = ["<image 1>", "<image 2>", "Both images", "Neither image"]
        return {"subject": "Art", "subfield": "Color Theory", "question_type": "multiple-choice",
                "options": options, "answer": LETTERS[letter], "images": scenes,
                "question": f"<image 1> <image 2> Which of the two pictures contains a {colour} shape?"}
    subject = {"colour": ("Art", "Color Theory"), "shape": ("Design", "Geometry"), "count": ("Math", "Counting")}
    scene, (question, right, pool) = _scene_for(kind, rng)
    return {"subject": subject[kind][0], "subfield": subject[kind][1], "question_type": "multiple-choice",
            "options": deal_options(right, pool, 4, letter, rng), "answer": LETTERS[letter],
            "question": _on_image_1(question), "images": [scene]}


def _on_image_1(question: str) -> str:
    """MMMU refers to its pictures in the text: "... in the image?" -> "... in <image 1>?"."""
    if "the image" in question:
        return question.replace("the image", "<image 1>")
    return question[:-1] + " in <image 1>?"


MMMU_KINDS = ("colour", "shape", "count", "open", "multi")


def write_mmmu(ctx: Context) -> None:
    """mmmu/<Subject>/validation-00000-of-00001.parquet (the MMMU/MMMU download): columns id,
    question, options (a list literal), explanation, image_1..image_7 ({"bytes", "path"}),
    img_type, answer, topic_difficulty, question_type, subfield. Kinds are asked in turn; one in
    five is open (a count), one in five shows two images; letters are dealt A-D in turn."""
    rng, size = ctx.rng("mmmu"), ctx.sizes.image_size
    by_subject: dict[str, list[dict]] = {}
    dealt = 0
    for i in range(ctx.sizes.mmmu_val):
        kind = MMMU_KINDS[i % len(MMMU_KINDS)]
        item = _mmmu_item(kind, dealt % 4, rng)
        dealt += int(kind != "open")
        rows = by_subject.setdefault(item["subject"], [])
        row = {"id": f"validation_{item['subject']}_{len(rows) + 1}", "question": item["question"],
               "options": repr(item["options"]), "explanation": "", "img_type": "['Diagrams']",
               "answer": item["answer"], "topic_difficulty": "Easy",
               "question_type": item["question_type"], "subfield": item["subfield"]}
        for k in range(1, 8):
            scene = item["images"][k - 1] if k <= len(item["images"]) else None
            row[f"image_{k}"] = None if scene is None else {
                "bytes": png_bytes(render(scene, size)), "path": f"{row['id']}_image_{k}.png"}
        rows.append(row)
    image = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    schema = pa.schema([("id", pa.string()), ("question", pa.string()), ("options", pa.string()),
                        ("explanation", pa.string()), *[(f"image_{k}", image) for k in range(1, 8)],
                        ("img_type", pa.string()), ("answer", pa.string()),
                        ("topic_difficulty", pa.string()), ("question_type", pa.string()),
                        ("subfield", pa.string())])
    for subject in sorted(by_subject):
        buf = pa.BufferOutputStream()
        pq.write_table(pa.Table.from_pylist(by_subject[subject], schema=schema), buf)
        ctx.write_bytes(f"mmmu/{subject}/validation-00000-of-00001.parquet", buf.getvalue().to_pybytes())
    ctx.counts["mmmu"] = {s: len(r) for s, r in sorted(by_subject.items())}


# ---- LLaVA stage-2 conversations from training images ---------------------------------------------

TRAIN_KINDS = ("colour", "shape", "count", "position", "word")
YES_NO_CATEGORIES = ("existence", "count", "position", "color")


def training_conversations(ctx: Context) -> Battery:
    """mix665k-style records on `battery_train` fresh images (battery_train/images/): a lettered
    multiple-choice turn and a yes/no turn per image; one image in ten is blank or blurred and
    asked a VizWiz-style question whose answer is "Unanswerable". Returns them with their text."""
    rng, size = ctx.rng("battery-train"), ctx.sizes.image_size
    out = Battery()
    dealt = 0
    for i in range(ctx.sizes.battery_train):
        conv_id = f"battery-{i:06d}"
        rel = f"battery_train/images/{i:06d}.jpg"
        if rng.random() < 0.1:
            img, question = _unanswerable(sample_scene(rng), rng, size)
            ctx.write_image(rel, jpeg_bytes(img))
            out.conversations.append(conversation(conv_id, rel, [
                (question + UNANSWERABLE_HINT + SHORT_ANSWER, "Unanswerable")]))
            out.texts += [question, "Unanswerable"]
            continue
        kind = _pick(rng, TRAIN_KINDS)
        scene, (question, right, pool) = _scene_for(kind, rng)
        n_opts = min(len(pool), int(rng.integers(2, 5)))
        letter = dealt % n_opts
        dealt += 1
        options = deal_options(right, pool, n_opts, letter, rng)
        turns = [(lettered(question, options) + MC_SUFFIX, LETTERS[letter])]
        pair = _yes_no_pair(scene, _pick(rng, YES_NO_CATEGORIES), rng)
        if pair is not None:
            yes = rng.random() < 0.5
            turns.append((pair[0 if yes else 1] + SHORT_ANSWER, "Yes" if yes else "No"))
            out.texts += [pair[0 if yes else 1], "Yes" if yes else "No"]
        if rng.random() < 0.5:
            turns.reverse()
        ctx.write_image(rel, jpeg_bytes(render(scene, size)))
        out.conversations.append(conversation(conv_id, rel, turns))
        out.texts += [question, right]
    ctx.counts["battery_train"] = {"images": ctx.sizes.battery_train, "conversations": len(out.conversations)}
    return out


def write_battery(ctx: Context) -> Battery:
    """Write every benchmark above, then the training conversations (returned, not yet written)."""
    write_vizwiz(ctx)
    write_mme(ctx)
    write_mmbench(ctx)
    write_seedbench(ctx)
    write_mmmu(ctx)
    battery = training_conversations(ctx)
    battery.texts += [MC_SUFFIX.strip(), UNANSWERABLE_HINT.strip()]
    return battery
