"""The LLaVA battery laid out as the SuperClass paper compares vision encoders (its Table 11).

Table 11 of arXiv 2411.03313 (appendix) puts OpenCLIP, MAE, DINOv2 and SuperClass towers into
the same LLaVA-1.5 recipe and reports one row per encoder with nine columns, in this order:
VQAv2, GQA, VizWiz, T-VQA, SciQA, MME, MMB, PoPE, MMMU. SEED-Bench, which the battery also runs
but Table 11 does not show, follows as a marked extra column.

The paper scored with lmms-eval (released November 2024: v0.2.4 / v0.3.0), and several of its
scorers differ from LLaVA-1.5's own scripts by whole points, so the same predictions fill two
layouts: ``PAPER`` (the default) takes each benchmark's score under lmms-eval's rule of that
era, ``LLAVA`` under LLaVA-1.5's scripts (where LLaVA has none for a split, the same rule as
``PAPER``). Each layout's legend names the metric and the rule of every column.

A column takes the first of its candidate tasks that a run evaluated, so a run with
`textvqa_val_ocr` instead of `textvqa_val` still fills "T-VQA" (the header then names the task).
A run scored before a column's metric existed shows "-" there rather than another rule's value.
Only plain dict access here: a LLaVA run's results.md is rewritten through it after every task.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    header: str
    tasks: tuple[str, ...]            # candidates, preferred first
    metrics: tuple[str, ...]          # shown joined by "/" (MME: perception/cognition)
    rule: str                         # whose rule the metric is, for the legend


_MME = Column("MME", ("mme",), ("perception", "cognition"), "MME's calculation.py (acc + acc+, summed)")
_MMB = Column("MMB", ("mmbench_en_dev",), ("circular_accuracy",),
              "CircularEval over the TSV's rotated copies, options matched offline (no LLM judge, "
              "unlike lmms-eval and the MMBench server)")
_MMMU = Column("MMMU", ("mmmu_val",), ("accuracy",), "MMMU's own parse, as lmms-eval")
_DAGGER = "\u2020"  # marks SEED-Bench: a battery task the paper's table does not show
_SEED = Column("SEED" + _DAGGER, ("seedbench",), ("accuracy",), "lmms-eval (first character)")
_VIZWIZ = Column("VizWiz", ("vizwiz_vqa_val",), ("vqa_acc",), "EvalAI processor, as lmms-eval")

PAPER = (
    Column("VQAv2", ("vqav2_val",), ("vqa_acc_lmms_v03",), "lmms-eval up to v0.3.4"),
    Column("GQA", ("gqa_testdev_balanced",), ("accuracy_lmms",), "lmms-eval"),
    _VIZWIZ,
    Column("T-VQA", ("textvqa_val", "textvqa_val_ocr"), ("vqa_acc",),
           "EvalAI processor, as lmms-eval (whose default prompt has no OCR tokens)"),
    Column("SciQA", ("scienceqa_img",), ("accuracy_lmms_v03",), "lmms-eval v0.2.2 to v0.3.4"),
    _MME, _MMB,
    Column("PoPE", ("pope",), ("f1_lmms",), "lmms-eval, the three splits pooled"),
    _MMMU, _SEED,
)
LLAVA = (
    Column("VQAv2", ("vqav2_val",), ("vqa_acc_lmms_v03",),
           "LLaVA's test-dev route on val: EvalAI processor, then the official script"),
    Column("GQA", ("gqa_testdev_balanced",), ("accuracy",), "LLaVA's eval_gqa"),
    _VIZWIZ,
    Column("T-VQA", ("textvqa_val_ocr", "textvqa_val"), ("vqa_acc",),
           "LLaVA's m4c evaluator, OCR tokens in the prompt"),
    Column("SciQA", ("scienceqa_img",), ("accuracy",), "LLaVA's eval_science_qa"),
    _MME, _MMB,
    Column("PoPE", ("pope",), ("f1",), "LLaVA's eval_pope, mean of the three splits"),
    _MMMU, _SEED,
)
LAYOUTS = {"paper": PAPER, "llava": LLAVA}
TITLES = {"paper": "lmms-eval's rules of the paper's time, as the paper scored",
          "llava": "LLaVA-1.5's own scoring scripts"}
EXTRA_NOTE = _DAGGER + " SEED-Bench (image): part of the battery, not a column of the paper's Table 11"
HEADERS = tuple(c.header for c in PAPER)
BATTERY_TASKS = frozenset(t for layout in LAYOUTS.values() for c in layout for t in c.tasks)


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


def legend(layout: str = "paper") -> str:
    """One line naming each column's metric and whose rule it is (for another layout than the
    paper's, the columns that differ from it)."""
    columns = [c for c, p in zip(LAYOUTS[layout], PAPER) if layout == "paper" or c != p]
    parts = [f"{c.header.rstrip(_DAGGER)} `{'/'.join(c.metrics)}` = {c.rule}" for c in columns]
    rest = "" if len(columns) == len(PAPER) else "; the other columns as in the paper's layout"
    return f"Rules ({TITLES[layout]}): " + "; ".join(parts) + rest + "."


def table11_markdown(*runs: dict, labels: list[str] | None = None, layout: str = "paper") -> str:
    """One row per results dict (the results.json structure of `sc_eval.evaluation.runner`), the paper's
    columns in order, "-" where a run lacks the task or the column's metric, then the legend.
    ``layout``: "paper" (lmms-eval's rules of the paper's time) or "llava" (LLaVA-1.5's
    scripts). Labels default to each run's encoder."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout {layout!r}: choose one of {', '.join(LAYOUTS)}")
    labels = list(labels) if labels is not None else [str(r.get("encoder") or "run") for r in runs]
    if len(labels) != len(runs):
        raise ValueError(f"{len(labels)} labels for {len(runs)} runs")
    rows, limited, substitutes = [], False, {}
    for label, results in zip(labels, runs):
        cells = []
        for column in LAYOUTS[layout]:
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
    lines += ["", legend(layout), "", EXTRA_NOTE]
    if limited:
        lines.append("\\* evaluated on a --limit subset: not comparable to the full split")
    return "\n".join(lines) + "\n"


def battery_sections(*runs: dict, labels: list[str] | None = None) -> str:
    """Both layouts under their headings (Markdown), for results.md and `sc-eval report`."""
    out = []
    for layout, title in (("paper", "as the paper scored (lmms-eval, late 2024)"),
                          ("llava", "under LLaVA-1.5's own scripts")):
        out += [f"## LLaVA battery in the paper's Table 11 columns, {title}", "",
                table11_markdown(*runs, labels=labels, layout=layout).rstrip("\n"), ""]
    return "\n".join(out)


def battery_markdown(results: dict) -> str:
    """The battery section of one run's results.md: both layouts when the run holds scores for
    two or more of the table's tasks, else "" (a single task is no comparison)."""
    if len(battery_tasks_in(results)) < 2:
        return ""
    return battery_sections(results)
