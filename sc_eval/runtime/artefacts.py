"""Saved artefacts (adapters, encoders, checkpoints) checked whole before anything is built from them.

A directory a command is handed may be cut short (a copy interrupted, a disk filled), lack a
file, or be another command's artefact. Finding out deep inside transformers or peft gives a
traceback that names neither the file nor what to do; finding out after a 7B LLM has loaded
wastes minutes. So loaders first check every file they will read: present, JSON that parses to
an object, safetensors whose header parses and whose tensors the file covers in full (read
from the header alone: no tensor data is read). Every problem is one error type,
:class:`CheckpointError`, naming the file.
"""
from __future__ import annotations

import json
import struct
from pathlib import Path

from sc_eval.errors import CheckpointError

_HEADER_LIMIT = 100 * 1024 * 1024  # the safetensors format's own bound on the JSON header


def require_dir(path, what: str) -> Path:
    """``path`` when it is a directory, else a CheckpointError saying what was expected."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such directory; {what}")
    if not path.is_dir():
        raise CheckpointError(f"{path}: a file, not a directory; {what}")
    return path


def require_file(path, what: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: {'not a file' if path.exists() else 'missing'}; {what}")
    return path


def read_json_object(path, what: str) -> dict:
    """A JSON file that must hold an object."""
    path = require_file(path, what)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        where = f" at line {e.lineno}" if isinstance(e, json.JSONDecodeError) else ""
        raise CheckpointError(f"{path}: not valid JSON{where}; {what}") from None
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read ({e.strerror}); {what}") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a JSON object; {what}")
    return data


def check_safetensors(path, what: str = "re-export or copy it again") -> dict:
    """The tensors' header of a whole safetensors file ({name: {dtype, shape, data_offsets}});
    a CheckpointError naming the file when it is missing, cut short or not safetensors."""
    path = require_file(path, what)
    size = path.stat().st_size
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise ValueError("shorter than a safetensors header")
            (n,) = struct.unpack("<Q", head)
            if n > min(size - 8, _HEADER_LIMIT):
                raise ValueError("its header runs past the end of the file")
            header = json.loads(f.read(n))
        if not isinstance(header, dict):
            raise ValueError("its header is not a JSON object")
        end = 0
        for name, t in header.items():
            if name == "__metadata__":
                continue
            begin, stop = t["data_offsets"]
            if not 0 <= begin <= stop:
                raise ValueError(f"tensor {name!r} has offsets {begin}..{stop}")
            end = max(end, stop)
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: not a readable safetensors file ({e}); {what}") from None
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read ({e.strerror}); {what}") from None
    if 8 + n + end != size:
        state = "cut short" if 8 + n + end > size else "longer than its tensors"
        raise CheckpointError(f"{path}: {state} ({size} bytes, its header describes {8 + n + end}); {what}")
    return {k: v for k, v in header.items() if k != "__metadata__"}


def check_hf_model_dir(path, what: str) -> None:
    """A save_pretrained directory: config.json, and every safetensors weight file whole."""
    path = require_dir(path, what)
    read_json_object(path / "config.json", what)
    for f in sorted(path.glob("*.safetensors")):
        check_safetensors(f, what)
