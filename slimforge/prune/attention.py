"""Attention forms whose whole heads can be pruned: how to find a module's head size, and how to
bring its attributes back in line after slicing.

The dependency tracer (:mod:`slimforge.prune._graph`) ties a head's query, key and value rows and
the matching output-projection columns into one unit when the attention's forward splits the
channel dimension into ``(..., heads, head_dim)``: the factor just before a block of
``head_dim`` channels is the head axis. After slicing, :func:`sync_attention` recomputes each
module's head count from its (sliced) weights, so its own ``forward`` keeps working; the head
dimension and the softmax scale never change.

A form is a small record in a registry: ``matches(module)``, ``head_dim(module)`` and
``sync(module)`` (which returns ``{"num_attention_heads": n, ...}`` for the model config). Add
one with :func:`register_attention_form`. Attention that derives its head size from its input
(``nn.MultiheadAttention``, torchvision's Swin/MaxViT) matches no form and stays whole.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from slimforge._registry import Registry


@dataclass(frozen=True)
class AttentionForm:
    """matches: is ``module`` this form; head_dim: channels per head (fixed by pruning);
    sync: update the head count (and dependent sizes) from the sliced weights, return config sizes."""

    matches: Callable[[nn.Module], bool]
    head_dim: Callable[[nn.Module], int]
    sync: Callable[[nn.Module], dict[str, int]]


ATTENTION_FORMS: Registry[AttentionForm] = Registry("attention form")


def register_attention_form(name: str, form: AttentionForm, help: str = "") -> AttentionForm:
    return ATTENTION_FORMS.register(name, help)(form)


def list_attention_forms() -> list[str]:
    return ATTENTION_FORMS.names()


def find_attention_form(module: nn.Module) -> AttentionForm | None:
    """The registered form ``module`` has, or None."""
    for name in ATTENTION_FORMS.names():
        form = ATTENTION_FORMS.get(name)
        if form.matches(module):
            return form
    return None


def head_axis(module: nn.Module, form: AttentionForm, sizes: list[int]) -> int | None:
    """Which factor of a split channel dimension (``sizes``, e.g. ``[3, heads, head_dim]``)
    counts heads: the one followed by exactly ``head_dim`` channels. None: not a head split."""
    hd = form.head_dim(module)
    for axis in range(len(sizes) - 1):
        if math.prod(sizes[axis + 1:]) == hd and sizes[axis] > 1:
            return axis
    return None


def sync_attention(model: nn.Module) -> dict[str, set[int]]:
    """After slicing: each attention module's head count from its weights; per config key, the
    values seen over all layers (a key with one value is uniform and can go into the config)."""
    sizes: dict[str, set[int]] = {}
    for module in model.modules():
        form = find_attention_form(module)
        if form is not None:
            for key, value in form.sync(module).items():
                sizes.setdefault(key, set()).add(value)
    return sizes


def _int(module: nn.Module, name: str) -> bool:
    value = getattr(module, name, None)
    return isinstance(value, int) and not isinstance(value, bool)


def _linear(module: nn.Module, name: str) -> bool:
    return isinstance(getattr(module, name, None), nn.Linear)


def _hf_conv1d(module: nn.Module, name: str) -> bool:
    """Hugging Face's ``Conv1D`` (GPT-2): a linear layer whose weight is (in, out), width in ``nf``."""
    layer = getattr(module, name, None)
    return type(layer).__name__ == "Conv1D" and _int(layer, "nf") and getattr(layer, "weight", None) is not None


# ----------------------------------------------------------------------------- forms


def _hf_self_attention(module: nn.Module) -> bool:
    sized = _int(module, "attention_head_size") or _int(module, "head_dim")
    return _int(module, "num_attention_heads") and sized and (_linear(module, "query") or _linear(module, "q_proj"))


def _hf_head_dim(module: nn.Module) -> int:
    return getattr(module, "attention_head_size", None) or module.head_dim


def _hf_sync(module: nn.Module) -> dict[str, int]:
    query = getattr(module, "query", None) or module.q_proj
    module.num_attention_heads = query.out_features // _hf_head_dim(module)
    if hasattr(module, "all_head_size"):
        module.all_head_size = query.out_features
    sizes = {"num_attention_heads": module.num_attention_heads}
    if _int(module, "num_key_value_heads") and _linear(module, "k_proj"):
        module.num_key_value_heads = module.k_proj.out_features // _hf_head_dim(module)
        sizes["num_key_value_heads"] = module.num_key_value_heads
    return sizes


register_attention_form("hf-self-attention", AttentionForm(_hf_self_attention, _hf_head_dim, _hf_sync),
                        "Hugging Face BERT/RoBERTa/ViT: num_attention_heads, attention_head_size, query/q_proj")


def _hf_grouped_query(module: nn.Module) -> bool:
    """Llama/Qwen2/Mistral-style: q/k/v/o projections, ``head_dim``, head counts only in the config."""
    return (not _int(module, "num_attention_heads") and _int(module, "head_dim")
            and all(_linear(module, n) for n in ("q_proj", "k_proj", "v_proj", "o_proj")))


def _hf_grouped_query_sync(module: nn.Module) -> dict[str, int]:
    # repeat_kv ties every query head to its key/value head, so whole groups go and
    # num_key_value_groups (query heads per key/value head) stays as it is.
    hd = module.head_dim
    return {"num_attention_heads": module.q_proj.out_features // hd, "num_key_value_heads": module.k_proj.out_features // hd}


register_attention_form("hf-grouped-query", AttentionForm(_hf_grouped_query, lambda m: m.head_dim, _hf_grouped_query_sync),
                        "Hugging Face Llama/Qwen2/Mistral (grouped-query): whole key/value groups")


def _gpt2_attention(module: nn.Module) -> bool:
    return (_hf_conv1d(module, "c_attn") and _hf_conv1d(module, "c_proj") and _int(module, "num_heads")
            and _int(module, "head_dim") and _int(module, "split_size") and not getattr(module, "is_cross_attention", False))


def _gpt2_sync(module: nn.Module) -> dict[str, int]:
    # As transformers' own (removed) GPT2Attention.prune_heads did: split_size and num_heads follow
    # the heads; embed_dim is the residual width and stays.
    width = module.c_attn.weight.shape[1] // 3
    module.num_heads = width // module.head_dim
    module.split_size = width
    return {"num_attention_heads": module.num_heads}


register_attention_form("hf-gpt2", AttentionForm(_gpt2_attention, lambda m: m.head_dim, _gpt2_sync),
                        "Hugging Face GPT-2 self-attention (Conv1D c_attn/c_proj)")


def _timm_attention(module: nn.Module) -> bool:
    """timm ``Attention`` (ViT, DeiT, EVA-style): fused qkv Linear, reshape to (B, N, 3, heads, head_dim)."""
    return (_linear(module, "qkv") and _linear(module, "proj") and _int(module, "num_heads")
            and _int(module, "head_dim") and _int(module, "attn_dim"))


def _timm_sync(module: nn.Module) -> dict[str, int]:
    module.num_heads = module.qkv.out_features // (3 * module.head_dim)
    module.attn_dim = module.num_heads * module.head_dim
    return {}  # timm models have no config object to update


register_attention_form("timm-attention", AttentionForm(_timm_attention, lambda m: m.head_dim, _timm_sync),
                        "timm Attention (ViT, DeiT): fused qkv, num_heads, head_dim, attn_dim")


def _timm_window_attention(module: nn.Module) -> bool:
    """timm Swin ``WindowAttention``: fused qkv, a relative position bias table with one column per head."""
    table = getattr(module, "relative_position_bias_table", None)
    return (_linear(module, "qkv") and _linear(module, "proj") and _int(module, "num_heads")
            and not _int(module, "attn_dim") and isinstance(table, nn.Parameter) and table.dim() == 2)


def _window_head_dim(module: nn.Module) -> int:
    return module.qkv.out_features // (3 * module.num_heads)


def _window_sync(module: nn.Module) -> dict[str, int]:
    module.num_heads = module.relative_position_bias_table.shape[1]
    return {}


register_attention_form("timm-window-attention", AttentionForm(_timm_window_attention, _window_head_dim, _window_sync),
                        "timm Swin WindowAttention (relative position bias per head)")
