"""The LLaVA composition on a tiny random Llama: batching never changes an answer, the
projector exports under LLaVA's keys, both stages train, save, reload and resume."""
import json
import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

torch = pytest.importorskip("torch")
torch.set_num_threads(2)
import torch.nn as nn  # noqa: E402

from sc_eval.errors import ConfigError, MissingDependencyError  # noqa: E402


@pytest.fixture(scope="module")
def tok():
    from sc_eval.models.tokenizers import llama_tokenizer

    return llama_tokenizer()


@pytest.fixture(scope="module")
def llm_dir(tmp_path_factory, tok):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=32000, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512)
    out = tmp_path_factory.mktemp("llm")
    LlamaForCausalLM(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out


class TinyEncoder(nn.Module):
    """Stands in for a ViT: 32 px -> 16 patch tokens of width 32 (the contract, nothing more)."""

    width, image_size, mean, fingerprint = 32, 32, (0.5, 0.4, 0.3), "tiny-encoder"

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.patch = nn.Conv2d(3, 32, 8, 8)

    def transform(self, img):
        import numpy as np

        a = np.asarray(img.resize((32, 32)), dtype="float32") / 255.0
        return torch.from_numpy(a).permute(2, 0, 1)

    def forward_tokens(self, x, layer=-2):
        return self.patch(x).flatten(2).transpose(1, 2)


def _images(folder, n, seed=0):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        w, h = 32 + 8 * (i % 3), 32 + 4 * (i % 2)  # some non-square: padded to square first
        p = folder / f"{i}.png"
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype="uint8")).save(p)
        paths.append(str(p))
    return paths


class FakeTask:
    def __init__(self, max_new_tokens=12):
        self.generation_kwargs = {"max_new_tokens": max_new_tokens}

    def prompt_for(self, doc):
        return doc["question"] + "\nAnswer the question using a single word or phrase."


def _model(llm_dir, projector="mlp2x_gelu"):
    from sc_eval.adapters.llava.model import LlavaConfig, build, load_llm

    llm, tok = load_llm(llm_dir)
    torch.manual_seed(2)
    return build(TinyEncoder(), llm, tok, LlavaConfig(encoder="tiny", llm=str(llm_dir), projector=projector,
                                                      lora={"r": 4, "alpha": 8, "dropout": 0.05}))


QUESTIONS = ["What colour is the circle?", "How many?", "Is there a red square to the left of the big blue circle?",
             "Shape?", "What word is written in the picture, if there is one at all?", "Where is it?",
             "What is the colour of the largest shape in the image?", "Count the triangles."]


def test_batched_answers_equal_one_at_a_time(llm_dir, tmp_path):
    from sc_eval.adapters.llava.generate import LlavaAdapter

    model = _model(llm_dir)
    adapter = LlavaAdapter(model)
    docs = [{"doc_id": str(i), "image": p, "question": q}
            for i, (p, q) in enumerate(zip(_images(tmp_path / "img", 8), QUESTIONS))]
    task = FakeTask()
    lengths = {len(adapter.prompt_ids(task.prompt_for(d))) for d in docs}
    assert len(lengths) > 3  # prompts of many lengths: the batch really is padded
    batched = adapter.predict(docs, task)
    alone = [adapter.predict([d], task)[0] for d in docs]
    assert batched == alone
    assert len(set(batched)) > 1 and all(batched)  # different, non-empty answers: nothing trivial
    # batch mates do not matter either: the same doc among other docs, in another order
    assert adapter.predict(docs[::-1][:5], task) == batched[::-1][:5]


def _recompute_greedy(model, ids, pixels, max_new, eos):
    """The plainest greedy decoder: the whole sequence through the LLM at every step, no cache,
    no padding, no shared prefix (what the batched decoder must agree with)."""
    llm, emb = model.llm, model.llm.get_input_embeddings()
    with torch.inference_mode():
        x, _, _, _ = model.splice([ids], model.image_tokens(pixels))
        out = []
        for _ in range(max_new):
            t = int(llm(inputs_embeds=x, use_cache=False).logits[0, -1].argmax())
            if t == eos:
                break
            out.append(t)
            x = torch.cat([x, emb(torch.tensor([[t]]))], 1)
    return out


def test_shared_prefix_and_early_stops_give_the_cache_free_answers(llm_dir, tmp_path):
    """The system prompt runs once per batch and finished rows leave it: every answer still
    equals the cache-free recomputation, alone or batched, including rows that stop early."""
    from sc_eval.adapters.llava.generate import LlavaAdapter, greedy_generate

    model = _model(llm_dir)
    model.eval()
    adapter = LlavaAdapter(model)
    docs = [{"doc_id": str(i), "image": p, "question": q}
            for i, (p, q) in enumerate(zip(_images(tmp_path / "img", 8, seed=3), QUESTIONS))]
    ids = [adapter.prompt_ids(FakeTask().prompt_for(d)) for d in docs]
    pix = adapter.pixels(docs)
    first = greedy_generate(model, ids, pix, 6, eos_token_id=-1)
    # Make an id that some answers contain and others do not the end of sequence: those rows
    # stop mid-way and leave the batch while the others run on.
    eos = next(t for a in first for t in a[1:] if any(t not in b for b in first))
    got = greedy_generate(model, ids, pix, 6, eos_token_id=eos)
    want = [_recompute_greedy(model, i, pix[k:k + 1], 6, eos) for k, i in enumerate(ids)]
    assert got == want
    assert any(len(a) < 6 for a in got) and any(len(a) == 6 for a in got)
    assert [greedy_generate(model, [i], pix[k:k + 1], 6, eos)[0] for k, i in enumerate(ids)] == want


def test_projector_exports_llava_keys(tmp_path):
    from sc_eval.adapters.llava.projector import build_projector, export_mm_projector, load_mm_projector

    p = build_projector("mlp2x_gelu", 32, 64)
    export_mm_projector(p, tmp_path / "mm_projector.bin")
    state = torch.load(tmp_path / "mm_projector.bin", weights_only=True)
    assert {k: tuple(v.shape) for k, v in state.items()} == {
        "model.mm_projector.0.weight": (64, 32), "model.mm_projector.0.bias": (64,),
        "model.mm_projector.2.weight": (64, 64), "model.mm_projector.2.bias": (64,)}
    q = build_projector("mlp2x_gelu", 32, 64)
    load_mm_projector(q, tmp_path / "mm_projector.bin")
    x = torch.randn(3, 32)
    assert torch.equal(p(x), q(x))
    assert sorted(build_projector("linear", 32, 64).state_dict()) == ["bias", "weight"]
    assert [k for k in build_projector("mlp3x_gelu", 32, 64).state_dict() if k.endswith("weight")] == \
        ["0.weight", "2.weight", "4.weight"]
    with pytest.raises(ConfigError, match="unknown projector"):
        build_projector("mlp2x_relu", 32, 64)


def test_loss_counts_only_answer_tokens(llm_dir):
    """The model's loss equals cross-entropy computed by hand over the answer positions only."""
    import torch.nn.functional as F

    from sc_eval.adapters.llava.templates import IGNORE_INDEX, build_example

    model = _model(llm_dir)
    conv = [{"from": "human", "value": "<image>\nWhat colour?"}, {"from": "gpt", "value": "red"}]
    ids, labels = build_example(conv, model.tokenizer, "vicuna_v1")
    pixels = torch.rand(1, 3, 32, 32)
    loss = model([ids], pixels, [labels])
    img = model.image_tokens(pixels)
    k = ids.index(-200)
    emb = model.llm.get_input_embeddings()
    x = torch.cat([emb(torch.tensor(ids[:k])), img[0], emb(torch.tensor(ids[k + 1:]))])[None]
    logits = model.llm(inputs_embeds=x).logits[0]
    n_img = img.shape[1]
    answer = [i for i, lab in enumerate(labels) if lab != IGNORE_INDEX]  # positions in ids
    assert len(answer) == 2  # "▁red" and "</s>"
    pos = [i - 1 + n_img - 1 for i in answer]  # logit position predicting each answer token
    want = F.cross_entropy(logits[pos], torch.tensor([ids[i] for i in answer]))
    assert torch.allclose(loss, want, atol=1e-5)


def _batch(model, n=3):
    """A padded batch of multi-turn conversations of different lengths, one without an image."""
    from sc_eval.adapters.llava.templates import build_example

    convs = [[{"from": "human", "value": "<image>\nWhat colour?"}, {"from": "gpt", "value": "red"}],
             [{"from": "human", "value": "<image>\nHow many circles are there in the picture?"},
              {"from": "gpt", "value": "three small ones"}, {"from": "human", "value": "And squares?"},
              {"from": "gpt", "value": "none"}],
             [{"from": "human", "value": "Say something."}, {"from": "gpt", "value": "something long enough"}]][:n]
    ids, labels = zip(*(build_example(c, model.tokenizer, "vicuna_v1") for c in convs))
    return list(ids), list(labels)


def _reference_loss(model, ids, labels, pixels):
    """The LLM's own loss: a full forward over every position with ``labels=`` (transformers
    shifts them and averages the cross-entropy over the labelled positions)."""
    embeds, mask, pos, lab = model.splice(ids, model.image_tokens(pixels), labels)
    return model.llm(inputs_embeds=embeds, attention_mask=mask, position_ids=pos, labels=lab, use_cache=False).loss


@pytest.mark.parametrize("lora", [False, True])
def test_answer_rows_loss_and_gradients_equal_the_full_logits_loss(llm_dir, lora):
    """The loss that sends only answer rows through lm_head is the LLM's own full-logits loss,
    with the same gradients (projector and LoRA), with and without LoRA, with gradient
    checkpointing on, for a padded batch with several answers per sample."""
    from sc_eval.adapters.llava.model import add_lora

    model = _model(llm_dir)
    model.llm.requires_grad_(False)
    if lora:
        model.llm = add_lora(model.llm, 4, 8, 0.0)
        with torch.no_grad():  # LoRA's B starts at zero; make the adapters matter
            for n, p in model.llm.named_parameters():
                if "lora_B" in n:
                    p.normal_(std=0.05)
    model.train()
    model.llm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    ids, labels = _batch(model)
    pixels = torch.rand(3, 3, 32, 32)
    assert model._answer_rows_body() is not None  # the answer-rows path runs, not a fallback

    def loss_and_grads(fn):
        model.zero_grad(set_to_none=True)
        loss = fn()
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}

    got, g_got = loss_and_grads(lambda: model(ids, pixels, labels))
    want, g_want = loss_and_grads(lambda: _reference_loss(model, ids, labels, pixels))
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-6), (got, want)
    n_answer = sum(sum(1 for x in lab[1:] if x != -100) for lab in labels)
    assert torch.allclose(model(ids, pixels, labels, reduction="sum"), want * n_answer, rtol=1e-5)
    assert any(n.startswith("projector.") for n in g_got)
    assert lora == any("lora_" in n for n in g_got)
    for n in g_want:
        assert g_got[n].abs().sum() > 0, f"no gradient reaches {n}"
        assert torch.allclose(g_got[n], g_want[n], rtol=1e-4, atol=1e-7), n


def test_models_that_rescale_their_logits_train_on_their_own_loss(tmp_path):
    """A model whose forward scales the output layer's logits (Granite's logits_scaling) is
    detected, and its loss is the model's own, not the head applied to the hidden states."""
    from transformers import GraniteConfig, GraniteForCausalLM

    from sc_eval.adapters.llava.model import LlavaConfig, build
    from sc_eval.models.tokenizers import llama_tokenizer

    torch.manual_seed(0)
    llm = GraniteForCausalLM(GraniteConfig(vocab_size=32000, hidden_size=64, intermediate_size=128,
                                           num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                           logits_scaling=8.0))
    model = build(TinyEncoder(), llm, llama_tokenizer(), LlavaConfig(encoder="tiny", llm="granite"))
    ids, labels = _batch(model)
    pixels = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        got = model(ids, pixels, labels)
        want = _reference_loss(model, ids, labels, pixels)
    assert model._answer_rows_body() is None
    assert torch.allclose(got, want, rtol=1e-5), (got, want)


def test_lora_goes_on_every_linear_but_lm_head(llm_dir):
    from sc_eval.adapters.llava.model import add_lora, lora_targets

    model = _model(llm_dir)
    assert lora_targets(model.llm) == ["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"]
    peft = add_lora(model.llm, 4, 8, 0.0)
    trainable = [n for n, p in peft.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)


def _llava_json(tmp_path, n=8):
    imgs = _images(tmp_path / "images", n, seed=3)
    colours = ["red", "blue", "green", "yellow"]
    pre = [{"id": f"p{i}", "image": f"images/{i}.png",
            "conversations": [{"from": "human", "value": "<image>\n"},
                              {"from": "gpt", "value": f"a {colours[i % 4]} circle"}]} for i in range(n)]
    ft = [{"id": f"f{i}", "image": f"images/{i}.png",
           "conversations": [{"from": "human", "value": "<image>\nWhat colour is the circle?"},
                             {"from": "gpt", "value": colours[i % 4]}]} for i in range(n)]
    (tmp_path / "pre.json").write_text(json.dumps(pre))
    (tmp_path / "ft.json").write_text(json.dumps(ft))
    return imgs


def test_two_stages_train_save_reload(llm_dir, tmp_path):
    from sc_eval.adapters.llava.data import ConversationData, read_conversations
    from sc_eval.adapters.llava.generate import LlavaAdapter
    from sc_eval.adapters.llava.model import add_lora
    from sc_eval.adapters.llava.saving import load_adapter, save_adapter
    from sc_eval.adapters.llava.train import StageConfig, train_stage

    imgs = _llava_json(tmp_path)
    model = _model(llm_dir)
    tok = model.tokenizer
    model.llm.requires_grad_(False)
    d1 = ConversationData(read_conversations(tmp_path / "pre.json", tmp_path), tok, "plain")
    train_stage(model, d1, StageConfig("stage1", steps=12, batch_size=4, lr=3e-3, log_every=4),
                tmp_path / "ckpt", progress=False)
    model.llm = add_lora(model.llm, 4, 8, 0.05)
    d2 = ConversationData(read_conversations(tmp_path / "ft.json", tmp_path), tok, "vicuna_v1")
    train_stage(model, d2, StageConfig("stage2", steps=8, batch_size=4, lr=2e-3, projector_lr=1e-3, log_every=4),
                tmp_path / "ckpt", progress=False)
    assert (tmp_path / "ckpt" / "stage2" / "latest").read_text().strip() == "step_8"
    for stage, steps in (("stage1", [4, 8, 12]), ("stage2", [4, 8])):
        logged = [json.loads(x) for x in (tmp_path / "ckpt" / stage / "metrics.jsonl").read_text().splitlines()]
        assert [r["step"] for r in logged] == steps
        assert logged[-1]["loss"] < logged[0]["loss"]  # it learns: mean loss of the last window is lower

    out = save_adapter(model, tmp_path / "adapter")
    for f in ("config.json", "projector.safetensors", "mm_projector.bin", "lora/adapter_config.json"):
        assert (out / f).exists(), f
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["encoder_fingerprint"] == "tiny-encoder" and cfg["select_layer"] == -2
    assert cfg["template"] == "vicuna_v1" and cfg["llm"] == str(llm_dir)

    docs = [{"doc_id": str(i), "image": p, "question": "What colour is the circle?"} for i, p in enumerate(imgs[:4])]
    before = LlavaAdapter(model)
    reloaded = LlavaAdapter(load_adapter(out, TinyEncoder()))
    assert reloaded.predict(docs, FakeTask(4)) == before.predict(docs, FakeTask(4))
    assert reloaded.fingerprint() == before.fingerprint()
    # another precision is another setup: its answers are never taken for these (bf16 would
    # compute them differently), while fp32 stays what it was
    assert LlavaAdapter(model, precision="bf16").fingerprint() != before.fingerprint()
    assert LlavaAdapter(model, precision="fp32").fingerprint() == before.fingerprint()

    save_adapter(model, tmp_path / "merged", merge_lora=True)
    assert (tmp_path / "merged" / "merged_llm" / "config.json").exists()


def test_interrupted_stage_resumes_to_the_same_weights(llm_dir, tmp_path, monkeypatch):
    from sc_eval.adapters.llava import train as train_mod
    from sc_eval.adapters.llava.data import ConversationData, read_conversations
    from sc_eval.adapters.llava.train import StageConfig, train_stage

    _llava_json(tmp_path)
    cfg = StageConfig("stage1", steps=4, batch_size=3, lr=1e-2, save_every=2)

    def run(ckpt):
        model = _model(llm_dir)
        model.llm.requires_grad_(False)
        d = ConversationData(read_conversations(tmp_path / "pre.json", tmp_path), model.tokenizer, "plain")
        train_stage(model, d, cfg, ckpt, progress=False)
        return model.projector.state_dict()

    straight = run(tmp_path / "a")
    real, calls = train_mod.collate, []

    def dying(*a, **k):
        calls.append(1)
        if len(calls) == 4:  # killed during step 4, after the step-2 checkpoint
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(train_mod, "collate", dying)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "b")
    monkeypatch.setattr(train_mod, "collate", real)
    assert (tmp_path / "b" / "stage1" / "latest").read_text().strip() == "step_2"
    resumed = run(tmp_path / "b")
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)


def test_4bit_without_bitsandbytes_or_gpu_is_a_clear_error(llm_dir):
    from sc_eval.adapters.llava.model import load_llm

    import importlib.util

    if importlib.util.find_spec("bitsandbytes") is not None and torch.cuda.is_available():
        pytest.skip("bitsandbytes and a GPU are present: 4-bit would load")
    with pytest.raises(MissingDependencyError, match="bitsandbytes|CUDA"):
        load_llm(llm_dir, quantize_4bit=True)


def test_cli_trains_evaluates_and_reuses_the_adapter(cli_world, llm_dir, tmp_path):
    """`sc-eval llava` on a tiny world: both stages, adapter, predictions and results; then
    `--adapter` on another run directory gives the same answers without training."""
    from sc_eval.cli import main

    common = ["--encoder", "random:sc-vit-micro", "--llm", str(llm_dir), "--data-root", str(cli_world),
              "--tasks", "vqav2,gqa", "--limit", "3", "--lora-r", "4", "--lora-alpha", "8"]
    run1 = tmp_path / "run1"
    assert main(["llava", *common, "--stage1-steps", "2", "--stage2-steps", "2", "--batch-size", "4",
                 "--output-dir", str(run1)]) == 0
    # LLaVA's stage-1 artifact (its --pretrain_mm_mlp_adapter): the projector as stage 1 left it,
    # before stage 2 trained it further; the adapter's copy is the final projector
    stage1 = torch.load(run1 / "checkpoints" / "stage1" / "mm_projector.bin", weights_only=True)
    final = torch.load(run1 / "adapter" / "mm_projector.bin", weights_only=True)
    from safetensors.torch import load_file

    s1 = load_file(str(run1 / "checkpoints" / "stage1" / "step_2" / "trainable.safetensors"))
    assert set(stage1) == set(final) == {f"model.mm_projector.{i}.{p}" for i in (0, 2) for p in ("weight", "bias")}
    assert all(torch.equal(stage1[k], s1[k.replace("model.mm_projector.", "projector.")]) for k in stage1)
    assert not torch.equal(stage1["model.mm_projector.0.weight"], final["model.mm_projector.0.weight"])
    res = json.loads((run1 / "results.json").read_text())["results"]
    assert set(res) == {"vqav2_val", "gqa_testdev_balanced"}
    assert res["vqav2_val"]["n_docs"]["evaluated"] == 3 and res["vqav2_val"]["limited"]
    run2 = tmp_path / "run2"
    assert main(["llava", *common, "--adapter", str(run1 / "adapter"), "--output-dir", str(run2)]) == 0
    assert not (run2 / "checkpoints").exists()
    for task in ("vqav2_val", "gqa_testdev_balanced"):
        a = [json.loads(x)["prediction"] for x in (run1 / "predictions" / f"{task}.jsonl").read_text().splitlines()]
        b = [json.loads(x)["prediction"] for x in (run2 / "predictions" / f"{task}.jsonl").read_text().splitlines()]
        assert a == b and len(a) == 3


def test_gradient_accumulation_gives_the_same_step(llm_dir, tmp_path):
    """One batch of 4 in one forward, or as 3 uneven micro-batches: the same update."""
    from sc_eval.adapters.llava.data import ConversationData, read_conversations
    from sc_eval.adapters.llava.train import StageConfig, train_stage

    _llava_json(tmp_path)
    out = []
    for accum in (1, 3):
        model = _model(llm_dir)
        model.llm.requires_grad_(False)
        d = ConversationData(read_conversations(tmp_path / "ft.json", tmp_path), model.tokenizer, "vicuna_v1")
        train_stage(model, d, StageConfig("s", steps=1, batch_size=4, lr=1e-2, grad_accum=accum),
                    tmp_path / f"acc{accum}", progress=False)
        out.append(model.projector.state_dict())
    # equal up to float summation order (Adam's first step divides by |g|, so tiny g amplify it)
    assert all(torch.allclose(out[0][k], out[1][k], atol=2e-5) for k in out[0])
    assert not torch.equal(out[0]["0.weight"], _model(llm_dir).projector.state_dict()["0.weight"])


def test_images_are_padded_to_square_with_the_encoder_mean_colour():
    from PIL import Image

    from sc_eval.adapters.llava.model import image_tensor, pad_to_square

    img = Image.new("RGB", (40, 24), (255, 0, 0))
    sq = pad_to_square(img, [128, 102, 77])
    assert sq.size == (40, 40)
    assert sq.getpixel((0, 0)) == (128, 102, 77) and sq.getpixel((20, 20)) == (255, 0, 0)
    assert sq.getpixel((20, 7)) == (128, 102, 77) and sq.getpixel((20, 8)) == (255, 0, 0)  # (40-24)/2 = 8 rows
    # mean (0.5, 0.4, 0.3) -> LLaVA's fill int(255 * m): (127, 102, 76), truncated, not rounded
    x = image_tensor(TinyEncoder(), img)
    assert x.shape == (3, 32, 32)
    assert torch.allclose(x[:, 0, 0], torch.tensor([127, 102, 76]) / 255.0)


def test_projector_init_does_not_depend_on_whether_the_llm_was_trained_first(cli_world, llm_dir, tmp_path):
    """The first `sc-eval llava` on a world trains and caches its tiny Llama (drawing random
    numbers), later ones load it: the same command and seed must give the same adapter."""
    from sc_eval.adapters.llava import pipeline as model_mod
    from tests.conftest import same_weights_whether_the_lm_was_trained_first

    argv = ["llava", "--encoder", "random:sc-vit-micro", "--llm", str(llm_dir), "--data-root", str(cli_world),
            "--tasks", "vqav2", "--limit", "1", "--lora-r", "4", "--lora-alpha", "8",
            "--stage1-steps", "1", "--stage2-steps", "1", "--batch-size", "2"]
    assert same_weights_whether_the_lm_was_trained_first(argv, tmp_path, model_mod, "load_llm",
                                                         "projector.safetensors")


def test_missing_task_data_stops_before_training(cli_world, llm_dir, tmp_path, capsys):
    """A named task without its files, or a group without any, fails before hours of training."""
    from sc_eval.cli import main

    (cli_world / "gqa" / "testdev_balanced_questions.json").unlink()
    common = ["llava", "--encoder", "random:sc-vit-micro", "--llm", str(llm_dir), "--lora-r", "4",
              "--stage1-steps", "1", "--stage2-steps", "1", "--batch-size", "2"]
    run = tmp_path / "run"
    assert main([*common, "--data-root", str(cli_world), "--tasks", "vqav2,gqa", "--output-dir", str(run)]) == 2
    assert "testdev_balanced_questions.json" in capsys.readouterr().err
    assert not (run / "checkpoints" / "stage1").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main([*common, "--data-root", str(empty), "--tasks", "battery", "--output-dir", str(tmp_path / "r2")]) == 2
    assert f"no data under {empty} for any of" in capsys.readouterr().err
    assert not (tmp_path / "r2" / "checkpoints" / "stage1").exists()


def test_training_without_llm_says_what_to_pass(cli_world, tmp_path, capsys):
    from sc_eval.cli import main

    run = tmp_path / "run"
    assert main(["llava", "--encoder", "random:sc-vit-micro", "--data-root", str(cli_world), "--tasks", "vqav2",
                 "--output-dir", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sc-eval: error: --llm not given") and err.count("\n") == 1
    assert "--llm DIR" in err and "--llm random:vicuna-7b" in err and "--adapter DIR" in err
    assert not run.exists()
