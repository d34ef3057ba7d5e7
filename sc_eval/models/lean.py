"""Memory-lean transformer blocks for training: same maths, same gradients, fewer saved tensors.

Why: activations saved for backward are most of a ViT's training memory at useful batch sizes
(more than its weights, gradients and AdamW moments together), and autograd saves several
tensors that are cheap functions of others it also keeps:

- the LayerNorm output (``norm1``/``norm2``) that feeds ``qkv``/``fc1`` is saved next to the
  LayerNorm input, mean and rstd, from which it is recomputed exactly;
- the GELU output that feeds ``fc2`` is saved next to the GELU input;
- the head-merged attention output that feeds ``proj`` is a transposed copy of the SDPA output,
  which SDPA saves anyway.

Three autograd Functions below save only the second tensor of each pair and recompute the
first in backward with the same kernels, so forward values and every gradient are bitwise those
of the stock modules (tests/test_pretrain_loss.py checks it). That removes 7 of the ~17
[B, N, D]-sized tensors saved per block, about a third of the saved activations, for three
elementwise recomputations (figures: benchmarks/README.md, ``pretrain_step.py``). A fourth,
``split_heads``, only assembles the q/k/v gradient with one copy instead of a strided stack
plus a copy. ``lean_blocks`` swaps timm ``Block``s for ``LeanBlock``s that own
the same submodules, so state-dict keys, checkpoints and exports are unchanged.

Mixed precision follows autocast's rules explicitly (autocast is switched off inside): the
linear layers run in the autocast dtype on casts of the fp32 weights, LayerNorm and the
residual stream stay fp32, GELU runs in its input's dtype.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _amp(t: torch.Tensor):
    """(device type, autocast dtype or None) for a tensor's device."""
    dev = t.device.type
    return dev, (torch.get_autocast_dtype(dev) if torch.is_autocast_enabled(dev) else None)


def _cast(t, dt):
    return t if dt is None or t is None or t.dtype == dt else t.to(dt)


def _linear_backward(g2d, inp2d, weight, need_input: bool, has_bias: bool):
    """The gradients autograd's addmm backward produces for ``F.linear`` (same products)."""
    gw = g2d.t().mm(inp2d)
    gb = g2d.sum(0) if has_bias else None
    gi = g2d.mm(weight) if need_input else None
    return gi, gw, gb


def _param_grad(g, p):
    return None if g is None else g.to(p.dtype)


class _NormLinear(torch.autograd.Function):
    """``linear(layer_norm(x))`` saving x, mean and rstd but not the normalised x."""

    @staticmethod
    def forward(ctx, x, ln_w, ln_b, eps, w, b):
        dev, dt = _amp(x)
        with torch.autocast(dev, enabled=False):
            y_ln, mean, rstd = torch.native_layer_norm(x, (x.shape[-1],), ln_w, ln_b, eps)
            out = F.linear(_cast(y_ln, dt), _cast(w, dt), _cast(b, dt))
        ctx.save_for_backward(x, mean, rstd, ln_w, ln_b, w)
        ctx.eps, ctx.dt, ctx.dev, ctx.has_bias = eps, dt, dev, b is not None
        return out

    @staticmethod
    def backward(ctx, g):
        x, mean, rstd, ln_w, ln_b, w = ctx.saved_tensors
        with torch.autocast(ctx.dev, enabled=False):
            # The normalised input, recomputed from the saved statistics' kernel: same bits.
            y_ln = torch.native_layer_norm(x, (x.shape[-1],), ln_w, ln_b, ctx.eps)[0]
            y_in = _cast(y_ln, ctx.dt)
            d = x.shape[-1]
            g2d = g.reshape(-1, g.shape[-1])
            gi, gw, gb = _linear_backward(g2d, y_in.reshape(-1, d), _cast(w, ctx.dt), True, ctx.has_bias)
            g_ln = gi.reshape(x.shape).to(y_ln.dtype)
            gx, gln_w, gln_b = torch.ops.aten.native_layer_norm_backward(
                g_ln, x, (d,), mean, rstd, ln_w, ln_b, [True, ln_w is not None, ln_b is not None])
        return gx, gln_w, gln_b, None, _param_grad(gw, w), _param_grad(gb, w)


class _GeluLinear(torch.autograd.Function):
    """``linear(gelu(h))`` saving h but not gelu(h)."""

    @staticmethod
    def forward(ctx, h, w, b):
        dev, dt = _amp(h)
        with torch.autocast(dev, enabled=False):
            out = F.linear(_cast(F.gelu(h), dt), _cast(w, dt), _cast(b, dt))
        ctx.save_for_backward(h, w)
        ctx.dt, ctx.dev, ctx.has_bias = dt, dev, b is not None
        return out

    @staticmethod
    def backward(ctx, g):
        h, w = ctx.saved_tensors
        with torch.autocast(ctx.dev, enabled=False):
            a = _cast(F.gelu(h), ctx.dt)
            g2d = g.reshape(-1, g.shape[-1])
            ga, gw, gb = _linear_backward(g2d, a.reshape(-1, a.shape[-1]), _cast(w, ctx.dt), True, ctx.has_bias)
            gh = torch.ops.aten.gelu_backward(ga.reshape(a.shape).to(h.dtype), h)
        return gh, _param_grad(gw, w), _param_grad(gb, w)


class _HeadsLinear(torch.autograd.Function):
    """``linear(merge_heads(a))`` for the SDPA output a [B, H, N, hd], saving a itself (which
    SDPA already keeps) instead of its head-merged copy."""

    @staticmethod
    def forward(ctx, a, w, b):
        dev, dt = _amp(a)
        bsz, heads, n, hd = a.shape
        with torch.autocast(dev, enabled=False):
            out = F.linear(_cast(a.transpose(1, 2).reshape(bsz, n, heads * hd), dt), _cast(w, dt), _cast(b, dt))
        ctx.save_for_backward(a, w)
        ctx.dt, ctx.dev, ctx.has_bias = dt, dev, b is not None
        return out

    @staticmethod
    def backward(ctx, g):
        a, w = ctx.saved_tensors
        bsz, heads, n, hd = a.shape
        with torch.autocast(ctx.dev, enabled=False):
            merged = _cast(a.transpose(1, 2).reshape(bsz * n, heads * hd), ctx.dt)
            g2d = g.reshape(-1, g.shape[-1])
            gm, gw, gb = _linear_backward(g2d, merged, _cast(w, ctx.dt), True, ctx.has_bias)
            ga = gm.reshape(bsz, n, heads, hd).transpose(1, 2).to(a.dtype)
        return ga, _param_grad(gw, w), _param_grad(gb, w)


class _SplitHeads(torch.autograd.Function):
    """qkv [B, N, 3*H*hd] -> q, k, v views [B, H, N, hd] (what timm's reshape/permute/unbind
    gives). Only the backward differs: the three gradients are written straight into one
    [B, N, 3, H, hd] buffer, where autograd's unbind + permute + reshape would first stack them
    (a slow strided cat) and then copy the result again. Pure copies: the same values."""

    @staticmethod
    def forward(ctx, qkv, heads):
        b, n, c3 = qkv.shape
        ctx.shape = (b, n, 3, heads, c3 // (3 * heads))
        q, k, v = qkv.view(ctx.shape).permute(2, 0, 3, 1, 4).unbind(0)
        return q, k, v

    @staticmethod
    def backward(ctx, gq, gk, gv):
        b, n = ctx.shape[:2]
        ref = next(g for g in (gq, gk, gv) if g is not None)
        out = ref.new_empty(ctx.shape)
        for i, g in enumerate((gq, gk, gv)):
            if g is None:
                out[:, :, i].zero_()
            else:
                out[:, :, i].copy_(g.transpose(1, 2))
        return out.view(b, n, -1), None


def split_heads(qkv, heads: int):
    return _SplitHeads.apply(qkv, heads)


def norm_linear(x, norm: nn.LayerNorm, linear: nn.Linear):
    return _NormLinear.apply(x, norm.weight, norm.bias, norm.eps, linear.weight, linear.bias)


def gelu_linear(h, linear: nn.Linear):
    return _GeluLinear.apply(h, linear.weight, linear.bias)


def heads_linear(a, linear: nn.Linear):
    return _HeadsLinear.apply(a, linear.weight, linear.bias)


class LeanBlock(nn.Module):
    """A timm pre-LN ``Block`` (LayerNorm, SDPA attention, GELU MLP) computed with the lean
    Functions. Holds the original submodules under their original names."""

    def __init__(self, block: nn.Module):
        super().__init__()
        self.norm1, self.attn, self.norm2, self.mlp = block.norm1, block.attn, block.norm2, block.mlp
        self.ls1, self.drop_path1, self.ls2, self.drop_path2 = block.ls1, block.drop_path1, block.ls2, block.drop_path2

    @staticmethod
    def supports(block: nn.Module) -> bool:
        """Only the exact layout whose maths the Functions reproduce (else keep timm's block)."""
        ident = lambda m: isinstance(m, nn.Identity)  # noqa: E731
        # Optional norms that a timm release may not have at all (no attn.norm before 1.0.16):
        # absent is the same as Identity.
        opt = lambda m, name: getattr(m, name, nn.Identity())  # noqa: E731
        attn, mlp = getattr(block, "attn", None), getattr(block, "mlp", None)
        try:
            return isinstance(block.norm1, nn.LayerNorm) and isinstance(block.norm2, nn.LayerNorm) \
                and block.norm1.elementwise_affine and block.norm2.elementwise_affine \
                and all(ident(m) for m in (block.ls1, block.ls2, block.drop_path1, block.drop_path2,
                                           opt(attn, "q_norm"), opt(attn, "k_norm"), opt(attn, "norm"),
                                           opt(mlp, "norm"))) \
                and getattr(attn, "gate", None) is None and attn.attn_drop.p == 0 and attn.proj_drop.p == 0 \
                and type(mlp.act) is nn.GELU and mlp.act.approximate == "none" \
                and mlp.drop1.p == 0 and mlp.drop2.p == 0 and getattr(attn, "fused_attn", True)
        except AttributeError:
            return False

    def forward(self, x, attn_mask=None, is_causal: bool = False):
        attn, mlp = self.attn, self.mlp
        b, n, _ = x.shape
        q, k, v = split_heads(norm_linear(x, self.norm1, attn.qkv), attn.num_heads)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=is_causal)
        x = x + heads_linear(a, attn.proj)
        return x + gelu_linear(norm_linear(x, self.norm2, mlp.fc1), mlp.fc2)


def lean_blocks(tower: nn.Module) -> int:
    """Replace the supported blocks of a timm ViT in place; returns how many were replaced."""
    blocks = getattr(tower, "blocks", None)
    if blocks is None:
        return 0
    n = 0
    for i, blk in enumerate(blocks):
        if not isinstance(blk, LeanBlock) and LeanBlock.supports(blk):
            blocks[i] = LeanBlock(blk)
            n += 1
    return n
