"""SuperClassLoss against an independent numpy float64 re-derivation on real COCO captions.

The captions are the real COCO val2014 annotations that ship inside pycocoevalcap's SPICE jar
(PROTOCOLS.md §5); the reference below rebuilds the official recipe from its definition:
multi-hot over all 77 ids (duplicates once), cumulative DF/N updated before weighting,
w = ln((N+1)/(DF+1)), L1-normalised targets, softmax cross-entropy averaged over the batch.
"""
import json

import numpy as np
import pytest
import torch

from sc_eval.errors import ConfigError
from sc_eval.pretrain import SuperClassLoss

V = 49408


@pytest.fixture(scope="module")
def coco_token_ids(coco_val2014_annotations):
    anns = json.loads(coco_val2014_annotations.read_text())["annotations"]
    captions = [a["caption"] for a in anns[:320]]
    from open_clip.tokenizer import SimpleTokenizer

    return SimpleTokenizer()(captions).numpy()  # [320, 77]


def _np_reference(batches, logits_list):
    df = np.zeros(V, dtype=np.float64)
    n = 0.0
    losses, targets = [], []
    for ids, logits in zip(batches, logits_list):
        y = np.zeros((ids.shape[0], V), dtype=np.float64)
        for i, row in enumerate(ids):
            y[i, sorted(set(row.tolist()))] = 1.0
        df += y.sum(0)
        n += ids.shape[0]
        w = np.log((n + 1.0) / (df + 1.0))
        t = y * w
        t = t / t.sum(1, keepdims=True)
        m = logits.max(1, keepdims=True)
        logp = logits - m - np.log(np.exp(logits - m).sum(1, keepdims=True))
        losses.append(float(-(t * logp).sum(1).mean()))
        targets.append(t)
    return losses, targets, df, n


def test_loss_and_idf_state_match_numpy_on_coco(coco_token_ids):
    rng = np.random.default_rng(0)
    batches = [coco_token_ids[i:i + 64] for i in range(0, 320, 64)]  # 5 steps
    logits_list = [rng.normal(0, 2.0, size=(len(b), V)) for b in batches]
    ref_losses, ref_targets, ref_df, ref_n = _np_reference(batches, logits_list)

    loss = SuperClassLoss(vocab_size=V)
    for k, (ids, logits) in enumerate(zip(batches, logits_list)):
        z = torch.tensor(logits, requires_grad=True)
        value = loss(z, torch.tensor(ids))
        assert abs(value.item() - ref_losses[k]) < 1e-6, (k, value.item(), ref_losses[k])
        # The gradient of softmax CE with a normalised target is (softmax - t) / B.
        value.backward()
        sm = np.exp(logits - logits.max(1, keepdims=True))
        sm /= sm.sum(1, keepdims=True)
        np.testing.assert_allclose(z.grad.numpy(), (sm - ref_targets[k]) / len(ids), atol=1e-9)
    np.testing.assert_allclose(loss.df.numpy(), ref_df, rtol=0, atol=0)
    assert loss.num_samples.item() == ref_n == 320
    # SOT/EOT occur in every caption: weight exactly 0 after the updates.
    w = loss.weights()
    assert w[49406].item() == 0.0 and w[49407].item() == 0.0
    # dense_targets (no update) equals the last step's reference target
    np.testing.assert_allclose(loss.dense_targets(torch.tensor(batches[-1])).numpy(), ref_targets[-1], atol=1e-12)


def test_float32_logits_and_state_roundtrip(coco_token_ids):
    ids = torch.tensor(coco_token_ids[:32])
    logits = torch.randn(32, V, generator=torch.Generator().manual_seed(1))
    a = SuperClassLoss()
    first = a(logits, ids)
    b = SuperClassLoss()
    b.load_state_dict(a.state_dict())
    assert b.df.dtype == torch.float64 and torch.equal(a.df, b.df)
    # Same state -> same next loss, different from a fresh state on the same batch.
    nxt_a, nxt_b = a(logits, ids), b(logits, ids)
    assert nxt_a.item() == nxt_b.item()
    ref, _, _, _ = _np_reference([coco_token_ids[:32]] * 2, [logits.double().numpy()] * 2)
    assert abs(first.item() - ref[0]) < 1e-5 and abs(nxt_a.item() - ref[1]) < 1e-5


def test_ablation_options(coco_token_ids):
    ids = torch.tensor(coco_token_ids[:16])
    logits = torch.zeros(16, V, dtype=torch.float64)
    # Uniform logits: softmax CE = ln V for every normalised target.
    for idf in ("online", "none"):
        assert abs(SuperClassLoss(idf=idf)(logits, ids).item() - np.log(V)) < 1e-9
    # Masking special tokens: SOT/EOT/pad get no target mass even with idf none.
    m = SuperClassLoss(idf="none", mask_special=True)
    t = m.dense_targets(ids)
    assert t[:, [0, 49406, 49407]].abs().sum().item() == 0.0
    np.testing.assert_allclose(t.sum(1).numpy(), 1.0)
    # Paper's static |D| form: ln(|D| / (1 + df)) with the running df.
    p = SuperClassLoss(idf="paper", dataset_size=1000)
    p(logits, ids)
    tok = int(ids[0, 1])
    df = sum(int(tok in set(r.tolist())) for r in ids)
    assert abs(p.weights()[tok].item() - np.log(1000 / (1 + df))) < 1e-12
    # BCE at zero logits: every class costs ln 2, positives weighted to mean 1 -> V ln 2.
    bce = SuperClassLoss(idf="none", loss_type="bce")(logits, ids)
    assert abs(bce.item() - V * np.log(2)) < 1e-6
    for kind in ("softmargin", "asl", "twoway"):
        assert torch.isfinite(SuperClassLoss(loss_type=kind)(torch.randn(16, V), ids))
    with pytest.raises(ConfigError, match="vocabulary"):
        SuperClassLoss(vocab_size=1000)(torch.zeros(2, 1000), ids[:2])
    with pytest.raises(ConfigError, match="idf"):
        SuperClassLoss(idf="static")


# -- memory-lean training blocks (custom autograd): same values and gradients as the stock ones --

def _stock_and_lean(cfg, dtype=torch.float32):
    import copy

    from sc_eval.models.vit import create_vit
    from sc_eval.models.lean import LeanBlock, lean_blocks

    torch.manual_seed(0)
    stock = create_vit(cfg).to(dtype).train()
    lean = copy.deepcopy(stock)
    assert lean_blocks(lean) == cfg["layers"]
    assert all(isinstance(b, LeanBlock) for b in lean.blocks)
    return stock, lean


@pytest.mark.parametrize("amp", [None, torch.bfloat16])
def test_lean_blocks_give_bitwise_equal_outputs_and_gradients(amp):
    cfg = {"image_size": 32, "patch_size": 8, "width": 64, "layers": 2, "heads": 4}
    stock, lean = _stock_and_lean(cfg)
    assert stock.state_dict().keys() == lean.state_dict().keys()  # checkpoints/exports unchanged
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    results = []
    for model in (stock, lean):
        with torch.autocast("cpu", dtype=amp or torch.bfloat16, enabled=amp is not None):
            y = model(x)
        (y.float() * torch.linspace(-1, 1, y.numel()).view_as(y)).sum().backward()
        results.append((y.detach(), {k: p.grad for k, p in model.named_parameters()}))
    (ya, ga), (yb, gb) = results
    assert torch.equal(ya, yb)
    for k in ga:
        assert torch.equal(ga[k], gb[k]), k


def test_lean_functions_pass_gradcheck_in_float64():
    """Numerical (finite-difference) gradients of each Function, independent of autograd's."""
    from torch import nn

    from sc_eval.models import lean

    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 6, dtype=torch.float64, generator=g, requires_grad=True)
    norm, fc = nn.LayerNorm(6).double(), nn.Linear(6, 5).double()
    with torch.no_grad():
        norm.weight.normal_(generator=g), norm.bias.normal_(generator=g)
    assert torch.autograd.gradcheck(lambda x, a, b, w, c: lean._NormLinear.apply(x, a, b, 1e-5, w, c),
                                    (x, norm.weight, norm.bias, fc.weight, fc.bias))
    h = torch.randn(2, 3, 6, dtype=torch.float64, generator=g, requires_grad=True)
    assert torch.autograd.gradcheck(lean._GeluLinear.apply, (h, fc.weight, fc.bias))
    a = torch.randn(2, 2, 3, 3, dtype=torch.float64, generator=g, requires_grad=True)  # [B, H, N, hd]
    assert torch.autograd.gradcheck(lean._HeadsLinear.apply, (a, fc.weight, fc.bias))
    qkv = torch.randn(2, 3, 12, dtype=torch.float64, generator=g, requires_grad=True)  # 2 heads of 2
    assert torch.autograd.gradcheck(lambda t: lean._SplitHeads.apply(t, 2), (qkv,))


def test_lean_blocks_keep_fewer_activations():
    """What the user notices: less memory held for backward, at equal results."""
    cfg = {"image_size": 64, "patch_size": 8, "width": 64, "layers": 2, "heads": 4}
    stock, lean = _stock_and_lean(cfg)
    x = torch.randn(4, 3, 64, 64)

    def saved_bytes(model):
        weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
        seen = {}

        def pack(t):
            ptr = t.untyped_storage().data_ptr()
            if ptr not in weights:  # activations only (linear layers also save their weights)
                seen[ptr] = t.untyped_storage().nbytes()
            return t
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            model(x).sum()
        return sum(seen.values())

    a, b = saved_bytes(stock), saved_bytes(lean)
    # per block: 7 of the 17 [B, N, D]-sized tensors (D = LN outputs x2, head-merge copy x1,
    # GELU output x4) are no longer kept
    assert b < 0.7 * a, (a, b)
