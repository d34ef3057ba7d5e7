"""`sc-eval score TASK --predictions FILE --annotations PATH`: score a file, no model loaded."""
from __future__ import annotations

import json
from pathlib import Path

from sc_eval.errors import ConfigError, DataError
from sc_eval.evaluation import tasks as tasks_api
from sc_eval.evaluation.predictions import read_predictions, score_predictions
from sc_eval.io import atomic_write_json


def add_arguments(p) -> None:
    p.add_argument("task", help="task name or alias (sc-eval ls tasks)")
    p.add_argument("--predictions", required=True,
                   help="predictions: official results JSON, LLaVA answer jsonl or sc-eval jsonl")
    p.add_argument("--annotations", required=True,
                   help="the benchmark's annotation file (or directory, where the task says)")
    p.add_argument("--questions", default=None, help="questions file, for tasks that need it (VQAv2, GQA)")
    p.add_argument("--output", default=None, help="write the scores JSON here as well (a new file)")
    p.add_argument("--overwrite", action="store_true", help="let --output replace an existing file")
    p.add_argument("--include-tasks", action="append", default=[], metavar="DIR",
                   help="extra task folders (same layout as tasks/)")


def run(args) -> int:
    _check_output(args)
    tasks = tasks_api.resolve(args.task, args.include_tasks)
    if len(tasks) != 1:
        raise ConfigError(f"`sc-eval score` takes one task; {args.task!r} names {len(tasks)}")
    task = tasks[0]
    if not task.score_loader:
        raise ConfigError(f"task {task.name} cannot be scored from a file (it has no score_loader)")
    if Path(args.predictions).is_dir() and not task.prediction_reader:  # MME's results are a folder
        raise DataError(f"--predictions {args.predictions}: a directory; give the predictions file itself "
                        "(e.g. <run>/predictions/<task>.jsonl or the benchmark's results JSON)")
    docs = task.fn(task.score_loader)(args.annotations, questions=args.questions)
    for d in docs:
        d["doc_id"] = str(d["doc_id"])
    if task.prediction_reader:  # formats whose ids need the docs to resolve (e.g. POPE's splits)
        preds = task.fn(task.prediction_reader)(args.predictions, docs)
    else:
        preds = read_predictions(args.predictions)
    if not preds:
        raise DataError(f"{args.predictions}: no predictions in it; give the file the evaluation wrote "
                        "(jsonl records, or the benchmark's submission JSON)")
    result = score_predictions(task, docs, preds)
    if args.output:
        atomic_write_json(args.output, result)
    print(json.dumps(result, indent=2))
    return 0


def _check_output(args) -> None:
    """--output is a new file (an existing one only with --overwrite), never the predictions."""
    preds = Path(args.predictions)
    if args.output:
        out = Path(args.output)
        if out.is_dir():
            raise ConfigError(f"--output {out}: a directory; give the path of the JSON file to write")
        if out.exists() and not args.overwrite:
            raise ConfigError(f"--output {out}: the file exists; pass --overwrite to replace it, "
                              "or give another path")
        if out.resolve() == preds.resolve():
            raise ConfigError(f"--output {out}: the predictions file itself; give another path")
