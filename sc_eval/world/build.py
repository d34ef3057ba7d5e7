"""Write a whole sc-shapes world, and keep one cached copy per seed.

`write_world` renders every part in a fixed order and writes `world.json` last, so a world
with a manifest is complete. `ensure_world` builds the default world once in a temporary
directory beside its final place and renames it in: concurrent callers (ranks under
torchrun, parallel tests) either see no world or a complete one.
"""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

from sc_eval.errors import ConfigError, did_you_mean
from sc_eval.runtime.home import home
from sc_eval.world import battery as bt
from sc_eval.world import benchmarks as bm
from sc_eval.world import writers as wr
from sc_eval.world.context import Context
from sc_eval.world.render import style
from sc_eval.world.scene import COLOURS, POSITIONS, SHAPES, SIZES, TEXT_COLOUR, WORDS
from sc_eval.world.sizes import VERSION, WorldSizes, size_fields

log = logging.getLogger(__name__)


def make_sizes(**sizes) -> WorldSizes:
    known = [name for name, _, _ in size_fields()]
    for k in sizes:
        if k not in known:
            raise ConfigError(f"unknown world size {k!r}{did_you_mean(k, known)}; known: {', '.join(known)}")
    return WorldSizes(**sizes)


def write_world(out, seed: int = 0, **sizes) -> Path:
    """Write every format of the world under `out` (created if needed); returns `out`.

    Keyword sizes are the fields of WorldSizes (e.g. pretrain=200, coco_train=50; jitter,
    scale_jitter and noise make the pictures harder, see sc_eval.world.render.style).
    """
    cfg = make_sizes(**sizes)
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    with style(**cfg.render_style()):
        return _write_world(root, seed, cfg)


def _write_world(root: Path, seed: int, cfg: WorldSizes) -> Path:
    ctx = Context(root, seed, cfg)
    pairs = wr.write_pretrain(ctx)
    coco = wr.coco_items(ctx)
    wr.write_coco(ctx, coco)
    vqa_turns = bm.write_vqav2(ctx, coco)
    bm.write_pope(ctx, coco["val2014"])
    text_turns = bm.write_textvqa(ctx)
    gqa_turns = bm.write_gqa(ctx)
    bm.write_scienceqa(ctx)
    classes = wr.write_classification(ctx)
    convs = bm.finetune_conversations(ctx, coco["train2014"], vqa_turns, text_turns, gqa_turns)
    # The rest of the LLaVA battery draws from its own random streams, after every other part,
    # so adding it changed no byte of them; its training turns go after theirs in finetune.json
    # and its text after theirs in the corpus.
    battery = bt.write_battery(ctx)
    wr.write_llava(ctx, pairs, convs + battery.conversations)
    ctx.add_text(*battery.texts)
    wr.write_corpus(ctx)
    manifest = {
        "name": "sc-shapes",
        "version": VERSION,
        "seed": int(seed),
        "image_size": cfg.image_size,
        "sizes": cfg.counts(),
        "counts": ctx.counts,
        "vocabulary": {"colours": list(COLOURS), "shapes": list(SHAPES), "sizes": list(SIZES),
                       "positions": list(POSITIONS), "words": list(WORDS), "text_colour": TEXT_COLOUR},
        "classification_classes": classes,
    }
    if any(cfg.render_style().values()):  # absent from a default world's manifest
        manifest["render"] = cfg.render_style()
    ctx.write_json("world.json", manifest, indent=2)
    return root


def ensure_world(root=None, seed: int = 0) -> Path:
    """The default world for `seed`, written once under `root` (default $SC_EVAL_HOME or
    ~/.cache/sc-eval) as `world-<seed>-v<VERSION>`; later calls return it immediately."""
    base = Path(root) if root is not None else home()
    target = base / f"world-{seed}-v{VERSION}"
    if (target / "world.json").exists():
        return target
    base.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".world-{seed}-", dir=base))
    try:
        log.info("writing the sc-shapes world (seed %d) to %s", seed, target)
        write_world(tmp, seed=seed)
        try:
            os.replace(tmp, target)
        except OSError:
            # Someone else finished first (target exists and is not empty): use theirs.
            if not (target / "world.json").exists():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target
