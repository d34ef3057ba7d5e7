"""Where sc-eval keeps what it builds once and reuses: ``$SC_EVAL_HOME`` (default
``~/.cache/sc-eval``) holds the embedded worlds (``world-<seed>-v<version>/``) and one folder per
kind of cache (``features/``, ``lmms/``, ``images/``). Each cache names its entries by a key of
everything its content depends on, so nothing in here needs deleting by hand.
"""
from __future__ import annotations

import os
from pathlib import Path

CACHE_KINDS = ("features", "lmms", "images")


def home() -> Path:
    """``$SC_EVAL_HOME``, or ``~/.cache/sc-eval`` when it is unset or empty."""
    return Path(os.environ.get("SC_EVAL_HOME") or Path.home() / ".cache" / "sc-eval")


def cache_dir(kind: str) -> Path:
    """The folder of one kind of cache: ``features`` (encoder outputs), ``lmms`` (docs read from
    lmms-lab parquet), ``images`` (images that benchmarks ship as bytes)."""
    if kind not in CACHE_KINDS:
        raise ValueError(f"unknown cache kind {kind!r}: one of {', '.join(CACHE_KINDS)}")
    return home() / kind
