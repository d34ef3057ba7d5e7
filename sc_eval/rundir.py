"""Run directories: one per command, self-describing (DESIGN.md "Run directory").

    runs/<name>/config.yaml env.json argv.txt log.txt checkpoints/ predictions/ results.json
"""
from __future__ import annotations

import argparse
import datetime as _dt
import importlib.metadata as _md
import json
import logging
import platform
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from sc_eval.io import atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)

_PACKAGES = ("sc-eval", "torch", "torchvision", "transformers", "peft", "timm", "open-clip-torch",
             "datasets", "pycocoevalcap", "safetensors")


def package_versions() -> dict:
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = _md.version(name)
        except _md.PackageNotFoundError:
            out[name] = None
    return out


def _plain(value):
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)


def args_dict(args) -> dict:
    items = vars(args).items() if isinstance(args, argparse.Namespace) else dict(args).items()
    return {k: _plain(v) for k, v in items if not k.startswith("_")}


def default_output_dir(command: str) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{command}-{stamp}"


@dataclass
class RunDir:
    path: Path

    @classmethod
    def create(cls, output_dir, command: str, args=None, argv=None, main_process: bool = True) -> "RunDir":
        """Create (or reopen) a run directory and record how it was made.

        Reopening is how runs resume: config.yaml and argv.txt are rewritten with the latest
        invocation, the previous ones are kept in log.txt's history.
        """
        path = Path(output_dir) if output_dir else default_output_dir(command)
        rd = cls(path)
        if main_process:
            path.mkdir(parents=True, exist_ok=True)
            if args is not None:
                atomic_write_text(path / "config.yaml",
                                  yaml.safe_dump({"command": command, **args_dict(args)}, sort_keys=False))
            atomic_write_text(path / "argv.txt", " ".join(["sc-eval", *(argv if argv is not None else sys.argv[1:])]) + "\n")
            atomic_write_json(path / "env.json", {
                "versions": package_versions(),
                "platform": platform.platform(),
                "created": _dt.datetime.now().isoformat(timespec="seconds"),
            })
            rd.attach_log()
        return rd

    def attach_log(self) -> None:
        """Mirror the root logger into log.txt (append-only)."""
        target = str((self.path / "log.txt").resolve())
        root = logging.getLogger()
        for h in root.handlers:
            if isinstance(h, logging.FileHandler) and h.baseFilename == target:
                return
        handler = logging.FileHandler(target, mode="a", encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
        if root.level > logging.INFO or root.level == logging.NOTSET:
            root.setLevel(logging.INFO)

    def sub(self, *parts) -> Path:
        p = self.path.joinpath(*parts)
        p.mkdir(parents=True, exist_ok=True)
        return p

    @property
    def checkpoints(self) -> Path:
        return self.sub("checkpoints")

    @property
    def predictions(self) -> Path:
        return self.sub("predictions")

    def read_json(self, name: str, default=None):
        p = self.path / name
        if not p.exists():
            return default
        with open(p, encoding="utf-8") as f:
            return json.load(f)
