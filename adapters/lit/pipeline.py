"""`sc-eval zeroshot` (flags: ``command``): train LiT on image-text pairs (or load a saved one),
embed every class name in the prompt templates, classify the eval split by cosine similarity,
and write ``zeroshot_lit`` to results.json (reused on a rerun with the same fingerprint).
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch

from sc_eval import load_encoder
from sc_eval.adapters.lit import model as L
from sc_eval.adapters.lit.pairs import pair_features
from sc_eval.adapters.lit.templates import load_templates
from sc_eval.errors import ConfigError
from sc_eval.evaluation import classification as D
from sc_eval.evaluation.classification import write_predictions
from sc_eval.evaluation.results import ResultsFile, entry
from sc_eval.metrics.classification import classification_metrics
from sc_eval.metrics.stderr import mean_stderr
from sc_eval.runtime.fingerprint import Hasher, digest, precision_fields
from sc_eval.runtime.rundir import RunDir

log = logging.getLogger(__name__)


def run_zeroshot(args) -> int:
    heads = max(1, args.text_width // 32)  # head width 32: 4 heads at the default width 128
    if args.text_width < 1 or args.text_width % heads:
        raise ConfigError(f"--text-width {args.text_width} must be divisible by its {heads} attention heads")
    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit must be at least 1 (got {args.limit})")
    templates = load_templates(args.templates)
    started = D.setup_rank0(args)
    if started is None:
        return 0
    device, data = started
    encoder = load_encoder(args.encoder, config=args.encoder_config, device=device)
    rd = RunDir.create(args.output_dir, "zeroshot", args)
    results = ResultsFile(rd.path, {"encoder": encoder.describe(), "data": data.key, "classes": data.classes})

    cfg = L.LitConfig(image_width=encoder.width, embed_dim=args.embed_dim,
                      text=L.TextConfig(context_length=args.context_length, width=args.text_width,
                                        layers=args.text_layers, heads=heads))
    train_cfg = L.LitTrainConfig(steps=args.steps, batch_size=args.batch_size or 128, lr=args.lr, seed=args.seed,
                                 precision=args.precision)
    if args.lit:
        lit_dir = Path(args.lit)
        lit_id = {"lit": Hasher().file(lit_dir / "model.safetensors").hex()} if (lit_dir / "model.safetensors").is_file() else {}
    else:
        lit_dir = rd.path / "lit"
        lit_id = {"cfg": repr(cfg), "train": repr(train_cfg), "pairs": str(args.pairs), "max_pairs": args.max_pairs}
    eval_name = data.eval_split()
    split = data.split(eval_name)
    n_total = len(split)
    n_eval = min(n_total, args.limit) if args.limit else n_total
    lit_id.update(precision_fields(args.precision))
    fp = digest(dict(task="zeroshot_lit", v=1, encoder=encoder.fingerprint, data=data.key, eval=eval_name,
                     n_eval=n_eval, templates=templates, classes=data.class_names, **lit_id))
    if results.reusable("zeroshot_lit", fp, args.overwrite) and (lit_dir / "model.safetensors").is_file():
        log.info("zeroshot_lit: reusing the stored result (same fingerprint)")
        print(results.markdown())
        return 0

    if args.lit:
        model = L.load_lit(lit_dir, encoder=encoder, device=device)
    else:
        feats, captions = pair_features(encoder, args.pairs, seed=0, batch_size=64, limit=args.max_pairs,
                                        precision=args.precision)
        log.info("LiT: training on %d pairs for %d steps", len(captions), train_cfg.steps)
        model = L.train_lit(feats, captions, cfg, train_cfg, device=device)
        L.save_lit(model, lit_dir, encoder.fingerprint, extra={"train": vars(train_cfg), "pairs": str(args.pairs)})
    classifier = L.zeroshot_classifier(model, data.class_names, templates, device=device, precision=args.precision)
    x = D.split_features(encoder, data, eval_name, batch_size=args.batch_size or 64, precision=args.precision)[:n_eval]
    y = torch.tensor(split.labels[:n_eval])
    scores = L.zeroshot_scores(model, x, classifier).cpu()
    metrics = classification_metrics(scores, y, len(data.classes))
    images = split.images[:n_eval] if split.images is not None else None
    extra = {"predictions": write_predictions(rd.path, "zeroshot_lit", images, y.tolist(), scores, data.classes,
                                              prompt=templates[0], split_images=split.images),
             "lit": str(lit_dir), "n_templates": len(templates)}
    se = mean_stderr((scores.argmax(1) == y).float().tolist())
    extra["stderr"] = {"top1": se} if se is not None else {}
    results.put("zeroshot_lit", entry(metrics, n_total, n_eval, fp, **extra))
    log.info("zeroshot_lit: %s", ", ".join(f"{m} {v:.2f}" for m, v in metrics.items()))
    print(results.markdown())
    return 0
