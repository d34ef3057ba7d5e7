"""The lmms-lab Hugging Face layout: benchmark parquet files read offline through `datasets`.

lmms-eval publishes every benchmark as a dataset repository of parquet files
(``huggingface-cli download lmms-lab/<name> --repo-type dataset --local-dir DIR``):
``data/<split>-00000-of-0000N.parquet`` for the default config, ``<config>/<split>-*.parquet``
for named configs (GQA, ScienceQA, MMBench), with images embedded as bytes. Tasks accept such a
directory wherever they accept the official layout, so this module only finds the files, streams
their rows and turns embedded images into files.

Why these choices:
  * Rows are read with ``datasets.load_dataset("parquet", data_files=..., streaming=True)``: local
    files only (never the hub), and streaming writes no Arrow copy into the Hugging Face cache, which
    would double the disk use of a 34 GB VQAv2 download.
  * Docs name images by path (adapters and the predictions log never carry pixels), so embedded
    images are written once into a cache folder keyed by the parquet files' paths, sizes and mtimes;
    the doc list itself is cached there too, so a second load (the runner loads docs more than
    once) reads one JSON file instead of gigabytes of parquet.
  * A directory is taken as a task's data only when its parquet schema has the columns that task
    needs: pointing a POPE task at a VQAv2 download is an error that says so, never wrong docs.
  * An image cell is read from its bytes. A cell with only a ``path`` is read from that file only
    when it lies inside the download's own folder: a crafted parquet cannot make sc-eval copy an
    arbitrary local file into its image cache.
"""
from __future__ import annotations

import io
import json
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import pyarrow.parquet as pq

from sc_eval.data.images import materialize
from sc_eval.errors import DataError
from sc_eval.io import atomic_write_text, check_name
from sc_eval.runtime import home
from sc_eval.runtime.fingerprint import Hasher

log = logging.getLogger(__name__)

CACHE_VERSION = 1  # bump when the docs a reader builds change shape


@dataclass
class Source:
    """One config/split of an lmms-lab download: its folder and its parquet files, in order."""

    folder: Path
    split: str
    config: str | None
    files: list[Path] = field(default_factory=list)

    def describe(self) -> str:
        where = f"{self.config}/" if self.config else ""
        return f"{self.folder} ({where}{self.split}, {len(self.files)} parquet file(s))"


def split_files(folder, split: str, config: str | None = None) -> list[Path]:
    """Parquet files of one split: ``<config>/<split>-*.parquet`` for a named config, else
    ``data/<split>-*.parquet`` (the default config) or ``<split>-*.parquet`` in the folder itself.
    Sorted by name, which is the shard order ``datasets`` uses."""
    folder = Path(folder)
    check_name(split, f"{folder}: split", DataError)  # globbed below the folder
    if config not in (None, "."):  # "." : the folder itself
        check_name(config, f"{folder}: config", DataError)
    subdirs = [config] if config else ["data", "."]
    for sub in subdirs:
        base = folder / sub
        if base.is_dir():
            files = sorted(p for p in base.glob(f"{split}-*.parquet") if p.is_file())
            if files:
                return files
    return []


def parquet_columns(path) -> list[str]:
    """Column names from a parquet footer (no row is read)."""
    try:
        return list(pq.read_schema(path).names)
    except Exception as e:  # pyarrow raises several types for a damaged file
        raise DataError(f"{path}: unreadable parquet ({e}); re-download it") from None


def locate(root, dirs: Iterable[str] = (), split: str = "test", config: str | None = None,
           columns: Iterable[str] = ()) -> Source | None:
    """The first of ``root/<dir>`` (each of `dirs`, then `root` itself) holding the split's parquet
    files with every one of `columns`; None when there is none."""
    root = Path(root)
    columns = list(columns)
    seen = set()
    for d in [*dirs, "."]:
        folder = (root / d).resolve()
        if folder in seen or not folder.is_dir():
            continue
        seen.add(folder)
        files = split_files(folder, split, config)
        if not files:
            continue
        have = set(parquet_columns(files[0]))
        missing = [c for c in columns if c not in have]
        if missing:
            log.debug("%s: parquet lacks %s; not this task's lmms-lab data", folder, missing)
            continue
        return Source(folder=folder, split=split, config=config, files=files)
    return None


def require(root, dirs: Iterable[str], split: str, config: str | None, columns: Iterable[str],
            official: str) -> Source:
    """`locate`, or a DataError naming both layouts the task would have accepted."""
    src = locate(root, dirs, split, config, columns)
    if src is None:
        places = ", ".join(str(Path(root) / d) for d in [*dirs, "."])
        where = f"{config}/{split}-*.parquet" if config else f"data/{split}-*.parquet"
        raise DataError(f"{official}: not found, and no lmms-lab parquet download ({where} with "
                        f"columns {', '.join(columns)}) in {places}; download the official files "
                        "or the lmms-lab dataset into one of those folders")
    return src


def iter_rows(src: Source, columns: Iterable[str] | None = None) -> Iterator[dict]:
    """Rows of the split as plain dicts, images left undecoded ({"bytes", "path"})."""
    from datasets import load_dataset  # `sc-eval score` of official files never needs it (seconds to import)

    kw = {"columns": list(columns)} if columns else {}
    try:
        ds = load_dataset("parquet", data_files={src.split: [str(f) for f in src.files]},
                          split=src.split, streaming=True, **kw)
        rows = ds.decode(False) if hasattr(ds, "decode") else _undecoded(ds)
        for i, row in enumerate(rows):
            yield _inline_images(row, src, i)
    except (OSError, ValueError) as e:  # pyarrow's errors for a damaged or truncated file
        raise DataError(f"{src.describe()}: cannot read the parquet files ({e}); re-download them") from None


def _inline_images(row: dict, src: Source, index: int) -> dict:
    """The row with each image cell that holds only a ``path`` given that file's bytes, when the
    path lies inside the download's folder (relative paths are taken from there); a path
    elsewhere is an error. Cells with bytes are left as they are (their ``path`` is a name)."""
    for key, value in row.items():
        cells = value if isinstance(value, list) else [value]  # SEED-Bench: a list of frames
        for cell in cells:
            if not (isinstance(cell, dict) and set(cell) <= {"bytes", "path"} and "path" in cell
                    and not cell.get("bytes") and cell.get("path")):
                continue
            folder = src.folder.resolve()
            target = (folder / str(cell["path"])).resolve()
            if not target.is_relative_to(folder):
                raise DataError(f"{src.describe()} row {index}: image cell {key!r} names the file {cell['path']!r} "
                                f"outside the dataset folder {folder}; sc-eval reads images embedded in the "
                                "parquet (their bytes) or files inside that folder only")
            if target.is_file():
                cell["bytes"] = target.read_bytes()
    return row


def _undecoded(ds):
    """``ds`` with its images left undecoded, for datasets releases whose IterableDataset has no
    ``decode``: every Image feature, at any depth, is cast to ``Image(decode=False)``."""
    from datasets import Features, Image, Sequence

    def plain(f):
        if isinstance(f, Image):
            return Image(decode=False)
        if isinstance(f, Sequence):
            return Sequence(plain(f.feature), length=f.length)
        if isinstance(f, dict):
            return {k: plain(v) for k, v in f.items()}
        if isinstance(f, (list, tuple)):
            return [plain(v) for v in f]
        return f

    return ds if ds.features is None else ds.cast(Features(plain(dict(ds.features))))


def checked_rows(src: Source, fields: Iterable[str] = (), columns: Iterable[str] | None = None
                 ) -> Iterator[tuple[str, dict]]:
    """(where, row) for each row of the split: ``where`` names the file set and row for error
    messages, and every row has been checked for ``fields`` (see :func:`need`)."""
    fields = tuple(fields)
    for i, row in enumerate(iter_rows(src, columns)):
        where = f"{src.describe()} row {i}"
        need(row, fields, where)
        yield where, row


def image_bytes(value, where: str) -> bytes | None:
    """Encoded image bytes from what an ``Image`` feature holds: {"bytes", "path"}, raw bytes, a
    PIL image (written as PNG), or None."""
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, dict):  # a path-only cell got its bytes in `iter_rows`, if it may
        return bytes(value["bytes"]) if value.get("bytes") else None
    if hasattr(value, "save"):  # a decoded PIL image

        buf = io.BytesIO()
        value.save(buf, format="PNG")
        return buf.getvalue()
    raise DataError(f"{where}: image cell of type {type(value).__name__} is not an image")


def cache_dir(sources: Iterable[Source], reader: str) -> Path:
    """A folder for one reader over these files; any change to a file gives a new folder."""
    parts = [reader, str(CACHE_VERSION)]
    for src in sources:
        for f in src.files:
            st = f.stat()
            parts.append(f"{f.resolve()}|{st.st_size}|{st.st_mtime_ns}")
    key = Hasher().text("\n".join(parts)).hex()
    return home.cache_dir("lmms") / reader / key


class ImageStore:
    """Writes embedded images as ``<folder>/<name><ext>`` once; returns absolute paths."""

    def __init__(self, folder: Path):
        self.folder = Path(folder) / "images"

    def save(self, name: str, data: bytes | None) -> str | None:
        if not data:
            return None
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in str(name))
        return materialize(self.folder, safe, data)


def cached_docs(sources: list[Source], reader: str,
                build: Callable[[ImageStore, Path], list[dict]]) -> list[dict]:
    """Docs built once by ``build(images, folder)`` and kept as JSON beside their images.

    The JSON is written last and atomically, so an interrupted build is simply redone. Under
    torchrun, rank 0 builds while the other ranks wait, then they read its files.
    """
    many = "torch" in sys.modules  # no torch imported (`sc-eval score`): no process group either
    if many:
        from sc_eval.runtime import dist  # imports torch

        many = dist.world_size() > 1
    if many and not dist.is_main():
        dist.barrier()
    docs = _load_or_build(sources, reader, build)
    if many and dist.is_main():
        dist.barrier()
    return docs


def _load_or_build(sources: list[Source], reader: str, build) -> list[dict]:
    folder = cache_dir(sources, reader)
    manifest = folder / "docs.json"
    if manifest.exists():
        try:
            docs = json.loads(manifest.read_text(encoding="utf-8"))
            if all(d.get("image") is None or os.path.exists(d["image"]) for d in docs[:1]):
                return docs
        except (OSError, ValueError):
            pass  # unreadable cache: rebuild it
    log.info("reading lmms-lab parquet: %s", "; ".join(s.describe() for s in sources))
    text = json.dumps(build(ImageStore(folder), folder), ensure_ascii=False)
    atomic_write_text(manifest, text)
    return json.loads(text)  # the same values a cached load returns (JSON types)


def need(row: dict, fields: Iterable[str], where: str) -> None:
    missing = [f for f in fields if f not in row]
    if missing:
        raise DataError(f"{where}: lacks column(s) {', '.join(missing)}; not the lmms-lab layout")


def as_int(value):
    """Ids that the official files store as numbers and a parquet as strings ("12" -> 12)."""
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return value


def candidate_dirs(official: str, names: Iterable[str] | str | None) -> list[str]:
    """Where a task looks for an lmms-lab download under the data root: the official file's top
    folder (``vqav2`` for ``vqav2/v2_...json``), then each repository name as given in the task
    (``VQAv2``) and under ``lmms-lab/`` (the path ``--local-dir lmms-lab/VQAv2`` makes)."""
    if isinstance(names, str):
        names = [names]
    names = list(names or [])
    top = Path(official).parts[0] if Path(official).parts else "."
    out = [top, *names, *(f"lmms-lab/{n}" for n in names)]
    return list(dict.fromkeys(out))
