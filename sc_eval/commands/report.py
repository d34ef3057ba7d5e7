"""`sc-eval report RUN...`: one comparison table (runs x tasks) with plots, from run directories.

Works on any run directories with a results.json (demo stages, real GPU runs). Numbers from a
`--limit` subset are marked with `*`: they are not comparable with full-split numbers.
"""
from __future__ import annotations


def add_arguments(p) -> None:
    p.add_argument("runs", nargs="+", help="run directories (each with results.json), or folders holding them")
    p.add_argument("--output", default=None, help="where report.md, report.csv and plots/ go (default: runs/report)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")


def run(args) -> int:
    from pathlib import Path

    from sc_eval.report import build_report

    out = Path(args.output) if args.output else Path("runs") / "report"
    table = build_report([Path(r) for r in args.runs], out, plots=not args.no_plots)
    print(table)
    return 0
