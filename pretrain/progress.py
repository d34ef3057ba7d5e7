"""What the pretraining loop reports: metrics.jsonl, TensorBoard, the progress bar, the log line.

Each metrics line carries ``images_per_s`` and ``data_wait``, both over the window of steps since
the last read: ``data_wait`` is the share of that time the loop spent waiting for the loader's
next batch (host side; near 0 when the loader keeps up, large when it starves the device).

A step never waits for the device: its loss stays there (``TrainLog.add``), and the host reads
the losses of the steps since the last read in one synchronisation (``TrainLog.flush``), which
the loop calls only when it logs or saves. That is also where a non-finite loss stops the run
and where the corrupt samples the ranks skipped are counted. A resumed run logs each step once:
metrics.jsonl is cut back to the checkpoint's step when the log opens.
"""
from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

import torch
import torch.distributed as tdist
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from sc_eval.errors import ScEvalError
from sc_eval.io import AppendLog, atomic_write_text

log = logging.getLogger("sc_eval.pretrain")


class TrainingDiverged(ScEvalError):
    """The loss became NaN or infinite."""


def truncate_metrics(path: Path, step: int) -> None:
    """After a resume, drop logged steps past the checkpoint (they are trained again)."""
    if not path.exists():
        return
    keep = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            if json.loads(line).get("step", 0) <= step:
                keep.append(line)
        except json.JSONDecodeError:
            break  # torn last line from a kill
    atomic_write_text(path, "".join(x + "\n" for x in keep))


class TrainLog:
    """The steps' losses on their way to metrics.jsonl, TensorBoard, the bar and the log (rank 0
    writes; every rank takes part in ``flush``). A context manager: files and bar close on exit."""

    def __init__(self, run_dir: Path, args, start_step: int, device, world: int, is_main: bool):
        self.args, self.device, self.world, self.is_main = args, device, world, is_main
        self.run_dir = Path(run_dir)
        self.metrics = self.tb = self.bar = None
        if is_main:
            truncate_metrics(self.run_dir / "metrics.jsonl", start_step)
            self.metrics = AppendLog(self.run_dir / "metrics.jsonl")
            self.tb = SummaryWriter(str(self.run_dir / "tb"))
            if not args.no_progress:
                self.bar = tqdm(total=args.steps, initial=start_step, desc="pretrain", unit="step",
                                dynamic_ncols=True)
        self.pending: list[dict] = []
        self.last = {"loss": float("nan")}
        self.window_t = time.perf_counter()  # the window: the steps pending since the last flush

    def __enter__(self) -> "TrainLog":
        return self

    def __exit__(self, *exc) -> None:
        for part in (self.bar, self.tb, self.metrics):
            if part is not None:
                part.close()

    def add(self, entry: dict) -> None:
        """One finished step: ``step``, ``loss`` (on the device), ``lr``, ``n_corrupt`` (this
        rank's), ``samples_seen``, ``scale`` (CLIP's logit scale on the device, or None)."""
        self.pending.append(entry)
        if self.bar is not None:
            self.bar.update(1)

    def flush(self, done: int, pos) -> None:
        """Read the pending losses (averaged over the ranks) and corrupt-sample counts (summed
        into ``pos.n_corrupt``), stop on a non-finite loss, write one metrics line per step."""
        losses = torch.stack([p["loss"] for p in self.pending])  # float64 on the device
        corrupt = torch.tensor([p["n_corrupt"] for p in self.pending], dtype=torch.float64, device=self.device)
        if self.world > 1:
            tdist.all_reduce(losses)
            losses /= self.world
            tdist.all_reduce(corrupt)
        scales = (torch.stack([p["scale"] for p in self.pending]).tolist()
                  if self.args.objective == "clip" else None)
        rows, corrupt = losses.tolist(), [int(c) for c in corrupt.tolist()]
        now = time.perf_counter()
        elapsed = max(now - self.window_t, 1e-9)
        rate = len(self.pending) * self.args.batch_size / elapsed
        wait = min(1.0, sum(p.get("data_wait_s", 0.0) for p in self.pending) / elapsed)
        lines = []
        for n, (p, loss, nc) in enumerate(zip(self.pending, rows, corrupt)):
            if not math.isfinite(loss):
                raise TrainingDiverged(
                    f"loss is {loss} at step {p['step']}; stopped without saving. The last good checkpoint is "
                    f"kept in {self.run_dir / 'checkpoints'} (resume with --resume latest after lowering --lr or "
                    "raising --warmup)")
            pos.n_corrupt += nc
            line = {"step": p["step"], "loss": loss, "lr": p["lr"], "images_per_s": rate, "data_wait": wait,
                    "samples_seen": p["samples_seen"], "n_corrupt": pos.n_corrupt}
            if scales is not None:
                line["logit_scale"] = scales[n]
            lines.append(line)
        self.pending.clear()
        self.last = lines[-1]
        if self.is_main:
            self._write(lines, done, rate, pos.n_corrupt)
        self.window_t = now

    def _write(self, lines: list[dict], done: int, rate: float, n_corrupt: int) -> None:
        self.metrics.write_many(lines)
        for line in lines:
            for k in ("loss", "lr", "images_per_s", "data_wait"):
                self.tb.add_scalar(f"train/{k}", line[k], line["step"])
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{self.last['loss']:.4f}")
        args = self.args
        if done % args.log_every == 0 or done == args.steps:
            log.info("step %d/%d loss %.4f lr %.3g %.1f images/s, %.0f%% waiting for data%s", done, args.steps,
                     self.last["loss"], self.last["lr"], rate, 100 * self.last["data_wait"],
                     f" ({n_corrupt} corrupt samples skipped)" if n_corrupt else "")
