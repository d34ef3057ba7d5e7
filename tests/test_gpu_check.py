"""`make gpu-check` in its CPU form (--tiny): every stage runs its real command end to end and
reports figures, so the GPU check cannot rot between GPU runs."""
import json

import pytest

from tests.conftest import load_benchmark

# timm's published cost of ViT-B/16 at 224 px: 17.6 GMACs per image forward (2 FLOPs a MAC),
# and the SuperClass head, a 768 x 49,408 matrix product; backward costs twice the forward.
VIT_B16_FORWARD_FLOPS = 2 * 17.58e9 + 2 * 768 * 49408


@pytest.mark.timeout(900)
def test_gpu_check_tiny_runs_every_stage(capsys):
    gpu_check = load_benchmark("gpu_check")
    # A CPU's rate is about 0.01 TFLOP/s: a peak of that size keeps the utilisation a number
    # its three decimals can check (against an H200's 790 it would round to 0.000).
    rc = gpu_check.main(["--tiny", "--no-caption-score", "--peak-tflops", "0.01"])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["errors"] == [] and rc == 0, {k: out[k].get("error") for k in gpu_check.STAGES}
    assert set(gpu_check.STAGES) <= set(out)

    step = out["step"]
    per_image = step["flops_per_step"] / step["batch_size"]
    assert per_image == pytest.approx(3 * VIT_B16_FORWARD_FLOPS, rel=0.02)
    assert step["superclass_step_s"] > 0 and step["open_clip_step_s"] > 0
    assert step["superclass_mfu"] == pytest.approx(
        step["flops_per_step"] / step["superclass_step_s"] / (step["peak_tflops"] * 1e12), rel=2e-2)
    assert step["superclass_mfu"] > 0.01
    assert step["superclass_of_matmul"] > 0
    assert step["peak_tflops"] == 0.01

    pre = out["pretrain"]
    assert pre["cpu_images_per_s"] > 0 and pre["step_images_per_s"] > 0
    assert pre["cpu_over_step"] == pytest.approx(pre["cpu_images_per_s"] / pre["step_images_per_s"], rel=1e-2)
    assert pre["images"] == 64 and pre["workers"] == 0
    assert 0.0 <= pre["cpu_data_wait"] <= 1.0

    cap = out["caption"]
    assert cap["train_images_per_s"] > 0 and cap["train_peak_memory_mb"] > 0
    assert cap["decode_images"] == 4 and cap["decode_images_per_s"] > 0 and cap["beam"] == 5
    assert cap["scored"] is False and any("caption scoring" in s for s in out["skipped"])

    llava = out["llava"]
    assert llava["stage2_tokens_per_s"] > 0 and llava["stage2_peak_gb"] > 0
    assert llava["questions"] == 4 and llava["questions_per_s_batch1"] > 0
    # fp32 on a CPU: batching never changes a greedy answer
    assert llava["all_answers_identical"] is True

    assert 0 <= out["probe"]["linear_top1"] <= 100 and out["probe"]["n_eval"] == 16
    assert 0 <= out["zeroshot"]["top1"] <= 100 and out["zeroshot"]["n_eval"] == 16
