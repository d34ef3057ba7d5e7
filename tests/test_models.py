"""The SuperClass tower: configs, layout, parameter counts, and a forward pass re-derived by hand."""
import math
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from sc_eval.errors import ConfigError
from sc_eval.models import num_patches, vit_config
from sc_eval.models.vit import count_params, create_vit


def test_bundled_configs_are_listed_without_importing_torch():
    code = ("import sys, sc_eval.models as m; names = m.list_models(); "
            "print(','.join(names)); print('torch' in sys.modules, 'timm' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert set(out[0].split(",")) >= {"sc-vit-tiny", "sc-vit-micro", "vit-s-16", "vit-b-16", "vit-l-16", "vit-l-14"}
    assert out[1:] == ["False", "False"]


def test_config_fields():
    cfg = vit_config("vit-l-14")
    assert (cfg["image_size"], cfg["patch_size"], cfg["width"], cfg["layers"], cfg["heads"]) == (224, 14, 1024, 24, 16)
    assert cfg["interpolation"] == "bicubic" and cfg["mean"][0] == pytest.approx(0.48145466)
    tiny = vit_config("sc-vit-tiny")
    assert (tiny["image_size"], tiny["patch_size"], tiny["width"], tiny["layers"], tiny["heads"]) == (64, 8, 128, 4, 4)
    assert num_patches(tiny) == 64
    for name in ("vit-s-16", "vit-b-16", "vit-l-16", "vit-l-14"):
        c = vit_config(name)
        assert c["heads"] == c["width"] // 64  # heads = width / 64 for the real sizes


def test_unknown_model_suggests_the_closest_name():
    with pytest.raises(ConfigError, match="did you mean 'vit-b-16'"):
        vit_config("vit-b-61")


def test_bad_config_is_a_config_error():
    with pytest.raises(ConfigError, match="not divisible"):
        create_vit({"image_size": 32, "patch_size": 8, "width": 30, "layers": 1, "heads": 4})


@pytest.mark.parametrize("name,millions", [("vit-b-16", 85.8), ("vit-l-16", 303.3)])
def test_param_counts_match_the_paper(name, millions):
    # PROTOCOLS section 1: B/16 tower 85.8M, L/16 tower 303.3M (head excluded).
    assert round(count_params(name) / 1e6, 1) == millions


def test_tower_layout():
    m = create_vit("sc-vit-micro")
    assert m.patch_embed.proj.bias is None  # conv1 has no bias in open_clip
    assert isinstance(m.norm_pre, torch.nn.LayerNorm) and m.norm_pre.eps == 1e-5
    assert isinstance(m.norm, torch.nn.LayerNorm)  # ln_post, applied to every token
    assert isinstance(m.fc_norm, torch.nn.Identity) and isinstance(m.head, torch.nn.Identity)
    assert m.global_pool == "avg" and m.num_prefix_tokens == 1
    assert m.cls_token.shape == (1, 1, 32) and m.pos_embed.shape == (1, 17, 32)
    assert len(m.blocks) == 2 and m.blocks[0].attn.num_heads == 2 and m.blocks[0].attn.fused_attn
    assert m.blocks[0].mlp.fc1.out_features == 128
    assert m.num_features == 32


def _manual_forward(m, x):
    """The open_clip tower written out with plain torch ops, from the parameters only."""
    sd = m.state_dict()
    d = sd["cls_token"].shape[-1]
    heads = m.blocks[0].attn.num_heads
    t = F.conv2d(x, sd["patch_embed.proj.weight"], stride=8).flatten(2).transpose(1, 2)
    t = torch.cat([sd["cls_token"].expand(x.shape[0], 1, d), t], dim=1) + sd["pos_embed"]
    t = F.layer_norm(t, (d,), sd["norm_pre.weight"], sd["norm_pre.bias"], 1e-5)
    for i in range(len(m.blocks)):
        p = lambda n: sd[f"blocks.{i}.{n}"]  # noqa: E731
        h = F.layer_norm(t, (d,), p("norm1.weight"), p("norm1.bias"), 1e-5)
        q, k, v = (h @ p("attn.qkv.weight").T + p("attn.qkv.bias")).chunk(3, dim=-1)
        split = lambda z: z.reshape(z.shape[0], z.shape[1], heads, d // heads).transpose(1, 2)  # noqa: E731
        q, k, v = split(q), split(k), split(v)
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d // heads), dim=-1) @ v
        a = a.transpose(1, 2).reshape(t.shape)
        t = t + a @ p("attn.proj.weight").T + p("attn.proj.bias")
        h = F.layer_norm(t, (d,), p("norm2.weight"), p("norm2.bias"), 1e-5)
        h = F.gelu(h @ p("mlp.fc1.weight").T + p("mlp.fc1.bias"))
        t = t + h @ p("mlp.fc2.weight").T + p("mlp.fc2.bias")
    t = F.layer_norm(t, (d,), sd["norm.weight"], sd["norm.bias"], 1e-5)
    return t[:, 1:].mean(dim=1)  # mean over patch tokens; the class token output is unused


def test_pooled_output_is_mean_of_normed_patch_tokens():
    torch.manual_seed(0)
    m = create_vit("sc-vit-micro").eval()
    # give the norms non-trivial affine parameters so that a skipped norm would show
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.LayerNorm):
                mod.weight.normal_(1.0, 0.3)
                mod.bias.normal_(0.0, 0.3)
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        got = m(x)
        want = _manual_forward(m, x)
    assert got.shape == (3, 32)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
