"""Imports flow one way, as docs/internals.md lays the packages out: the apps (the command line,
the commands, the demo, pretraining, the adapters) import the library, never the reverse; the
library (the embedded world included) never imports a task; the evaluation layer never imports
the report; a task imports the library only, never another task or an app.

Read from the source (every import statement, at module top or inside a function), so a lazy
import against the grain counts as much as one at the top."""
import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ROOTS = {"sc_eval": "sc_eval", "sc_eval.adapters": "adapters", "sc_eval.tasks": "tasks",
         "sc_eval.pretrain": "pretrain"}
APPS = ("sc_eval.__main__", "sc_eval.cli", "sc_eval.commands", "sc_eval.demo", "sc_eval.adapters",
        "sc_eval.pretrain")
TASKS = ("sc_eval.tasks",)
EVALUATION = ("sc_eval.evaluation",)
REPORT = ("sc_eval.report",)


def _under(module: str, packages) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def _modules():
    """(module name, source file) of every module the package installs."""
    for package, folder in ROOTS.items():
        for path in sorted((REPO / folder).rglob("*.py")):
            parts = list(path.relative_to(REPO / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            yield ".".join([package, *parts]), path


def imports_of(module: str, source: str, is_package: bool = False) -> list[tuple[str, int]]:
    """(imported module, line) of every import statement in ``source``, relative ones resolved;
    ``from a import b`` counts as importing ``a.b`` (b may be a module)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module != "__future__":
            base = node.module or ""
            if node.level:
                here = module.split(".") if is_package else module.split(".")[:-1]
                here = here[:len(here) - (node.level - 1)]
                base = ".".join(here + ([node.module] if node.module else []))
            found += [(f"{base}.{a.name}", node.lineno) for a in node.names]
    return found


def violations(module: str, imported: str) -> list[str]:
    """The rules ``module`` breaks by importing ``imported`` (empty when none)."""
    broken = []
    library = _under(module, ("sc_eval",)) and not _under(module, APPS + TASKS)
    if library and _under(imported, APPS):
        broken.append("the library imports an app")
    if library and _under(imported, TASKS):
        broken.append("the library imports a task" + (" (the world)" if _under(module, ("sc_eval.world",)) else ""))
    if _under(module, EVALUATION) and _under(imported, REPORT):
        broken.append("the evaluation layer imports the report")
    if _under(module, TASKS) and _under(imported, TASKS) and imported.split(".")[:3] != module.split(".")[:3]:
        broken.append("a task imports another task")
    if _under(module, TASKS) and _under(imported, APPS):
        broken.append("a task imports an app")
    return broken


@pytest.mark.parametrize("module, imported, rule", [
    ("sc_eval.world.benchmarks", "sc_eval.tasks.textvqa.utils.ocr_line", "the library imports a task (the world)"),
    ("sc_eval.evaluation.runner", "sc_eval.report.table11.battery_sections", "the evaluation layer imports the report"),
    ("sc_eval.models.lm", "sc_eval.demo.tiny_lm.build_tiny_lm", "the library imports an app"),
    ("sc_eval.io", "sc_eval.cli.main", "the library imports an app"),
    ("sc_eval.tasks.mmmu.utils", "sc_eval.tasks.mmbench.utils.load_docs", "a task imports another task"),
    ("sc_eval.tasks.gqa.utils", "sc_eval.adapters.llava.templates", "a task imports an app"),
])
def test_each_rule_catches_an_import_against_the_grain(module, imported, rule):
    assert rule in violations(module, imported)


@pytest.mark.parametrize("module, imported", [
    ("sc_eval.demo.pipeline", "sc_eval.cli"),                       # an app calls the command line
    ("sc_eval.adapters.llava.pipeline", "sc_eval.report.table11"),  # an app lays out its results
    ("sc_eval.tasks.mmmu.utils", "sc_eval.tasks.mmmu.parse"),      # a task's own modules
    ("sc_eval.tasks.textvqa.utils", "sc_eval.data.formats.ocr_line"),
    ("sc_eval.report.build", "sc_eval.evaluation.tasks"),          # the report reads tasks
])
def test_imports_with_the_grain_are_allowed(module, imported):
    assert violations(module, imported) == []


def test_relative_imports_are_resolved():
    source = "from .model import build\nfrom ..llava import templates\nfrom . import utils\n"
    assert imports_of("sc_eval.adapters.clipcap.command", source) == [
        ("sc_eval.adapters.clipcap.model.build", 1), ("sc_eval.adapters.llava.templates", 2),
        ("sc_eval.adapters.clipcap.utils", 3)]


def test_no_import_runs_against_the_grain():
    found, checked = [], 0
    for module, path in _modules():
        for imported, line in imports_of(module, path.read_text(encoding="utf-8"), path.name == "__init__.py"):
            checked += 1
            found += [f"{path.relative_to(REPO)}:{line}: {module} imports {imported}: {rule}"
                      for rule in violations(module, imported)]
    assert checked > 500  # the whole package was read
    assert not found, "\n".join(found)
