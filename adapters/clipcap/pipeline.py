"""`sc-eval caption` (flags: ``command``): train a ClipCap mapper on a frozen encoder's features
(or load a saved adapter), caption each task's docs through the runner, and score them.
"""
from __future__ import annotations

import logging
from pathlib import Path

from sc_eval import load_encoder
from sc_eval.data.formats import read_coco_captions, read_karpathy
from sc_eval.encoders.features import encode_images
from sc_eval.errors import ConfigError, DataError
from sc_eval.evaluation import tasks as tasks_api
from sc_eval.evaluation.runner import evaluate, preload_docs
from sc_eval.io import read_json
from sc_eval.metrics.caption import require_java
from sc_eval.models.lm import GPT2_REPOS, cached_hf_model, load_causal_lm
from sc_eval.models.lm_specs import is_random_lm
from sc_eval.runtime import dist
from sc_eval.runtime.dist import seed_everything
from sc_eval.runtime.fingerprint import same
from sc_eval.runtime.precision import check_precision
from sc_eval.runtime.rundir import RunDir
from sc_eval.world.build import ensure_world

from .adapter import ClipCapAdapter
from .mapper import MapperConfig
from .model import build_model, check_adapter, load_adapter, save_adapter
from .train import TrainConfig, fit, tokenize_captions

log = logging.getLogger(__name__)

RECIPES = {
    # grad_clip: the reference does not clip; the world's 50x higher lr does (max grad norm 1.0)
    "reference": dict(prefix_length=40, clip_length=40, mapper_layers=8, epochs=10.0, lr=2e-5,
                      warmup=5000, batch_size=40, save_every=1000, grad_clip=0.0),
    "world": dict(prefix_length=10, clip_length=10, mapper_layers=4, epochs=2.0, lr=1e-3,
                  warmup=50, batch_size=40, save_every=100, grad_clip=1.0),
}
MLP_PREFIX_LENGTH = 10  # the reference's prefix length for the MLP mapper


def _recipe(args, data_root: Path) -> dict:
    name = args.recipe
    if name == "auto":
        name = "world" if (data_root / "world.json").exists() else "reference"
    r = dict(RECIPES[name], name=name)
    if args.mapper == "mlp":
        r["prefix_length"] = MLP_PREFIX_LENGTH if name == "reference" else r["prefix_length"]
    for key in ("prefix_length", "clip_length", "mapper_layers", "epochs", "lr", "warmup", "save_every"):
        if getattr(args, key) is not None:
            r[key] = getattr(args, key)
    if args.batch_size is not None:
        r["batch_size"] = args.batch_size
    return r


def _lm_dir(args):
    """The LM to train with: a GPT-2 directory, the ``random:NAME`` spec as given, or (no --lm)
    GPT-2 small's folder in the local Hugging Face cache."""

    if args.lm:
        return args.lm if is_random_lm(args.lm) else Path(args.lm)
    found = cached_hf_model(GPT2_REPOS)
    if found is None:
        raise ConfigError(f"--lm not given, and its default, GPT-2 ({GPT2_REPOS[0]}), is not in the local Hugging "
                          "Face cache (it is never downloaded): pass --lm DIR, a GPT-2 folder written by "
                          "save_pretrained, or --lm random:gpt2 for its architecture with random weights")
    return found


def _train_docs(args, data_root: Path) -> tuple[list[dict], str]:
    path = Path(args.train_data) if args.train_data else data_root / "coco" / "dataset_coco.json"
    data = read_json(path)
    if isinstance(data, dict) and isinstance(data.get("annotations"), list):
        images = Path(args.train_images) if args.train_images else data_root / "coco" / "images" / "train2014"
        docs = read_coco_captions(path, images)
    elif isinstance(data, dict) and isinstance(data.get("images"), list):
        images = Path(args.train_images) if args.train_images else data_root / "coco" / "images"
        docs = read_karpathy(path, images, "train", include_restval=True)
    else:
        raise DataError(f"{path}: --train-data must be a Karpathy dataset_coco.json or a COCO captions file")
    docs = [d for d in docs if d["captions"]]
    if not docs:
        raise DataError(f"{path}: no training images with captions")
    return docs, str(path.resolve())


def _train(args, rd, data_root, encoder, device, recipe, lm_dir):
    """Train (or resume) the mapper on ``lm_dir``'s LM and save the adapter directory; returns
    (model, tok, cfg)."""

    lm, tok = load_causal_lm(lm_dir, device)
    docs, key = _train_docs(args, data_root)
    log.info("training on %d images (%s)", len(docs), key)
    feats = encode_images(encoder, [d["image"] for d in docs], dataset_key=key, split="train+restval",
                          kind="pooled", batch_size=64, precision=args.precision)
    mcfg = MapperConfig(kind=args.mapper, input_width=int(encoder.width),
                        lm_width=int(lm.get_input_embeddings().embedding_dim),
                        prefix_length=recipe["prefix_length"], clip_length=recipe["clip_length"],
                        num_layers=recipe["mapper_layers"])
    # The mapper's initial weights come from the seed alone, whatever drew random numbers before
    # it in this process (`sc-eval demo` trains its tiny GPT-2 on a first run, not on later ones).

    seed_everything(args.seed)
    model = build_model(mcfg, lm, lm_frozen=(args.mapper == "transformer"))
    tcfg = TrainConfig(epochs=recipe["epochs"], steps=args.steps, batch_size=recipe["batch_size"],
                       lr=recipe["lr"], warmup=recipe["warmup"], save_every=recipe["save_every"],
                       grad_clip=recipe["grad_clip"], precision=args.precision)
    examples = tokenize_captions(tok, [d["captions"] for d in docs], tcfg.max_caption_tokens)
    out = fit(model, feats, examples, tcfg, ckpt_dir=rd.checkpoints, seed=args.seed, device=device,
              on_log=lambda s, n, v, perf: log.info("caption step %d/%d loss %.4f, %.1f images/s, peak memory %.0f MB",
                                                    s, n, v, perf["images_per_s"], perf["peak_memory_mb"]))
    losses = [v for _, v in out["losses"]]
    summary = {"recipe": recipe["name"], "steps": out["steps"], "warmup": out["warmup"],
               "resumed_from": out["resumed_from"], "train_images": len(docs), "train_captions": len(examples),
               "first_loss": losses[0] if losses else None, "final_loss": losses[-1] if losses else None,
               "lr": tcfg.lr, "batch_size": tcfg.batch_size, "grad_clip": tcfg.grad_clip,
               "precision": tcfg.precision, **out["perf"]}
    save_adapter(model, rd.path / "adapter", lm_dir=lm_dir, tokenizer=tok,
                 encoder_fingerprint=encoder.fingerprint,
                 extra={"encoder": args.encoder, "train_data": key, "train": summary})
    log.info("adapter saved to %s (loss %s -> %s)", rd.path / "adapter", summary["first_loss"],
             summary["final_loss"])
    return load_adapter(rd.path / "adapter", device)


def run_caption(args) -> int:
    device = dist.resolve_device(args.device)
    check_precision(args.precision, device, training=not args.adapter)
    dist.init_distributed(device)
    dist.seed_everything(args.seed)
    if args.beam is not None and args.beam < 1:
        raise ConfigError(f"--beam {args.beam}: must be >= 1")
    if args.adapter:  # a damaged or foreign adapter directory is refused before anything is built

        check_adapter(args.adapter)
    lm_dir = None if args.adapter else _lm_dir(args)  # a missing default LM is refused before any work
    rd = RunDir.create(args.output_dir, "caption", args, main_process=dist.is_main())
    if args.data_root:
        data_root = Path(args.data_root)
        if not data_root.is_dir():
            raise ConfigError(f"--data-root {data_root}: no such directory")
    else:
        data_root = Path(ensure_world())
    tasks = tasks_api.resolve(args.task, args.include_tasks, adapter_kind="caption")
    # What scoring needs, checked before hours of training: the test split's files, and Java
    # (the PTB tokenizer and METEOR run in the JVM).
    task_docs = preload_docs(tasks, data_root)
    if not args.predict_only:
        require_java()
    encoder = load_encoder(args.encoder, config=args.encoder_config, device=device)

    if args.adapter:
        model, tok, acfg = load_adapter(args.adapter, device, lm_dir=args.lm)
    elif dist.is_main():
        model, tok, acfg = _train(args, rd, data_root, encoder, device, _recipe(args, data_root), lm_dir)
        dist.barrier()
    else:  # other ranks wait for rank 0's adapter (training is not sharded)
        dist.barrier()
        model, tok, acfg = load_adapter(rd.path / "adapter", device)
    if not same(acfg.get("encoder_fingerprint"), encoder.fingerprint):
        raise ConfigError(f"adapter {args.adapter or rd.path / 'adapter'} was trained on another encoder "
                          f"({acfg.get('encoder', '?')}, fingerprint {acfg.get('encoder_fingerprint')}); "
                          f"--encoder {args.encoder} has fingerprint {encoder.fingerprint}")

    beam = 1 if args.greedy else args.beam
    adapter = ClipCapAdapter(model, tok, encoder, adapter_config=acfg, beam=beam,
                             max_new_tokens=args.max_new_tokens, decode_batch_size=args.decode_batch_size,
                             features=_eval_features(task_docs, encoder, data_root, args.limit, args.precision),
                             precision=args.precision)
    info = {"command": "caption", "encoder": args.encoder, "encoder_fingerprint": encoder.fingerprint,
            "adapter_dir": str(Path(args.adapter) if args.adapter else rd.path / "adapter"),
            "train": acfg.get("train")}
    evaluate(tasks, adapter, rd.path, data_root, limit=args.limit, batch_size=args.decode_batch_size,
             overwrite=args.overwrite, info=info, docs=task_docs, score=not args.predict_only)
    return 0


def _eval_features(task_docs: dict, encoder, data_root: Path, limit, precision: str = "fp32"):
    """Features of every image the tasks will caption, from the feature cache (keyed by task)."""
    out = {}
    for name, docs in task_docs.items():
        paths = [str(d["image"]) for d in (docs[:limit] if limit else docs)]
        if paths:
            feats = encode_images(encoder, paths, dataset_key=f"{data_root.resolve()}:{name}",
                                  split=str(limit or "all"), kind="pooled", batch_size=64, precision=precision)
            out.update(zip(paths, feats))
    return out
