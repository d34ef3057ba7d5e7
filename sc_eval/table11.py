"""The LLaVA battery laid out as the SuperClass paper compares vision encoders (its Table 11).

Table 11 of arXiv 2411.03313 (appendix) puts OpenCLIP, MAE, DINOv2 and SuperClass towers into
the same LLaVA-1.5 recipe and reports one row per encoder with nine columns, in this order:
VQAv2, GQA, VizWiz, T-VQA, SciQA, MME, MMB, PoPE, MMMU. Each cell here shows the number that
benchmark's community quotes: VQAv2 val under lmms-eval's rule (what the paper ran), GQA
testdev-balanced, VizWiz val, TextVQA val, ScienceQA-IMG, MME perception/cognition (summed
scores), MMBench en dev, POPE mean F1 over the three splits, MMMU val. SEED-Bench, which the
battery also runs but Table 11 does not show, follows as a marked extra column.

A column takes the first of its candidate tasks that a run evaluated, so a run with
`textvqa_val_ocr` instead of `textvqa_val` still fills "T-VQA" (the header then names the task).
Only plain dict access here: `sc_eval.runner.results_markdown` calls it on every rewrite.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    header: str
    tasks: tuple[str, ...]            # candidates, preferred first
    metrics: tuple[str, ...]          # shown joined by "/" (MME: perception/cognition)


COLUMNS = (
    Column("VQAv2", ("vqav2_val",), ("vqa_acc_lmms",)),
    Column("GQA", ("gqa_testdev_balanced",), ("accuracy",)),
    Column("VizWiz", ("vizwiz_vqa_val",), ("vqa_acc",)),
    Column("T-VQA", ("textvqa_val", "textvqa_val_ocr"), ("vqa_acc",)),
    Column("SciQA", ("scienceqa_img",), ("accuracy",)),
    Column("MME", ("mme",), ("perception", "cognition")),
    Column("MMB", ("mmbench_en_dev",), ("accuracy",)),
    Column("PoPE", ("pope",), ("f1",)),
    Column("MMMU", ("mmmu_val",), ("accuracy",)),
    Column("SEED\u2020", ("seedbench",), ("accuracy",)),    # not in the paper's table
)
EXTRA_NOTE = "\u2020 SEED-Bench (image): part of the battery, not a column of the paper's Table 11"
HEADERS = tuple(c.header for c in COLUMNS)
BATTERY_TASKS = frozenset(t for c in COLUMNS for t in c.tasks)


def _evaluated(results: dict) -> dict[str, dict]:
    """Task entries that were scored (skipped tasks and submission-only tasks have no metrics)."""
    out = {}
    for name, entry in (results.get("results") or {}).items():
        if isinstance(entry, dict) and not entry.get("skipped") and entry.get("metrics"):
            out[name] = entry
    return out


def battery_tasks_in(results: dict) -> list[str]:
    """The table's tasks that this results dict holds scores for."""
    return [name for name in _evaluated(results) if name in BATTERY_TASKS]


def _fmt(value) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "-"
    return f"{value:.2f}"


def cell(results: dict, column: Column) -> tuple[str, str | None, bool]:
    """(text, task used or None, whether that task ran on a --limit subset)."""
    entries = _evaluated(results)
    for task in column.tasks:
        entry = entries.get(task)
        if entry is None:
            continue
        values = [entry["metrics"].get(m) for m in column.metrics]
        if all(v is None for v in values):
            continue
        return "/".join(_fmt(v) for v in values), task, bool(entry.get("limited"))
    return "-", None, False


def table11_markdown(*runs: dict, labels: list[str] | None = None) -> str:
    """One row per results dict (the results.json structure of `sc_eval.runner`), the paper's
    columns in order, "-" where a run lacks the task. Labels default to each run's encoder."""
    labels = list(labels) if labels is not None else [str(r.get("encoder") or "run") for r in runs]
    if len(labels) != len(runs):
        raise ValueError(f"{len(labels)} labels for {len(runs)} runs")
    rows, limited, substitutes = [], False, {}
    for label, results in zip(labels, runs):
        cells = []
        for column in COLUMNS:
            text, task, lim = cell(results, column)
            if task is not None and task != column.tasks[0]:
                substitutes[column.header] = task
            if lim:
                text += "*"
                limited = True
            cells.append(text)
        rows.append(f"| {label} | " + " | ".join(cells) + " |")
    headers = [f"{h} ({substitutes[h]})" if h in substitutes else h for h in HEADERS]
    lines = ["| encoder | " + " | ".join(headers) + " |", "|---" * (len(headers) + 1) + "|", *rows]
    lines += ["", EXTRA_NOTE]
    if limited:
        lines.append("\\* evaluated on a --limit subset: not comparable to the full split")
    return "\n".join(lines) + "\n"
