"""Run directories: one per command, self-describing (README, "Run directories").

    runs/<name>/config.yaml env.json argv.txt log.txt run.lock checkpoints/ predictions/ results.json

One command writes a run directory at a time: it holds the directory's lock (``run.lock``) for
as long as it runs, and a second command pointed at the same directory is refused at once with
the holder's command line, process id, host and start time, instead of both computing
everything and one's results.json overwriting the other's.
"""
from __future__ import annotations

import argparse
import atexit
import contextlib
import datetime as _dt
import errno
import fcntl
import importlib.metadata as _md
import json
import logging
import os
import platform
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from sc_eval.errors import ConfigError, ScEvalError
from sc_eval.io import atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)

_PACKAGES = ("sc-eval", "torch", "torchvision", "transformers", "peft", "timm", "open-clip-torch",
             "datasets", "webdataset", "pycocoevalcap", "safetensors")


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


# -- the run directory's lock ---------------------------------------------------------------
LOCK_NAME = "run.lock"


class _Held:
    """One lock file this process holds: its open descriptor and how many holders share it.
    A forked child (a data-loader worker) inherits the table, not the lock: ``pid`` tells."""

    def __init__(self, fd: int, path: Path):
        self.fd, self.path, self.count, self.pid = fd, path, 1, os.getpid()


_HELD: dict[str, _Held] = {}     # resolved lock path -> the lock
_TOKENS: list[str] = []          # one entry per acquisition, in order (release_locks pops them)


def _holder_info() -> dict:
    """What another writer is told about this process: its command line as `ps` would show it."""
    prog = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path("python")
    name = f"python -m {prog.parent.name}" if prog.name == "__main__.py" else prog.name
    return {"command": " ".join([name, *sys.argv[1:]]), "pid": os.getpid(), "host": socket.gethostname(),
            "started": _dt.datetime.now().isoformat(timespec="seconds")}


def _read_holder(fd: int) -> dict | None:
    os.lseek(fd, 0, os.SEEK_SET)
    raw = b""
    while chunk := os.read(fd, 65536):
        raw += chunk
    if not raw.strip():
        return None
    try:
        info = json.loads(raw)
    except ValueError:
        return {"command": raw.decode("utf-8", "replace").strip()[:200]}
    return info if isinstance(info, dict) else None


def _describe(info: dict | None) -> str:
    if not info:
        return "a process that left no details"
    return (f"`{info.get('command', '?')}` (pid {info.get('pid', '?')} on {info.get('host', '?')}, "
            f"started {info.get('started', '?')})")


def _alive(info: dict | None) -> bool | None:
    """Whether the holder's process still runs (None: on another host, cannot tell)."""
    if not info or info.get("host") != socket.gethostname() or not isinstance(info.get("pid"), int):
        return None
    try:
        os.kill(info["pid"], 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def acquire_lock(run_dir) -> str:
    """Take ``run_dir``'s lock for this process (again, if it holds it already); return its token.

    An advisory ``flock`` on ``<run_dir>/run.lock``: the kernel releases it when the holder ends,
    however it ends, so a lock is never left behind by a killed run; the file keeps the holder's
    command line, process id, host and start time for the message another writer gets, and is
    emptied on a clean release. A file still naming a holder when its lock is free was left by a
    run that was killed: the lock is taken over and that is logged.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_NAME
    key = str(path.resolve())
    if key in _HELD and _HELD[key].pid == os.getpid():
        _HELD[key].count += 1
        _TOKENS.append(key)
        return key
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise ConfigError(f"{run_dir}: cannot create its lock file {path} ({e.strerror}); "
                          "check the directory's permissions or use another --output-dir") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            os.close(fd)
            raise ConfigError(f"{path}: cannot lock the run directory ({e.strerror}); the file system may "
                              "not support locks: use an --output-dir on a local disk") from None
        info = _read_holder(fd)
        os.close(fd)
        why = ("; its process has ended, so a child it started (a data-loader worker) still holds the lock: "
               "wait a few seconds" if _alive(info) is False else
               "; wait for it to finish, stop it, or use another --output-dir")
        raise ConfigError(f"{run_dir}: another sc-eval command is writing this run directory: "
                          f"{_describe(info)}{why}")
    stale = _read_holder(fd)
    if stale:
        log.warning("%s: taking over the lock of %s, which ended without releasing it (killed?); "
                    "what it wrote is resumed from", run_dir, _describe(stale))
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, (json.dumps(_holder_info()) + "\n").encode())
    os.fsync(fd)
    _HELD[key] = _Held(fd, path)
    _TOKENS.append(key)
    return key


def release_lock(token: str) -> None:
    """Give back one acquisition; the lock is released (and its file emptied) with the last one."""
    if token in _TOKENS:
        # the latest acquisition of this lock is the one given back
        del _TOKENS[len(_TOKENS) - 1 - _TOKENS[::-1].index(token)]
    held = _HELD.get(token)
    if held is None or held.pid != os.getpid():  # a forked child must not unlock its parent's lock
        return
    held.count -= 1
    if held.count > 0:
        return
    del _HELD[token]
    try:
        os.ftruncate(held.fd, 0)  # a clean end: no holder left to report
    except OSError:
        pass
    fcntl.flock(held.fd, fcntl.LOCK_UN)
    os.close(held.fd)


def lock_mark() -> int:
    """A mark for `release_locks`: the locks taken after it are the ones a command took."""
    return len(_TOKENS)


def release_locks(mark: int = 0) -> None:
    """Release every acquisition made since ``mark`` (the CLI calls this when a command ends)."""
    while len(_TOKENS) > mark:
        release_lock(_TOKENS[-1])


atexit.register(release_locks)  # a process that ends normally leaves no holder named in a lock file


def holds_lock(run_dir) -> bool:
    held = _HELD.get(str((Path(run_dir) / LOCK_NAME).resolve()))
    return held is not None and held.pid == os.getpid()


@contextlib.contextmanager
def locked(run_dir, main_process: bool = True, collective: bool = False):
    """``run_dir``'s lock held for the block (see `lock_run_dir`)."""
    token = lock_run_dir(run_dir, main_process=main_process, collective=collective)
    try:
        yield
    finally:
        if token is not None:
            release_lock(token)


def lock_run_dir(run_dir, main_process: bool = True, collective: bool = False) -> str | None:
    """Take the run directory's lock on the main process; returns its token (None elsewhere).

    ``collective``: every rank of a torchrun group calls this together; rank 0 takes the lock and
    tells the others whether it could, so that a refusal stops every rank instead of leaving the
    others waiting at their next barrier for a rank that has stopped.
    """
    token, refusal = None, None
    if main_process:
        try:
            token = acquire_lock(run_dir)
        except ScEvalError as e:
            refusal = e
    if collective and _group_size() > 1:
        import torch.distributed as tdist

        box = [None if refusal is None else str(refusal)]
        tdist.broadcast_object_list(box, src=0)
        if box[0] is not None and refusal is None:
            refusal = ConfigError(box[0])
    if refusal is not None:
        raise refusal
    return token


def _group_size() -> int:
    """The torchrun group's size when one is initialised (torch is not imported for this)."""
    tdist = sys.modules.get("torch.distributed")
    if tdist is None or not tdist.is_available() or not tdist.is_initialized():
        return 1
    return tdist.get_world_size()


@dataclass
class RunDir:
    path: Path

    @classmethod
    def create(cls, output_dir, command: str, args=None, argv=None, main_process: bool | None = None) -> "RunDir":
        """Create (or reopen) a run directory, take its lock and record how it was made.

        Reopening is how runs resume: config.yaml and argv.txt are rewritten with the latest
        invocation, the previous ones are kept in log.txt's history. The lock is held until the
        command ends (the CLI releases it); a directory another command holds is refused before
        anything in it is touched.

        ``main_process``: commands whose every torchrun rank calls this pass ``is_main()``; the
        main process takes the lock and every rank learns whether it could (see `lock_run_dir`).
        Left out, this process alone writes the directory.
        """
        path = Path(output_dir) if output_dir else default_output_dir(command)
        rd = cls(path)
        collective = main_process is not None
        main_process = True if main_process is None else main_process
        lock_run_dir(path, main_process=main_process, collective=collective)
        if main_process:
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
