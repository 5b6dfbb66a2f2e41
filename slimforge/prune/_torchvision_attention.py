"""torchvision's Swin v2 attention (``ShiftedWindowAttentionV2``, ``swin_v2_t``/``_s``/``_b``): whole heads
(:mod:`slimforge.prune.attention`).

torchvision computes its head size as the input's width // ``num_heads``, as Swin v1 does; v2 adds cosine
attention with a learned ``logit_scale`` per head and a continuous position bias, an MLP (``cpb_mlp``) with
one output per head. The stand-in runs v1's stand-in forward (head size from the weights) with v2's scores;
the tracer ties ``logit_scale`` and the MLP's last layer to the heads they scale and bias.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.swin_transformer import ShiftedWindowAttentionV2

from slimforge.prune.attention import AttentionForm, PrunableShiftedWindowAttention, _stand_in, register_attention_form


class PrunableShiftedWindowAttentionV2(PrunableShiftedWindowAttention, ShiftedWindowAttentionV2):
    """torchvision's Swin v2 ``ShiftedWindowAttentionV2`` whose head size comes from its weights. Same
    parameters, same outputs. x: (B, H, W, C) -> (B, H, W, C)."""

    def _scores(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Cosine scores times each head's clamped ``logit_scale``, plus v2's position bias (16 * sigmoid)."""
        head_dim = self.qkv.out_features // (3 * self.num_heads)
        bias = self.qkv.bias
        if bias is not None:  # torchvision zeroes the key bias at run time: a mask over (q/k/v, heads, head_dim),
            # which the tracer reads as heads (slicing out the key third would pin the bias whole)
            mask = x.new_tensor([1.0, 0.0, 1.0]).view(3, 1, 1)
            bias = (bias.view(3, self.num_heads, head_dim) * mask).flatten()
        qkv = F.linear(x, self.qkv.weight, bias)
        q, k, v = qkv.reshape(x.size(0), x.size(1), 3, self.num_heads, head_dim).permute(2, 0, 3, 1, 4)
        attn = F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1)
        attn = attn * torch.clamp(self.logit_scale, max=math.log(100.0)).exp()
        return attn + self.get_relative_position_bias(), v


def _logit_scale_heads(module: nn.Module) -> int:
    return module.logit_scale.shape[0]


_matches, _sync = _stand_in(ShiftedWindowAttentionV2, PrunableShiftedWindowAttentionV2, "qkv", "num_heads", _logit_scale_heads)

register_attention_form(
    "torchvision-window-attention-v2",
    AttentionForm(_matches, lambda m: m.qkv.out_features // (3 * m.num_heads), _sync),
    "torchvision Swin v2 ShiftedWindowAttentionV2: whole heads, logit_scale and position-bias MLP outputs per head",
)
