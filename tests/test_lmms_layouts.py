"""Every task reads the lmms-lab parquet download as it reads the official layout.

For each benchmark a few records are written twice: in the official files (JSON, TSV, image
folders) and as the lmms-lab Hugging Face dataset (parquet under data/ or <config>/, written with
`datasets` using the real column names and feature types, images embedded as PNG/JPEG bytes).
Loading both through the task must give the same doc ids, the same fields, the same prompt
strings and the same targets, and images with the same bytes.
"""
import base64
import io
import json
from pathlib import Path

import pytest

from sc_eval.evaluation import tasks as tasks_api
from sc_eval.errors import DataError

pytest.importorskip("datasets")


def task(name):
    return tasks_api.resolve(name)[0]


def img(colour, fmt="PNG"):
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 6), colour).save(buf, format=fmt)
    return buf.getvalue()


def write_file(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data if isinstance(data, str) else json.dumps(data))


def write_parquet(path, columns: dict, features: dict):
    """One lmms-lab shard, e.g. <repo>/data/validation-00000-of-00001.parquet."""
    from datasets import Dataset, Features

    path.parent.mkdir(parents=True, exist_ok=True)
    Dataset.from_dict(columns, features=Features(features)).to_parquet(str(path))


def pic(data):
    return {"bytes": data, "path": None}


def V(dtype="string"):
    from datasets import Value

    return Value(dtype)


def I():
    from datasets import Image

    return Image()


def same_docs(name, official_root, lmms_root, skip=()):
    """Load both layouts through the task and compare doc by doc; returns both doc lists."""
    t = task(name)
    a, b = t.load_docs(official_root), t.load_docs(lmms_root)
    assert b == t.load_docs(lmms_root), "a second (cached) load gives other docs"
    assert [d["doc_id"] for d in a] == [d["doc_id"] for d in b]
    for x, y in zip(a, b):
        assert set(x) == set(y), (name, set(x) ^ set(y))
        for k in x:
            if k not in ("image", "images", "submission_questions", *skip):
                assert x[k] == y[k], (name, x["doc_id"], k, x[k], y[k])
        assert t.prompt_for(x) == t.prompt_for(y)
        assert t.targets(x) == t.targets(y)
        for k in ("image", "images"):
            ia, ib = x.get(k), y.get(k)
            ia, ib = (ia if isinstance(ia, list) else [ia]), (ib if isinstance(ib, list) else [ib])
            assert [p and Path(p).read_bytes() for p in ia] == [p and Path(p).read_bytes() for p in ib]
    return a, b


# ---- VQAv2 ---------------------------------------------------------------------------------------

def _vqa_records():
    colours = {139: (200, 10, 10), 285: (10, 200, 10)}
    qs = [(139000, 139, "What color is the wall?", ["red"] * 7 + ["Red", "dark red", "pink"]),
          (139001, 139, "Is it a kitchen?", ["yes"] * 9 + ["no"]),
          (285000, 285, "How many bears are there?", ["1"] * 6 + ["one"] * 4)]
    return colours, qs


def _vqav2(tmp_path):
    colours, qs = _vqa_records()
    off, lm = tmp_path / "official", tmp_path / "lmms"
    write_file(off / "vqav2/v2_OpenEnded_mscoco_val2014_questions.json",
               {"data_subtype": "val2014", "questions": [
                   {"question_id": q, "image_id": i, "question": text} for q, i, text, _ in qs]})
    anns = [{"question_id": q, "image_id": i, "question_type": "what", "answer_type": "other",
             "multiple_choice_answer": ans[0],
             "answers": [{"answer": a, "answer_confidence": "yes", "answer_id": k + 1} for k, a in enumerate(ans)]}
            for q, i, _, ans in qs]
    write_file(off / "vqav2/v2_mscoco_val2014_annotations.json", {"annotations": anns})
    for i, c in colours.items():
        write_file(off / f"coco/images/val2014/COCO_val2014_{i:012d}.jpg", img(c, "JPEG"))
    write_parquet(lm / "VQAv2/data/validation-00000-of-00001.parquet", {
        "question_type": ["what"] * 3, "multiple_choice_answer": [a[0] for *_, a in qs],
        "answers": [x["answers"] for x in anns], "image_id": [i for _, i, _, _ in qs],
        "answer_type": ["other"] * 3, "question_id": [q for q, *_ in qs],
        "question": [t for _, _, t, _ in qs], "image": [pic(img(colours[i], "JPEG")) for _, i, _, _ in qs],
    }, {"question_type": V(), "multiple_choice_answer": V(),
        "answers": [{"answer": V(), "answer_confidence": V(), "answer_id": V("int64")}],
        "image_id": V("int64"), "answer_type": V(), "question_id": V("int64"), "question": V(), "image": I()})
    return off, lm


def test_vqav2_val_parquet_docs_equal_official(tmp_path):
    off, lm = _vqav2(tmp_path)
    a, b = same_docs("vqav2_val", off, lm)
    assert len(b) == 3 and b[0]["answers"][7:] == ["Red", "dark red", "pink"] and b[0]["answer_ids"][0] == 1
    assert task("vqav2_val").prompt_for(b[2]) == "How many bears are there?\nAnswer the question using a single word or phrase."
    # two questions of one image share one written file
    assert b[0]["image"] == b[1]["image"] != b[2]["image"]
    t = task("vqav2_val")
    assert t.score_doc(a[2], "One") == t.score_doc(b[2], "One")


def test_vqav2_testdev_parquet_submission_lists_the_test_split(tmp_path):
    from sc_eval.tasks.vqav2.utils import write_submission

    colours, qs = _vqa_records()
    off, lm = tmp_path / "official", tmp_path / "lmms"
    dev = [{"question_id": q, "image_id": i, "question": t} for q, i, t, _ in qs[:2]]
    full = dev + [{"question_id": 999, "image_id": 285, "question": "Extra?"}]
    write_file(off / "vqav2/v2_OpenEnded_mscoco_test-dev2015_questions.json",
               {"data_subtype": "test-dev2015", "questions": dev})
    write_file(off / "vqav2/v2_OpenEnded_mscoco_test2015_questions.json", {"data_subtype": "test2015", "questions": full})
    for i, c in colours.items():
        write_file(off / f"coco/images/test2015/COCO_test2015_{i:012d}.jpg", img(c, "JPEG"))
    feats = {"question_type": V(), "multiple_choice_answer": V(),
             "answers": [{"answer": V(), "answer_confidence": V(), "answer_id": V("int64")}],
             "image_id": V("int64"), "answer_type": V(), "question_id": V("int64"), "question": V(), "image": I()}
    for split, rows in (("testdev", dev), ("test", full)):
        n = len(rows)
        write_parquet(lm / f"VQAv2/data/{split}-00000-of-00001.parquet", {
            "question_type": [None] * n, "multiple_choice_answer": [None] * n, "answers": [None] * n,
            "image_id": [r["image_id"] for r in rows], "answer_type": [None] * n,
            "question_id": [r["question_id"] for r in rows], "question": [r["question"] for r in rows],
            "image": [pic(img(colours[r["image_id"]], "JPEG")) for r in rows]}, feats)
    a, b = same_docs("vqav2_testdev", off, lm)
    records = [{"doc_id": d["doc_id"], "prediction": "Two"} for d in b]
    write_submission(records, a, tmp_path / "a.json")
    write_submission(records, b, tmp_path / "b.json")
    sub = json.loads((tmp_path / "b.json").read_text())
    assert sub == json.loads((tmp_path / "a.json").read_text())
    assert sub == [{"question_id": 139000, "answer": "2"}, {"question_id": 139001, "answer": "2"},
                   {"question_id": 999, "answer": ""}]


# ---- TextVQA -------------------------------------------------------------------------------------

def test_textvqa_parquet_docs_and_both_prompts_equal_official(tmp_path):
    off, lm = tmp_path / "official", tmp_path / "lmms"
    recs = [{"question_id": 34602, "image_id": "003a8ae2ef43b901", "question": "what is the brand of this camera?",
             "answers": ["nous les gosses", "dakota", "clos culombu", "dakota digital"] + ["dakota"] * 6,
             "ocr_tokens": ["DAKOTA", "DIGITAL"], "set_name": "val"},
            {"question_id": 34603, "image_id": "00685bc495504d61", "question": "what number is on the bike?",
             "answers": ["3"] * 10, "ocr_tokens": [], "set_name": "val"}]
    colours = [(1, 2, 3), (200, 100, 0)]
    write_file(off / "textvqa/TextVQA_0.5.1_val.json", {"dataset_name": "textvqa", "data": recs})
    for r, c in zip(recs, colours):
        write_file(off / f"textvqa/train_images/{r['image_id']}.jpg", img(c, "JPEG"))
    n = len(recs)
    write_parquet(lm / "textvqa/data/validation-00000-of-00001.parquet", {
        "image_id": [r["image_id"] for r in recs], "question_id": [r["question_id"] for r in recs],
        "question": [r["question"] for r in recs], "question_tokens": [r["question"].split() for r in recs],
        "image": [pic(img(c, "JPEG")) for c in colours], "image_width": [8] * n, "image_height": [6] * n,
        "flickr_original_url": [""] * n, "flickr_300k_url": [""] * n, "answers": [r["answers"] for r in recs],
        "image_classes": [["Camera"]] * n, "set_name": ["val"] * n, "ocr_tokens": [r["ocr_tokens"] for r in recs],
    }, {"image_id": V(), "question_id": V("int32"), "question": V(), "question_tokens": [V()], "image": I(),
        "image_width": V("int32"), "image_height": V("int32"), "flickr_original_url": V(),
        "flickr_300k_url": V(), "answers": [V()], "image_classes": [V()], "set_name": V(), "ocr_tokens": [V()]})
    same_docs("textvqa_val", off, lm)
    _, b = same_docs("textvqa_val_ocr", off, lm)
    assert task("textvqa_val_ocr").prompt_for(b[0]) == ("what is the brand of this camera?\nReference OCR token: "
                                                        "DAKOTA, DIGITAL\nAnswer the question using a single word or phrase.")


# ---- GQA -----------------------------------------------------------------------------------------

def test_gqa_parquet_joins_instruction_and_image_configs(tmp_path):
    off, lm = tmp_path / "official", tmp_path / "lmms"
    qs = {"20968379": ("n288870", "Do the shorts have dark color?", "yes", True),
          "20968380": ("n288870", "Which color are the shorts?", "black", True),
          "201307251": ("n161313", "Is it an indoors scene?", "no", True),
          "201307252": ("n161313", "Unbalanced one?", "no", False)}
    colours = {"n288870": (9, 9, 9), "n161313": (250, 250, 0)}
    types = {"structural": "verify", "semantic": "attr", "detailed": "verifyAttr"}
    write_file(off / "gqa/testdev_balanced_questions.json", {
        q: {"imageId": i, "question": t, "answer": a, "fullAnswer": f"The answer is {a}.", "isBalanced": bal,
            "types": types} for q, (i, t, a, bal) in qs.items()})
    for i, c in colours.items():
        write_file(off / f"gqa/images/{i}.jpg", img(c, "JPEG"))
    rows = list(qs.items())
    n = len(rows)
    write_parquet(lm / "GQA/testdev_balanced_instructions/testdev-00000-of-00001.parquet", {
        "id": [q for q, _ in rows], "imageId": [v[0] for _, v in rows], "question": [v[1] for _, v in rows],
        "answer": [v[2] for _, v in rows], "fullAnswer": [f"The answer is {v[2]}." for _, v in rows],
        "isBalanced": [v[3] for _, v in rows], "groups": [{"global": None, "local": "10c-shorts"}] * n,
        "entailed": [[]] * n, "equivalent": [[q] for q, _ in rows], "types": [types] * n,
        "semanticStr": ["select: shorts"] * n,
    }, {"id": V(), "imageId": V(), "question": V(), "answer": V(), "fullAnswer": V(), "isBalanced": V("bool"),
        "groups": {"global": V(), "local": V()}, "entailed": [V()], "equivalent": [V()],
        "types": {"structural": V(), "semantic": V(), "detailed": V()}, "semanticStr": V()})
    write_parquet(lm / "GQA/testdev_balanced_images/testdev-00000-of-00001.parquet", {
        "id": list(colours), "image": [pic(img(c, "JPEG")) for c in colours.values()]}, {"id": V(), "image": I()})
    a, b = same_docs("gqa_testdev_balanced", off, lm)
    assert [d["doc_id"] for d in b] == ["20968379", "20968380", "201307251"]  # the unbalanced one left out
    assert task("gqa").score_doc(b[1], "Black.") == {"accuracy": 1.0, "accuracy_lmms": 1.0}


# ---- VizWiz --------------------------------------------------------------------------------------

def test_vizwiz_val_and_test_parquet_docs_equal_official(tmp_path):
    off, lm = tmp_path / "official", tmp_path / "lmms"
    val = [("VizWiz_val_00000000", "What is this?", ["unanswerable"] * 6 + ["cup"] * 4),
           ("VizWiz_val_00000001", "what color is this shirt", ["blue"] * 9 + ["navy"])]
    test = [("VizWiz_test_00000000", "Which can is this?"), ("VizWiz_test_00000001", "What does it say?")]
    colours = [(5, 5, 5), (60, 60, 250)]
    write_file(off / "vizwiz/val.json", [
        {"image": f"{q}.jpg", "question": t, "answerable": 1, "answer_type": "other",
         "answers": [{"answer": a, "answer_confidence": "yes"} for a in ans]} for q, t, ans in val])
    write_file(off / "vizwiz/test.json", [{"image": f"{q}.jpg", "question": t} for q, t in test])
    feats = {"question_id": V(), "image": I(), "question": V(), "answers": [V()], "category": V()}
    for split, rows in (("val", val), ("test", [(q, t, []) for q, t in test])):
        for (q, _, _), c in zip(rows, colours):
            write_file(off / f"vizwiz/{split}/{q}.jpg", img(c, "JPEG"))
        write_parquet(lm / f"VizWiz-VQA/data/{split}-00000-of-00001.parquet", {
            "question_id": [q for q, _, _ in rows], "image": [pic(img(c, "JPEG")) for c in colours],
            "question": [t for _, t, _ in rows], "answers": [a for _, _, a in rows],
            "category": ["other"] * len(rows)}, feats)
    # answerable / answer_type are not in the parquet (None there)
    _, b = same_docs("vizwiz_vqa_val", off, lm, skip=("answerable", "answer_type"))
    assert b[0]["doc_id"] == "VizWiz_val_00000000.jpg"
    assert task("vizwiz").prompt_for(b[1]) == ("what color is this shirt\nWhen the provided information is insufficient, "
                                               "respond with 'Unanswerable'.\nAnswer the question using a single word or phrase.")
    same_docs("vizwiz_vqa_test", off, lm, skip=("answerable", "answer_type"))


# ---- POPE ----------------------------------------------------------------------------------------

POPE_ROWS = [("random", 1, "COCO_val2014_000000310196", "Is there a snowboard in the image?", "yes"),
             ("random", 2, "COCO_val2014_000000210789", "Is there a dog in the image?", "no"),
             ("popular", 1, "COCO_val2014_000000310196", "Is there a person in the image?", "yes"),
             ("adversarial", 1, "COCO_val2014_000000210789", "Is there a car in the image?", "no")]
POPE_COLOURS = {"COCO_val2014_000000310196": (1, 100, 1), "COCO_val2014_000000210789": (100, 1, 1)}


def _pope_official(off):
    for cat in ("random", "popular", "adversarial"):
        write_file(off / f"pope/coco_pope_{cat}.json", "".join(
            json.dumps({"question_id": q, "image": f"{src}.jpg", "text": t, "label": a}) + "\n"
            for c, q, src, t, a in POPE_ROWS if c == cat))
    for src, c in POPE_COLOURS.items():
        write_file(off / f"coco/images/val2014/{src}.jpg", img(c, "JPEG"))


def _pope_parquet(path, rows):
    write_parquet(path, {
        "id": [str(k) for k in range(len(rows))], "question_id": [str(q) for _, q, *_ in rows],
        "question": [t for *_, t, _ in rows], "answer": [a for *_, a in rows],
        "image_source": [s for _, _, s, _, _ in rows], "image": [pic(img(POPE_COLOURS[s], "JPEG")) for _, _, s, _, _ in rows],
        "category": [c for c, *_ in rows],
    }, {"id": V(), "question_id": V(), "question": V(), "answer": V(), "image_source": V(), "image": I(),
        "category": V()})


def test_pope_parquet_category_column_gives_the_three_splits(tmp_path):
    from sc_eval.evaluation.runner import evaluate

    off, lm, full = tmp_path / "official", tmp_path / "lmms", tmp_path / "full"
    _pope_official(off)
    shuffled = [POPE_ROWS[3], POPE_ROWS[0], POPE_ROWS[2], POPE_ROWS[1]]  # table order is not split order
    _pope_parquet(lm / "POPE/data/test-00000-of-00001.parquet", shuffled)
    a, b = same_docs("pope", off, lm)
    assert [d["doc_id"] for d in b] == ["random/1", "random/2", "popular/1", "adversarial/1"]
    assert b[0]["question_id"] == 1 and b[0]["label"] == "yes"
    for cat in ("adversarial", "popular", "random"):  # the Full config: one split per category
        _pope_parquet(full / f"POPE/Full/{cat}-00000-of-00001.parquet", [r for r in POPE_ROWS if r[0] == cat])
    same_docs("pope", off, full)

    class Yes:
        def fingerprint(self):
            return "yes"

        def predict(self, docs, task):
            return ["Yes" for _ in docs]

    scores = [evaluate([task("pope")], Yes(), tmp_path / f"run{k}", root, progress=False)["results"]["pope"]["metrics"]
              for k, root in enumerate((off, lm))]
    assert scores[0] == scores[1] and scores[1]["random_accuracy"] == pytest.approx(50.0)


# ---- MME -----------------------------------------------------------------------------------------

def test_mme_parquet_pairs_docs_and_prompt_equal_official(tmp_path):
    off, lm = tmp_path / "official", tmp_path / "lmms"
    base = off / "mme/MME_Benchmark_release_version"
    pairs = {("artwork", "10002.jpg"): [("Is this artwork created by Donatello? Please answer yes or no.", "Yes"),
                                        ("Is this artwork created by Gentile? Please answer yes or no.", "No")],
             ("color", "000000.png"): [("Is there a red coat in the image? Please answer yes or no.", "Yes"),
                                       ("Is there a yellow coat in the image? Please answer yes or no.", "No")],
             ("code_reasoning", "0020.png"): [("Is the output 3? Please answer yes or no.", "No"),
                                              ("Is the output 5? Please answer yes or no.", "Yes")]}
    colours = {"10002.jpg": (10, 20, 30), "000000.png": (200, 0, 0), "0020.png": (0, 0, 200)}
    for (cat, name), qa in pairs.items():
        data = img(colours[name], "JPEG" if name.endswith("jpg") else "PNG")
        stem = Path(name).stem
        lines = "".join(f"{q}\t{a}\n" for q, a in qa)
        if cat == "artwork":
            write_file(base / cat / "images" / name, data)
            write_file(base / cat / "questions_answers_YN" / f"{stem}.txt", lines)
        else:
            write_file(base / cat / name, data)
            write_file(base / cat / f"{stem}.txt", lines)
    rows = [(cat, name, q, a) for (cat, name), qa in reversed(list(pairs.items())) for q, a in qa]
    write_parquet(lm / "MME/data/test-00000-of-00001.parquet", {
        "question_id": [f"{c}/{n}" for c, n, _, _ in rows],
        "image": [pic(img(colours[n], "JPEG" if n.endswith("jpg") else "PNG")) for _, n, _, _ in rows],
        "question": [q for *_, q, _ in rows], "answer": [a for *_, a in rows], "category": [c for c, *_ in rows],
    }, {"question_id": V(), "image": I(), "question": V(), "answer": V(), "category": V()})
    a, b = same_docs("mme", off, lm)
    assert [d["doc_id"] for d in b][:2] == ["color/000000.png/0", "color/000000.png/1"]  # MME's category order
    assert task("mme").prompt_for(b[0]) == ("Is there a red coat in the image?\nAnswer the question using a "
                                            "single word or phrase.")


# ---- ScienceQA-IMG -------------------------------------------------------------------------------

SQA = {"5": ("Which animal's feet are also adapted for sticky surfaces?", ["tree frog", "Eurasian lynx"], 0,
             "Tree frogs live in tropical rain forests.", (0, 150, 0)),
       "9": ("Which of these states is farthest north?", ["West Virginia", "Louisiana", "Arizona", "Oklahoma"], 0,
             "", (0, 0, 150))}


def _scienceqa(off, lm, with_json_in_lmms):
    problems = {pid: {"question": q, "choices": ch, "answer": ans, "hint": hint, "image": "image.png",
                      "task": "closed choice", "grade": "grade2", "subject": "natural science", "topic": "biology",
                      "category": "Adaptations", "skill": "x", "lecture": "", "solution": "", "split": "test"}
                for pid, (q, ch, ans, hint, _) in SQA.items()}
    problems["7"] = {**problems["9"], "image": None, "question": "A text-only question?"}
    splits = {"train": [], "val": [], "test": ["5", "7", "9"]}
    for root in ([off, lm] if with_json_in_lmms else [off]):
        write_file(root / "scienceqa/problems.json", problems)
        write_file(root / "scienceqa/pid_splits.json", splits)
    for pid, (*_, c) in SQA.items():
        write_file(off / f"scienceqa/images/test/{pid}/image.png", img(c))
    rows = list(SQA.values())
    n = len(rows)
    write_parquet(lm / "ScienceQA/ScienceQA-IMG/test-00000-of-00001.parquet", {
        "image": [pic(img(r[4])) for r in rows], "question": [r[0] for r in rows], "choices": [r[1] for r in rows],
        "answer": [r[2] for r in rows], "hint": [r[3] for r in rows], "task": ["closed choice"] * n,
        "grade": ["grade2"] * n, "subject": ["natural science"] * n, "topic": ["biology"] * n,
        "category": ["Adaptations"] * n, "skill": ["x"] * n, "lecture": [""] * n, "solution": [""] * n,
    }, {"image": I(), "question": V(), "choices": [V()], "answer": V("int8"), "hint": V(), "task": V(),
        "grade": V(), "subject": V(), "topic": V(), "category": V(), "skill": V(), "lecture": V(), "solution": V()})


def test_scienceqa_parquet_gets_pids_from_the_official_json(tmp_path):
    off, lm = tmp_path / "official", tmp_path / "lmms"
    _scienceqa(off, lm, with_json_in_lmms=True)
    a, b = same_docs("scienceqa_img", off, lm)
    assert [d["doc_id"] for d in b] == ["5", "9"]
    assert task("scienceqa_img").prompt_for(b[0]) == (
        "Context: Tree frogs live in tropical rain forests.\nWhich animal's feet are also adapted for sticky "
        "surfaces?\nA. tree frog\nB. Eurasian lynx\nAnswer with the option's letter from the given choices directly.")


def test_scienceqa_parquet_alone_numbers_rows_with_same_prompts(tmp_path):
    off, lm = tmp_path / "official", tmp_path / "lmms"
    _scienceqa(off, lm, with_json_in_lmms=False)
    t = task("scienceqa_img")
    a, b = t.load_docs(off), t.load_docs(lm)
    assert [d["doc_id"] for d in b] == ["test-00000", "test-00001"]
    assert [t.prompt_for(d) for d in a] == [t.prompt_for(d) for d in b]
    assert [t.targets(d) for d in a] == [t.targets(d) for d in b] == ["A", "A"]


# ---- MMBench -------------------------------------------------------------------------------------

def test_mmbench_parquet_docs_equal_the_tsv(tmp_path):
    off, lm = tmp_path / "official", tmp_path / "lmms"
    rows = [(241, "Which category does this image belong to?", "nan", ["oil painting", "sketch", "digital art", "photo"],
             "D", (50, 60, 70)),
            (242, "What is the shape of the sign?", "The sign is on a road.", ["circle", "square", "triangle", None],
             "C", (255, 0, 0)),
            (1000241, "Which category does this image belong to?", "nan", ["photo", "oil painting", "sketch", "digital art"],
             "A", (50, 60, 70))]
    head = ["index", "question", "hint", "A", "B", "C", "D", "answer", "category", "image", "source", "l2-category",
            "comment", "split"]
    lines = ["\t".join(head)]
    for idx, q, hint, opts, ans, c in rows:
        lines.append("\t".join([str(idx), q, hint, *[o or "" for o in opts], ans, "image_style",
                                base64.b64encode(img(c)).decode(), "src", "coarse_perception", "nan", "dev"]))
    write_file(off / "mmbench/mmbench_dev_20230712.tsv", "\n".join(lines) + "\n")
    n = len(rows)
    write_parquet(lm / "MMBench/en/dev-00000-of-00001.parquet", {
        "index": [r[0] for r in rows], "question": [r[1] for r in rows],
        "hint": [None if r[2] == "nan" else r[2] for r in rows], "answer": [r[4] for r in rows],
        **{letter: [r[3][k] for r in rows] for k, letter in enumerate("ABCD")},
        "category": ["image_style"] * n, "image": [pic(img(r[5])) for r in rows], "source": ["src"] * n,
        "L2-category": ["coarse_perception"] * n, "comment": [None] * n, "split": ["dev"] * n,
    }, {"index": V("int64"), "question": V(), "hint": V(), "answer": V(), "A": V(), "B": V(), "C": V(), "D": V(),
        "category": V(), "image": I(), "source": V(), "L2-category": V(), "comment": V(), "split": V()})
    a, b = same_docs("mmbench_en_dev", off, lm)
    assert b[1]["options"] == ["circle", "square", "triangle"] and b[0]["hint"] == ""
    assert task("mmbench").prompt_for(b[1]) == ("The sign is on a road.\nWhat is the shape of the sign?\nA. circle\n"
                                                "B. square\nC. triangle\nAnswer with the option's letter from the "
                                                "given choices directly.")
    same_docs("mmbench_en_dev_circular", off, lm)


# ---- SEED-Bench ----------------------------------------------------------------------------------

def test_seedbench_parquet_image_questions_equal_official(tmp_path):
    off, lm = tmp_path / "official", tmp_path / "lmms"
    qs = [("101669", "How many towels are in the image?", ["One", "Two", "Three", "Four"], "A", 5, "image",
           "1454426_2591111986.jpg", (90, 90, 0)),
          ("v1", "What happens next?", ["a", "b", "c", "d"], "B", 11, "video", "v1.mp4", (0, 0, 0)),
          ("102000", "Where is the cat?", ["left", "right", "top", "bottom"], "C", 4, "image", "cat_1.jpg", (0, 90, 90))]
    write_file(off / "seedbench/SEED-Bench.json", {
        "question_type": {"Instances Counting": 5, "Instance Location": 4, "Action Prediction": 11},
        "questions": [{"question_id": q, "question": t, "choice_a": c[0], "choice_b": c[1], "choice_c": c[2],
                       "choice_d": c[3], "answer": a, "question_type_id": ty, "data_type": dt, "data_id": did}
                      for q, t, c, a, ty, dt, did, _ in qs]})
    for *_, dt, did, col in qs:
        if dt == "image":
            write_file(off / f"seedbench/SEED-Bench-image/{did}", img(col, "JPEG"))
    write_parquet(lm / "SEED-Bench/data/test-00000-of-00001.parquet", {
        "answer": [r[3] for r in qs], **{f"choice_{x}": [r[2][k] for r in qs] for k, x in enumerate("abcd")},
        "data_id": [r[6] for r in qs], "data_type": [r[5] for r in qs], "question": [r[1] for r in qs],
        "question_id": [r[0] for r in qs], "question_type_id": [r[4] for r in qs],
        "image": [[pic(img(r[7], "JPEG"))] * (1 if r[5] == "image" else 3) for r in qs],
        "segment": [None, "[0, 10]", None],
    }, {"answer": V(), "choice_a": V(), "choice_b": V(), "choice_c": V(), "choice_d": V(), "data_id": V(),
        "data_type": V(), "question": V(), "question_id": V(), "question_type_id": V("int16"), "image": [I()],
        "segment": V()})
    a, b = same_docs("seedbench", off, lm)
    assert [d["doc_id"] for d in b] == ["101669", "102000"] and b[0]["question_type"] == "Instances Counting"


# ---- MMMU ----------------------------------------------------------------------------------------

def test_mmmu_merged_parquet_docs_equal_subject_folders(tmp_path):
    off, lm = tmp_path / "official", tmp_path / "lmms"
    red, blue = img((255, 0, 0)), img((0, 0, 255))
    rows = [("validation_Art_Theory_1", "Compare <image 2> and <image 1>.", "['left', 'right']", "A",
             "multiple-choice", {1: red, 2: blue}),
            ("validation_Math_3", "<image 1> What is x?", "[]", "3.5", "open", {1: red})]
    feats = {"id": V(), "question": V(), "options": V(), "explanation": V(),
             **{f"image_{k}": I() for k in range(1, 8)}, "img_type": V(), "answer": V(), "topic_difficulty": V(),
             "question_type": V(), "subfield": V()}

    def table(rs):
        return {"id": [r[0] for r in rs], "question": [r[1] for r in rs], "options": [r[2] for r in rs],
                "explanation": [""] * len(rs),
                **{f"image_{k}": [pic(r[5][k]) if k in r[5] else None for r in rs] for k in range(1, 8)},
                "img_type": ["['Paintings']"] * len(rs), "answer": [r[3] for r in rs],
                "topic_difficulty": ["Easy"] * len(rs), "question_type": [r[4] for r in rs],
                "subfield": ["x"] * len(rs)}

    write_parquet(off / "mmmu/Art_Theory/validation-00000-of-00001.parquet", table(rows[:1]), feats)
    write_parquet(off / "mmmu/Math/validation-00000-of-00001.parquet", table(rows[1:]), feats)
    write_parquet(lm / "MMMU/data/validation-00000-of-00001.parquet", table(rows), feats)
    a, b = same_docs("mmmu_val", off, lm)
    assert [d["subject"] for d in b] == ["Art_Theory", "Math"]
    assert [Path(p).read_bytes() for p in b[0]["images"]] == [blue, red]


# ---- COCO captions -------------------------------------------------------------------------------

COCO = {391895: ("COCO_val2014_000000391895.jpg", ["A man riding a bike.", "A person on a bicycle."], (9, 99, 9)),
        522418: ("COCO_val2014_000000522418.jpg", ["A woman cutting a cake.", "Someone slicing cake."], (99, 9, 9))}


def _coco_parquet(path):
    n = len(COCO)
    write_parquet(path, {
        "question_id": [f for f, _, _ in COCO.values()], "image": [pic(img(c, "JPEG")) for *_, c in COCO.values()],
        "question": ["Please carefully observe the image and come up with a caption for the image."] * n,
        "answer": [caps for _, caps, _ in COCO.values()], "id": list(COCO), "license": [3] * n,
        "file_name": [f for f, _, _ in COCO.values()], "coco_url": [""] * n, "height": [6] * n,
        "width": [8] * n, "date_captured": ["2013-11-14 16:28:13"] * n,
    }, {"question_id": V(), "image": I(), "question": V(), "answer": [V()], "id": V("int64"), "license": V("int8"),
        "file_name": V(), "coco_url": V(), "height": V("int32"), "width": V("int32"), "date_captured": V()})


def test_coco_val2014_parquet_docs_equal_captions_json(tmp_path):
    off, lm = tmp_path / "official", tmp_path / "lmms"
    write_file(off / "coco/annotations/captions_val2014.json", {
        "images": [{"id": i, "file_name": f, "width": 8, "height": 6} for i, (f, _, _) in COCO.items()],
        "annotations": [{"id": 10 * i + k, "image_id": i, "caption": cap}
                        for i, (_, caps, _) in COCO.items() for k, cap in enumerate(caps)]})
    for f, _, c in COCO.values():
        write_file(off / f"coco/images/val2014/{f}", img(c, "JPEG"))
    _coco_parquet(lm / "COCO-Caption/data/val-00000-of-00001.parquet")
    a, b = same_docs("coco_caption_val2014", off, lm)
    assert b[0]["captions"] == ["A man riding a bike.", "A person on a bicycle."]


def test_coco_karpathy_takes_images_from_the_lmms_val_split(tmp_path):
    off, lm = tmp_path / "official", tmp_path / "lmms"
    karpathy = {"images": [{"filepath": "val2014", "filename": f, "cocoid": i, "split": "test",
                            "sentences": [{"raw": cap, "tokens": cap.lower().strip(".").split()} for cap in caps]}
                           for i, (f, caps, _) in COCO.items()]}
    karpathy["images"].append({"filepath": "train2014", "filename": "COCO_train2014_000000000009.jpg", "cocoid": 9,
                               "split": "train", "sentences": [{"raw": "x", "tokens": ["x"]}]})
    for root in (off, lm):
        write_file(root / "coco/dataset_coco.json", karpathy)
    for f, _, c in COCO.values():
        write_file(off / f"coco/images/val2014/{f}", img(c, "JPEG"))
    _coco_parquet(lm / "COCO-Caption/data/val-00000-of-00001.parquet")
    a, b = same_docs("coco_caption", off, lm)
    assert [d["doc_id"] for d in b] == ["391895", "522418"]


# ---- detection -----------------------------------------------------------------------------------

def test_a_parquet_of_another_benchmark_is_not_taken_for_this_one(tmp_path):
    """A VQAv2 download under the root must not be read as POPE (its columns differ)."""
    _, lm = _vqav2(tmp_path)
    (lm / "VQAv2/data/validation-00000-of-00001.parquet").rename(lm / "VQAv2/data/test-00000-of-00001.parquet")
    with pytest.raises(DataError) as e:
        task("pope").load_docs(lm / "VQAv2")
    assert "category" in str(e.value) and "pope" in str(e.value)


def test_the_data_root_itself_may_be_the_lmms_download(tmp_path):
    off, lm = _vqav2(tmp_path)
    a = task("vqav2_val").load_docs(lm)
    b = task("vqav2_val").load_docs(lm / "VQAv2")
    assert [d["doc_id"] for d in a] == [d["doc_id"] for d in b] == ["139000", "139001", "285000"]


def test_score_accepts_an_lmms_download_as_annotations(tmp_path, capsys):
    """`sc-eval score` with --annotations naming the parquet folder gives the official file's numbers."""
    from sc_eval.cli import main

    off, lm = _vqav2(tmp_path)
    preds = tmp_path / "results.json"
    # "Red" matches 7 answers (100), "no" 1 of ten (30), "one" normalises to "1" (6 exact -> 100)
    preds.write_text(json.dumps([{"question_id": 139000, "answer": "Red"}, {"question_id": 139001, "answer": "no"},
                                 {"question_id": 285000, "answer": "one"}]))
    outs = []
    for ann in (off / "vqav2/v2_mscoco_val2014_annotations.json", lm / "VQAv2"):
        capsys.readouterr()
        assert main(["score", "vqav2_val", "--predictions", str(preds), "--annotations", str(ann)]) == 0
        outs.append(json.loads(capsys.readouterr().out))
    assert outs[0]["metrics"] == outs[1]["metrics"] and outs[1]["n_docs"] == 3
    assert outs[1]["metrics"]["vqa_acc"] == pytest.approx((100 + 30 + 100) / 3)

    _pope_official(off)
    _pope_parquet(lm / "POPE/data/test-00000-of-00001.parquet", POPE_ROWS)
    answers = tmp_path / "pope.jsonl"
    answers.write_text("".join(json.dumps({"doc_id": f"{c}/{q}", "prediction": "No"}) + "\n" for c, q, *_ in POPE_ROWS))
    outs = []
    for ann in (off / "pope", lm / "POPE"):
        capsys.readouterr()
        assert main(["score", "pope", "--predictions", str(answers), "--annotations", str(ann)]) == 0
        outs.append(json.loads(capsys.readouterr().out))
    assert outs[0]["metrics"] == outs[1]["metrics"] and outs[1]["metrics"]["random_accuracy"] == pytest.approx(50.0)


def test_a_damaged_parquet_is_a_data_error_naming_the_file(tmp_path):
    bad = tmp_path / "POPE/data/test-00000-of-00001.parquet"
    write_file(bad, b"PAR1 not really a parquet file")
    with pytest.raises(DataError) as e:
        task("pope").load_docs(tmp_path)
    assert str(bad) in str(e.value) and "re-download" in str(e.value)
