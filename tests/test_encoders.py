"""Every encoder spec form loads the same weights into the same features."""
import json

import pytest
import torch
from PIL import Image

from sc_eval import load_encoder
from sc_eval.encoders import checkpoint_filter_fn, list_encoder_kinds, save_encoder_dir
from sc_eval.errors import CheckpointError, ConfigError
from sc_eval.io import atomic_save_safetensors, atomic_write_json, atomic_write_text
from sc_eval.models import vit_config
from sc_eval.models.vit import create_vit

MICRO = "sc-vit-micro"


def _trained_like_tower(seed=1, cfg=MICRO):
    """A tower with weights unlike the seed-0 random init (so a wrong load cannot pass)."""
    torch.manual_seed(seed)
    m = create_vit(cfg)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return m.eval()


def _images(n=2, size=32, seed=0):
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _head(width=32, vocab=50, seed=2):
    g = torch.Generator().manual_seed(seed)
    return {"norm.weight": torch.rand(width, generator=g) + 0.5, "norm.bias": torch.randn(width, generator=g),
            "fc.weight": torch.randn(vocab, width, generator=g), "fc.bias": torch.randn(vocab, generator=g)}


def test_encoder_dir_round_trip(tmp_path):
    tower = _trained_like_tower()
    x = _images()
    with torch.no_grad():
        want = tower(x)
    out = save_encoder_dir(tower, vit_config(MICRO), tmp_path / "enc", head=_head(), extra={"source": "unit-test"})
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "head.safetensors", "model.safetensors"]
    meta = json.loads((out / "config.json").read_text())["sc_eval"]
    assert meta["source"] == "unit-test" and meta["vit"]["width"] == 32

    enc = load_encoder(str(out))
    assert (enc.width, enc.image_size, enc.patch_size, enc.num_patches) == (32, 32, 8, 16)
    with torch.no_grad():
        torch.testing.assert_close(enc.forward_pooled(x), want, atol=1e-6, rtol=0)
    torch.testing.assert_close(enc.head.fc.weight, _head()["fc.weight"])
    assert load_encoder(out).fingerprint == enc.fingerprint  # stable across loads

    # overwriting an existing export replaces it whole
    save_encoder_dir(_trained_like_tower(seed=5), MICRO, out)
    assert not (out / "head.safetensors").exists()
    assert load_encoder(out).fingerprint != enc.fingerprint
    assert [p.name for p in tmp_path.iterdir()] == ["enc"]  # no temp dirs left behind


def test_loading_a_tower_leaves_the_random_state_alone(tmp_path):
    """Loading weights draws no random numbers (timm releases that cannot build on the meta
    device build a randomly initialised tower first), so seeded code after a load is unchanged."""
    out = save_encoder_dir(_trained_like_tower(), vit_config(MICRO), tmp_path / "enc")
    torch.manual_seed(0)
    load_encoder(str(out))
    after_load = torch.rand(4)
    torch.manual_seed(0)
    assert torch.equal(after_load, torch.rand(4))


def test_timm_reads_an_exported_encoder_dir(tmp_path):
    """timm itself (``local-dir:``) rebuilds the exported tower and gives the same features."""
    import timm

    tower = _trained_like_tower()
    x = _images()
    with torch.no_grad():
        want = tower(x)
    out = save_encoder_dir(tower, vit_config(MICRO), tmp_path / "enc")
    try:
        m = timm.create_model(f"local-dir:{out}", pretrained=True).eval()
    except AssertionError:  # its model-name parser knows no local-dir: scheme
        pytest.skip(f"timm {timm.__version__} has no local-dir: loader")
    with torch.no_grad():
        torch.testing.assert_close(m(x), want, atol=1e-6, rtol=0)
    assert m.pretrained_cfg["input_size"] == (3, 32, 32)


def _official_checkpoint(tmp_path):
    """An official-format checkpoint made from open_clip's own tower, and that tower."""
    from open_clip.transformer import VisionTransformer

    torch.manual_seed(3)
    visual = VisionTransformer(image_size=32, patch_size=8, width=32, layers=2, heads=2, mlp_ratio=4.0,
                               output_dim=32, pool_type="avg").eval()
    with torch.no_grad():  # non-trivial norms and biases
        for name, p in visual.named_parameters():
            if "ln_" in name or name.endswith("bias") or "class_embedding" in name:
                p.add_(torch.randn_like(p) * 0.2)
    state = {f"module.visual.{k}": v for k, v in visual.state_dict().items()}
    head = _head()
    state["module.text_decoder.ln_mlp.weight"] = head["norm.weight"]
    state["module.text_decoder.ln_mlp.bias"] = head["norm.bias"]
    state["module.text_decoder.text_projection.weight"] = head["fc.weight"]
    state["module.text_decoder.text_projection.bias"] = head["fc.bias"]
    state["module.cap_fq"] = torch.zeros(1, 49408, dtype=torch.float64)
    state["module.num_samples"] = torch.full((1, 1), 7.0, dtype=torch.float64)
    ckpt = {"epoch": 3, "name": "superclass-test", "state_dict": state,
            "optimizer": {"state": {0: {"step": torch.tensor(4.0), "exp_avg": torch.zeros(2)}},
                          "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.98), "params": [0]}]}}
    path = tmp_path / "epoch_3.pt"
    torch.save(ckpt, path)
    model_cfg = {"embed_dim": 32, "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "patch_size": 8,
                                                 "head_width": 16},
                 "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
    cfg_path = tmp_path / "ViT-Micro-8.json"
    cfg_path.write_text(json.dumps(model_cfg))
    return path, cfg_path, visual


def test_official_checkpoint_gives_open_clip_features(tmp_path):
    path, cfg_path, visual = _official_checkpoint(tmp_path)
    enc = load_encoder(str(path), config=str(cfg_path))
    x = _images()
    visual.proj = None  # SuperClass pools before any projection
    with torch.no_grad():
        want = visual(x)  # open_clip: mean over patch tokens of ln_post(x)
        want_tokens = visual.forward_intermediates(x, indices=[0], intermediates_only=True,
                                                   output_fmt="NLC")["image_intermediates"][0]
        torch.testing.assert_close(enc.forward_pooled(x), want, atol=1e-5, rtol=0)
        torch.testing.assert_close(enc.forward_tokens(x, layer=0), want_tokens, atol=1e-5, rtol=0)
    assert enc.head_state["num_samples"].item() == 7.0
    torch.testing.assert_close(enc.head.fc.bias, _head()["fc.bias"])
    # the config can also be an sc-eval dict; a config of the wrong size is a CheckpointError
    with pytest.raises(CheckpointError, match="pos_embed"):
        load_encoder(str(path), config=vit_config("sc-vit-tiny"))
    with pytest.raises(ConfigError, match="model config"):
        load_encoder(str(path))


def test_checkpoint_filter_fn_names():
    sd = {"module.visual.conv1.weight": torch.zeros(4, 3, 2, 2), "module.visual.class_embedding": torch.zeros(4),
          "module.visual.positional_embedding": torch.zeros(5, 4),
          "module.visual.transformer.resblocks.3.attn.in_proj_weight": torch.zeros(12, 4),
          "module.visual.transformer.resblocks.3.mlp.c_proj.bias": torch.zeros(4),
          "module.visual.ln_post.weight": torch.zeros(4), "module.text_decoder.text_projection.weight": torch.zeros(9, 4)}
    tower, head = checkpoint_filter_fn(sd)
    assert set(tower) == {"patch_embed.proj.weight", "cls_token", "pos_embed", "blocks.3.attn.qkv.weight",
                          "blocks.3.mlp.fc2.bias", "norm.weight"}
    assert tower["cls_token"].shape == (1, 1, 4) and tower["pos_embed"].shape == (1, 5, 4)
    assert set(head) == {"fc.weight"}
    assert "module.visual.conv1.weight" in sd  # pure: input untouched


def _pretrain_run(tmp_path, tower, cfg=MICRO):
    run = tmp_path / "run"
    step = run / "checkpoints" / "step_20"
    state = {f"visual.{k}": v for k, v in tower.state_dict().items()}
    state.update({f"head.{k}": v for k, v in _head().items()})
    atomic_save_safetensors(step / "model.safetensors", state)
    atomic_write_json(step / "config.json", {"model": vit_config(cfg), "objective": "superclass", "vocab_size": 50})
    atomic_write_text(run / "checkpoints" / "latest", "step_20\n")
    return run, step


def test_pretraining_run_layouts_load_the_same_tower(tmp_path):
    tower = _trained_like_tower()
    run, step = _pretrain_run(tmp_path, tower)
    x = _images()
    with torch.no_grad():
        want = tower(x)
    encs = [load_encoder(str(p)) for p in (run, step, step / "model.safetensors")]
    assert len({e.fingerprint for e in encs}) == 1
    for e in encs:
        with torch.no_grad():
            torch.testing.assert_close(e.forward_pooled(x), want, atol=1e-6, rtol=0)
    assert encs[0].head.fc.weight.shape == (50, 32)
    # an exported encoder/ takes precedence over checkpoints, and shares the fingerprint
    save_encoder_dir(tower, MICRO, run / "encoder")
    assert load_encoder(str(run)).fingerprint == encs[0].fingerprint


def test_wrong_architecture_names_keys_and_shapes(tmp_path):
    other = create_vit({**vit_config(MICRO), "patch_size": 4})  # 64 patches instead of 16
    _, step = _pretrain_run(tmp_path, other)
    with pytest.raises(CheckpointError) as err:
        load_encoder(str(step))
    msg = str(err.value)
    assert "pos_embed checkpoint [1, 65, 32] vs model [1, 17, 32]" in msg
    assert "patch_embed.proj.weight" in msg and str(step) in msg


def test_random_baseline_is_reproducible():
    torch.manual_seed(123)
    a = load_encoder("random:sc-vit-micro")
    after_load = torch.rand(1)
    torch.manual_seed(999)  # a different global seed must not change the baseline
    b = load_encoder("random:sc-vit-micro")
    torch.manual_seed(123)
    assert torch.rand(1) == after_load  # loading did not consume the caller's random stream
    assert a.fingerprint == b.fingerprint and a.kind == "random"
    x = _images()
    with torch.no_grad():
        torch.testing.assert_close(a.forward_pooled(x), b.forward_pooled(x), atol=0, rtol=0)
    assert load_encoder("random:test_vit").fingerprint == load_encoder("random:test_vit").fingerprint


def test_forward_tokens_is_the_penultimate_block_output():
    enc = load_encoder("random:sc-vit-micro")
    captured = {}
    hook = enc.model.blocks[-2].register_forward_hook(lambda mod, inp, out: captured.__setitem__("t", out))
    x = _images(3)
    with torch.no_grad():
        tokens = enc.forward_tokens(x)
    hook.remove()
    assert tokens.shape == (3, 16, 32)  # [B, N_patches, D]
    torch.testing.assert_close(tokens, captured["t"][:, 1:], atol=0, rtol=0)  # class token dropped
    with pytest.raises(ConfigError, match="out of range"):
        enc.forward_tokens(x, layer=5)


def test_encoder_is_frozen_and_stays_in_eval_mode():
    enc = load_encoder("random:sc-vit-micro")
    parent = torch.nn.Sequential(enc)
    parent.train()
    assert not enc.training and not enc.model.training
    assert all(not p.requires_grad for p in enc.parameters())


def test_transform_resizes_crops_and_normalises():
    enc = load_encoder("random:sc-vit-micro")
    img = Image.new("RGB", (80, 40), (255, 0, 128))
    x = enc.transform(img)
    assert x.shape == (3, 32, 32)
    want = [(c / 255 - m) / s for c, m, s in zip((255, 0, 128), enc.mean, enc.std)]
    torch.testing.assert_close(x.mean(dim=(1, 2)), torch.tensor(want), atol=1e-3, rtol=0)


def test_timm_spec_with_local_weights(tmp_path):
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(4)
    ref = timm.create_model("test_vit", pretrained=False, num_classes=10).eval()
    save_file(ref.state_dict(), str(tmp_path / "w.safetensors"))
    enc = load_encoder(f"timm:test_vit@{tmp_path / 'w.safetensors'}")
    x = torch.randn(1, 3, enc.image_size, enc.image_size)
    with torch.no_grad():
        torch.testing.assert_close(enc.forward_pooled(x), ref.forward_head(ref.forward_features(x), pre_logits=True))
    assert enc.forward_tokens(x).shape == (1, enc.num_patches, enc.width)


def test_hf_clip_vision_dir(tmp_path):
    from transformers import CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(0)
    cfg = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=2,
                           image_size=32, patch_size=8)
    ref = CLIPVisionModel(cfg).eval()
    ref.save_pretrained(tmp_path / "clip")
    enc = load_encoder(f"hf:{tmp_path / 'clip'}")
    x = _images()
    with torch.no_grad():
        out = ref(pixel_values=x, output_hidden_states=True)
        torch.testing.assert_close(enc.forward_pooled(x), out.pooler_output)
        torch.testing.assert_close(enc.forward_tokens(x), out.hidden_states[-2][:, 1:])
        torch.testing.assert_close(enc.forward_tokens(x, layer=0), out.hidden_states[1][:, 1:])
    assert (enc.width, enc.num_patches) == (32, 16)


def test_open_clip_spec_with_a_registered_config(tmp_path):
    import open_clip
    from safetensors.torch import save_file

    (tmp_path / "cfgs").mkdir()
    (tmp_path / "cfgs" / "Micro-ViT-8.json").write_text(json.dumps({
        "embed_dim": 16, "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "patch_size": 8, "head_width": 16},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}))
    open_clip.add_model_config(tmp_path / "cfgs")
    rand = load_encoder("random:open_clip:Micro-ViT-8")
    x = _images()
    with torch.no_grad():
        assert rand.forward_pooled(x).shape == (2, 32)  # tower width: projection removed
        assert rand.forward_tokens(x).shape == (2, 16, 32)
    assert load_encoder("random:open_clip:Micro-ViT-8").fingerprint == rand.fingerprint
    # No weights named: refused, not a random tower in disguise.
    with pytest.raises(CheckpointError, match="no weights named.*random:open_clip:Micro-ViT-8"):
        load_encoder("open_clip:Micro-ViT-8")
    # A whole CLIP checkpoint file: its visual.* part is the tower.
    torch.manual_seed(5)
    ref = open_clip.create_model("Micro-ViT-8").eval()
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(tmp_path / "clip.safetensors"))
    enc = load_encoder(f"open_clip:Micro-ViT-8@{tmp_path / 'clip.safetensors'}")
    ref.visual.proj = None
    with torch.no_grad():
        torch.testing.assert_close(enc.forward_pooled(x), ref.visual(x))
    assert enc.fingerprint != rand.fingerprint


def _fake_hub_file(cache, repo: str, fname: str, state: dict) -> None:
    """``state`` saved where huggingface_hub keeps ``repo``'s ``fname`` (refs/main -> snapshot)."""
    from safetensors.torch import save_file

    d = cache / f"models--{repo.replace('/', '--')}"
    (d / "refs").mkdir(parents=True, exist_ok=True)
    (d / "refs" / "main").write_text("0123abcd")
    (d / "snapshots" / "0123abcd").mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(d / "snapshots" / "0123abcd" / fname))


def test_timm_pretrained_name_resolves_from_the_local_hub_cache(monkeypatch, tmp_path):
    import timm

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(CheckpointError, match=r"model\.safetensors of the Hugging Face repo timm/test_vit\.r160_in1k at "
                       + str(tmp_path / "hub" / "models--timm--test_vit.r160_in1k" / "snapshots").replace(".", r"\.")):
        load_encoder("timm:test_vit.r160_in1k")
    torch.manual_seed(6)
    ref = timm.create_model("test_vit", pretrained=False, num_classes=1000).eval()
    _fake_hub_file(tmp_path / "hub", "timm/test_vit.r160_in1k", "model.safetensors", ref.state_dict())
    enc = load_encoder("timm:test_vit.r160_in1k")
    x = torch.randn(1, 3, enc.image_size, enc.image_size)
    with torch.no_grad():
        torch.testing.assert_close(enc.forward_pooled(x), ref.forward_head(ref.forward_features(x), pre_logits=True))
    assert (enc.image_size, enc.mean) == (160, [0.5, 0.5, 0.5])  # the pretrained config's preprocessing
    assert enc.fingerprint != load_encoder("random:timm:test_vit").fingerprint


def test_open_clip_pretrained_tag_resolves_from_the_local_caches(monkeypatch, tmp_path):
    import open_clip
    from open_clip.transformer import QuickGELU

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HOME", str(tmp_path))  # open_clip's URL cache (~/.cache/clip) is empty too
    with pytest.raises(CheckpointError, match=r"open_clip_model\.safetensors of the Hugging Face repo "
                       r"laion/CLIP-ViT-B-32-laion2B-s34B-b79K at .*hub/models--laion--CLIP-ViT-B-32-laion2B-s34B-b79K"):
        load_encoder("open_clip:ViT-B-32@laion2b_s34b_b79k")
    with pytest.raises(ConfigError, match="neither a file nor a pretrained tag of ViT-B-32.*did you mean 'openai'"):
        load_encoder("open_clip:ViT-B-32@openia")
    rand = load_encoder("random:open_clip:ViT-B-32")
    # "Trained" weights: the random tower scaled, stored in bf16 (exact in float32) to keep the file small.
    state = {f"visual.{k}": (v * 1.5).to(torch.bfloat16) for k, v in rand.model.state_dict().items()}
    state["visual.proj"] = torch.zeros(768, 512, dtype=torch.bfloat16)
    _fake_hub_file(tmp_path / "hub", "laion/CLIP-ViT-B-32-laion2B-s34B-b79K", "open_clip_model.safetensors", state)
    enc = load_encoder("open_clip:ViT-B-32@laion2b_s34b_b79k")
    got = enc.model.state_dict()
    assert all(torch.equal(got[k], state[f"visual.{k}"].float()) for k in got)
    assert not isinstance(enc.model.transformer.resblocks[0].mlp.gelu, QuickGELU)
    assert enc.fingerprint != rand.fingerprint
    # OpenAI's weights were trained with QuickGELU: the tower is built to match. They sit where
    # this open_clip version looks for them (its hub repo, or its URL cache for older versions).
    cfg = open_clip.get_pretrained_cfg("ViT-B-32", "openai")
    if cfg.get("hf_hub"):
        repo = cfg["hf_hub"].rstrip("/")
        _fake_hub_file(tmp_path / "hub", repo, "open_clip_model.safetensors", state)
    else:
        (tmp_path / ".cache" / "clip").mkdir(parents=True)
        torch.save(state, tmp_path / ".cache" / "clip" / cfg["url"].rsplit("/", 1)[1])
    enc = load_encoder("open_clip:ViT-B-32@openai")
    assert isinstance(enc.model.transformer.resblocks[0].mlp.gelu, QuickGELU)
    assert not isinstance(rand.model.transformer.resblocks[0].mlp.gelu, QuickGELU)


@pytest.mark.parametrize("spec,needle", [
    ("openclip:ViT-B-32", "did you mean 'open_clip'"),
    ("random:vit-b-61", "did you mean 'vit-b-16'"),
    ("timm:vit_bas_patch16_224", "did you mean"),
    ("sc-vit-tiny", "did you mean 'random:sc-vit-tiny'"),
    ("no/such/dir", "accepted specs"),
])
def test_bad_specs_are_config_errors(spec, needle):
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(")):
        load_encoder(spec)


def test_timm_without_local_weights_is_refused_not_random(monkeypatch, tmp_path):
    # Nothing cached locally: a silently random tower would be scored as if it were pretrained.
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(CheckpointError, match=r"timm:vit_tiny_patch16_224: no local weights.*random:vit_tiny_patch16_224"):
        load_encoder("timm:vit_tiny_patch16_224")


def test_list_encoder_kinds_names_every_form():
    forms = " ".join(f for f, _ in list_encoder_kinds())
    for prefix in ("timm:", "open_clip:", "hf:", "random:", ".pt"):
        assert prefix in forms


def test_a_registered_encoder_kind_is_loaded_listed_and_documented(monkeypatch, capsys):
    from pathlib import Path

    from sc_eval import encoders
    from sc_eval.cli import main

    monkeypatch.setattr(encoders, "_REGISTRY", dict(encoders._REGISTRY))
    kind = encoders.EncoderKind("toy:NAME", "a tower registered by a test", "toy", "sc_eval.encoders.foreign:load_random")
    encoders.register_encoder_kind(kind)
    assert load_encoder("toy:sc-vit-micro").fingerprint == load_encoder("random:sc-vit-micro").fingerprint
    assert main(["ls", "encoders"]) == 0
    out = capsys.readouterr().out
    assert all(k.form in out for k in encoders.encoder_kinds())
    with pytest.warns(UserWarning, match="toy:NAME"):
        encoders.register_encoder_kind(kind)
    with pytest.raises(ConfigError, match="toy:NAME"):  # the error's list of accepted specs
        load_encoder("nowhere/at/all")
    # the README's encoder table names every built-in prefix
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    for k in encoders.encoder_kinds():
        if k.prefix and k.prefix != "toy":
            assert f"`{k.prefix}:" in readme, k.prefix


class _NotATensor:
    """A pickled custom object: weights_only loading must refuse to build it."""


def test_unloadable_checkpoints_are_checkpoint_errors(tmp_path):
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="garbage.pt"):
        load_encoder(str(tmp_path / "garbage.pt"), config="sc-vit-micro")
    # arbitrary pickled objects are refused (weights_only), never executed
    torch.save({"state_dict": _NotATensor()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="evil.pt: cannot load as a weights-only"):
        load_encoder(str(tmp_path / "evil.pt"), config="sc-vit-micro")
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    with pytest.raises(CheckpointError, match="no encoder/"):
        load_encoder(str(tmp_path / "run"))


def test_malformed_json_configs_name_the_file_and_line(tmp_path):
    enc = save_encoder_dir(create_vit("sc-vit-micro"), "sc-vit-micro", tmp_path / "enc")
    text = (enc / "config.json").read_text()
    (enc / "config.json").write_text(text[: len(text) // 2])  # cut short
    with pytest.raises(CheckpointError, match=r"enc/config.json: malformed JSON at line \d+"):
        load_encoder(str(tmp_path / "enc" / "model.safetensors"))
    step = tmp_path / "run" / "checkpoints" / "step_1"
    step.mkdir(parents=True)
    (step / "model.safetensors").write_bytes(b"")
    (step / "config.json").write_text('{"model": "sc-vit-micro",\n  "objective": }')
    with pytest.raises(CheckpointError, match=r"step_1/config.json: malformed JSON at line 2"):
        load_encoder(str(step))
    (tmp_path / "oc.json").write_text('{"vision_cfg": {')
    torch.save({"state_dict": {}}, tmp_path / "epoch_1.pt")
    with pytest.raises(ConfigError, match=r"oc.json: malformed JSON at line 1"):
        load_encoder(str(tmp_path / "epoch_1.pt"), config=str(tmp_path / "oc.json"))
