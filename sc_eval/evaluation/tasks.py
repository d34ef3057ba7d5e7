"""Tasks: one YAML per task under tasks/<benchmark>/, plus that folder's utils.py.

Listing tasks reads YAML only (no torch, no utils import). A task's utils module is imported
the first time one of its functions is needed. Extra task folders can be added with
``--include-tasks DIR`` (same layout), as lm-eval's ``--include_path``.
"""
from __future__ import annotations

import importlib
import importlib.util
import inspect
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from sc_eval.errors import ConfigError, DataError, did_you_mean
from sc_eval.io import check_name
from sc_eval.runtime.fingerprint import Hasher, digest

SUBMISSION_ONLY = "submission"  # tasks whose metrics come from a test server


def builtin_tasks_dir() -> Path:
    spec = importlib.util.find_spec("sc_eval.tasks")
    return Path(list(spec.submodule_search_locations)[0])


@dataclass
class Task:
    name: str
    path: Path
    version: Any = 1
    aliases: list = field(default_factory=list)
    groups: list = field(default_factory=list)
    adapter_kind: str = "generate"
    description: str = ""
    data: dict = field(default_factory=dict)
    prompt: str | None = None
    doc_to_text: str | None = None
    generation_kwargs: dict = field(default_factory=dict)
    metrics: list = field(default_factory=list)
    target_field: str | None = None
    process_results: str | None = None
    aggregate: str | None = None
    score_loader: str | None = None
    submission: str | None = None
    headline: str | None = None   # the metric a comparison table shows (default: the first)
    prediction_reader: str | None = None  # utils fn (path, docs) -> {doc_id: prediction}, for `score`
    doc_scores: str | None = None  # utils fn (records) -> {metric: {doc_id: score}} for corpus metrics
    paired: str | None = None  # utils fn (records_a, records_b) -> {metric: (a - b, stderr, p)}
    raw: dict = field(default_factory=dict)

    # -- utils -------------------------------------------------------------------------------
    def utils(self):
        """The task folder's utils.py (imported as a package module for built-in tasks)."""
        folder = self.path.parent
        utils_py = folder / "utils.py"
        if not utils_py.exists():
            raise ConfigError(f"{self.path}: task needs {utils_py}, which does not exist")
        if folder.parent == builtin_tasks_dir():
            return importlib.import_module(f"sc_eval.tasks.{folder.name}.utils")
        modname = f"sc_eval_user_tasks.{folder.name}.utils"
        spec = importlib.util.spec_from_file_location(modname, utils_py)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod

    def fn(self, name: str) -> Callable:
        mod = self.utils()
        if not hasattr(mod, name):
            raise ConfigError(f"{self.path}: utils.py has no function {name!r}")
        return getattr(mod, name)

    # -- docs and prompts --------------------------------------------------------------------
    def load_docs(self, data_root) -> list[dict]:
        loader = self.data.get("loader")
        if not loader:
            raise ConfigError(f"{self.path}: `data.loader` is missing")
        docs = self.fn(loader)(Path(data_root), **self.data.get("args", {}))
        seen = set()
        for d in docs:
            if "doc_id" not in d:
                raise DataError(f"task {self.name}: a document has no doc_id (loader {loader})")
            d["doc_id"] = str(d["doc_id"])
            if d["doc_id"] in seen:
                raise DataError(f"task {self.name}: duplicate doc_id {d['doc_id']!r}")
            seen.add(d["doc_id"])
        return docs

    def prompt_for(self, doc: dict) -> str:
        if self.doc_to_text:
            return self.fn(self.doc_to_text)(doc)
        if self.prompt is None:
            return ""
        try:
            return self.prompt.format_map(doc)
        except KeyError as e:
            raise DataError(f"task {self.name}, doc {doc.get('doc_id')}: prompt needs field {e}") from None

    @property
    def prompt_hash(self) -> str:
        text = self.prompt or ""
        if self.doc_to_text:
            text += inspect.getsource(self.fn(self.doc_to_text))
        return Hasher().text(text).hex()

    def targets(self, doc: dict):
        if self.target_field:
            return doc.get(self.target_field)
        for key in ("answers", "captions", "answer", "label"):
            if key in doc:
                return doc[key]
        return None

    # -- scoring -----------------------------------------------------------------------------
    def score_doc(self, doc: dict, prediction: str) -> dict:
        if not self.process_results:
            return {}
        return dict(self.fn(self.process_results)(doc, prediction))

    def score_records(self, records: list[dict]) -> tuple[dict, dict]:
        """(corpus metrics, their standard errors). The utils aggregate when given (it may return
        ``(metrics, stderr)``), else the mean of each per-doc score x100 and its standard error."""
        if self.aggregate:
            out = self.fn(self.aggregate)(records)
            metrics, stderr = out if isinstance(out, tuple) else (out, {})
            return dict(metrics), {k: float(v) for k, v in dict(stderr or {}).items() if v is not None}
        return self._means(records)

    def _means(self, records: list[dict]) -> tuple[dict, dict]:
        """Each metric's mean of the per-doc scores x100 and its standard error (sample std over
        sqrt(n), same units; left out below two docs)."""
        from sc_eval.metrics.stderr import mean_stderr  # numpy: `sc-eval ls` reads tasks without it

        means, stderr = {}, {}
        for m in self.metrics:
            vals = [r["scores"][m] for r in records if m in r.get("scores", {})]
            means[m] = 100.0 * sum(vals) / len(vals) if vals else None
            se = mean_stderr(vals)
            if se is not None:
                stderr[m] = se
        return means, stderr

    def per_doc(self, records: list[dict], metric: str) -> dict[str, float] | None:
        """{doc_id: score in the metric's units} when ``metric`` is a mean of per-doc scores (the
        default aggregate, or what the task's ``doc_scores`` gives), else None. Two runs on the
        same docs are compared question by question through it."""
        if not self.aggregate and metric in self.metrics:
            return {str(r["doc_id"]): 100.0 * float(r["scores"][metric])
                    for r in records if metric in r.get("scores", {})}
        if self.doc_scores:
            got = self.fn(self.doc_scores)(records).get(metric)
            return {str(k): float(v) for k, v in got.items()} if got is not None else None
        return None

    def describe(self) -> dict:
        return {"task": self.name, "version": self.version, "prompt_hash": self.prompt_hash,
                "generation_kwargs": self.generation_kwargs}


_FIELDS = {f for f in Task.__dataclass_fields__} - {"name", "path", "raw"}


def _read_mapping(path: Path) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            raw = yaml.safe_load(f) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such task file") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML ({e})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of task fields (task:, data:, metrics: ...)")
    return raw


def _with_includes(path: Path, seen: tuple = ()) -> dict:
    """A task file's fields over those of the file it names in ``include:`` (a path relative to
    it, as in lm-evaluation-harness), which may include another in turn."""
    if path.resolve() in seen:
        raise ConfigError(f"{path}: `include:` loops back to a file already included")
    raw = _read_mapping(path)
    inc = raw.pop("include", None)
    if inc is None:
        return raw
    if not isinstance(inc, str):
        raise ConfigError(f"{path}: `include:` takes one file path (got {inc!r})")
    return {**_with_includes(path.parent / inc, (*seen, path.resolve())), **raw}


def _load_yaml(path: Path) -> Task:
    raw = _with_includes(path)
    if "task" not in raw:
        raise ConfigError(f"{path}: missing `task:` name")
    check_name(raw["task"], f"{path}: task")  # it names predictions/<task>.jsonl and other files
    unknown = set(raw) - _FIELDS - {"task"}
    if unknown:
        raise ConfigError(f"{path}: unknown keys {sorted(unknown)}")
    kw = {k: v for k, v in raw.items() if k in _FIELDS}
    for k in ("aliases", "groups", "metrics"):
        if isinstance(kw.get(k), str):
            kw[k] = [kw[k]]
    return Task(name=raw["task"], path=path, raw=raw, **kw)


def discover(include: list | tuple = ()) -> dict[str, Task]:
    """All tasks by name: the built-in ones, then each include dir (later dirs override)."""
    roots = [builtin_tasks_dir(), *[Path(p) for p in include]]
    tasks: dict[str, Task] = {}
    for root in roots:
        if not root.is_dir():
            raise ConfigError(f"task folder {root} does not exist")
        for y in sorted(root.glob("*/*.yaml")):
            t = _load_yaml(y)
            tasks[t.name] = t
    return tasks


def resolve(spec: str, include: list | tuple = (), adapter_kind: str | None = None) -> list[Task]:
    """'textvqa,gqa' -> tasks, resolving aliases, groups and 'all'; order kept, duplicates once.

    With adapter_kind, `all` and groups keep only the tasks that kind of adapter can run, and a
    task of another kind named outright is an error.
    """
    tasks = discover(include)
    aliases = {a: t.name for t in tasks.values() for a in t.aliases}
    groups: dict[str, list[str]] = {}
    for t in tasks.values():
        for g in t.groups:
            groups.setdefault(g, []).append(t.name)
    out: list[str] = []
    for item in [s.strip() for s in spec.split(",") if s.strip()]:
        if item == "all":
            names = [n for n, t in tasks.items() if adapter_kind in (None, t.adapter_kind)]
        elif item in tasks:
            names = [item]
        elif item in aliases:
            names = [aliases[item]]
        elif item in groups:
            names = [n for n in groups[item] if adapter_kind in (None, tasks[n].adapter_kind)]
        else:
            known = [*tasks, *aliases, *groups]
            raise ConfigError(f"unknown task {item!r}{did_you_mean(item, known)}; "
                              "`sc-eval ls tasks` lists names, aliases and groups")
        wrong = [n for n in names if adapter_kind not in (None, tasks[n].adapter_kind)]
        if wrong:
            raise ConfigError(f"task {wrong[0]} is a {tasks[wrong[0]].adapter_kind} task; "
                              f"this command runs {adapter_kind} tasks")
        out += [n for n in names if n not in out]
    if not out:
        raise ConfigError("no task given (--tasks a,b)")
    return [tasks[n] for n in out]


def names_a_group(spec: str, include: list | tuple = ()) -> bool:
    """True when `spec` asks for `all` or a group: its tasks whose data is absent may be skipped."""
    tasks = discover(include)
    groups = {g for t in tasks.values() for g in t.groups}
    items = {s.strip() for s in spec.split(",") if s.strip()}
    return "all" in items or bool(items & (groups - set(tasks)))


def fingerprint(adapter_fingerprint: str, task: Task) -> str:
    """What a task's predictions depend on: the adapter's fingerprint and the task's description."""
    return digest({"adapter": adapter_fingerprint, **task.describe()})


def template_fields(template: str) -> list[str]:
    return [f for _, f, _, _ in string.Formatter().parse(template) if f]
