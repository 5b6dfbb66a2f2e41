"""Capture of attention over packed variable-length segments (Qwen2-VL's vision tower and the ~35 vision and audio
towers transformers built after it: every image's patches are packed into one sequence, ``cu_seqlens`` marks where
each image starts, and attention runs per image).

Their SDPA and eager paths split the packed sequence at ``cu_seqlens.tolist()``, a count of pieces the data decides,
which torch.export cannot capture (not even along the example's branch). Their flash-attention path hands
``cu_seqlens`` to the attention function instead. While a model is captured, the configs of modules whose forward
takes ``cu_seqlens`` name a flash-style attention function of slimforge's own (registered with transformers'
``AttentionInterface``): one SDPA over the packed sequence with a block-diagonal mask, so each patch attends within its
own image as before. Which channels belong together is all the capture is for; the pruned model runs its own
implementation afterwards and is checked eagerly as always.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import sys
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

CAPTURE_IMPLEMENTATION = "slimforge_flash_capture"  # "flash" in the name: transformers then passes cu_seqlens on


def _segment_attention(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                       attention_mask: torch.Tensor | None, scaling: float | None = None, dropout: float = 0.0,
                       cu_seq_lens_q: torch.Tensor | None = None, cu_seq_lens_k: torch.Tensor | None = None,
                       is_causal: bool | None = None, **kwargs: Any) -> tuple[torch.Tensor, None]:
    """(batch, heads, tokens, head_dim) in; (batch, tokens, heads, head_dim) out, as transformers' flash functions."""
    if key.shape[1] != query.shape[1]:  # grouped key/value heads
        key = key.repeat_interleave(query.shape[1] // key.shape[1], dim=1)
        value = value.repeat_interleave(query.shape[1] // value.shape[1], dim=1)
    mask = attention_mask
    if cu_seq_lens_q is not None:
        positions = torch.arange(query.shape[2], device=query.device)
        segment_q = torch.searchsorted(cu_seq_lens_q[1:].contiguous(), positions, right=True)
        cu_k = cu_seq_lens_k if cu_seq_lens_k is not None else cu_seq_lens_q
        segment_k = torch.searchsorted(cu_k[1:].contiguous(), torch.arange(key.shape[2], device=key.device), right=True)
        mask = segment_q[:, None] == segment_k[None, :]
    causal = bool(is_causal if is_causal is not None else getattr(module, "is_causal", False)) and mask is None
    out = F.scaled_dot_product_attention(query, key, value, attn_mask=mask, scale=scaling, is_causal=causal)
    return out.transpose(1, 2).contiguous(), None


def takes_cu_seqlens(module: nn.Module) -> bool:
    """The module's forward takes ``cu_seqlens``: attention over packed segments."""
    return "cu_seqlens" in forward_parameters(type(module))


@functools.lru_cache(maxsize=None)
def forward_parameters(cls: type) -> frozenset[str]:
    """The parameter names of ``cls.forward`` (looked up once per class: every capture asks of every module)."""
    try:
        return frozenset(inspect.signature(cls.forward).parameters)
    except (TypeError, ValueError):
        return frozenset()


@contextlib.contextmanager
def packed_segments_as_flash(model: nn.Module) -> Iterator[None]:
    """While capturing ``model``: modules whose forward takes ``cu_seqlens`` (and reads an attention implementation
    from their config) use :func:`_segment_attention`; their configs get their implementation back afterwards."""
    transformers = sys.modules.get("transformers")
    configs = {}
    if transformers is not None:
        for module in model.modules():
            config = getattr(module, "config", None)
            if (takes_cu_seqlens(module) and config is not None and hasattr(config, "_attn_implementation")
                    and id(config) not in configs and "flash" not in str(config._attn_implementation)):
                configs[id(config)] = (config, config._attn_implementation)
    if not configs:
        yield
        return
    from transformers import AttentionInterface

    AttentionInterface.register(CAPTURE_IMPLEMENTATION, _segment_attention)
    try:
        for config, _ in configs.values():
            config._attn_implementation = CAPTURE_IMPLEMENTATION
        yield
    finally:
        for config, own in configs.values():
            config._attn_implementation = own
