"""Writers for the caption-side formats: pretraining shards, COCO captions, Karpathy splits,
the ImageFolder classification set, the LLaVA training JSONs and the text corpus.

Field names and nesting follow the official files exactly (img2dataset shards, COCO 2014
`captions_*.json`, Karpathy's `dataset_coco.json`, LCS-558K and mix665k) so that the loaders
sc-eval runs on the embedded world are the ones users run on the real data.
"""
from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile

from sc_eval.world.context import Context, Item, unique_ints
from sc_eval.world.render import jpeg_bytes, png_bytes, render
from sc_eval.world.scene import COLOURS, sample_class_scene, sample_scene
from sc_eval.world.text import captions

SHORT_ANSWER = "\nAnswer the question using a single word or phrase."
BRIEF_PROMPTS = [
    "Give a short description of this picture.",
    "Describe the image in a few words.",
    "What does this image show? Answer briefly.",
    "Write a one-line caption for the image.",
    "Summarise the picture concisely.",
]


def _tar_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0           # fixed metadata: same seed, byte-identical shards
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    tar.addfile(info, io.BytesIO(data))


def write_pretrain(ctx: Context) -> list[dict]:
    """img2dataset-style shards + pairs.jsonl/images; returns the pairs (for LLaVA stage 1)."""
    rng, size = ctx.rng("pretrain"), ctx.sizes.image_size
    n, per = ctx.sizes.pretrain, ctx.sizes.shard_size
    pairs, shards = [], 0
    for start in range(0, n, per):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for idx in range(start, min(n, start + per)):
                scene = sample_scene(rng)
                caption = captions(scene, rng)[int(rng.integers(5))]
                jpg = jpeg_bytes(render(scene, size))
                key = f"{idx:09d}"
                meta = {"key": key, "caption": caption, "status": "success", "error_message": None,
                        "width": size, "height": size, "original_width": size,
                        "original_height": size, "exif": None,
                        "sha256": hashlib.sha256(jpg).hexdigest()}
                _tar_member(tar, f"{key}.jpg", jpg)
                _tar_member(tar, f"{key}.txt", caption.encode("utf-8"))
                _tar_member(tar, f"{key}.json", _json_bytes(meta))
                ctx.write_image(f"pretrain/images/{key}.jpg", jpg)
                pairs.append({"image": f"images/{key}.jpg", "caption": caption, "key": key})
                ctx.add_text(caption)
        ctx.write_bytes(f"pretrain/shards/{shards:05d}.tar", buf.getvalue())
        shards += 1
    ctx.write_jsonl("pretrain/pairs.jsonl", pairs)
    ctx.counts["pretrain"] = {"pairs": len(pairs), "shards": shards}
    return pairs


def _json_bytes(obj) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode("utf-8")


def coco_items(ctx: Context) -> dict[str, list[Item]]:
    """Render the COCO-style images of train2014, val2014 and test2015 (distinct image ids)."""
    rng, size = ctx.rng("coco"), ctx.sizes.image_size
    n = {"train2014": ctx.sizes.coco_train, "val2014": ctx.sizes.coco_val,
         "test2015": ctx.sizes.coco_test}
    ids = unique_ints(rng, sum(n.values()), 1, 600000)
    out, k = {}, 0
    for split, count in n.items():
        items = []
        for image_id in sorted(ids[k:k + count]):
            scene = sample_scene(rng)
            rel = f"coco/images/{split}/COCO_{split}_{image_id:012d}.jpg"
            ctx.write_image(rel, jpeg_bytes(render(scene, size)))
            items.append(Item(image_id, scene, rel, {"captions": captions(scene, rng)}))
        out[split] = items
        k += count
    return out


def write_coco(ctx: Context, items: dict[str, list[Item]]) -> None:
    """captions_{train,val}2014.json and Karpathy's dataset_coco.json."""
    size = ctx.sizes.image_size
    ann_id = 1
    counts = {}
    for split in ("train2014", "val2014"):
        images, anns = [], []
        for it in items[split]:
            images.append({"license": 1, "file_name": it.path.rsplit("/", 1)[1], "coco_url": "",
                           "height": size, "width": size, "date_captured": "", "flickr_url": "",
                           "id": it.id})
            for cap in it.extra["captions"]:
                anns.append({"image_id": it.id, "id": ann_id, "caption": cap})
                ann_id += 1
                if split == "train2014":
                    ctx.add_text(cap)
        doc = {"info": {"description": "sc-shapes captions in COCO 2014 format", "url": "",
                        "version": "1.0", "year": 2014, "contributor": "sc-eval", "date_created": ""},
               "licenses": [{"url": "", "id": 1, "name": "generated by sc-eval (public domain)"}],
               "images": images, "annotations": anns}
        ctx.write_json(f"coco/annotations/captions_{split}.json", doc)
        counts[split] = {"images": len(images), "captions": len(anns)}
    counts["test2015"] = {"images": len(items["test2015"])}
    ctx.counts["coco"] = counts
    ctx.counts["karpathy"] = _write_karpathy(ctx, items)


def karpathy_split_of(i: int, n: int) -> str:
    """val2014 images become Karpathy val (first 25%), test (next 40%) and restval (rest)."""
    if i < round(n * 0.25):
        return "val"
    if i < round(n * 0.65):
        return "test"
    return "restval"


def _write_karpathy(ctx: Context, items) -> dict:
    images, sentid, counts = [], 0, {"train": 0, "restval": 0, "val": 0, "test": 0}
    for folder in ("train2014", "val2014"):
        group = items[folder]
        for i, it in enumerate(group):
            split = "train" if folder == "train2014" else karpathy_split_of(i, len(group))
            imgid = len(images)
            sents = []
            for cap in it.extra["captions"]:
                sents.append({"tokens": re.findall(r"[a-z0-9]+", cap.lower()), "raw": cap,
                              "imgid": imgid, "sentid": sentid})
                sentid += 1
            images.append({"filepath": folder, "sentids": [s["sentid"] for s in sents],
                           "filename": it.path.rsplit("/", 1)[1], "imgid": imgid, "split": split,
                           "sentences": sents, "cocoid": it.id})
            counts[split] += 1
    ctx.write_json("coco/dataset_coco.json", {"images": images, "dataset": "coco"})
    return counts


def write_classification(ctx: Context) -> list[str]:
    """ImageFolder `classification/<split>/<colour>/<n>.png`; balanced over colour classes."""
    rng, size = ctx.rng("classification"), ctx.sizes.image_size
    classes = sorted(COLOURS)
    counts = {}
    for split, n in (("train", ctx.sizes.class_train), ("val", ctx.sizes.class_val),
                     ("test", ctx.sizes.class_test)):
        for colour in classes:
            for k in range(n):
                scene = sample_class_scene(rng, colour)
                ctx.write_image(f"classification/{split}/{colour}/{k}.png", png_bytes(render(scene, size)))
        counts[split] = n * len(classes)
    ctx.counts["classification"] = counts
    return classes


def write_llava(ctx: Context, pairs: list[dict], conversations: list[dict]) -> None:
    """llava/pretrain.json (LCS-558K layout) and llava/finetune.json (mix665k layout)."""
    rng = ctx.rng("llava")
    stage1 = []
    for p in pairs:
        prompt = BRIEF_PROMPTS[int(rng.integers(len(BRIEF_PROMPTS)))]
        stage1.append({"id": p["key"], "image": f"pretrain/{p['image']}",
                       "conversations": [{"from": "human", "value": f"<image>\n{prompt}"},
                                         {"from": "gpt", "value": p["caption"]}]})
    ctx.write_json("llava/pretrain.json", stage1)
    ctx.write_json("llava/finetune.json", conversations)
    ctx.counts["llava"] = {"pretrain": len(stage1), "finetune": len(conversations)}
    ctx.add_text(*BRIEF_PROMPTS)


def conversation(conv_id: str, image: str, turns: list[tuple[str, str]]) -> dict:
    """A mix665k record; `<image>` goes only in the first human turn."""
    msgs = []
    for i, (q, a) in enumerate(turns):
        msgs.append({"from": "human", "value": ("<image>\n" if i == 0 else "") + q})
        msgs.append({"from": "gpt", "value": a})
    return {"id": conv_id, "image": image, "conversations": msgs}


def write_corpus(ctx: Context) -> None:
    """text/corpus.txt: the text of the TRAINING parts only (pretraining and train-split
    captions, questions, answers, prompts), so a language model trained on it has never read
    a held-out caption or question."""
    ctx.write_bytes("text/corpus.txt", ("\n".join(ctx.corpus) + "\n").encode("utf-8"))
    ctx.counts["corpus_lines"] = len(ctx.corpus)
