"""`sc-eval world --out DIR`: write the embedded sc-shapes world in the real dataset formats.

Every size of the world is a flag (`--pretrain 200 --coco-train 50 ...`), generated from the
fields of WorldSizes so the two never drift apart. The world's writers are imported by ``run``.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from sc_eval.cli import nonneg_int
from sc_eval.errors import ConfigError
from sc_eval.io import read_json
from sc_eval.world.sizes import size_fields


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="directory to write the world into")
    parser.add_argument("--seed", type=int, default=0,
                        help="random seed: the same seed gives byte-identical files")
    g = parser.add_argument_group("sizes (images or problems per part) and picture difficulty")
    for name, default, help_ in size_fields():
        g.add_argument("--" + name.replace("_", "-"), dest=name, type=nonneg_int, default=default,
                       metavar="N", help=help_)


def run(args) -> int:
    from sc_eval.world.build import write_world

    out = Path(args.out)
    blocker = next((p for p in (out, *out.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise ConfigError(f"--out {out}: {blocker} is an existing file, not a directory; give a directory "
                          "to write the world into (new, or holding an earlier world)")
    sizes = {name: getattr(args, name) for name, _, _ in size_fields()}
    t0 = time.perf_counter()
    try:
        root = write_world(out, seed=args.seed, **sizes)
    except PermissionError as e:
        raise ConfigError(f"--out {out}: cannot write {e.filename} ({e.strerror}); choose a directory "
                          "you can write to") from None
    manifest = read_json(root / "world.json")
    print(f"wrote sc-shapes world (seed {args.seed}, {manifest['image_size']} px) to {root} "
          f"in {time.perf_counter() - t0:.1f}s")
    for part, counts in manifest["counts"].items():
        print(f"  {part:15s} {_flat(counts)}")
    return 0


def _flat(counts) -> str:
    if not isinstance(counts, dict):
        return str(counts)
    return ", ".join(f"{k} {_flat(v) if not isinstance(v, dict) else '(' + _flat(v) + ')'}"
                     for k, v in counts.items())
