"""`sc-eval zeroshot`: not built yet (tracked in the project's issues: LiT zero-shot)."""
from sc_eval.errors import ScEvalError


def add_arguments(parser):
    parser.add_argument("rest", nargs="*", help="(not built yet)")


def run(args):
    raise ScEvalError("`sc-eval zeroshot` is not built yet in this version (LiT zero-shot)")
