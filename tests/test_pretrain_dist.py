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


def _run_two(data, out, env, *extra, steps=4):
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        "-m", "sc_eval", *_cmd(data, out, steps=steps), *extra],
                       env=env, capture_output=True, timeout=240, text=True)
    assert r.returncode == 0, r.stderr[-3000:]


@pytest.fixture(scope="module")
def one_process_run(tmp_path_factory):
    """The reference: one process, global batch 8, 4 steps (shared by the DDP and FSDP tests)."""
    root = tmp_path_factory.mktemp("dist")
    data = make_shards(root / "shards")
    env = {**os.environ, **OFFLINE, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "sc_eval", *_cmd(data, root / "one")], env=env, check=True,
                   capture_output=True, timeout=240)
    return data, root / "one", env


def _assert_same_run(one, two):
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
    assert wa.keys() == wb.keys()
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=1e-4, atol=1e-5, msg=k)
    return sa, sb


@pytest.mark.timeout(300)
def test_two_processes_match_one(one_process_run, tmp_path):
    data, one, env = one_process_run
    _run_two(data, tmp_path / "two", env)
    _assert_same_run(one, tmp_path / "two")


@pytest.mark.timeout(300)
def test_fsdp_two_processes_match_one_and_checkpoint_format(one_process_run, tmp_path):
    """FSDP shards weights, gradients and AdamW moments per transformer block; the run must
    still equal one process, and its checkpoint must be the full, unsharded one (same keys,
    same index-keyed optimizer state) so that export and resume need not know the strategy."""
    data, one, env = one_process_run
    two = tmp_path / "fsdp"
    _run_two(data, two, env, "--fsdp")
    assert "FSDP: parameters, gradients and optimizer states sharded over 2 processes" in (two / "log.txt").read_text()
    sa, sb = _assert_same_run(one, two)
    oa, ob = sa["optimizer"], sb["optimizer"]
    assert oa["state"].keys() == ob["state"].keys()
    assert [g["params"] for g in oa["param_groups"]] == [g["params"] for g in ob["param_groups"]]
    for i in oa["state"]:
        for name in ("exp_avg", "exp_avg_sq"):
            assert oa["state"][i][name].shape == ob["state"][i][name].shape, (i, name)
            torch.testing.assert_close(oa["state"][i][name], ob["state"][i][name], rtol=1e-4, atol=1e-6)
    # The exported encoder is written from the gathered weights.
    from safetensors.torch import load_file as load

    enc = load(str(two / "encoder/model.safetensors"))
    wb = load_file(str(two / "checkpoints/step_4/model.safetensors"))
    for k, v in enc.items():
        assert torch.equal(v, wb["visual." + k]), k
    # The full checkpoint is resharded on resume (FSDP again, 2 processes) and training goes on.
    _run_two(data, two, env, "--fsdp", "--resume", "latest", steps=5)
    after = [json.loads(x) for x in (two / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in after] == [1, 2, 3, 4, 5] and after[-1]["samples_seen"] == 40


@pytest.mark.timeout(300)
def test_fsdp_clip_objective_with_accumulation_matches_one(one_process_run, tmp_path):
    """CLIP under FSDP: the 0-d logit_scale stays replicated (FSDP cannot shard it) and its
    gradient is averaged by hand; accumulation skips the reduce-scatter on the first micro-step.
    Losses and the learned temperature must equal one process with the same global batch."""
    data, _, env = one_process_run
    extra = ["--objective", "clip", "--grad-accum", "2"]
    one, two = tmp_path / "one", tmp_path / "two"
    subprocess.run([sys.executable, "-m", "sc_eval", *_cmd(data, one, steps=3), *extra], env=env, check=True,
                   capture_output=True, timeout=240)
    _run_two(data, two, env, "--fsdp", *extra, steps=3)
    ma = [json.loads(x) for x in (one / "metrics.jsonl").read_text().splitlines()]
    mb = [json.loads(x) for x in (two / "metrics.jsonl").read_text().splitlines()]
    assert len(ma) == len(mb) == 3
    for a, b in zip(ma, mb):
        assert abs(a["loss"] - b["loss"]) < 1e-5 * max(1.0, abs(a["loss"])), (ma, mb)
        assert abs(a["logit_scale"] - b["logit_scale"]) < 1e-5 * a["logit_scale"], (ma, mb)
