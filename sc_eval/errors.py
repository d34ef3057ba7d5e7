"""Errors a user can act on. Each message names the file or item and says what to do.

The CLI prints these as one line (no traceback) and exits with status 2.
"""
import difflib


class ScEvalError(Exception):
    """Base class: a problem with the user's input or environment, not a bug."""


class DataError(ScEvalError):
    """A missing or corrupt data file, image or record."""


class ConfigError(ScEvalError):
    """A bad flag, config value, unknown name or incompatible setting."""


class CheckpointError(ScEvalError):
    """A checkpoint that cannot be loaded (wrong architecture, corrupt file)."""


class MissingDependencyError(ScEvalError):
    """A required external program or optional package is absent (java, bitsandbytes)."""


def did_you_mean(name: str, choices) -> str:
    """' (did you mean X?)' for the closest known name, or ''."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""
