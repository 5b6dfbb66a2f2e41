"""Attention forms for timm's hierarchical models whose attention sits in a convolutional or pooled
stage: MetaFormer's ``Attention`` (CAFormer), Visformer's ``Attention`` (1x1 convolutions), Hiera's
``MaskUnitAttention``, SAM2's Hiera ``MultiScaleAttention`` and MobileNetV4's ``MultiQueryAttention2d`` (:mod:`slimforge.prune._timm_attention`
explains forms and stand-ins).

* Visformer reshapes to ``(B, 3, heads, head_dim, -1)`` and back with ``-1``, SAM2 to
  ``(B, N, 3, heads, -1)``: their own forwards run with fewer heads once ``num_heads`` is set;
* MetaFormer reshapes its output to the input's width ``C``, Hiera to ``dim_out``: while pruning and
  in the pruned model they run a stand-in whose forward reads the width from the heads.

timm is imported nowhere here: classes are recognised by module and name.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from slimforge.prune._timm_attention import TimmFamily, _attend, _merge_heads, _split_qkv, is_timm, register_timm_family


def _metaformer_forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """timm.models.metaformer.Attention.forward. x: (B, N, dim) -> (B, N, dim)."""
    q, k, v = _split_qkv(self, self.qkv(x))
    return _merge_heads(self, _attend(self, q, k, v))


def _metaformer_after(m: nn.Module) -> None:
    m.attention_dim = m.num_heads * m.head_dim


register_timm_family("timm-metaformer-attention",
                     TimmFamily("models.metaformer", "Attention", forward=_metaformer_forward, after=_metaformer_after),
                     "timm MetaFormer Attention (CAFormer's attention stages): fused qkv, head_dim fixed, attention_dim")

register_timm_family("timm-visformer-attention", TimmFamily("models.visformer", "Attention"),
                     "timm Visformer Attention: fused 1x1-convolution qkv, reshaped with num_heads and head_dim")


# ----------------------------------------------------------------------------- Hiera


def _hiera_forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """timm.models.hiera.MaskUnitAttention.forward with the heads' width read from the module
    (timm reshapes to ``dim_out``, the block's width). x: (B, N, dim) -> (B, N', dim_out)."""
    B, N, _ = x.shape
    heads, hd = self.heads, self.head_dim
    if self.use_mask_unit_attn:
        windows = N // (self.q_stride * self.window_size)
        q, k, v = self.qkv(x).reshape(B, -1, windows, 3, heads, hd).permute(3, 0, 4, 2, 1, 5).unbind(0)
        if self.q_stride > 1:
            q = q.view(B, heads, windows, self.q_stride, -1, hd).amax(dim=3)
    else:
        q, k, v = self.qkv(x).reshape(B, N, 3, heads, hd).permute(2, 0, 3, 1, 4).unbind(0)
        if self.q_stride > 1:
            q = q.view(B, heads, self.q_stride, -1, hd).amax(dim=2)
        q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
    if self.fused_attn:
        x = F.scaled_dot_product_attention(q, k, v)
    else:
        x = ((q * self.scale) @ k.transpose(-1, -2)).softmax(dim=-1) @ v
    x = x.transpose(1, 3) if self.use_mask_unit_attn else x.transpose(1, 2)
    return self.proj(x.reshape(B, -1, heads * hd))


class _HieraFamily(TimmFamily):
    """Hiera names its head count ``heads`` (``num_heads`` is set too, once synced) and its
    heads' width ``dim_out``, which is also the block's width when no head is pruned."""

    def matches(self, module: nn.Module) -> bool:
        return is_timm(module, self.where, self.name) and isinstance(getattr(module, "heads", None), int) and self.layer(module) is not None

    def pruned(self, module: nn.Module) -> bool:
        return module.qkv.out_features != 3 * module.dim_out

    def single_head(self, module: nn.Module) -> list[tuple[str, int]]:
        return [("qkv.weight", 0)] if module.heads == 1 else []


def _hiera_after(m: nn.Module) -> None:
    m.heads = m.num_heads


register_timm_family("timm-hiera-attention",
                     _HieraFamily("models.hiera", "MaskUnitAttention", forward=_hiera_forward, after=_hiera_after),
                     "timm Hiera MaskUnitAttention (mask-unit or global attention, query pooling): fused qkv")


register_timm_family("timm-sam2-attention",
                     TimmFamily("models.hieradet_sam2", "MultiScaleAttention", head_dim=lambda m: round(m.scale ** -2)),
                     "timm SAM2 Hiera MultiScaleAttention: fused qkv reshaped with num_heads and -1 (head size from its scale)")


# MobileNetV4's hybrid blocks: query heads from 1x1 convolutions, one key and one value head shared by all (multi-query);
# its own forward reshapes with num_heads and key_dim, and its output with the value width times num_heads.
register_timm_family(
    "timm-multi-query-attention-2d",
    TimmFamily("layers.attention2d", "MultiQueryAttention2d", query="query.proj", per_head=1, head_dim=lambda m: m.key_dim,
               heads=lambda m: m.query.proj.weight.shape[0] // m.key_dim, other_head_dims=lambda m: (m.value_dim,),
               keep=("key.proj", "value.proj")),
    "timm MultiQueryAttention2d (MobileNetV4 hybrid: query heads go, the one key/value head stays whole)",
)


# BoTNet's and HaloNet's self-attention: 1x1-convolution projections, heads folded into the batch, no output
# projection (the values' width is the module's output); their own forwards read num_heads, dim_out_qk, dim_out_v.
def _bottleneck_after(m: nn.Module) -> None:
    m.dim_out_qk, m.dim_out_v = m.num_heads * m.dim_head_qk, m.num_heads * m.dim_head_v


register_timm_family(
    "timm-bottleneck-attention",
    TimmFamily("layers.bottleneck_attn", "BottleneckAttn", per_head=1, head_dim=lambda m: m.dim_head_qk,
               heads=lambda m: m.qkv.weight.shape[0] // (2 * m.dim_head_qk + m.dim_head_v), after=_bottleneck_after,
               other_head_dims=lambda m: (m.dim_head_v,), adaptive_splits=True),
    "timm BottleneckAttn (BoTNet: q, k and v stacked in one 1x1 convolution, relative position logits per head size)",
)
register_timm_family(
    "timm-halo-attention",
    TimmFamily("layers.halo_attn", "HaloAttn", query="q", per_head=1, head_dim=lambda m: m.dim_head_qk,
               heads=lambda m: m.q.weight.shape[0] // m.dim_head_qk, after=_bottleneck_after,
               other_head_dims=lambda m: (m.dim_head_v, m.dim_head_qk + m.dim_head_v), adaptive_splits=True),
    "timm HaloAttn (HaloNet: blocked local attention over halo windows, k and v per head in one 1x1 convolution)",
)


def _lowformer_after(m: nn.Module) -> None:
    m.o_proj_inpdim = m.num_heads * m.head_dim  # its forward merges the heads to this width for o_proj


register_timm_family("timm-lowformer-attention",
                     TimmFamily("models.lowformer", "ConvAttention", query="pwise", per_head=1,
                                head_dim=lambda m: m.num_keys * m.head_dim,  # a head's q, k and v together
                                other_head_dims=lambda m: (m.head_dim,), after=_lowformer_after),
                     "timm LowFormer ConvAttention: a 1x1-convolution qkv (pwise) reshaped to (N, heads, 3 * head_dim, hw), "
                     "heads merged to o_proj_inpdim")
