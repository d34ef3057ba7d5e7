"""Comparison tables and plots from run directories (`sc-eval report`, the demo's last stage)."""
from __future__ import annotations

import csv
import functools
import io
import logging
import math
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import yaml

from sc_eval.errors import DataError
from sc_eval.evaluation import tasks as tasks_api
from sc_eval.io import atomic_write_bytes, atomic_write_text, iter_jsonl, read_json
from sc_eval.metrics.stderr import mean_stderr, paired_p_value
from sc_eval.report.table11 import battery_sections, battery_tasks_in

log = logging.getLogger(__name__)

UNREAD = "?"  # the mark of a cell that could not be compared with the baseline: a predictions file is unreadable

# What a comparison table shows per task when the task does not say (first metric otherwise).
HEADLINE = {"coco_caption": "cider", "pope": "f1", "mme": "perception"}
PREFERRED = ("cider", "vqa_acc", "accuracy", "f1", "top1", "mean", "perception")


def find_runs(paths) -> list[Path]:
    """Run directories among `paths`: each path itself, or its sub-directories with results.json.
    A named folder that yields none is skipped with a warning saying so (an error when none of
    them yields a run)."""
    runs, skipped = [], []
    for p in paths:
        p = Path(p)
        if (p / "results.json").exists():
            runs.append(p)
        elif p.is_dir():
            found = sorted(q.parent for q in p.glob("*/results.json"))
            if not found:
                skipped.append(p)
            runs += found
        elif p.exists():
            raise DataError(f"{p}: a file, not a run directory; name the directory holding results.json")
        else:
            raise DataError(f"{p}: no such run directory")
    if not runs:
        raise DataError(f"no results.json under {', '.join(map(str, paths))}")
    for p in skipped:
        log.warning("report: skipped %s: no results.json in it or in its sub-directories (a run that has not "
                    "finished a task yet, or not a run directory)", p)
    return runs


def run_label(run: Path, results: dict) -> str:
    """The encoder a run measured (results.json `encoder`, else config.yaml), else the dir name."""
    if results.get("label"):
        return str(results["label"])
    enc = results.get("encoder")
    if isinstance(enc, dict):  # `probe` records the encoder's description, its spec among them
        enc = enc.get("spec")
    if enc:
        return str(enc)
    cfg = run / "config.yaml"
    if cfg.exists():
        conf = yaml.safe_load(cfg.read_text()) or {}
        if conf.get("encoder"):
            return str(conf["encoder"])
    return run.name


def headline(task: str, metrics: dict) -> str | None:
    if task in HEADLINE and HEADLINE[task] in metrics:
        return HEADLINE[task]
    t = _task(task)
    if t and t.headline in metrics:
        return t.headline
    for m in PREFERRED:
        if m in metrics:
            return m
    return next(iter(metrics), None)


def constant_answer(metrics: dict) -> bool:
    """True when a yes/no task's model said the same word to every question (yes-ratio 0 or 100):
    its F1 is then 66.67 (all "yes", balanced labels) or 0 (all "no") whatever the encoder."""
    ratio = metrics.get("yes_ratio")
    return isinstance(ratio, (int, float)) and ratio in (0, 100)


def collect(runs: list[Path], labels: dict | None = None, sources: dict | None = None):
    """rows (labels), columns ("task metric"), cells {(row, col): (value, limited, constant answer,
    standard error or None)}; ``sources``, when given, is filled with {(row, col): (run, task,
    metric, results entry)}."""
    rows, cols, cells = [], [], {}
    loaded = [(run, _load_results(run)) for run in runs]
    names = _row_names(loaded, labels or {})
    for run, res in loaded:
        label = names[run]
        if label not in rows:
            rows.append(label)
        scored = [t for t, e in res.get("results", {}).items()
                  if isinstance(e, dict) and any(isinstance(v, (int, float)) for v in (e.get("metrics") or {}).values())]
        if not scored:
            skipped = [t for t, e in res.get("results", {}).items() if isinstance(e, dict) and e.get("skipped")]
            log.warning("report: %s has no scored task%s; its row %r stays empty", run / "results.json",
                        f" (skipped for missing data: {', '.join(skipped)})" if skipped else "", label)
        for task, entry in res.get("results", {}).items():
            if not isinstance(entry, dict):
                log.warning("report: %s: the entry of %s is not an object; left out", run / "results.json", task)
                continue
            metrics = {k: v for k, v in (entry.get("metrics") or {}).items() if isinstance(v, (int, float))}
            m = headline(task, metrics)
            if m is None:
                continue
            col = f"{task} {m}"
            if col not in cols:
                cols.append(col)
            if "stderr" in entry:  # recorded ({} for scores that have none)
                se = (entry.get("stderr") or {}).get(m)
            else:  # a run older than the record
                se = _stderr_from_predictions(run, task, m, entry)
            cells[(label, col)] = (float(metrics[m]), bool(entry.get("limited")), constant_answer(metrics),
                                   float(se) if isinstance(se, (int, float)) else None)
            if sources is not None:
                sources[(label, col)] = (run, task, m, entry)
    return rows, cols, cells


def _load_results(run: Path) -> dict:
    res = read_json(run / "results.json")  # malformed JSON: a DataError naming the file
    if not isinstance(res, dict) or not isinstance(res.get("results", {}), dict):
        raise DataError(f"{run / 'results.json'}: not an sc-eval results file (expected an object with "
                        "a 'results' object); rerun that command or leave the directory out")
    return res


def _row_names(loaded: list[tuple[Path, dict]], labels: dict, warn: bool = True) -> dict:
    """Each run's row: its encoder label, or, where two runs of one label scored the same task
    (the same encoder evaluated twice), the label with the run directory's name, so that no cell
    silently takes one run's number over the other's."""
    base = {run: labels.get(str(run)) or run_label(run, res) for run, res in loaded}
    first, clash = {}, set()
    for run, res in loaded:
        for task in res.get("results", {}):
            other = first.setdefault((base[run], task), run)
            if other != run:
                clash.add(base[run])
    dirs = [run.name for run, _ in loaded if base[run] in clash]
    short = len(dirs) == len(set(dirs))  # else the directory names repeat too: full paths
    names = {run: (f"{base[run]} ({run.name if short else run})" if base[run] in clash else base[run])
             for run, _ in loaded}
    for label in sorted(clash) if warn else ():
        log.warning("report: several runs of %s scored the same task; their rows are named by run directory",
                    label)
    return names


def _records(run: Path, entry: dict) -> list[dict] | None:
    """The run's prediction records behind a results entry (None if missing or out of step)."""
    return _read_records(run, entry)[0]


def _read_records(run: Path, entry: dict) -> tuple[list[dict] | None, str | None]:
    """(the prediction records behind a results entry, None) or (None, why they cannot be used)."""
    rel = entry.get("predictions")
    path = run / rel if isinstance(rel, str) else None
    if path is None:
        return None, f"{run}: its results entry names no predictions file"
    if not path.is_file():
        return None, f"{path}: missing"
    try:
        records = list(iter_jsonl(path, skip_truncated_tail=True))
    except DataError as e:  # a damaged file: that cell goes without, the report still builds
        log.warning("%s: %s", path, e)
        return None, str(e)
    if not all(isinstance(r, dict) and "doc_id" in r and isinstance(r.get("scores", {}), dict) for r in records):
        log.warning("%s: records without a doc_id or scores: not used for standard errors or comparisons", path)
        return None, f"{path}: records without a doc_id or scores"
    n = (entry.get("n_docs") or {}).get("evaluated")
    if n is not None and len(records) != n:
        return None, f"{path}: {len(records)} records where results.json counts {n} (changed since it was scored)"
    return records, None


def _task(name: str):
    """The registered task of that name, or None (unknown or user tasks)."""
    return _registry().get(name)


@functools.lru_cache(maxsize=1)
def _registry() -> dict:
    """The built-in tasks, read once per process (a report asks for them cell after cell)."""
    try:
        return tasks_api.discover()
    except Exception:  # a broken task folder: columns go without, the report still builds
        return {}


def _per_doc(task: str, metric: str, records: list[dict]) -> dict[str, float] | None:
    """{doc_id: score in percent} for a metric that is a mean of per-doc scores, else None."""
    if task.startswith(("probe_", "zeroshot_")) and metric == "top1":  # these records score `correct`
        if not all("correct" in r.get("scores", {}) for r in records):
            return None
        return {str(r["doc_id"]): 100.0 * float(r["scores"]["correct"]) for r in records}
    t = _task(task)
    if t is None:
        return None
    try:
        return t.per_doc(records, metric)
    except Exception as e:  # e.g. captions without Java or pycocoevalcap
        log.warning("%s %s: no per-question scores (%s: %s)", task, metric, type(e).__name__, e)
        return None


def _paired(task: str, metric: str, records: list[dict], base_records: list[dict]) -> tuple | None:
    """(difference, standard error, p-value) from the task's own paired test, if it has one."""
    t = _task(task)
    if t is None or not t.paired:
        return None
    try:
        diff, se, p = t.fn(t.paired)(records, base_records)[metric]
        return float(diff), float(se), float(p)
    except KeyError:
        return None
    except Exception as e:
        log.warning("%s %s: not compared (%s: %s)", task, metric, type(e).__name__, e)
        return None


def compare(rows, cols, sources: dict, baseline: str, alpha: float = 0.05) -> dict:
    """{(row, col): (difference, its standard error, p-value, questions compared, mark)} of each
    row against the baseline row, paired over the docs both runs scored: the mean per-doc
    difference, the standard error of those differences and the sign-flip permutation test's
    p-value. Both runs are rescored on their shared docs first (corpus-dependent per-doc scores
    such as CIDEr-D's are then on one scale). mark: "▲" / "▼" when p < ``alpha``, "≈" otherwise.
    A metric that is not a mean of per-doc scores is compared by its task's own paired test
    (POPE's F1: a paired bootstrap over images), or not at all."""
    out = {}

    def unread(r, c, why):  # a comparison the data would allow but a file prevents: said, and marked
        log.warning("report --baseline: %s, %s not compared with %s: %s", r, c, baseline, why)
        out[(r, c)] = (None, None, None, 0, UNREAD)

    for c in cols:
        if (baseline, c) not in sources:
            continue
        b_run, task, metric, b_entry = sources[(baseline, c)]
        base_records, base_why = _read_records(b_run, b_entry)
        for r in rows:
            if r == baseline or (r, c) not in sources:
                continue
            if not base_records:
                unread(r, c, base_why or "the baseline's predictions file is empty")
                continue
            run, _, _, entry = sources[(r, c)]
            records, why = _read_records(run, entry)
            if not records:
                unread(r, c, why or "its predictions file is empty")
                continue
            shared = {str(x["doc_id"]) for x in records} & {str(x["doc_id"]) for x in base_records}
            if len(shared) < 2:
                log.warning("%s: %s and %s share %d scored docs: not compared", c, r, baseline, len(shared))
                continue
            mine = _per_doc(task, metric, [x for x in records if str(x["doc_id"]) in shared])
            base = _per_doc(task, metric, [x for x in base_records if str(x["doc_id"]) in shared])
            if mine and base:
                d = [(mine[k] - base[k]) / 100.0 for k in mine if k in base]
                if len(d) < 2 or not all(math.isfinite(x) for x in d):
                    continue
                diff, se, p, n = 100.0 * sum(d) / len(d), mean_stderr(d), paired_p_value(d), len(d)
            else:
                got = _paired(task, metric, records, base_records)  # a corpus score (POPE's F1)
                if got is None:
                    continue
                (diff, se, p), n = got, len(shared)
            out[(r, c)] = (diff, se, p, n, "≈" if p >= alpha else ("▲" if diff > 0 else "▼"))
    return out


def _stderr_from_predictions(run: Path, task: str, metric: str, entry: dict) -> float | None:
    """A score's standard error recomputed from the run's predictions file, for runs written
    before results.json recorded one (None when the task or the file does not allow it)."""
    records = _records(run, entry)
    if not records:
        return None
    per_doc = _per_doc(task, metric, records)
    if per_doc is not None:
        return mean_stderr(list(per_doc.values()), scale=1.0)
    t = _task(task)
    if t is None or not t.aggregate:
        return None
    try:  # a corpus score without per-doc shares (POPE's F1): the task's own aggregate
        return t.score_records(records)[1].get(metric)
    except Exception as e:
        log.warning("%s: no standard error for %s (%s: %s)", run, task, type(e).__name__, e)
        return None


def markdown(rows, cols, cells, versus: dict | None = None, baseline: str | None = None) -> str:
    versus = versus or {}
    lines = ["| encoder | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    any_limited = any_constant = any_se = False
    for r in rows:
        vals = []
        for c in cols:
            if (r, c) not in cells:
                vals.append("-")
                continue
            v, lim, const, se = cells[(r, c)]
            any_limited |= lim
            any_constant |= const
            any_se |= se is not None
            vals.append(f"{v:.2f}" + (f" ± {se:.2f}" if se is not None else "") + ("*" if lim else "")
                        + ("†" if const else "") + (f" {versus[(r, c)][4]}" if (r, c) in versus else ""))
        lines.append(f"| {r} | " + " | ".join(vals) + " |")
    if any_limited or any_constant or any_se or versus:
        lines.append("")
    if any(v[4] == UNREAD for v in versus.values()):
        lines.append(f"{UNREAD} not compared with the {baseline} row: a predictions file behind it is missing or "
                     "unreadable (the log names it); the value itself stands.")
    if versus:
        lines.append(f"▲ / ▼ better / worse than the {baseline} row, ≈ not told apart: a paired test over "
                     "the questions (images) both runs scored (sign flips; POPE's F1: bootstrap over images), p < 0.05, one test per cell (among "
                     "twenty cells with no real difference, about one is marked by chance); unmarked: not "
                     "compared.")
    if any_se:
        lines.append("± one standard error over the evaluated questions or images (a mean's: sample std / "
                     "sqrt(n), as lm-eval reports it; POPE: bootstrap over images), for reading each value. "
                     + ("Whether two rows differ is what the marks test: pairing the same questions is sharper "
                        "than setting two rows' errors side by side." if versus else
                        "Two rows closer than about 2.8 standard errors (the 95% level for independent scores) "
                        "are not told apart; rows scored on the same questions are compared more sharply by "
                        "`--baseline`."))
    if any_limited:
        lines.append("\\* scored on a `--limit` subset: not comparable with full-split numbers.")
    if any_constant:
        lines.append("† the same answer to every question (yes-ratio 0 or 100): F1 is then 0 (all \"no\") "
                     "or about 66.67 (all \"yes\") whatever the encoder shows.")
    return "\n".join(lines) + "\n"


def _csv(rows, cols, cells, versus: dict | None = None) -> str:
    versus = versus or {}
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["encoder", "task", "metric", "value", "stderr", "limited", "constant_answer",
                "diff_vs_baseline", "diff_stderr", "p_value", "n_compared"])
    for r in rows:
        for c in cols:
            if (r, c) in cells:
                task, metric = c.rsplit(" ", 1)
                v, lim, const, se = cells[(r, c)]
                diff, dse, p, n, _ = versus.get((r, c), (None,) * 5)
                w.writerow([r, task, metric, f"{v:.4f}", "" if se is None else f"{se:.4f}", int(lim), int(const),
                            *("" if x is None else f"{x:.4f}" for x in (diff, dse)), "" if p is None else f"{p:.4g}",
                            "" if n is None else n])
    return buf.getvalue()


def _savefig(fig, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())


def plot(rows, cols, cells, runs, out: Path) -> list[Path]:
    matplotlib.use("Agg")

    written = []
    plots = out / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    for c in cols:
        labels = [r for r in rows if (r, c) in cells]
        fig, ax = plt.subplots(figsize=(1.2 + 1.1 * len(labels), 3))
        ses = [cells[(r, c)][3] for r in labels]
        ax.bar(range(len(labels)), [cells[(r, c)][0] for r in labels], color="#4878a8",
               yerr=[s or 0.0 for s in ses] if any(s is not None for s in ses) else None, capsize=3)
        ax.set_xticks(range(len(labels)), labels, rotation=20, ha="right", fontsize=8)
        ax.set_title(c)
        path = plots / (c.replace(" ", "_").replace("/", "_") + ".png")
        _savefig(fig, path)
        plt.close(fig)
        written.append(path)
    curves = [(r, r / "metrics.jsonl") for r in runs if (r / "metrics.jsonl").exists()]
    if curves:
        fig, ax = plt.subplots(figsize=(5, 3))
        for run, path in curves:
            recs = [x for x in iter_jsonl(path, skip_truncated_tail=True) if "loss" in x and "step" in x]
            if recs:
                ax.plot([x["step"] for x in recs], [x["loss"] for x in recs], label=run.name)
        ax.set_xlabel("step")
        ax.set_ylabel("training loss")
        ax.legend(fontsize=7)
        path = plots / "pretraining_loss.png"
        _savefig(fig, path)
        plt.close(fig)
        written.append(path)
    return written


def _battery(runs: list[Path], labels: dict | None) -> str:
    """The LLaVA runs (two or more battery tasks) in the paper's Table 11 columns, both layouts
    with their legends; "" when no run has them."""
    loaded = [(run, _load_results(run)) for run in runs]
    names = _row_names(loaded, labels or {}, warn=False)  # collect() has warned
    battery = [(names[run], res) for run, res in loaded if len(battery_tasks_in(res)) >= 2]
    if not battery:
        return ""
    return "\n" + battery_sections(*[res for _, res in battery], labels=[name for name, _ in battery])


def build_report(paths, out: Path, plots: bool = True, extra_runs=(), labels: dict | None = None,
                 baseline: str | None = None) -> str:
    """Write report.md, report.csv (and plots/) under `out`; return the Markdown table.

    labels maps a run directory (as given) to its row name; baseline names the row every other
    row is compared with, question by question (see ``compare``); extra_runs adds training runs whose
    metrics.jsonl loss curves are plotted.
    """
    runs = find_runs(paths)
    sources: dict = {}
    rows, cols, cells = collect(runs, labels, sources)
    if baseline is not None and baseline not in rows:
        raise DataError(f"--baseline {baseline!r} names no row of the table; rows: {', '.join(rows)}")
    versus = compare(rows, cols, sources, baseline) if baseline is not None else {}
    table = markdown(rows, cols, cells, versus, baseline) + _battery(runs, labels)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "report.md", table)
    atomic_write_text(out / "report.csv", _csv(rows, cols, cells, versus))
    if plots:
        plot(rows, cols, cells, [*runs, *[Path(r) for r in extra_runs]], out)
    return table
