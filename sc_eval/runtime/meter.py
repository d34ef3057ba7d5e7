"""Training throughput and peak memory: what a user sizes a run by.

A :class:`Meter` counts work items (images, tokens) as steps finish and reports the rate since
the last report (for the log every N steps) and over the whole run, and the peak memory:
``torch.cuda.max_memory_allocated`` on a CUDA device (reset when the meter starts), the
process's peak resident set size on a CPU (``resource.getrusage``; it cannot be reset, so it
covers the whole process up to now).

The whole-run rate leaves out the first step, which pays for one-off set-up (kernel selection,
allocator growth, lazy imports) that a long run amortises; with a single step it is that step.
"""
from __future__ import annotations

import resource
import sys
import time

import torch


def peak_memory_mb(device) -> tuple[float, str]:
    """(peak memory in MiB, what was measured: "cuda_max_allocated" | "cpu_peak_rss")."""
    if str(device).startswith("cuda"):
        return torch.cuda.max_memory_allocated(device) / 2**20, "cuda_max_allocated"

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports kilobytes, macOS bytes.
    return (rss / 2**20 if sys.platform == "darwin" else rss / 1024), "cpu_peak_rss"


def reset_peak_memory(device) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(device)


class Meter:
    """Counts ``unit`` (e.g. "images", "tokens") per step; rates in ``<unit>_per_s``."""

    def __init__(self, unit: str, device):
        self.unit, self.device = unit, device
        reset_peak_memory(device)
        now = time.perf_counter()
        self._window_start, self._window_n = now, 0
        self._steady_start, self._steady_n = None, 0
        self.steps, self.total = 0, 0

    def step(self, n: int) -> None:
        """One step that processed ``n`` units has just finished."""
        now = time.perf_counter()
        self.steps += 1
        self.total += n
        self._window_n += n
        self._last = now
        if self._steady_start is None:
            self._steady_start = now  # the first step ends here: steady state starts
            self._first = (n, now - self._window_start)
        else:
            self._steady_n += n

    def window(self) -> dict:
        """Rate since the previous call (or the start) and the peak memory so far; restarts the window."""
        now = time.perf_counter()
        rate = self._window_n / max(1e-9, now - self._window_start)
        self._window_start, self._window_n = now, 0
        return {f"{self.unit}_per_s": rate, **self._memory()}

    def summary(self) -> dict:
        """Whole-run rate (first step left out when there are more) and peak memory."""
        out = {"steps_measured": self.steps}
        if self.steps == 0:
            rate = None
        elif self.steps == 1:
            n, dt = self._first
            rate = n / max(1e-9, dt)
        else:
            rate = self._steady_n / max(1e-9, self._last - self._steady_start)
        out[f"{self.unit}_per_s"] = rate
        return {**out, **self._memory()}

    def _memory(self) -> dict:
        mb, kind = peak_memory_mb(self.device)
        return {"peak_memory_mb": round(mb, 1), "peak_memory_kind": kind}
