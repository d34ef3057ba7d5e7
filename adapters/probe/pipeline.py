"""`sc-eval probe` (flags: ``command``): encode the classification splits once through the
feature cache, fit each requested probe on those features, score the eval split, and write
results.json (an entry per probe, reused on a rerun with the same fingerprint) and predictions.
"""
from __future__ import annotations

import logging

import torch

from sc_eval import load_encoder
from sc_eval.adapters.probe.command import parse_tasks
from sc_eval.adapters.probe.fewshot import run_fewshot, select_kshot
from sc_eval.adapters.probe.linear import ProbeConfig, fit_logreg, logreg_sweep, predict_scores, train_linear_probe
from sc_eval.errors import ConfigError
from sc_eval.evaluation import classification as D
from sc_eval.evaluation.classification import write_predictions
from sc_eval.evaluation.results import ResultsFile, entry
from sc_eval.metrics.classification import classification_metrics
from sc_eval.metrics.stderr import mean_stderr
from sc_eval.runtime.fingerprint import digest, precision_fields
from sc_eval.runtime.rundir import RunDir

log = logging.getLogger(__name__)


def _probe_batch(n_train: int) -> int:
    """256, or n/8 (at least 16) on small train sets: an epoch of one step would leave a
    90-epoch probe with 90 updates, far from converged (measured on the embedded world)."""
    return min(256, max(16, n_train // 8))


def _val_split(data, seed: int):
    """(fit indices, val indices) of train for the logreg sweep when no separate val split is
    held out from the scored one: a seeded 80/20 split of train."""
    n = len(data.split("train"))
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    cut = max(1, int(round(0.8 * n)))
    return order[:cut], order[cut:]


def run_probe(args) -> int:
    tasks = parse_tasks(args.tasks)
    if args.seeds < 1:
        raise ConfigError(f"--seeds must be at least 1 (got {args.seeds})")
    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit must be at least 1 (got {args.limit})")
    started = D.setup_rank0(args)
    if started is None:
        return 0
    device, data = started
    D.check_trained_classes(data)
    if "fewshot" in tasks:  # fail before any encoding when a class is too small for --shots
        select_kshot(data.split(data.train_split()).labels, args.shots, args.seed, data.classes)
    encoder = load_encoder(args.encoder, config=args.encoder_config, device=device)
    rd = RunDir.create(args.output_dir, "probe", args)
    results = ResultsFile(rd.path, {"encoder": encoder.describe(), "data": data.key, "classes": data.classes})
    enc_bs = args.batch_size or 64
    train_name, eval_name = data.train_split(), data.eval_split()
    feats = {s: D.split_features(encoder, data, s, batch_size=enc_bs, precision=args.precision)
             for s in {train_name, eval_name}}
    train_x, train_y = feats[train_name], torch.tensor(data.split(train_name).labels)
    test_split = data.split(eval_name)
    n_total = len(test_split)
    n_eval = min(n_total, args.limit) if args.limit else n_total
    test_x, test_y = feats[eval_name][:n_eval], torch.tensor(test_split.labels[:n_eval])
    test_images = test_split.images[:n_eval] if test_split.images is not None else None
    common = {"encoder": encoder.fingerprint, "data": data.key, "train": train_name, "eval": eval_name,
              "n_eval": n_eval, **precision_fields(args.precision)}
    log.info("probe: %s, %d classes, %d train / %d %s images", data.key, len(data.classes), len(train_y),
             n_eval, eval_name)

    for task in tasks:
        if task == "linear":
            lr = args.lr if args.lr is not None else (0.1 if args.optimizer == "sgd" else 1e-3)
            cfg = ProbeConfig(epochs=args.epochs, lr=lr, batch_size=args.batch_size or _probe_batch(len(train_y)),
                              optimizer=args.optimizer, weight_decay=args.probe_wd,
                              warmup_epochs=args.warmup_epochs, seed=args.seed)
            name, fp = "probe_linear", digest(dict(task="linear", v=1, cfg=vars(cfg), **common))
            if results.reusable(name, fp, args.overwrite):
                log.info("%s: reusing the stored result (same fingerprint)", name)
                continue
            head = train_linear_probe(train_x, train_y, len(data.classes), cfg, device=device)
            scores = predict_scores(head, test_x)
            extra = {"settings": vars(cfg)}
        elif task == "logreg":
            val_name = next((s for s in ("val", "validation") if s in data.splits and s != eval_name), None)
            name, fp = "probe_logreg", digest(dict(task="logreg", v=1, val=val_name, seed=args.seed, **common))
            if results.reusable(name, fp, args.overwrite):
                log.info("%s: reusing the stored result (same fingerprint)", name)
                continue
            if val_name is not None:
                val_x = D.split_features(encoder, data, val_name, batch_size=enc_bs, precision=args.precision)
                val_y = torch.tensor(data.split(val_name).labels)
                wd, tried = logreg_sweep(train_x, train_y, val_x, val_y, len(data.classes))
                fit_x, fit_y = torch.cat([train_x, val_x]), torch.cat([train_y, val_y])
            else:
                a, b = _val_split(data, args.seed)
                wd, tried = logreg_sweep(train_x[a], train_y[a], train_x[b], train_y[b], len(data.classes))
                fit_x, fit_y = train_x, train_y
            scores = fit_logreg(fit_x, fit_y, len(data.classes), wd).scores(test_x)
            extra = {"weight_decay": wd, "sweep": {f"{k:.3g}": 100.0 * v for k, v in sorted(tried.items())},
                     "val_split": val_name or "20% of train"}
        else:
            k = args.shots
            wd = args.fewshot_wd
            seeds = [args.seed + i for i in range(args.seeds)]
            name = f"probe_{k}shot"
            fp = digest(dict(task="fewshot", v=1, k=k, seeds=seeds, wd=wd, **common))
            if results.reusable(name, fp, args.overwrite):
                log.info("%s: reusing the stored result (same fingerprint)", name)
                continue
            out = run_fewshot(train_x, train_y, test_x, test_y, data.classes, k, seeds, wd)
            # one line per test image: the class most seeds chose, scored by the share of seeds right
            preds = write_predictions(rd.path, name, test_images, test_y.tolist(), out["votes"], data.classes,
                                      correct=out["share_right"], split_images=test_split.images)
            results.put(name, entry(out["metrics"], n_total, n_eval, fp, shots=k, seeds=seeds,
                                    weight_decay=wd, per_seed=out["per_seed"], predictions=preds,
                                    stderr=out["stderr"]))
            continue
        metrics = classification_metrics(scores, test_y, len(data.classes))
        se = mean_stderr((torch.as_tensor(scores).argmax(1) == test_y).float().tolist())
        extra["stderr"] = {"top1": se} if se is not None else {}
        extra["predictions"] = write_predictions(rd.path, name, test_images, test_y.tolist(), scores, data.classes,
                                                 split_images=test_split.images)
        results.put(name, entry(metrics, n_total, n_eval, fp, **extra))
        log.info("%s: %s", name, ", ".join(f"{m} {v:.2f}" for m, v in metrics.items()))
    print(results.markdown())
    return 0
