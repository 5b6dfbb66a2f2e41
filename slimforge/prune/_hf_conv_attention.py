"""Hugging Face ConvBERT's mixed attention (``ConvBertSelfAttention``): beside its self-attention heads, as many
span-based convolution heads, each a dynamic kernel (``conv_kernel_layer``, ``conv_kernel_size`` weights a head from
the query times a separable convolution of the keys) over a window of ``conv_out_layer``'s channels; the two halves
are concatenated per head for the output dense. Its own forward folds the heads into the batch
(``reshape(conv_kernel_layer, [-1, conv_kernel_size, 1])``), which hides them from the tracer, and concatenates the
halves with ``cat``, which would let each half lose different heads. The stand-in forward (same parameters, same
outputs) keeps the heads a dimension of their own and stacks the halves, so whole heads go from both at once
(query, key, value and the keys' pointwise convolution by ``attention_head_size`` channels; the kernel layer's
outputs by ``conv_kernel_size``). Used for the capture only: once ``sync`` has set the head count, the class's own
forward runs the pruned module.

transformers is imported nowhere here: the class is recognised by name.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from slimforge.prune.attention import (AttentionForm, NamedStandIn, Swap, _int, _linear, register_attention_form,
                                       register_stand_in)

_OWN = "ConvBertSelfAttention"
_STAND_IN = "PrunableConvBertSelfAttention"


def _matches(module: nn.Module) -> bool:
    return (type(module).__name__ in (_OWN, _STAND_IN)
            and all(_linear(module, n) for n in ("query", "key", "value", "conv_kernel_layer", "conv_out_layer"))
            and isinstance(getattr(module, "key_conv_attn_layer", None), nn.Module)
            and all(_int(module, n) for n in ("num_attention_heads", "attention_head_size", "conv_kernel_size")))


def _forward(self: nn.Module, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None,
             encoder_hidden_states: torch.Tensor | None = None, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    """transformers' ConvBertSelfAttention.forward with the heads a dimension of their own."""
    b, t = hidden_states.shape[:2]
    heads, d, k = self.num_attention_heads, self.attention_head_size, self.conv_kernel_size
    source = hidden_states if encoder_hidden_states is None else encoder_hidden_states
    query = self.query(hidden_states)
    key_conv = self.key_conv_attn_layer(hidden_states.transpose(1, 2)).transpose(1, 2)
    kernel = self.conv_kernel_layer(key_conv * query).view(b, t, heads, k, 1).softmax(dim=3)
    # unfold's windows as shifted copies stacked last (its channel-major (heads * d * k) rows hide the heads)
    padded = F.pad(self.conv_out_layer(hidden_states), (0, 0, (k - 1) // 2, k - 1 - (k - 1) // 2))
    windows = torch.stack([padded[:, j:j + t] for j in range(k)], dim=-1)  # (b, t, heads * d, k)
    conv_out = torch.matmul(windows.view(b, t, heads, d, k), kernel).reshape(b, t, heads, d)
    q = query.view(b, t, heads, d).transpose(1, 2)
    key = self.key(source).view(b, -1, heads, d).transpose(1, 2)
    value = self.value(source).view(b, -1, heads, d).transpose(1, 2)
    scores = torch.matmul(q, key.transpose(-1, -2)) / math.sqrt(d)
    if attention_mask is not None:
        scores = scores + attention_mask
    probs = self.dropout(scores.softmax(dim=-1))
    context = torch.matmul(probs, value).permute(0, 2, 1, 3)  # (b, t, heads, d)
    return torch.stack([context, conv_out], dim=2).reshape(b, t, 2 * heads * d), probs  # = cat along the heads


_STAND_IN_CLASS = NamedStandIn(_OWN, _forward, __name__, f"transformers' {_OWN}, heads kept a dimension of their own.")


def _runs_own_forward_no_more(module: nn.Module) -> bool:
    """Never: once ``sync`` has set its head count and ``all_head_size``, the class's own forward runs the pruned
    module (the stand-in is for the capture)."""
    return False


def _sync(module: nn.Module) -> dict[str, int]:
    module.num_attention_heads = module.query.out_features // module.attention_head_size
    module.all_head_size = module.num_attention_heads * module.attention_head_size
    # the config counts attention and convolution heads together: num_attention_heads // head_ratio per mechanism
    return {"num_attention_heads": module.num_attention_heads * getattr(module, "head_ratio", 1)}


register_attention_form("hf-convbert-attention", AttentionForm(_matches, lambda m: m.attention_head_size, _sync,
                                                                other_head_dims=lambda m: (m.conv_kernel_size,)),
                        "Hugging Face ConvBERT (self-attention and span-based convolution heads, pruned together; a "
                        "stand-in forward keeps the heads a dimension of their own)")
register_stand_in(f"transformers.models.convbert.modeling_convbert.{_OWN}",
                  Swap(_matches, _runs_own_forward_no_more, _STAND_IN_CLASS.use, lambda m, cls: setattr(m, "__class__", cls)))
