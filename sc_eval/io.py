"""Atomic and append-only file helpers: nothing already written is ever left half-written."""
from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

from sc_eval.errors import ConfigError, DataError, ScEvalError

_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def check_name(name, what: str, error=ConfigError) -> str:
    """``name`` if it can become part of a file name as it is: letters, digits, '_', '.' and '-',
    no '..' and no leading '.'; else ``error`` naming ``what`` (e.g. "path/x.yaml: task").

    Names read from files (task names, splits, ids) are joined into paths below a run or cache
    directory; a name like ``../../x`` would write outside it."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or ".." in name or name.startswith("."):
        raise error(f"{what} {name!r} cannot be used as a name: use letters, digits, '_', '.' and '-' "
                    "only (no '..', no leading '.')")
    return name


def _atomic_replace(path: Path, write) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path, data: bytes) -> None:
    _atomic_replace(Path(path), lambda f: f.write(data))


def atomic_write_text(path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path, obj: Any, indent: int | None = 2) -> None:
    atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=False) + "\n")


def atomic_save_safetensors(path, tensors: dict, metadata: dict | None = None) -> None:
    """safetensors.torch.save_file through a temp file + os.replace."""
    from safetensors.torch import save

    data = save({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, metadata=metadata)
    atomic_write_bytes(path, data)


def atomic_torch_save(path, obj: Any) -> None:
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def read_json(path, error: type[ScEvalError] = DataError) -> Any:
    """The JSON value in ``path``; a missing, unreadable or malformed file raises ``error``
    (DataError for data, CheckpointError for a model's config) naming the file and the line."""
    path = Path(path)
    if not path.exists():
        raise error(f"{path}: file not found")
    if path.is_dir():
        raise error(f"{path}: a directory, where a JSON file was expected")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise error(f"{path}: malformed JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
    except UnicodeDecodeError:
        raise error(f"{path}: not a JSON file (its bytes are not UTF-8 text)") from None


def iter_jsonl(path, skip_truncated_tail: bool = False) -> Iterator[dict]:
    """Yield one dict per line. A malformed line is a DataError naming file and line number.

    With skip_truncated_tail, a malformed *last* line without a trailing newline (a write cut
    short by a kill) is ignored instead: that is how append-only logs are resumed.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if path.is_dir():
        raise DataError(f"{path}: a directory, where a JSON lines file was expected")
    with open(path, "rb") as f:
        lines = f.read().split(b"\n")
    last = len(lines) - 1
    for i, raw in enumerate(lines):
        if not raw.strip():
            continue
        try:
            yield json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:  # bytes that are no text: the latter
            if skip_truncated_tail and i == last:
                return
            why = e.msg if isinstance(e, json.JSONDecodeError) else "not UTF-8 text"
            raise DataError(f"{path}:{i + 1}: malformed JSON line ({why}); fix or delete that line") from None


class AppendLog:
    """Append-only jsonl writer, flushed and fsynced per call to ``write_many``."""

    def __init__(self, path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._repair_tail()
        self._f = open(self.path, "a", encoding="utf-8")

    def _repair_tail(self) -> None:
        # A kill mid-write can leave a partial last line: cut it so the next append is clean.
        # A whole record that only lacks its newline (killed between the two, or edited by hand)
        # is kept and completed: readers (iter_jsonl with skip_truncated_tail) count it as done.
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        with open(self.path, "rb+") as f:
            data = f.read()
            if data.endswith(b"\n"):
                return
            cut = data.rfind(b"\n") + 1
            try:
                whole = isinstance(json.loads(data[cut:]), dict)
            except ValueError:
                whole = False
            if whole:
                f.write(b"\n")
                f.flush()
                os.fsync(f.fileno())
            else:
                f.truncate(cut)

    def write_many(self, records) -> None:
        for r in records:
            self._f.write(json.dumps(r, ensure_ascii=False) + "\n")
        self._f.flush()
        os.fsync(self._f.fileno())

    def close(self) -> None:
        self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@contextlib.contextmanager
def atomic_directory(out) -> Iterator[Path]:
    """Build a directory in a temp folder beside `out`; on success it replaces `out` whole.

    A reader never sees a half-written directory: either the old one or the new one. os.replace
    cannot swap a non-empty directory, so an existing `out` is moved aside first, then deleted.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        yield tmp
        if out.exists():
            old = out.with_name(f".{out.name}.old.{os.getpid()}")
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def clean_partial(root, pattern: str = ".step_*") -> None:
    """Remove the temporary directories (``pattern``) a save killed midway left in ``root``:
    :func:`atomic_directory`'s own for ``step_N`` are ``.step_N.*.tmp`` and ``.step_N.old.*``."""
    for p in Path(root).glob(pattern):
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
