"""What an encoder's LLaVA input tokens know: linear probes on the mean image token.

For each encoder, the tokens LLaVA's projector reads (``forward_tokens(layer=...)``, default -2)
are averaged over the patches, and one logistic regression per word tells whether that shape or
colour is in the picture. Probes train on the embedded world's COCO train2014 images and are
scored on val2014 (held out from every tower's pretraining); labels come from the images' five
captions (every caption names each object's colour and shape). Prints ONE JSON object: per
encoder, the held-out accuracy per word, the mean over shapes and over colours, and the majority
baseline (always "absent"/"present", whichever is commoner) to read them against.

    python benchmarks/token_probe.py runs/demo/pretrain-superclass runs/demo/pretrain-clip random:sc-vit-tiny
"""
from __future__ import annotations

import argparse
import json
import os
import re
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

def _labels(world: Path, split: str, words: list[str]):
    """(image paths, {word: [0/1 per image]}) for coco/<split> of the world."""
    path = world / "coco" / "annotations" / f"captions_{split}.json"
    if not path.is_file():
        raise SystemExit(f"{path}: not found; --world must be an embedded world (`sc-eval world --out DIR`)")
    ann = json.loads(path.read_text())
    text: dict[int, str] = {}
    for a in ann["annotations"]:
        text[a["image_id"]] = text.get(a["image_id"], "") + " " + a["caption"].lower()
    images = sorted(ann["images"], key=lambda im: im["id"])
    paths = [world / "coco" / "images" / split / im["file_name"] for im in images]
    found = {w: [int(re.search(rf"\b{w}(e?s)?\b", text[im["id"]]) is not None) for im in images] for w in words}
    return paths, found


def _features(enc, paths, layer: int, batch: int = 100):
    import torch

    from sc_eval.adapters.llava.model import image_tensor
    from sc_eval.data.images import load_image

    out = []
    with torch.no_grad():
        for i in range(0, len(paths), batch):
            x = torch.stack([image_tensor(enc, load_image(p)) for p in paths[i:i + batch]])
            out.append(enc.forward_tokens(x, layer=layer).mean(1))
    return torch.cat(out)


def _probe(xtr, ytr, xte, yte, l2: float = 1e-3) -> float:
    """Held-out accuracy of an L2-regularised logistic regression (the linear probe's L-BFGS fit,
    two classes; its weight decay 4 * l2 is an l2 * ||w||^2 penalty on the one decision vector)."""
    import torch

    from sc_eval.adapters.probe.linear import fit_logreg

    model = fit_logreg(xtr, torch.tensor(ytr), 2, weight_decay=4 * l2)
    return float((model.scores(xte).argmax(1) == torch.tensor(yte)).float().mean())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("encoders", nargs="+", help="encoder specs: run dirs, encoder dirs, random:ARCH, ...")
    ap.add_argument("--world", default=None, help="an embedded world (default: the cached default world)")
    ap.add_argument("--layer", type=int, default=-2, help="forward_tokens layer (LLaVA reads -2)")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)

    import torch

    from sc_eval import load_encoder
    from sc_eval.world.build import ensure_world
    from sc_eval.world.scene import COLOURS, SHAPES

    if args.threads:
        torch.set_num_threads(args.threads)
    world = Path(args.world) if args.world else ensure_world()
    shape_words = set(SHAPES)
    words = list(SHAPES) + list(COLOURS)
    tr_paths, ytr = _labels(world, "train2014", words)
    te_paths, yte = _labels(world, "val2014", words)
    words = [w for w in words if 0 < sum(ytr[w]) < len(tr_paths) and 0 < sum(yte[w]) < len(te_paths)]
    out = {"benchmark": "token_probe", "layer": args.layer, "train_images": len(tr_paths),
           "test_images": len(te_paths),
           "majority_baseline": {w: round(max(sum(yte[w]), len(te_paths) - sum(yte[w])) / len(te_paths), 3)
                                 for w in words},
           "encoders": {}}
    for spec in args.encoders:
        enc = load_encoder(spec).eval()
        xtr, xte = _features(enc, tr_paths, args.layer), _features(enc, te_paths, args.layer)
        acc = {w: round(_probe(xtr, ytr[w], xte, yte[w]), 3) for w in words}
        shapes = [acc[w] for w in words if w in shape_words]
        colours = [acc[w] for w in words if w not in shape_words]
        out["encoders"][spec] = {"per_word": acc, "shapes_mean": round(sum(shapes) / len(shapes), 3),
                                 "colours_mean": round(sum(colours) / len(colours), 3)}
    base = out["majority_baseline"]
    n_shapes = sum(1 for w in words if w in shape_words)
    out["majority_shapes_mean"] = round(sum(base[w] for w in words if w in shape_words) / n_shapes, 3)
    out["majority_colours_mean"] = round(sum(base[w] for w in words if w not in shape_words)
                                         / max(1, len(words) - n_shapes), 3)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
