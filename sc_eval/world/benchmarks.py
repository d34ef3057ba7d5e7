"""Writers for the question-answering benchmarks: VQAv2, TextVQA, GQA, POPE and ScienceQA.

Each writes the official file layout and field names (docs/data-layouts.md), so a task's
loader cannot tell the embedded world from the real download. Questions come from the scene
(sc_eval.world.text); human answers carry realistic variation so the three VQA accuracy
variants give different numbers, as they do on real data.
"""
from __future__ import annotations

from sc_eval.data.formats import ocr_line
from sc_eval.world.context import Context, Item, unique_ints
from sc_eval.world.render import jpeg_bytes, png_bytes, render
from sc_eval.world.scene import COLOURS, SHAPES, sample_scene
from sc_eval.world.text import (WHERE, gqa_candidates, human_answers, most_common, ocr_tokens, presence_questions,
                                textvqa_questions, vqa_questions)
from sc_eval.world.writers import SHORT_ANSWER, conversation

VQA_LICENSE = {"url": "http://creativecommons.org/licenses/by/4.0/",
               "name": "Creative Commons Attribution 4.0 International License"}


def _vqa_info(subtype: str) -> dict:
    return {"description": f"sc-shapes questions in VQAv2 format ({subtype})", "url": "",
            "version": "2.0", "year": 2017, "contributor": "sc-eval", "date_created": ""}


def _answers(ctx: Context, q: dict, rng) -> tuple[list[dict], str]:
    human = human_answers(q["answer"], q["kind"], rng)
    answers = [{"answer": a, "answer_confidence": c, "answer_id": i + 1} for i, (a, c) in enumerate(human)]
    return answers, most_common([a for a, _ in human])


def write_vqav2(ctx: Context, coco: dict[str, list[Item]]) -> dict[int, list[dict]]:
    """Questions for train2014/val2014/test2015 (+ test-dev2015, half of test2015's images) and
    annotations for the first two. Returns train questions per image id (for LLaVA stage 2)."""
    rng = ctx.rng("vqav2")
    counts, train_turns = {}, {}
    test_dev_ids = set()
    tests = coco["test2015"]
    for j in rng.permutation(len(tests))[: len(tests) // 2].tolist():
        test_dev_ids.add(tests[j].id)
    for split in ("train2014", "val2014", "test2015"):
        questions, annotations = [], []
        for it in coco[split]:
            for k, q in enumerate(vqa_questions(it.scene, rng, ctx.sizes.vqa_questions)):
                qid = it.id * 1000 + k
                questions.append({"image_id": it.id, "question": q["question"], "question_id": qid})
                if split == "train2014":
                    ctx.add_text(q["question"], q["answer"])
                if split == "test2015":
                    continue
                answers, mca = _answers(ctx, q, rng)
                annotations.append({"question_type": q["question_type"], "multiple_choice_answer": mca,
                                    "answers": answers, "image_id": it.id,
                                    "answer_type": q["answer_type"], "question_id": qid})
                if split == "train2014":
                    train_turns.setdefault(it.id, []).append((q["question"] + SHORT_ANSWER, mca))
        subsets = [(split, questions)]
        if split == "test2015":
            subsets.append(("test-dev2015", [q for q in questions if q["image_id"] in test_dev_ids]))
        for subtype, qs in subsets:
            ctx.write_json(f"vqav2/v2_OpenEnded_mscoco_{subtype}_questions.json",
                           {"info": _vqa_info(subtype), "task_type": "Open-Ended", "data_type": "mscoco",
                            "license": VQA_LICENSE, "data_subtype": subtype, "questions": qs})
            counts[subtype] = len(qs)
        if split != "test2015":
            ctx.write_json(f"vqav2/v2_mscoco_{split}_annotations.json",
                           {"info": _vqa_info(split), "license": VQA_LICENSE, "data_subtype": split,
                            "data_type": "mscoco", "annotations": annotations})
    ctx.counts["vqav2"] = counts
    return train_turns


def write_textvqa(ctx: Context) -> list[tuple]:
    """TextVQA_0.5.1_{train,val}.json and, as upstream, the OCR tokens apart in
    TextVQA_Rosetta_OCR_v0.2_{train,val}.json; every image holds a word. Returns train (id, path, turns)."""
    rng, size = ctx.rng("textvqa"), ctx.sizes.image_size
    qid, counts, turns = 0, {}, []
    for split, n in (("train", ctx.sizes.textvqa_train), ("val", ctx.sizes.textvqa_val)):
        data, rosetta = [], []
        for _ in range(n):
            scene = sample_scene(rng, force_word=True)
            image_id = rng.bytes(8).hex()
            rel = f"textvqa/train_images/{image_id}.jpg"   # val images live here too, as upstream
            ctx.write_image(rel, jpeg_bytes(render(scene, size)))
            ocr = ocr_tokens(scene.word, rng)
            rosetta.append({"image_id": image_id, "ocr_tokens": ocr})
            for q in textvqa_questions(scene, rng):
                human = human_answers(q["answer"], "word", rng)
                data.append({"question": q["question"], "image_id": image_id,
                             "image_classes": [s.capitalize() for s in scene.shape_kinds()],
                             "flickr_original_url": "", "flickr_300k_url": "",
                             "image_width": size, "image_height": size,
                             "answers": [a for a, _ in human],
                             "question_tokens": q["question"].rstrip("?").split(),
                             "question_id": qid, "set_name": split})
                if split == "train":
                    ctx.add_text(q["question"], q["answer"])
                    # Half the training turns carry the OCR hint as LLaVA's TextVQA prompt does,
                    # so the model meets both prompt forms (textvqa_val and textvqa_val_ocr).
                    hint = ocr_line(ocr) if rng.random() < 0.5 else ""
                    # Later turns ask about the same picture (presence, as POPE does): a stage-2
                    # sample pays for its image tokens once and teaches several answers.
                    more = [(x["question"] + SHORT_ANSWER, x["answer"]) for x in presence_questions(scene, rng)]
                    turns.append((image_id, rel, [(q["question"] + hint + SHORT_ANSWER, q["answer"]), *more]))
                qid += 1
        ctx.write_json(f"textvqa/TextVQA_0.5.1_{split}.json",
                       {"dataset_type": split, "dataset_name": "textvqa", "dataset_version": "0.5.1",
                        "data": data})
        ctx.write_json(f"textvqa/TextVQA_Rosetta_OCR_v0.2_{split}.json",
                       {"dataset_type": split, "dataset_name": "textvqa", "dataset_version": "0.2",
                        "data": rosetta})
        counts[split] = len(data)
    ctx.counts["textvqa"] = counts
    return turns


def write_gqa(ctx: Context) -> list[tuple]:
    """{train,testdev}_balanced_questions.json + gqa/images. Returns train (id, path, turns)."""
    rng, size = ctx.rng("gqa"), ctx.sizes.image_size
    n_tr, n_td = ctx.sizes.gqa_train, ctx.sizes.gqa_testdev
    image_ids = unique_ints(rng, n_tr + n_td, 2300000, 2420000)
    qid, counts, turns = 20000000, {}, []
    for split, ids in (("train", image_ids[:n_tr]), ("testdev", image_ids[n_tr:])):
        questions = {}
        for iid in ids:
            scene = sample_scene(rng)
            image_id = str(iid)
            rel = f"gqa/images/{image_id}.jpg"
            ctx.write_image(rel, jpeg_bytes(render(scene, size)))
            cands = gqa_candidates(scene, rng)
            k = min(len(cands), int(rng.integers(2, 4)))
            mine = []
            for j in sorted(rng.permutation(len(cands))[:k].tolist()):
                q = cands[j]
                questions[str(qid)] = {"semantic": [], "entailed": [], "equivalent": [str(qid)],
                                       "question": q["question"], "imageId": image_id,
                                       "isBalanced": True, "groups": {"global": None, "local": None},
                                       "answer": q["answer"], "semanticStr": "",
                                       "annotations": {"answer": {}, "question": {}, "fullAnswer": {}},
                                       "types": q["types"], "fullAnswer": q["fullAnswer"]}
                if split == "train":
                    ctx.add_text(q["question"], q["answer"], q["fullAnswer"])
                mine.append((q["question"] + SHORT_ANSWER, q["answer"]))
                qid += 1
            if split == "train":
                turns.append((image_id, rel, mine))
        ctx.write_json(f"gqa/{split}_balanced_questions.json", questions)
        counts[split] = len(questions)
    ctx.counts["gqa"] = counts
    return turns


def write_pope(ctx: Context, val: list[Item]) -> None:
    """coco_pope_{random,popular,adversarial}.json (JSON lines) on val2014 images.

    Per image: k "yes" questions about shapes present and k "no" about absent ones (k = min of
    both, at most 3). Negatives: random absent shapes; the most frequent shapes of the image
    set; or the shapes that co-occur most with the image's shapes (adversarial).
    """
    rng = ctx.rng("pope")
    items = val[: ctx.sizes.pope_images]
    present = [set(it.scene.shape_kinds()) for it in items]
    freq = {s: sum(s in p for p in present) for s in SHAPES}
    co = {(a, b): sum(a in p and b in p for p in present) for a in SHAPES for b in SHAPES}
    counts = {}
    for split in ("random", "popular", "adversarial"):
        records, qid = [], 1
        for it, have in zip(items, present):
            absent = [s for s in SHAPES if s not in have]
            k = min(len(have), len(absent), 3)
            yes = [s for s in SHAPES if s in have]
            yes = [yes[i] for i in rng.permutation(len(yes))[:k].tolist()]
            if split == "random":
                no = [absent[i] for i in rng.permutation(len(absent))[:k].tolist()]
            elif split == "popular":
                no = sorted(absent, key=lambda s: (-freq[s], SHAPES.index(s)))[:k]
            else:
                no = sorted(absent, key=lambda s: (-sum(co[(s, h)] for h in have), SHAPES.index(s)))[:k]
            for y, n in zip(yes, no):
                for obj, label in ((y, "yes"), (n, "no")):
                    records.append({"question_id": qid, "image": it.path.rsplit("/", 1)[1],
                                    "text": f"Is there a {obj} in the image?", "label": label})
                    qid += 1
        ctx.write_jsonl(f"pope/coco_pope_{split}.json", records)
        counts[split] = len(records)
    ctx.counts["pope"] = counts


def _sqa_problem(scene, rng) -> tuple[str, list[str], int, str, str]:
    """(question, choices, answer index, topic, category) about an image."""
    kind = int(rng.integers(3))
    if kind == 0:
        o = scene.objects[int(rng.integers(scene.n))]
        q, right, pool, topic = f"Which shape is {WHERE[o.position]}?", o.shape, list(SHAPES), "geometry"
    elif kind == 1:
        o = scene.objects[int(rng.integers(scene.n))]
        q, right, pool, topic = (f"What color is the shape {WHERE[o.position]}?", o.colour,
                                 list(COLOURS), "colors")
    else:
        q, right, pool, topic = "How many shapes are in the picture?", str(scene.n), ["1", "2", "3", "4"], "counting"
    wrong = [x for x in pool if x != right]
    n_choices = int(rng.integers(2, 5))
    choices = [wrong[i] for i in rng.permutation(len(wrong))[: n_choices - 1].tolist()] + [right]
    choices = [choices[i] for i in rng.permutation(len(choices)).tolist()]
    return q, choices, choices.index(right), topic, f"Identify {topic}"


def write_scienceqa(ctx: Context) -> None:
    """problems.json + pid_splits.json + images/<split>/<pid>/image.png (85% have an image)."""
    rng, size = ctx.rng("scienceqa"), ctx.sizes.image_size
    n = ctx.sizes.scienceqa
    problems, splits = {}, {"train": [], "val": [], "test": [], "minival": []}
    with_image = {"train": 0, "val": 0, "test": 0}
    for i in range(n):
        pid = str(i + 1)
        split = "train" if i < round(n * 0.6) else ("val" if i < round(n * 0.8) else "test")
        if rng.random() < 0.85:
            scene = sample_scene(rng, word_prob=0.0)
            q, choices, ans, topic, category = _sqa_problem(scene, rng)
            ctx.write_image(f"scienceqa/images/{split}/{pid}/image.png", png_bytes(render(scene, size)))
            image, hint = "image.png", ("Look at the picture." if rng.random() < 0.3 else "")
            with_image[split] += 1
        else:
            right = list(COLOURS)[int(rng.integers(len(COLOURS)))]
            choices = [right] + [SHAPES[j] for j in rng.permutation(len(SHAPES))[:2].tolist()]
            choices = [choices[j] for j in rng.permutation(3).tolist()]
            q, ans, topic, category = "Which word names a color?", choices.index(right), "colors", "Identify colors"
            image, hint = None, "Colors and shapes are different kinds of words."
        problems[pid] = {"question": q, "choices": choices, "answer": ans, "hint": hint, "image": image,
                         "task": "closed choice", "grade": f"grade{int(rng.integers(1, 4))}",
                         "subject": "natural science", "topic": topic, "category": category,
                         "skill": category, "lecture": "Shapes have a form, a color and a place.",
                         "solution": f"The answer is {choices[ans]}.", "split": split}
        splits[split].append(pid)
        if split == "train":
            ctx.add_text(q, choices[ans], problems[pid]["solution"])
    splits["minival"] = splits["val"][: len(splits["val"]) // 2]
    ctx.write_json("scienceqa/problems.json", problems)
    ctx.write_json("scienceqa/pid_splits.json", splits)
    ctx.counts["scienceqa"] = {**{k: len(v) for k, v in splits.items()},
                               "with_image": with_image}


def finetune_conversations(ctx: Context, coco_train: list[Item], vqa_turns, text_turns, gqa_turns) -> list[dict]:
    """mix665k-style records: VQA + presence + caption turns on COCO train, TextVQA (+ presence)
    and GQA train turns."""
    rng = ctx.rng("llava-finetune")
    out = []
    for it in coco_train:
        turns = list(vqa_turns.get(it.id, []))
        asked = {q for q, _ in turns}
        turns += [(q, a) for q, a in ((x["question"] + SHORT_ANSWER, x["answer"])
                                      for x in presence_questions(it.scene, rng)) if q not in asked]
        if rng.random() < 0.4:
            caps = it.extra["captions"]
            turns.append(("Describe the image briefly.", caps[int(rng.integers(len(caps)))]))
        if turns:
            out.append(conversation(f"{it.id:012d}", it.path, _shuffled(turns, rng)))
    for conv_id, rel, turns in list(text_turns) + list(gqa_turns):
        out.append(conversation(conv_id, rel, _shuffled(turns, rng)))
    return out


def _shuffled(turns: list, rng) -> list:
    """The turns in a random order. Every benchmark asks its question right after the image, so
    each question kind must also come first in training: with presence only in later turns, a
    LLaVA trained here met POPE's question in the first turn never (5 of 5,341 times)."""
    return [turns[i] for i in rng.permutation(len(turns))]
