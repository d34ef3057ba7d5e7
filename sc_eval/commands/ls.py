"""`sc-eval ls [tasks|encoders|adapters|models]`: what is available. Imports nothing heavy.

``models`` lists the vision tower configs and the real-size language models that ``random:``
specs build (``sc_eval.models.lm_specs``).
"""
from __future__ import annotations

from sc_eval.adapters import ADAPTERS
from sc_eval.encoders import list_encoder_kinds
from sc_eval.evaluation import tasks as tasks_api
from sc_eval.models import list_models
from sc_eval.models.lm_specs import list_random_lms


def add_arguments(p) -> None:
    p.add_argument("what", nargs="?", default="tasks", choices=["tasks", "encoders", "adapters", "models"],
                   help="what to list (default: tasks)")
    p.add_argument("--include-tasks", action="append", default=[], metavar="DIR",
                   help="extra task folders (same layout as tasks/)")


def run(args) -> int:
    if args.what == "tasks":
        tasks = tasks_api.discover(args.include_tasks)
        rows = [(t.name, ",".join(t.aliases), ",".join(t.groups), ",".join(t.metrics) or "-")
                for t in sorted(tasks.values(), key=lambda t: t.name)]
        _table(("task", "aliases", "groups", "metrics"), rows)
    elif args.what == "adapters":
        _table(("adapter", "makes", "run with", "description"),
               [(a.name, a.output, a.command, a.description) for a in ADAPTERS.values()])
    elif args.what == "encoders":
        _table(("spec", "description"), list_encoder_kinds())
    else:
        rows = [(m, "vision tower", f"--encoder random:{m}, pretrain --model {m}") for m in list_models()]
        flag = {"gpt2": "--lm", "llama": "--llm"}
        rows += [(name, f"{fam} LM: {what}", f"{flag[fam]} random:{name} (random weights, shipped tokenizer)")
                 for name, fam, what in list_random_lms()]
        _table(("model", "what", "use"), rows)
    return 0


def _table(header, rows) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    for row in (header, *rows):
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths)).rstrip())
