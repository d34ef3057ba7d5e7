"""The `sc-eval` command line. `main(argv)` runs in-process (tests call it directly).

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and ``run(args) -> int``;
those modules import only argparse-level things at top level, so ``--help`` and ``ls`` are instant.
The common flags of run commands (README) are added here, once, to every such subcommand.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import math
import os
import re
import sys

import yaml

from sc_eval import __version__
from sc_eval.errors import ConfigError, ScEvalError, did_you_mean
from sc_eval.runtime import rundir
from sc_eval.runtime.precision import PRECISIONS

# name -> (module, one-line help)
COMMANDS = {
    "pretrain": ("sc_eval.pretrain.command", "pretrain a SuperClass ViT (or the CLIP baseline)"),
    "caption": ("sc_eval.adapters.clipcap.command", "ClipCap captioning on a frozen encoder, COCO scores"),
    "llava": ("sc_eval.adapters.llava.command", "LLaVA-style projector + LLM, train and run the battery"),
    "probe": ("sc_eval.adapters.probe.command", "linear probe / k-shot on a frozen encoder"),
    "zeroshot": ("sc_eval.adapters.lit.command", "LiT zero-shot classification"),
    "score": ("sc_eval.commands.score", "score an existing predictions file (no model loaded)"),
    "ls": ("sc_eval.commands.ls", "list tasks, encoders or adapters"),
    "report": ("sc_eval.commands.report", "tables and plots from run directories"),
    "world": ("sc_eval.commands.world", "write the embedded sc-shapes world to disk"),
    "demo": ("sc_eval.demo.command", "the paper's comparison in miniature, on the embedded world"),
}

# Commands that take the common run flags (ls/world/score take only what they need).
RUN_COMMANDS = {"pretrain", "caption", "llava", "probe", "zeroshot", "demo"}


# -- numeric flag types: a value out of range is refused by the parser, naming the flag ---------
def _number_type(kind, low, low_inclusive: bool = True, high=None, hint: str = ""):
    """An argparse ``type`` accepting finite numbers of ``kind`` from ``low`` (itself too when
    ``low_inclusive``) up to, not including, ``high``."""
    lo = f">= {low}" if low_inclusive else f"> {low}"
    hi = "" if high is None else f" and < {high}"
    want = f"{'an integer' if kind is int else 'a number'} {lo}{hi}"

    def check(text):
        try:
            value = kind(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"expected {want}, got {text!r}") from None
        ok = math.isfinite(value) and (value >= low if low_inclusive else value > low)
        if ok and high is not None:
            ok = value < high
        if not ok:
            raise argparse.ArgumentTypeError(f"expected {want}, got {text!r}{hint}")
        return value

    return check


positive_int = _number_type(int, 1)
nonneg_int = _number_type(int, 0)
positive_float = _number_type(float, 0, low_inclusive=False)
nonneg_float = _number_type(float, 0)
fraction = _number_type(float, 0, high=1)                        # [0, 1): dropout
open_unit = _number_type(float, 0, low_inclusive=False, high=1)  # (0, 1): Adam's betas
limit_type = _number_type(int, 1, hint=" (the number of docs to evaluate; leave --limit out for the whole split)")

_DEVICE = re.compile(r"(auto|cpu|mps|cuda(:\d+)?)")


def check_device(device) -> None:
    """``--device`` names a device this machine has: refused up front, not at the first tensor."""
    if device is None or device == "auto":
        return
    if not _DEVICE.fullmatch(str(device)):
        raise ConfigError(f"--device {device}: expected cpu, cuda, cuda:N, mps or auto")
    if device == "cpu":
        return
    import torch

    if device == "mps":
        if not torch.backends.mps.is_available():
            raise ConfigError("--device mps: no Apple GPU is available to torch here; use --device cpu or auto")
        return
    if not torch.cuda.is_available():
        raise ConfigError(f"--device {device}: torch sees no CUDA GPU on this machine (torch.cuda.is_available() "
                          "is False: no GPU, no driver, a CPU-only torch, or CUDA_VISIBLE_DEVICES empty); "
                          "use --device cpu or auto")
    index = int(device.partition(":")[2] or 0)
    if index >= torch.cuda.device_count():
        raise ConfigError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                          f"numbered from 0; use cuda:0 to cuda:{torch.cuda.device_count() - 1}")


def add_common_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("common")
    g.add_argument("--output-dir", default=None, help="run directory (default: runs/<command>-<timestamp>)")
    g.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    g.add_argument("--device", default="auto", help="cpu, cuda, cuda:N, mps or auto (default: cuda if available)")
    g.add_argument("--precision", default="fp32", choices=PRECISIONS,
                   help="autocast precision (default fp32; bf16 on GPUs)")
    g.add_argument("--batch-size", type=positive_int, default=None,
                   help="global batch size (command default if omitted)")
    g.add_argument("--limit", type=limit_type, default=None,
                   help="evaluate only the first N docs of each task (results flagged as not comparable)")
    g.add_argument("--config", default=None, help="YAML file whose keys set flag defaults (flag names, - or _)")
    g.add_argument("--overwrite", action="store_true", help="replace results whose fingerprint differs")
    g.add_argument("-v", "--verbose", action="store_true", help="debug logging")


class _Parser(argparse.ArgumentParser):
    """argparse's parser that keeps its subcommands' parsers by name (``commands``)."""

    commands: dict


class _ParseError(Exception):
    pass


class _CheckingParser(_Parser):
    """A parser whose usage errors are raised (to name the config file a bad value came from)."""

    def error(self, message):
        raise _ParseError(message)


def build_parser(selected: str | None = None, parser_class=_Parser) -> argparse.ArgumentParser:
    """The parser; only the selected subcommand's module is imported (all when None)."""
    parser = parser_class(
        prog="sc-eval",
        description="SuperClass pretraining and the paper's downstream protocol for vision encoders.",
    )
    parser.add_argument("--version", action="version", version=f"sc-eval {__version__}")
    parser.commands = {}
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_,
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        p.set_defaults(_module=module)
        parser.commands[name] = p
        if selected is not None and name != selected:
            continue
        if name in RUN_COMMANDS:
            add_common_arguments(p)
        importlib.import_module(module).add_arguments(p)
    return parser


def _config_path(argv: list[str]) -> str | None:
    """The value of ``--config`` in any form argparse reads (``--config F``, ``--config=F``, ``--conf F``)."""
    first = argparse.ArgumentParser(add_help=False)
    first.add_argument("--config")
    return first.parse_known_args(argv)[0].config


def _apply_config_defaults(parser: argparse.ArgumentParser, argv: list[str]) -> None:
    """`--config FILE`: YAML keys become defaults of the chosen subcommand (flags still win).

    Each value is read by the subcommand's own flag (its type, range and choices), as if it had
    been given on the command line: a bad value is refused naming the file and the key.
    """
    path = _config_path(argv)
    if path is None:
        return
    try:
        with open(path, encoding="utf-8") as f:
            values = yaml.safe_load(f) or {}
    except OSError as e:
        raise ScEvalError(f"--config {path}: cannot read ({e.strerror})") from None
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where is not None else ""
        raise ScEvalError(f"--config {path}: not valid YAML{at} ({getattr(e, 'problem', None) or e}); "
                          "fix the file (flag names as keys, e.g. `steps: 300`)") from None
    if not isinstance(values, dict):
        raise ScEvalError(f"--config {path}: expected a mapping of flag names to values")
    defaults = vars(parser.parse_args(argv))  # the chosen command's flags, as the command line sets them
    cmd = defaults.get("command")
    if cmd is None:
        return
    known = {dest for dest in defaults if not dest.startswith("_") and dest != "command"}
    checker = None
    clean = {}
    for k, v in values.items():
        dest = str(k).replace("-", "_")
        if dest not in known:
            raise ScEvalError(f"--config {path}: unknown key {k!r} for `sc-eval {cmd}`"
                              f"{did_you_mean(dest, known)}")
        if isinstance(v, (str, int, float)):  # read by the flag itself: `--key=value` (a bool: `--key`)
            flag = "--" + dest.replace("_", "-")
            checker = checker or build_parser(cmd, parser_class=_CheckingParser)
            try:
                got = getattr(checker.parse_args([*argv, flag if isinstance(v, bool) else f"{flag}={v}"]), dest)
            except _ParseError as e:
                raise ScEvalError(f"--config {path}: {k}: {v!r}: {e}") from None
            v = v if isinstance(v, bool) else got
        clean[dest] = v
    parser.commands[cmd].set_defaults(**clean)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    selected = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(selected if selected in COMMANDS else "")
    root = logging.getLogger()
    handlers_before = list(root.handlers)
    locks_before = rundir.lock_mark()
    try:
        _apply_config_defaults(parser, argv)
        args = parser.parse_args(argv)
        if not getattr(args, "command", None):
            parser.print_help()
            return 0
        logging.basicConfig(
            level=logging.DEBUG if getattr(args, "verbose", False) else logging.INFO,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
        check_device(getattr(args, "device", None))
        mod = importlib.import_module(args._module)
        return int(mod.run(args) or 0)
    except ScEvalError as e:
        print(f"sc-eval: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sc-eval: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of stdout went away (`sc-eval score ... | head`): what was written to files
        # stands; stop quietly, as a pipe's writer does, and let no flush at exit fail again.
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):  # stdout is no real file (captured by a test, say)
            pass
        return 141
    finally:
        rundir.release_locks(locks_before)  # the run directories this command wrote are free again
        # A run directory mirrors the log into its log.txt for as long as its command runs; when
        # commands run one after another in one process (`sc-eval demo`), the next command's
        # lines must not land in the last one's log.
        for h in [h for h in root.handlers if h not in handlers_before and isinstance(h, logging.FileHandler)]:
            root.removeHandler(h)
            h.close()


if __name__ == "__main__":
    sys.exit(main())
