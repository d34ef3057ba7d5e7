"""`sc-eval report`: not built yet (tracked in the project's issues: demo and report)."""
from sc_eval.errors import ScEvalError


def add_arguments(parser):
    parser.add_argument("rest", nargs="*", help="(not built yet)")


def run(args):
    raise ScEvalError("`sc-eval report` is not built yet in this version (demo and report)")
