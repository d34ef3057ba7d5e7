"""Two torchrun processes (gloo, CPU) train like one process with the same global batch.

The data stream gives rank r the r-th half of each global batch, the IDF counts are summed
over ranks, and DDP averages gradients: so the losses, the IDF state and the weights must
match a single-process run (up to float reduction order for the weights and losses; the IDF
counts are integers and must be identical).
"""
import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from tests.test_pretrain_train import OFFLINE, make_shards


def _cmd(data, out, steps=4):
    return ["pretrain", "--model", "sc-vit-micro", "--data", data, "--steps", str(steps), "--batch-size", "8",
            "--output-dir", str(out), "--workers", "0", "--threads", "1", "--no-progress", "--save-every",
            str(steps), "--lr", "2e-3"]


@pytest.mark.timeout(300)
def test_two_processes_match_one(tmp_path):
    data = make_shards(tmp_path / "shards")
    env = {**os.environ, **OFFLINE, "OMP_NUM_THREADS": "1"}
    one, two = tmp_path / "one", tmp_path / "two"
    subprocess.run([sys.executable, "-m", "sc_eval", *_cmd(data, one)], env=env, check=True,
                   capture_output=True, timeout=240)
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        "-m", "sc_eval", *_cmd(data, two)],
                       env=env, capture_output=True, timeout=240, text=True)
    assert r.returncode == 0, r.stderr[-3000:]

    la = [json.loads(x)["loss"] for x in (one / "metrics.jsonl").read_text().splitlines()]
    lb = [json.loads(x)["loss"] for x in (two / "metrics.jsonl").read_text().splitlines()]
    assert len(la) == len(lb) == 4
    for a, b in zip(la, lb):
        assert abs(a - b) < 1e-5 * max(1.0, abs(a)), (la, lb)

    sa = torch.load(one / "checkpoints/step_4/state.pt", weights_only=True)
    sb = torch.load(two / "checkpoints/step_4/state.pt", weights_only=True)
    assert torch.equal(sa["idf"]["df"], sb["idf"]["df"])
    assert sa["idf"]["num_samples"].item() == sb["idf"]["num_samples"].item() == 32

    wa = load_file(str(one / "checkpoints/step_4/model.safetensors"))
    wb = load_file(str(two / "checkpoints/step_4/model.safetensors"))
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=1e-4, atol=1e-5, msg=k)
