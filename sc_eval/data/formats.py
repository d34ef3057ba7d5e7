"""Readers of the official benchmark files, returning task documents.

A document is a dict with `doc_id` (the benchmark's official id, as a string), `image` (an
absolute path string, or None for text-only items) and the task's fields. Tasks call these
readers on real downloads and on the embedded world alike, so they accept exactly the official
layouts. Order is the file's order (stable across runs). Malformed JSON is a DataError naming
the file, line and column; a record without a required field is a DataError naming the file
and the record's id.
"""
from __future__ import annotations

import os
from pathlib import Path

from sc_eval.errors import ConfigError, DataError, did_you_mean
from sc_eval.io import iter_jsonl, read_json


def _abs(root, *parts) -> str:
    return os.path.abspath(os.path.join(str(root), *[str(p) for p in parts]))


def _need(rec, fields, path, what: str) -> None:
    if not isinstance(rec, dict):
        raise DataError(f"{path}: {what} is a {type(rec).__name__}, expected a JSON object")
    missing = [f for f in fields if f not in rec]
    if missing:
        raise DataError(f"{path}: {what} lacks required field(s) {', '.join(missing)}; "
                        "the file does not follow the official format")


def _list_field(obj, key, path) -> list:
    if not isinstance(obj, dict) or not isinstance(obj.get(key), list):
        raise DataError(f"{path}: expected a JSON object with a {key!r} list (official layout)")
    return obj[key]


def _rid(rec, key, i) -> str:
    """How to name a record in an error: its id if it has one, else its position."""
    if isinstance(rec, dict) and key in rec:
        return f"record {key}={rec[key]!r}"
    return f"record #{i}"


# ---- captions ----------------------------------------------------------------------------------

def read_coco_captions(annotations_json, image_root) -> list[dict]:
    """COCO `captions_*.json`: one doc per image with all its captions (annotation order)."""
    data = read_json(annotations_json)
    images = _list_field(data, "images", annotations_json)
    anns = _list_field(data, "annotations", annotations_json)
    caps: dict = {}
    for i, a in enumerate(anns):
        _need(a, ("image_id", "caption"), annotations_json, "annotation " + _rid(a, "id", i))
        caps.setdefault(a["image_id"], []).append(a["caption"])
    docs = []
    for i, im in enumerate(images):
        _need(im, ("id", "file_name"), annotations_json, "image " + _rid(im, "id", i))
        docs.append({"doc_id": str(im["id"]), "image": _abs(image_root, im["file_name"]),
                     "image_id": im["id"], "captions": caps.get(im["id"], []),
                     "width": im.get("width"), "height": im.get("height")})
    return docs


KARPATHY_SPLITS = ("train", "restval", "val", "test")


def read_karpathy(dataset_coco_json, image_root, split: str, include_restval: bool = False) -> list[dict]:
    """Karpathy's `dataset_coco.json`: images of one split (train + restval with include_restval).

    Images live at `<image_root>/<filepath>/<filename>` (filepath is train2014 or val2014).
    """
    if split not in KARPATHY_SPLITS:
        raise ConfigError(f"Karpathy split {split!r} unknown{did_you_mean(split, KARPATHY_SPLITS)}; "
                          f"choose one of {', '.join(KARPATHY_SPLITS)}")
    wanted = {split} | ({"restval"} if include_restval and split == "train" else set())
    docs = []
    for i, im in enumerate(_list_field(read_json(dataset_coco_json), "images", dataset_coco_json)):
        what = "image " + _rid(im, "cocoid", i)
        _need(im, ("filename", "split", "cocoid", "sentences"), dataset_coco_json, what)
        if im["split"] not in wanted:
            continue
        for s in im["sentences"]:
            _need(s, ("raw",), dataset_coco_json, what + " sentence")
        docs.append({"doc_id": str(im["cocoid"]),
                     "image": _abs(image_root, im.get("filepath", ""), im["filename"]),
                     "image_id": im["cocoid"], "split": im["split"],
                     "captions": [s["raw"] for s in im["sentences"]],
                     "tokens": [s.get("tokens", []) for s in im["sentences"]]})
    return docs


# ---- VQA-style ---------------------------------------------------------------------------------

def read_vqav2(questions_json, annotations_json, image_root,
               image_pattern: str = "COCO_{subtype}_{image_id:012d}.jpg") -> list[dict]:
    """VQAv2 questions (+ annotations when given: 10 answers each).

    `{subtype}` is the questions file's data_subtype; test-dev2015 images are test2015 files,
    as in the official download.
    """
    q = read_json(questions_json)
    questions = _list_field(q, "questions", questions_json)
    subtype = q.get("data_subtype", "")
    if subtype == "test-dev2015":
        subtype = "test2015"
    anns = None
    if annotations_json is not None:
        anns = {}
        for i, a in enumerate(_list_field(read_json(annotations_json), "annotations", annotations_json)):
            what = "annotation " + _rid(a, "question_id", i)
            _need(a, ("question_id", "answers", "multiple_choice_answer"), annotations_json, what)
            for ans in a["answers"]:
                _need(ans, ("answer",), annotations_json, what + " answer")
            anns[a["question_id"]] = a
    docs = []
    for i, rec in enumerate(questions):
        what = "question " + _rid(rec, "question_id", i)
        _need(rec, ("question_id", "image_id", "question"), questions_json, what)
        doc = {"doc_id": str(rec["question_id"]), "question_id": rec["question_id"],
               "image_id": rec["image_id"], "question": rec["question"],
               "image": _abs(image_root, image_pattern.format(subtype=subtype, image_id=rec["image_id"]))}
        if anns is not None:
            a = anns.get(rec["question_id"])
            if a is None:
                raise DataError(f"{annotations_json}: no annotation for {what} of {questions_json}; "
                                "use the annotation file of the same split")
            doc.update(answers=[x["answer"] for x in a["answers"]],
                       answer_ids=[x.get("answer_id") for x in a["answers"]],
                       multiple_choice_answer=a["multiple_choice_answer"],
                       answer_type=a.get("answer_type"), question_type=a.get("question_type"))
        docs.append(doc)
    return docs


def read_textvqa(textvqa_json, image_root) -> list[dict]:
    """`TextVQA_0.5.1_<split>.json`; images are `<image_root>/<image_id>.jpg` (train_images/)."""
    docs = []
    for i, rec in enumerate(_list_field(read_json(textvqa_json), "data", textvqa_json)):
        _need(rec, ("question_id", "image_id", "question"), textvqa_json,
              "question " + _rid(rec, "question_id", i))
        docs.append({"doc_id": str(rec["question_id"]), "question_id": rec["question_id"],
                     "image_id": rec["image_id"], "question": rec["question"],
                     "image": _abs(image_root, f"{rec['image_id']}.jpg"),
                     "answers": list(rec.get("answers", [])),   # absent in the test split
                     "ocr_tokens": list(rec.get("ocr_tokens", [])),
                     "set_name": rec.get("set_name")})
    return docs


def read_textvqa_ocr(ocr_json) -> dict[str, list[str]]:
    """`TextVQA_Rosetta_OCR_v0.2_<split>.json` (`data`: image_id, ocr_tokens, ...): image_id -> tokens.

    The question file of TextVQA 0.5.1 carries no OCR; LLaVA's OCR prompt takes these tokens.
    """
    out = {}
    for i, rec in enumerate(_list_field(read_json(ocr_json), "data", ocr_json)):
        _need(rec, ("image_id", "ocr_tokens"), ocr_json, _rid(rec, "image_id", i))
        if not isinstance(rec["ocr_tokens"], list):
            raise DataError(f"{ocr_json}: {_rid(rec, 'image_id', i)}: ocr_tokens is not a list")
        out[str(rec["image_id"])] = [str(t) for t in rec["ocr_tokens"]]
    return out


OCR_PREFIX = "\nReference OCR token: "


def ocr_line(tokens) -> str:
    """LLaVA's OCR hint for TextVQA's prompt, ``"\\nReference OCR token: a, b, c"``; empty when
    there is no token."""
    tokens = [str(t) for t in (tokens or [])]
    return OCR_PREFIX + ", ".join(tokens) if tokens else ""


def read_gqa(questions_json, image_root, balanced_only: bool = True) -> list[dict]:
    """GQA `<split>_balanced_questions.json` (a dict questionId -> record)."""
    data = read_json(questions_json)
    if not isinstance(data, dict):
        raise DataError(f"{questions_json}: expected a JSON object mapping question ids to questions")
    docs = []
    for qid, rec in data.items():
        _need(rec, ("imageId", "question", "answer"), questions_json, f"question {qid!r}")
        if balanced_only and not rec.get("isBalanced", True):
            continue
        docs.append({"doc_id": str(qid), "question_id": str(qid), "image_id": rec["imageId"],
                     "question": rec["question"], "answer": rec["answer"],
                     "full_answer": rec.get("fullAnswer"), "types": rec.get("types", {}),
                     "image": _abs(image_root, f"{rec['imageId']}.jpg")})
    return docs


POPE_SPLITS = ("random", "popular", "adversarial")


def read_pope(path_or_dir, image_root) -> list[dict]:
    """POPE `coco_pope_<category>.json` (JSON lines), one file or a directory of them.

    The category is the split name from the file name. The official files number their
    questions from 1 each, so ids repeat across files: reading one file, doc_id is the
    question_id; reading a directory (random, popular, adversarial, then any others sorted),
    doc_id is "<category>/<question_id>". Both keep `question_id` and `category`.
    """
    p = Path(path_or_dir)
    if p.is_dir():
        files = sorted(p.glob("coco_pope_*.json"),
                       key=lambda f: (POPE_SPLITS.index(_pope_cat(f)) if _pope_cat(f) in POPE_SPLITS
                                      else len(POPE_SPLITS), f.name))
        if not files:
            raise DataError(f"{p}: no coco_pope_<split>.json files in this directory")
    elif p.exists():
        files = [p]
    else:
        raise DataError(f"{p}: file not found")
    docs = []
    for f in files:
        cat = _pope_cat(f)
        for i, rec in enumerate(iter_jsonl(f)):
            _need(rec, ("question_id", "image", "text", "label"), f, f"line {i + 1} " + _rid(rec, "question_id", i))
            qid = rec["question_id"]
            docs.append({"doc_id": f"{cat}/{qid}" if p.is_dir() else str(qid), "question_id": qid,
                         "category": cat, "question": rec["text"], "label": rec["label"],
                         "answers": [rec["label"]], "image": _abs(image_root, rec["image"])})
    return docs


def _pope_cat(f: Path) -> str:
    stem = f.stem
    return stem[len("coco_pope_"):] if stem.startswith("coco_pope_") else stem


# ---- multiple choice, classification, instruction data -----------------------------------------

def read_scienceqa(problems_json, pid_splits_json, image_root, split: str,
                   with_image_only: bool = True) -> list[dict]:
    """ScienceQA problems of `split` (pid_splits order); image at `<root>/<split>/<pid>/image.png`.

    `answer` is the official choice index; `answer_letter` its letter (A, B, ...).
    """
    problems = read_json(problems_json)
    splits = read_json(pid_splits_json)
    if not isinstance(problems, dict) or not isinstance(splits, dict):
        raise DataError(f"{problems_json} / {pid_splits_json}: expected JSON objects keyed by pid / split")
    if split not in splits:
        raise ConfigError(f"{pid_splits_json}: no split {split!r}{did_you_mean(split, splits)}; "
                          f"available: {', '.join(splits)}")
    docs = []
    for pid in splits[split]:
        pid = str(pid)
        if pid not in problems:
            raise DataError(f"{problems_json}: problem {pid!r} listed in {pid_splits_json} is missing")
        rec = problems[pid]
        _need(rec, ("question", "choices", "answer"), problems_json, f"problem {pid!r}")
        image = rec.get("image")
        if with_image_only and not image:
            continue
        folder = rec.get("split", split)
        docs.append({"doc_id": pid, "question": rec["question"], "choices": list(rec["choices"]),
                     "answer": int(rec["answer"]), "answer_letter": chr(ord("A") + int(rec["answer"])),
                     "hint": rec.get("hint") or "", "subject": rec.get("subject"),
                     "category": rec.get("category"), "grade": rec.get("grade"),
                     "image": _abs(image_root, folder, pid, image) if image else None})
    return docs


IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm"}


def read_imagefolder(root, split: str) -> list[dict]:
    """torchvision ImageFolder layout `<root>/<split>/<class>/<file>`: classes and files sorted
    by name (as ImageFolder does), label = class index, doc_id = "<class>/<file>"."""
    base = Path(root) / split
    if not base.is_dir():
        raise DataError(f"{base}: split directory not found (expected <root>/<split>/<class>/<image>)")
    classes = sorted(d.name for d in base.iterdir() if d.is_dir())
    if not classes:
        raise DataError(f"{base}: no class folders")
    docs = []
    for label, cls in enumerate(classes):
        for f in sorted((base / cls).iterdir(), key=lambda x: x.name):
            if f.suffix.lower() in IMAGE_EXTS:
                docs.append({"doc_id": f"{cls}/{f.name}", "image": os.path.abspath(f),
                             "label": label, "class_name": cls, "classes": classes})
    return docs


def read_llava_json(path, image_root) -> list[dict]:
    """LLaVA training JSON (LCS-558K / mix665k): conversations alternate human and gpt turns."""
    data = read_json(path)
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of conversation records")
    docs = []
    for i, rec in enumerate(data):
        what = "record " + _rid(rec, "id", i)
        _need(rec, ("id", "conversations"), path, what)
        turns = rec["conversations"]
        for j, t in enumerate(turns):
            _need(t, ("from", "value"), path, f"{what} turn {j}")
            if t["from"] != ("human" if j % 2 == 0 else "gpt"):
                raise DataError(f"{path}: {what} turn {j} is from {t['from']!r}; turns must alternate "
                                "human, gpt, human, ...")
        image = rec.get("image")
        docs.append({"doc_id": str(rec["id"]), "image": _abs(image_root, image) if image else None,
                     "conversations": turns})
    return docs
