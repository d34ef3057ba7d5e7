"""Classification datasets for the classifier adapters (probes, k-shot, LiT), their frozen-encoder
features, and their predictions files.

Three sources, one shape (:class:`ClassificationData`):

- an ImageFolder tree ``ROOT/<split>/<class>/<image>`` read by
  ``sc_eval.data.formats.read_imagefolder`` (the embedded world's ``classification/`` is one);
- ``hf:DIR``: a dataset saved with ``datasets.save_to_disk`` holding an image column and an
  integer (ClassLabel) label column;
- nothing: the embedded world (``sc_eval.world.build.ensure_world``), whose class is the dominant colour.

Features of path-based splits come from the shared feature cache, so a second probe of the same
encoder never re-encodes. HF datasets hold pixels, not paths, and are encoded in memory.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import torch

from sc_eval.data.formats import read_imagefolder
from sc_eval.encoders.features import encode_images
from sc_eval.errors import ConfigError, DataError
from sc_eval.io import atomic_write_text
from sc_eval.runtime import dist
from sc_eval.runtime.precision import autocast, check_precision
from sc_eval.world.build import ensure_world

log = logging.getLogger(__name__)

_IMAGE_COLUMNS = ("image", "img", "jpg", "png")
_LABEL_COLUMNS = ("label", "labels", "fine_label", "cls")


@dataclass
class Split:
    """One split: ``labels[i]`` is the class index of ``images[i]`` (a path) or ``hf[i]``."""

    name: str
    labels: list[int]
    images: list[str] | None = None
    hf: object = None
    image_column: str | None = None

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class ClassificationData:
    key: str  # identifies the dataset in the feature cache and in result fingerprints
    classes: list[str]
    splits: dict[str, Split] = field(default_factory=dict)

    def split(self, name: str) -> Split:
        if name not in self.splits:
            raise DataError(f"{self.key}: no {name!r} split (found: {', '.join(self.splits) or 'none'})")
        return self.splits[name]

    @property
    def class_names(self) -> list[str]:
        """Folder names as words for prompts: 'golden_retriever' -> 'golden retriever'."""
        return [c.replace("_", " ") for c in self.classes]

    def eval_split(self) -> str:
        """The split that is scored: test when it exists, else val (ImageNet's convention)."""
        for s in ("test", "val", "validation"):
            if s in self.splits:
                return s
        raise DataError(f"{self.key}: no test or val split to evaluate on (found: {', '.join(self.splits)})")

    def train_split(self) -> str:
        if "train" not in self.splits:
            raise DataError(f"{self.key}: no 'train' split to fit the probe on (found: {', '.join(self.splits)}); "
                            "expected ROOT/train/<class>/<image> beside ROOT/test/... or ROOT/val/...")
        return "train"


def load_classification(spec: str | None = None, seed: int = 0) -> ClassificationData:
    """Resolve ``--data``: None (the embedded world), ``hf:DIR`` or an ImageFolder root."""
    if spec is None:
        root = Path(ensure_world(seed=seed)) / "classification"
        return load_imagefolder(root)
    if str(spec).startswith("hf:"):
        return load_hf(str(spec)[3:])
    return load_imagefolder(Path(spec))


def load_imagefolder(root: Path) -> ClassificationData:
    """Every split folder under ``root`` (train/val/test...); class indices shared across splits."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"{root}: not a directory; --data expects an ImageFolder root "
                        "ROOT/<split>/<class>/<image> or hf:DIR")
    split_names = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not split_names:
        raise DataError(f"{root}: no split folders (expected ROOT/train/<class>/..., ROOT/test/<class>/...)")
    raw = {s: _normalise(read_imagefolder(root, s), root / s) for s in split_names}
    classes = sorted({c for paths, names in raw.values() for c in names})
    index = {c: i for i, c in enumerate(classes)}
    data = ClassificationData(key=f"imagefolder:{root.resolve()}", classes=classes)
    for s, (paths, names) in raw.items():
        if paths:
            data.splits[s] = Split(s, [index[c] for c in names], images=paths)
    return data


def _normalise(out, where: Path) -> tuple[list[str], list[str]]:
    """read_imagefolder's docs -> (image paths, class names), in its order."""
    paths, names = [], []
    for doc in out:
        image = doc.get("image") if isinstance(doc, dict) else None
        name = None
        if isinstance(doc, dict):
            name = doc.get("class_name", doc.get("class", doc.get("label_name")))
            if name is None and isinstance(doc.get("label"), str):
                name = doc["label"]
        if image is None or name is None:
            raise DataError(f"{where}: unexpected ImageFolder record {doc!r}")
        paths.append(str(image))
        names.append(str(name))
    return paths, names


def load_hf(path: str) -> ClassificationData:
    root = Path(path).expanduser()
    if not root.exists():
        raise DataError(f"{root}: no such directory; hf:DIR expects a datasets.save_to_disk folder")
    try:
        ds = datasets.load_from_disk(str(root))
    except (FileNotFoundError, ValueError) as e:
        raise DataError(f"{root}: not a saved HF dataset ({e}); save one with Dataset.save_to_disk") from None
    if isinstance(ds, datasets.Dataset):
        ds = {"train": ds}
    first = next(iter(ds.values()))
    image_col = next((c for c in _IMAGE_COLUMNS if c in first.column_names), None)
    label_col = next((c for c in _LABEL_COLUMNS if c in first.column_names), None)
    if image_col is None or label_col is None:
        raise DataError(f"{root}: needs an image column ({'/'.join(_IMAGE_COLUMNS)}) and a label column "
                        f"({'/'.join(_LABEL_COLUMNS)}); found {first.column_names}")
    feat = first.features[label_col]
    if hasattr(feat, "names"):
        classes = list(feat.names)
    else:
        classes = [str(v) for v in sorted({int(v) for d in ds.values() for v in d[label_col]})]
    data = ClassificationData(key=f"hf:{root.resolve()}:{getattr(first, '_fingerprint', '')}", classes=classes)
    for name, d in ds.items():
        data.splits[name] = Split(name, [int(v) for v in d[label_col]], hf=d, image_column=image_col)
    return data


def split_features(encoder, data: ClassificationData, split: str, batch_size: int = 64, precision: str = "fp32"):
    """[N, D] float32 pooled features of one split (shared cache for path-based splits), the
    encoder run under autocast in ``precision``."""
    s = data.split(split)
    if s.images is not None:
        feats = encode_images(encoder, s.images, data.key, split, kind="pooled", batch_size=batch_size,
                              precision=precision)
    else:
        feats = encode_pil(encoder, (s.hf[i][s.image_column] for i in range(len(s))), batch_size, precision)
    feats = torch.as_tensor(feats).float().cpu().clone()  # a plain tensor even if made in inference mode
    if feats.shape[0] != len(s):
        raise DataError(f"{data.key} {split}: got {feats.shape[0]} features for {len(s)} images")
    return feats


def encode_pil(encoder, images, batch_size: int = 64, precision: str = "fp32"):
    """Pooled features of in-memory PIL images (HF datasets, webdataset shards): no cache."""
    amp = autocast(encoder.device, precision)  # refuses a precision the device lacks, before any image is read
    out, batch = [], []

    def flush():
        x = torch.stack([encoder.transform(im) for im in batch])
        with torch.no_grad(), amp:
            out.append(encoder.forward_pooled(x).float().cpu())
        batch.clear()

    for im in images:
        batch.append(im)
        if len(batch) == batch_size:
            flush()
    if batch:
        flush()
    if not out:
        return torch.zeros(0, encoder.width)
    return torch.cat(out)


def check_trained_classes(data: ClassificationData) -> None:
    """Every class the eval split holds has training images: a probe cannot predict a class it
    never saw, so such a split would be scored against answers the probe cannot give."""
    train, scored = data.train_split(), data.eval_split()
    have = set(data.split(train).labels)
    absent = sorted(data.classes[i] for i in set(data.split(scored).labels) - have)
    if absent:
        shown = ", ".join(repr(c) for c in absent[:5]) + (f" (+{len(absent) - 5} more)" if len(absent) > 5 else "")
        raise DataError(f"{data.key}: {len(absent)} class(es) of the {scored} split have no {train} images: {shown}; "
                        f"a probe cannot predict them: add {train} images of those classes or leave them out of "
                        f"{scored}")


def check_classes(data: ClassificationData, min_classes: int = 2) -> None:
    if len(data.classes) < min_classes:
        raise ConfigError(f"{data.key}: {len(data.classes)} class(es) found; a classifier needs at least {min_classes}")


def setup_rank0(args):
    """The start shared by `sc-eval probe` and `sc-eval zeroshot`: join torchrun if launched by it,
    then on rank 0 seed and load the classification data. Returns (device, data), or None on
    other ranks (fits on frozen features are small: rank 0 does all the work)."""
    device = dist.resolve_device(args.device)
    check_precision(args.precision, device)
    dist.init_distributed(device)
    if not dist.is_main():
        return None
    dist.seed_everything(args.seed)
    data = load_classification(args.data, seed=0)
    check_classes(data)
    return device, data


def write_predictions(run_dir: Path, task: str, images, labels, scores, classes: list[str],
                      prompt: str = "", correct=None, split_images=None) -> str:
    """predictions/<task>.jsonl in the runner's record layout: one line per scored image, the
    prediction being the top-scoring class; ``correct`` (one number per image, e.g. the share of
    few-shot seeds right) replaces the 0/1 score of that prediction. Images are named below the
    folder that all of ``split_images`` (the whole split; default ``images``) share."""
    scores = torch.as_tensor(scores)
    pred = scores.argmax(1).tolist()
    ids = _doc_ids(images, split_images) if images is not None else [str(i) for i in range(len(labels))]
    lines = []
    for i, (label, p) in enumerate(zip(labels, pred)):
        image = str(images[i]) if images is not None else None
        lines.append(json.dumps({
            "doc_id": ids[i],
            "task": task, "prompt": prompt, "image": image, "prediction": classes[p],
            "targets": [classes[int(label)]],
            "scores": {"correct": float(p == int(label)) if correct is None else float(correct[i])},
        }, ensure_ascii=False) + "\n")
    out = Path(run_dir) / "predictions" / f"{task}.jsonl"
    atomic_write_text(out, "".join(lines))
    return str(out.relative_to(run_dir))


def _doc_ids(images, split_images=None) -> list[str]:
    """Each image's path below the folder all of the split's images share (``<class>/<file>`` in
    an ImageFolder split): the same on every machine and whatever --limit kept, so runs made
    elsewhere or on other subsets compare image by image."""
    paths = [os.path.abspath(str(x)) for x in images]
    if not paths:
        return []
    every = [os.path.abspath(str(x)) for x in (split_images if split_images is not None else images)]
    base = os.path.commonpath([os.path.dirname(x) for x in every])
    return [Path(os.path.relpath(x, base)).as_posix() for x in paths]
