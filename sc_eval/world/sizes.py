"""How big each part of the embedded world is.

Kept free of numpy/PIL so that the CLI can build its `world` flags from these fields without
importing anything heavy. The defaults make a world that a tiny ViT can learn from (thousands of
pretraining pairs) yet that writes in seconds on a 2-core laptop; tests pass tiny values.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from sc_eval.errors import ConfigError

# Bump whenever the bytes a seed produces change: cached worlds are keyed by it.
VERSION = 5  # 5: the MMBench TSVs hold each question's rotated copies (CircularEval), as upstream
# Picture-difficulty fields and their caps (beyond them a shape can leave the image or an answer
# stop being true); they are not part of the manifest's "sizes".
RENDER_LIMITS = {"jitter": 8, "scale_jitter": 15, "noise": 64}


def _size(default: int, help: str):
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class WorldSizes:
    """Counts of images (or problems) per part; every field is a CLI flag of `sc-eval world`."""

    image_size: int = _size(64, "pixels per image side; shapes and words scale with it")
    pretrain: int = _size(5000, "image-caption pairs for pretraining (shards + pairs.jsonl)")
    shard_size: int = _size(1000, "pairs per webdataset shard")
    coco_train: int = _size(1500, "COCO train2014 images, 5 captions each (Karpathy train)")
    coco_val: int = _size(600, "COCO val2014 images: Karpathy val/test/restval, VQAv2 val, POPE")
    coco_test: int = _size(200, "COCO test2015 images (VQAv2 test2015 and test-dev2015)")
    vqa_questions: int = _size(3, "VQAv2 questions per image")
    textvqa_train: int = _size(1000, "TextVQA train images (one rendered word each)")
    textvqa_val: int = _size(200, "TextVQA val images")
    gqa_train: int = _size(600, "GQA train images (2-3 questions each)")
    gqa_testdev: int = _size(200, "GQA testdev images")
    pope_images: int = _size(200, "val2014 images asked about by the three POPE files")
    scienceqa: int = _size(600, "ScienceQA problems over all splits (60/20/20)")
    class_train: int = _size(40, "classification train images per colour class")
    class_val: int = _size(10, "classification val images per colour class")
    class_test: int = _size(20, "classification test images per colour class")
    vizwiz_val: int = _size(100, "VizWiz val questions (one per image; a quarter unanswerable)")
    vizwiz_test: int = _size(50, "VizWiz test questions (no answers)")
    mme_images: int = _size(10, "MME images per category (two yes/no questions each)")
    mmbench_dev: int = _size(80, "MMBench dev questions (base64 images, 2-4 options)")
    mmbench_test: int = _size(40, "MMBench test questions (no answers: submission file only)")
    seedbench: int = _size(80, "SEED-Bench image questions (four options)")
    mmmu_val: int = _size(30, "MMMU validation questions (a fifth open, a fifth two images)")
    battery_train: int = _size(300, "training images for multiple-choice and yes/no LLaVA conversations")
    # Harder pictures (0 = the default world, byte for byte); see sc_eval.world.render.style.
    jitter: int = _size(0, "move each shape by up to N%% of the image side (0-8)")
    scale_jitter: int = _size(0, "scale each shape by up to N%% (0-15)")
    noise: int = _size(0, "Gaussian pixel noise, standard deviation N in 0-255 levels (0-64)")

    def __post_init__(self):
        for f in fields(self):
            v = getattr(self, f.name)
            if not isinstance(v, int) or v < 0:
                raise ConfigError(f"world size {f.name}={v!r}: expected a non-negative integer")
        if self.image_size < 16:
            raise ConfigError(f"world image_size={self.image_size}: use at least 16 pixels")
        if self.shard_size < 1:
            raise ConfigError("world shard_size must be at least 1")
        for name, top in RENDER_LIMITS.items():
            if getattr(self, name) > top:
                raise ConfigError(f"world {name}={getattr(self, name)}: use 0 to {top}")
        if self.pope_images > self.coco_val:
            raise ConfigError(f"world pope_images={self.pope_images} exceeds coco_val={self.coco_val}: "
                              "POPE questions are asked on val2014 images")

    def counts(self) -> dict:
        """The sizes proper (what the manifest records as "sizes")."""
        return {k: v for k, v in asdict(self).items() if k not in RENDER_LIMITS}

    def render_style(self) -> dict:
        """Keyword arguments of sc_eval.world.render.style; all 0 for the default world."""
        return {"jitter_pct": self.jitter, "scale_pct": self.scale_jitter, "noise": self.noise}


def size_fields() -> list[tuple[str, int, str]]:
    """(name, default, help) of every size, in declaration order."""
    return [(f.name, f.default, f.metadata["help"]) for f in fields(WorldSizes)]
