"""Loaders and corpus scoring for the COCO caption tasks.

Caption metrics are corpus-level (CIDEr-D's document frequencies, BLEU's brevity penalty), so
there is no per-doc score: ``aggregate`` scores all records at once with the official scorers
(sc_eval.metrics.caption), on the references carried in each record's ``targets``.

lmms-lab layouts (``data/{val,test}-*.parquet``, columns question_id = the COCO file name, image,
question, answer = the image's captions, id = the COCO image id, license, file_name, coco_url,
height, width, date_captured):
  * lmms-lab/COCO-Caption is COCO 2014: ``val`` = all 40,504 val2014 images, i.e.
    ``coco_caption_val2014``; ``test`` = test2014 (no captions).
  * lmms-lab/COCO-Caption2017 ``val`` is COCO 2017 val (5,000 images): NOT the Karpathy test split
    (also 5,000 val2014 images, but other ones), so no lmms-lab split is the Karpathy test set.
    ``coco_caption`` therefore keeps Karpathy's dataset_coco.json for the split and its captions,
    and takes the images from an lmms-lab COCO-Caption ``val`` download when the COCO image folder
    is absent (Karpathy's val and test images are all val2014 images).
"""
from __future__ import annotations

from pathlib import Path

from sc_eval.data import lmms
from sc_eval.data.formats import read_coco_captions, read_karpathy
from sc_eval.errors import DataError
from sc_eval.io import read_json
from sc_eval.metrics.caption import per_image_scores, score_captions
from sc_eval.runtime.fingerprint import Hasher

LMMS_COLUMNS = ("id", "image", "answer")


def load_karpathy(root: Path, annotations: str, images: str, split: str = "test",
                  include_restval: bool = False, lmms_dir=None, lmms_split: str = "val") -> list[dict]:
    """Docs of one Karpathy split: doc_id = str(COCO image id), image path, captions. Images come
    from ``root/images``, or from an lmms-lab COCO-Caption download when that folder is absent."""
    root = Path(root)
    docs = read_karpathy(root / annotations, root / images, split, include_restval=include_restval)
    if not (root / images).is_dir() and _find(root, images, lmms_dir, lmms_split) is not None:
        paths = _lmms_images(root, images, lmms_dir, lmms_split, {d["image_id"] for d in docs})
        missing = [d["doc_id"] for d in docs if d["image_id"] not in paths]
        if missing:
            raise DataError(f"{root / images}: not found, and the lmms-lab COCO-Caption {lmms_split} split "
                            f"lacks {len(missing)} images of Karpathy {split} (first {missing[0]}); "
                            "Karpathy train images are train2014: use the COCO image folders")
        for d in docs:
            d["image"] = paths[d["image_id"]]
    return docs


def load_coco(root: Path, annotations: str, images: str, lmms_dir=None, lmms_split: str = "val") -> list[dict]:
    """Docs of a COCO captions_*.json: every image with its captions; or of an lmms-lab
    COCO-Caption download when the JSON is absent."""
    root = Path(root)
    if not (root / annotations).exists():
        return [d for d in _lmms_docs(root, annotations, lmms_dir, lmms_split) if d["captions"]]
    return [d for d in read_coco_captions(root / annotations, root / images) if d["captions"]]


def _find(root: Path, official: str, dirs, split: str):
    return lmms.locate(root, lmms.candidate_dirs(official, dirs or ["COCO-Caption"]), split, None, LMMS_COLUMNS)


def _source(root: Path, official: str, dirs, split: str):
    return lmms.require(root, lmms.candidate_dirs(official, dirs or ["COCO-Caption"]), split, None,
                        LMMS_COLUMNS, str(root / official))


def _lmms_docs(root: Path, official: str, dirs, split: str, wanted: set | None = None) -> list[dict]:
    """read_coco_captions' docs from lmms-lab rows (all images, or the ids in `wanted`)."""
    src = _source(root, official, dirs, split)

    def build(store, folder):
        docs = []
        for where, row in lmms.checked_rows(src, LMMS_COLUMNS):
            image_id = int(row["id"])
            if wanted is not None and image_id not in wanted:
                continue
            name = Path(str(row.get("file_name") or row.get("question_id") or image_id)).stem
            docs.append({"doc_id": str(image_id),
                         "image": store.save(name, lmms.image_bytes(row["image"], where)),
                         "image_id": image_id, "captions": [str(c) for c in (row["answer"] or [])],
                         "width": row.get("width"), "height": row.get("height")})
        return docs

    key = f"coco-{split}" + ("" if wanted is None else "-" + _ids_key(wanted))
    return lmms.cached_docs([src], key, build)


def _ids_key(ids) -> str:
    return Hasher().text(",".join(map(str, sorted(ids)))).hex()


def _lmms_images(root: Path, images: str, dirs, split: str, wanted: set) -> dict:
    """{image id: image path} for the wanted ids, from an lmms-lab COCO-Caption split."""
    return {d["image_id"]: d["image"] for d in _lmms_docs(root, images, dirs, split, wanted)}


def load_for_scoring(annotations, questions=None) -> list[dict]:
    """`sc-eval score coco_caption --annotations captions_val2014.json`: docs with doc_id =
    str(image_id) and their reference captions (images are not needed to score).

    A Karpathy ``dataset_coco.json`` is accepted too (all its images, every split)."""
    if Path(annotations).is_dir():  # an lmms-lab COCO-Caption download: its val split
        return [{**d, "image": None} for d in _lmms_docs(Path(annotations), "coco/val.json", None, "val")]
    data = read_json(annotations)
    if isinstance(data, dict) and isinstance(data.get("annotations"), list):
        refs: dict = {}
        for k, a in enumerate(data["annotations"]):
            if not isinstance(a, dict) or "image_id" not in a or not isinstance(a.get("caption"), str):
                raise DataError(f"{annotations}: annotations[{k}] needs an image_id and a caption string")
            refs.setdefault(str(a["image_id"]), []).append(a["caption"])
        return [{"doc_id": i, "image": None, "captions": c} for i, c in refs.items()]
    if isinstance(data, dict) and isinstance(data.get("images"), list):
        return [{"doc_id": str(im["cocoid"]), "image": None,
                 "captions": [s["raw"] for s in im.get("sentences", [])]}
                for im in data["images"] if "cocoid" in im]
    raise DataError(f"{annotations}: not a COCO captions file ({{'annotations': [...]}}) nor a "
                    "Karpathy dataset_coco.json")


def _refs(record) -> list[str]:
    t = record.get("targets")
    if isinstance(t, str):
        return [t]
    if not t:
        raise DataError(f"caption record {record.get('doc_id')!r} carries no reference captions")
    return list(t)


def aggregate(records) -> tuple[dict, dict]:
    """BLEU-1..4, METEOR, ROUGE-L, CIDEr-D (and SPICE when its jars exist), in percent, and the
    standard errors of CIDEr-D and ROUGE-L over the images."""
    gts = {str(r["doc_id"]): _refs(r) for r in records}
    res = {str(r["doc_id"]): str(r["prediction"]) for r in records}
    return score_captions(gts, res, with_stderr=True)


def doc_scores(records) -> dict:
    """Per-image CIDEr-D and ROUGE-L (percent), for comparing two runs image by image."""
    return per_image_scores({str(r["doc_id"]): _refs(r) for r in records},
                            {str(r["doc_id"]): str(r["prediction"]) for r in records})
