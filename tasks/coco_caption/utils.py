"""Loaders and corpus scoring for the COCO caption tasks.

Caption metrics are corpus-level (CIDEr-D's document frequencies, BLEU's brevity penalty), so
there is no per-doc score: ``aggregate`` scores all records at once with the official scorers
(sc_eval.metrics.caption), on the references carried in each record's ``targets``.
"""
from __future__ import annotations

from pathlib import Path

from sc_eval.errors import DataError


def load_karpathy(root: Path, annotations: str, images: str, split: str = "test",
                  include_restval: bool = False) -> list[dict]:
    """Docs of one Karpathy split: doc_id = str(COCO image id), image path, captions."""
    from sc_eval.data.formats import read_karpathy

    return read_karpathy(Path(root) / annotations, Path(root) / images, split,
                         include_restval=include_restval)


def load_coco(root: Path, annotations: str, images: str) -> list[dict]:
    """Docs of a COCO captions_*.json: every image with its captions."""
    from sc_eval.data.formats import read_coco_captions

    return [d for d in read_coco_captions(Path(root) / annotations, Path(root) / images) if d["captions"]]


def load_for_scoring(annotations, questions=None) -> list[dict]:
    """`sc-eval score coco_caption --annotations captions_val2014.json`: docs with doc_id =
    str(image_id) and their reference captions (images are not needed to score).

    A Karpathy ``dataset_coco.json`` is accepted too (all its images, every split)."""
    from sc_eval.io import read_json

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


def aggregate(records) -> dict:
    """BLEU-1..4, METEOR, ROUGE-L, CIDEr-D (and SPICE when its jars exist), in percent."""
    from sc_eval.metrics.caption import score_captions

    gts = {str(r["doc_id"]): _refs(r) for r in records}
    res = {str(r["doc_id"]): str(r["prediction"]) for r in records}
    return score_captions(gts, res)
