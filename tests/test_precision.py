"""`--precision` means what it says in every run command: bf16 computes in bf16 (seen inside the
forward passes) and still scores like fp32; a precision the device cannot run is refused."""
import contextlib
import json

import pytest
import torch

from sc_eval.cli import main


@contextlib.contextmanager
def output_dtypes():
    """Records (module class, output dtype, grad enabled) of every module forward in the process."""
    seen = []

    def hook(module, args, out):
        if torch.is_tensor(out):
            seen.append((type(module).__name__, out.dtype, torch.is_grad_enabled()))

    handle = torch.nn.modules.module.register_module_forward_hook(hook)
    try:
        yield seen
    finally:
        handle.remove()


def _linear_dtypes(seen, grad=None):
    return {d for name, d, g in seen if name in ("Linear", "Conv1D") and (grad is None or g == grad)}


@pytest.fixture(scope="module")
def colour_world(tmp_path_factory):
    """The world's classification set at its default size (eight colours), the rest minimal."""
    from sc_eval.world.build import write_world

    return write_world(tmp_path_factory.mktemp("colours") / "w", seed=0, pretrain=12, shard_size=12,
                       coco_train=4, coco_val=4, coco_test=2, textvqa_train=2, textvqa_val=2, gqa_train=2,
                       gqa_testdev=2, pope_images=2, scienceqa=4)


def test_probe_in_bf16_computes_in_bf16_and_scores_like_fp32(colour_world, tmp_path):
    top1 = {}
    for precision in ("fp32", "bf16"):
        with output_dtypes() as seen:
            assert main(["probe", "--encoder", "random:sc-vit-tiny", "--data", str(colour_world / "classification"),
                         "--tasks", "linear", "--epochs", "30", "--precision", precision,
                         "--output-dir", str(tmp_path / precision)]) == 0
        want = torch.bfloat16 if precision == "bf16" else torch.float32
        assert want in _linear_dtypes(seen, grad=False)  # the encoder's layers, under inference mode
        if precision == "fp32":
            assert torch.bfloat16 not in _linear_dtypes(seen)
        res = json.loads((tmp_path / precision / "results.json").read_text())["results"]["probe_linear"]
        top1[precision] = res["metrics"]["top1"]
    n_classes = len(json.loads((tmp_path / "fp32" / "results.json").read_text())["classes"])
    assert top1["fp32"] > 100 / n_classes + 30  # the random tower's colour probe is far above chance
    assert abs(top1["bf16"] - top1["fp32"]) <= 2.5  # at most 4 of the 160 test images change class


def test_zeroshot_in_bf16_trains_lit_in_bf16(colour_world, tmp_path):
    with output_dtypes() as seen:
        assert main(["zeroshot", "--encoder", "random:sc-vit-micro", "--data", str(colour_world / "classification"),
                     "--pairs", str(colour_world / "pretrain" / "pairs.jsonl"), "--steps", "3", "--batch-size", "4",
                     "--precision", "bf16", "--output-dir", str(tmp_path / "zs")]) == 0
    assert torch.bfloat16 in _linear_dtypes(seen, grad=True)   # LiT's training step
    assert torch.bfloat16 in _linear_dtypes(seen, grad=False)  # features and class embeddings
    lit = json.loads((tmp_path / "zs" / "lit" / "config.json").read_text())
    assert lit["train"]["precision"] == "bf16"


def test_caption_in_bf16_trains_and_decodes_in_bf16(cli_world, tmp_path):
    with output_dtypes() as seen:
        assert main(["caption", "--encoder", "random:sc-vit-micro", "--lm", "random:gpt2-tiny", "--data-root",
                     str(cli_world), "--steps", "2", "--batch-size", "4", "--limit", "2", "--beam", "2",
                     "--max-new-tokens", "4", "--predict-only", "--precision", "bf16",
                     "--output-dir", str(tmp_path / "cap")]) == 0
    gpt2 = {(g, d) for name, d, g in seen if name == "Conv1D"}
    assert (True, torch.bfloat16) in gpt2   # training: the frozen GPT-2's layers in bf16, with grad for the mapper
    assert (False, torch.bfloat16) in gpt2  # beam search
    assert torch.float32 not in {d for _, d in gpt2}
    cfg = json.loads((tmp_path / "cap" / "adapter" / "config.json").read_text())
    assert cfg["train"]["precision"] == "bf16"


@pytest.mark.parametrize("argv", [
    ["probe", "--encoder", "random:sc-vit-micro"],
    ["zeroshot", "--encoder", "random:sc-vit-micro"],
    ["caption", "--encoder", "random:sc-vit-micro", "--lm", "random:gpt2-tiny"],
    ["llava", "--encoder", "random:sc-vit-micro", "--llm", "random:llama-tiny"],
])
def test_fp16_on_a_cpu_is_refused_naming_the_flag(argv, tmp_path, capsys):
    assert main([*argv, "--device", "cpu", "--precision", "fp16", "--output-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "--precision fp16 needs a GPU" in err and "bf16" in err
    assert not (tmp_path / "r").exists()  # refused before anything was written


def test_fp16_training_is_refused_off_cuda_and_fp16_evaluation_is_not():
    from sc_eval.errors import ConfigError
    from sc_eval.runtime.precision import check_precision, grad_scaler

    check_precision("fp16", "mps")  # evaluation under float16 autocast runs on Apple GPUs
    for refuse in (lambda: check_precision("fp16", "mps", training=True), lambda: grad_scaler("mps", "fp16")):
        with pytest.raises(ConfigError, match="--precision fp16: training in float16 needs loss scaling") as e:
            refuse()
        assert "bf16" in str(e.value)
    assert not grad_scaler("cpu", "bf16").is_enabled()  # bf16 needs no loss scaling


def test_llava_full_fine_tuning_in_fp16_is_refused_naming_both_flags(tmp_path, capsys):
    argv = ["llava", "--encoder", "random:sc-vit-micro", "--llm", "random:llama-tiny", "--lora-r", "0",
            "--precision", "fp16", "--output-dir", str(tmp_path / "r")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--lora-r 0" in err and "--precision fp16" in err and "bf16" in err
    assert not (tmp_path / "r").exists()
