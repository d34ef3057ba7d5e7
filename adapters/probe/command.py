"""`sc-eval probe`: linear probe, logistic regression and k-shot on a frozen encoder.

    sc-eval probe --encoder random:sc-vit-tiny                      # the embedded world
    sc-eval probe --encoder RUN_DIR --data imagenet/ --tasks linear --epochs 90
    sc-eval probe --encoder timm:vit_base_patch16_224 --data hf:cifar10/ --tasks fewshot --shots 10

Tasks (results.json names): ``linear`` -> probe_linear (BatchNorm + Linear, the paper's Table
1 recipe), ``logreg`` -> probe_logreg (L-BFGS logistic regression, weight decay chosen on a
validation split), ``fewshot`` -> probe_<k>shot (mean and std over --seeds). Features are
encoded once through the shared cache; every task fits on them. ``--precision`` is the
encoder's (autocast while extracting features, part of the cache key and of each result's
fingerprint); the probes themselves fit in float32 on those features.
"""
from __future__ import annotations

from sc_eval.adapters.probe import DEFAULT_FEWSHOT_WD
from sc_eval.cli import nonneg_float, nonneg_int, positive_float, positive_int
from sc_eval.errors import ConfigError, did_you_mean

TASKS = ("linear", "logreg", "fewshot")


def add_arguments(parser):
    parser.add_argument("--encoder", required=True, help="encoder spec (anything sc_eval.load_encoder accepts, "
                        "e.g. a run directory or random:sc-vit-tiny)")
    parser.add_argument("--encoder-config", default=None, help="model config for an official epoch_K.pt checkpoint")
    parser.add_argument("--tasks", default="linear,logreg,fewshot", help="comma list of linear, logreg, fewshot")
    parser.add_argument("--data", default=None, help="ImageFolder root (ROOT/<split>/<class>/img) or hf:DIR; "
                        "None: the embedded world's classification set")
    parser.add_argument("--shots", type=positive_int, default=10, help="k for the k-shot task")
    parser.add_argument("--seeds", type=positive_int, default=3, help="k-shot seeds: --seed, --seed+1, ...")
    parser.add_argument("--fewshot-wd", type=nonneg_float, default=DEFAULT_FEWSHOT_WD,
                        help="k-shot L2 strength on standardised features")
    parser.add_argument("--epochs", type=positive_int, default=90, help="linear probe epochs (MAE's recipe)")
    parser.add_argument("--lr", type=positive_float, default=None, help="linear probe peak lr; None: 0.1 for sgd, 1e-3 for adamw")
    parser.add_argument("--optimizer", default="sgd", choices=["sgd", "adamw"], help="linear probe optimizer")
    parser.add_argument("--probe-wd", type=nonneg_float, default=0.0, help="linear probe weight decay")
    parser.add_argument("--warmup-epochs", type=nonneg_int, default=10,
                        help="linear probe warm-up epochs (MAE's recipe: 10 of 90; at most half the run)")


def parse_tasks(text: str) -> list[str]:
    tasks = [t.strip() for t in str(text).split(",") if t.strip()]
    for t in tasks:
        if t not in TASKS:
            raise ConfigError(f"--tasks: unknown probe task {t!r}{did_you_mean(t, TASKS)}; choose from {', '.join(TASKS)}")
    if not tasks:
        raise ConfigError(f"--tasks is empty; choose from {', '.join(TASKS)}")
    return tasks


def run(args) -> int:
    from sc_eval.adapters.probe.pipeline import run_probe

    return run_probe(args)
