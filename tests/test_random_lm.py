"""`random:` language models: the real architectures with seeded random weights, built on the
target device in the target dtype, with the tokenizers that ship in packages; and the commands
that take them (`--lm random:gpt2`, `--llm random:vicuna-7b`) report their training throughput."""
import json

import pytest
import torch

from sc_eval.errors import ConfigError
from sc_eval.models.lm import build_random_lm, count_params, lm_config
from sc_eval.models.lm_specs import list_random_lms


@pytest.mark.parametrize("name,published", [
    ("gpt2", 124_439_808),          # GPT-2 small, tied embeddings ("124M")
    ("gpt2-medium", 354_823_168),   # GPT-2 medium ("355M")
    ("vicuna-7b", 6_738_415_616),   # Llama-2-7B / Vicuna-7B v1.5 ("6.74B")
    ("llama-7b", 6_738_415_616),
    ("vicuna-13b", 13_015_864_320),  # Llama-2-13B ("13.0B")
])
def test_real_configs_have_the_published_parameter_counts(name, published):
    # counted on the meta device: nothing of the 7B / 13B models is allocated
    assert count_params(name) == published


def test_random_llama_is_built_in_the_target_dtype_seeded_with_the_shipped_tokenizer():
    from torch.utils._python_dispatch import TorchDispatchMode

    class Allocations(TorchDispatchMode):
        """Every tensor created while the model is built: (dtype, elements)."""

        def __init__(self):
            super().__init__()
            self.made = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if torch.is_tensor(out):
                self.made.append((out.dtype, out.numel()))
            return out

    shrink = dict(hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=4)
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    with Allocations() as allocs:
        model, tok = build_random_lm("random:vicuna-7b", dtype=torch.bfloat16, **shrink)
    assert torch.equal(torch.rand(3), before)  # the caller's random stream is untouched
    n = sum(p.numel() for p in model.parameters())
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    # No float32 copy of the weights on the way: float32 tensors are only small buffers (rotary).
    assert sum(k for d, k in allocs.made if d == torch.float32) < 0.01 * n
    assert torch.get_default_dtype() == torch.float32
    again, _ = build_random_lm("random:vicuna-7b", dtype=torch.bfloat16, **shrink)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), again.parameters()))
    # The real LLaMA vocabulary: the SentencePiece model from mistral-common, BOS first.
    cfg = model.config
    assert (len(tok), cfg.vocab_size, cfg.bos_token_id, cfg.eos_token_id) == (32000, 32000, 1, 2)
    assert tok("USER: hello").input_ids[0] == 1
    assert (cfg.max_position_embeddings, cfg.rms_norm_eps) == (4096, 1e-5)
    with torch.no_grad():
        assert model(torch.tensor([tok("USER: hello").input_ids])).logits.dtype == torch.bfloat16


def test_random_gpt2_uses_gpt2_bpe_and_real_dims():
    cfg = lm_config("random:gpt2-medium")
    assert (cfg.n_embd, cfg.n_layer, cfg.n_head, cfg.vocab_size) == (1024, 24, 16, 50257)
    model, tok = build_random_lm("random:gpt2-tiny")
    assert len(tok) == model.config.vocab_size == 50257
    assert tok.encode(" the") == [262]  # GPT-2's BPE id of " the"
    with pytest.raises(ConfigError, match="did you mean 'vicuna-7b'"):
        build_random_lm("random:vicuna-7")


def test_ls_models_lists_the_random_lms(capsys):
    from sc_eval.cli import main

    assert main(["ls", "models"]) == 0
    out = capsys.readouterr().out
    for name, _, _ in list_random_lms():
        assert name in out
    assert "--llm random:vicuna-7b" in out and "--lm random:gpt2" in out


def test_llava_token_count_is_what_the_llm_reads(cli_world):
    """The tokens/s numerator: per example, its text tokens plus the image's patch tokens,
    equal to the real (non-pad) positions of the spliced batch the LLM is given."""
    from sc_eval import load_encoder
    from sc_eval.adapters.llava.data import ConversationData, collate, read_conversations
    from sc_eval.adapters.llava.model import LlavaConfig, build
    from sc_eval.adapters.llava.train import _n_tokens

    encoder = load_encoder("random:sc-vit-micro")
    llm, tok = build_random_lm("random:llama-tiny")
    model = build(encoder, llm, tok, LlavaConfig(encoder="random:sc-vit-micro", lora=None))
    data = ConversationData(read_conversations(cli_world / "llava" / "finetune.json", cli_world), tok, "vicuna_v1")
    batch = [data[i] for i in range(4)]
    ids, labels, pixels = collate(batch, encoder, "cpu")
    with torch.no_grad():
        _, mask, _, _ = model.splice(ids, model.image_tokens(pixels), labels)
    assert int(mask.sum()) == sum(_n_tokens(ex, encoder.num_patches) for ex in batch)
    assert int(mask.sum()) < mask.numel()  # the batch was padded: padding is not counted


def test_llava_with_a_random_llm_reports_throughput_and_reloads(cli_world, tmp_path):
    from sc_eval.cli import main

    common = ["--encoder", "random:sc-vit-micro", "--llm", "random:llama-tiny", "--data-root", str(cli_world),
              "--tasks", "vqav2", "--limit", "3", "--lora-r", "4", "--lora-alpha", "8"]
    run1 = tmp_path / "run1"
    assert main(["llava", *common, "--stage1-steps", "2", "--stage2-steps", "3", "--batch-size", "4",
                 "--output-dir", str(run1)]) == 0
    res = json.loads((run1 / "results.json").read_text())
    for stage in ("stage1", "stage2"):
        s = res["training"][stage]
        assert s["tokens_per_s"] > 0 and s["peak_memory_mb"] > 0 and s["peak_memory_kind"] == "cpu_peak_rss"
    logged = [json.loads(x) for x in (run1 / "checkpoints" / "stage2" / "metrics.jsonl").read_text().splitlines()]
    assert logged[-1]["step"] == 3 and logged[-1]["tokens_per_s"] > 0 and logged[-1]["peak_memory_mb"] > 0
    assert "tokens/s" in (run1 / "log.txt").read_text()
    assert json.loads((run1 / "adapter" / "config.json").read_text())["llm"] == "random:llama-tiny"
    assert res["results"]["vqav2_val"]["timing"]["predicted"] == 3
    # The adapter names its random LLM; rebuilt from the same seed, it answers alike.
    run2 = tmp_path / "run2"
    assert main(["llava", "--encoder", "random:sc-vit-micro", "--data-root", str(cli_world), "--tasks", "vqav2",
                 "--limit", "3", "--adapter", str(run1 / "adapter"), "--output-dir", str(run2)]) == 0
    a, b = ([json.loads(x)["prediction"] for x in (r / "predictions" / "vqav2_val.jsonl").read_text().splitlines()]
            for r in (run1, run2))
    assert a == b and len(a) == 3


def test_caption_with_a_random_lm_reports_images_per_s_and_predicts_without_scoring(cli_world, tmp_path):
    from sc_eval.cli import main

    run = tmp_path / "cap"
    assert main(["caption", "--encoder", "random:sc-vit-micro", "--lm", "random:gpt2-tiny", "--data-root",
                 str(cli_world), "--steps", "3", "--batch-size", "4", "--limit", "2", "--beam", "2",
                 "--max-new-tokens", "5", "--predict-only", "--output-dir", str(run)]) == 0
    cfg = json.loads((run / "adapter" / "config.json").read_text())
    assert cfg["lm"] == "random:gpt2-tiny"
    assert cfg["train"]["images_per_s"] > 0 and cfg["train"]["peak_memory_mb"] > 0
    assert "images/s" in (run / "log.txt").read_text()
    entry = json.loads((run / "results.json").read_text())["results"]["coco_caption"]
    assert entry["scored"] is False and entry["metrics"] == {}
    assert entry["timing"]["predicted"] == 2 and entry["timing"]["docs_per_s"] > 0
    preds = (run / "predictions" / "coco_caption.jsonl").read_text().splitlines()
    assert len(preds) == 2


def test_one_loader_for_a_saved_lm_and_a_random_spec(tmp_path):
    """ClipCap and LLaVA load their LM through load_causal_lm: a save_pretrained folder gives back
    the same weights in the asked dtype; a folder that is not one is named with the flag."""
    from sc_eval.errors import CheckpointError
    from sc_eval.models.lm import load_causal_lm

    model, tok = build_random_lm("random:gpt2-tiny")
    model.save_pretrained(tmp_path / "lm")
    tok.save_pretrained(tmp_path / "lm")
    again, tok2 = load_causal_lm(tmp_path / "lm")
    assert tok2.eos_token_id == tok.eos_token_id == 50256
    a, b = model.state_dict(), again.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    half, _ = load_causal_lm(tmp_path / "lm", dtype=torch.bfloat16)
    assert {p.dtype for p in half.parameters()} == {torch.bfloat16}
    assert load_causal_lm("random:gpt2-tiny")[0].state_dict()["transformer.wte.weight"].equal(a["transformer.wte.weight"])
    with pytest.raises(ConfigError, match=r"--llm .*nowhere: not a Hugging Face model directory"):
        load_causal_lm(tmp_path / "nowhere", flag="--llm")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{}")
    with pytest.raises((CheckpointError, ConfigError), match="--lm"):
        load_causal_lm(tmp_path / "broken")
