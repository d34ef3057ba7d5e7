"""results.json / results.md / predictions for `sc-eval probe` and `sc-eval zeroshot`.

Same schema as the evaluation runner (``schema_version`` 1, one entry per task with
``metrics``, ``n_docs``, ``limited``, ``fingerprint``), written through the same writer
(`sc_eval.results`: merged under the run directory's lock, atomically, after each task) so a
crash loses nothing finished. An entry whose fingerprint (encoder, data, settings) matches is
reused on a rerun; a different one is refused unless ``--overwrite``, as the runner does.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

from sc_eval.errors import ConfigError, DataError
from sc_eval.io import atomic_write_text, iter_jsonl
from sc_eval.results import read_results, results_markdown, update_results
from sc_eval.runtime.fingerprint import digest, same

log = logging.getLogger(__name__)


def fingerprint(**parts) -> str:
    """The fingerprint of everything a result depends on."""
    return digest(parts)


class ResultsFile:
    def __init__(self, run_dir: Path, info: dict | None = None):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / "results.json"
        self.data = read_results(self.run_dir)
        self.info = info or {}

    def reusable(self, task: str, fp: str, overwrite: bool) -> dict | None:
        """The stored entry when it was made with the same fingerprint; refuse a different one."""
        old = self.data["results"].get(task)
        if old is None:
            return None
        if same(old.get("fingerprint"), fp):
            if self._predictions_intact(old):
                return old
            log.warning("%s: the predictions file of %s is missing or damaged; computing it again", self.path, task)
            return None
        if not overwrite:
            raise ConfigError(f"{self.path}: {task} was computed with a different setup (fingerprint "
                              f"{old.get('fingerprint')} != {fp}); use --overwrite to replace it or another --output-dir")
        return None

    def _predictions_intact(self, entry: dict) -> bool:
        """The entry's predictions file holds one readable record per evaluated image (what
        `sc-eval report --baseline` pairs runs by)."""
        rel = entry.get("predictions")
        if not rel:
            return True
        try:
            n = sum(1 for _ in iter_jsonl(self.run_dir / rel))
        except DataError:
            return False
        return n == (entry.get("n_docs") or {}).get("evaluated")

    def put(self, task: str, entry: dict) -> None:
        self.data = update_results(self.run_dir, task, entry, self.info)

    def markdown(self) -> str:
        return results_markdown(self.data)


def entry(metrics: dict, total: int, evaluated: int, fp: str, **extra) -> dict:
    return {"metrics": {k: float(v) for k, v in metrics.items()},
            "n_docs": {"total": int(total), "evaluated": int(evaluated)},
            "limited": evaluated < total, "fingerprint": fp, **extra}


def write_predictions(run_dir: Path, task: str, images, labels, scores, classes: list[str],
                      prompt: str = "", correct=None, split_images=None) -> str:
    """predictions/<task>.jsonl in the runner's record layout: one line per scored image, the
    prediction being the top-scoring class; ``correct`` (one number per image, e.g. the share of
    few-shot seeds right) replaces the 0/1 score of that prediction. Images are named below the
    folder that all of ``split_images`` (the whole split; default ``images``) share."""
    import torch

    scores = torch.as_tensor(scores)
    pred = scores.argmax(1).tolist()
    ids = _doc_ids(images, split_images) if images is not None else [str(i) for i in range(len(labels))]
    lines = []
    for i, (label, p) in enumerate(zip(labels, pred)):
        image = str(images[i]) if images is not None else None
        lines.append(json.dumps({
            "doc_id": ids[i],
            "task": task, "prompt": prompt, "image": image, "prediction": classes[p],
            "targets": [classes[int(label)]],
            "scores": {"correct": float(p == int(label)) if correct is None else float(correct[i])},
        }, ensure_ascii=False) + "\n")
    out = Path(run_dir) / "predictions" / f"{task}.jsonl"
    atomic_write_text(out, "".join(lines))
    return str(out.relative_to(run_dir))


def _doc_ids(images, split_images=None) -> list[str]:
    """Each image's path below the folder all of the split's images share (``<class>/<file>`` in
    an ImageFolder split): the same on every machine and whatever --limit kept, so runs made
    elsewhere or on other subsets compare image by image."""
    import os

    paths = [os.path.abspath(str(x)) for x in images]
    if not paths:
        return []
    every = [os.path.abspath(str(x)) for x in (split_images if split_images is not None else images)]
    base = os.path.commonpath([os.path.dirname(x) for x in every])
    return [Path(os.path.relpath(x, base)).as_posix() for x in paths]
