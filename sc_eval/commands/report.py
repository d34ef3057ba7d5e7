"""`sc-eval report RUN...`: one comparison table (runs x tasks) with plots, from run directories.

Works on any run directories with a results.json (demo stages, real GPU runs). Numbers from a
`--limit` subset are marked with `*`: they are not comparable with full-split numbers. Each value
carries its standard error; `--baseline ROW` also marks whether each row beats that one beyond noise.
"""
from __future__ import annotations

from pathlib import Path

from sc_eval.errors import ConfigError


def add_arguments(p) -> None:
    p.add_argument("runs", nargs="+", help="run directories (each with results.json), or folders holding them")
    p.add_argument("--output", default=None, help="where report.md, report.csv and plots/ go (default: runs/report)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.add_argument("--baseline", default=None, metavar="ROW",
                   help="compare every row with this one (a row label, e.g. random:sc-vit-tiny), question "
                        "by question: ▲ / ▼ where a paired sign-flip test gives p < 0.05")


def run(args) -> int:
    from sc_eval.report.build import build_report

    out = Path(args.output) if args.output else Path("runs") / "report"
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--output {out}: an existing file; give the directory report.md, report.csv "
                          "and plots/ go into")
    table = build_report([Path(r) for r in args.runs], out, plots=not args.no_plots, baseline=args.baseline)
    print(table)
    return 0
