"""`sc-eval probe`: not built yet (tracked in the project's issues: linear probe and k-shot)."""
from sc_eval.errors import ScEvalError


def add_arguments(parser):
    parser.add_argument("rest", nargs="*", help="(not built yet)")


def run(args):
    raise ScEvalError("`sc-eval probe` is not built yet in this version (linear probe and k-shot)")
