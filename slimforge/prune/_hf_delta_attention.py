"""Kimi Delta Attention in Hugging Face transformers (Kimi Linear, Bailing hybrid, GLM-5 Next): linear attention whose
heads go whole, as softmax attention's do.

A head is its ``head_dim`` rows of ``q_proj``, ``k_proj``, ``v_proj`` (and their short ``conv1d`` channels) and of the
output gate, its ``b_proj`` row (the delta rule's beta), its channels of the forget gate (``f_b_proj`` / ``f_proj``
rows, ``dt_bias``, ``A_log``) and its columns of ``o_proj``. The chunked scan starts its state as
``zeros(batch, heads, head_dim, head_dim)``, which follows the heads (``built_heads``). ``sync`` recomputes
``num_heads``, ``qkv_dim`` and ``conv_dim`` from the sliced weights, in the attention and in its forget gate.

transformers is imported nowhere here: the modules are recognised by their attributes.
"""

from __future__ import annotations

from torch import nn

from slimforge.prune.attention import AttentionForm, _int, _linear, register_attention_form


def _forget_gate(module: nn.Module) -> bool:
    return (all(isinstance(getattr(module, p, None), nn.Parameter) for p in ("A_log", "dt_bias"))
            and all(_int(module, s) for s in ("num_heads", "head_dim", "qkv_dim"))
            and (_linear(module, "f_b_proj") or _linear(module, "f_proj")))


def _sync_forget_gate(module: nn.Module) -> dict[str, int]:
    module.qkv_dim = module.dt_bias.numel()
    module.num_heads = module.qkv_dim // module.head_dim
    return {}


def _delta_attention(module: nn.Module) -> bool:
    return (all(_linear(module, n) for n in ("q_proj", "k_proj", "v_proj", "o_proj", "b_proj"))
            and _forget_gate(getattr(module, "forget_gate", None) or nn.Module())
            and isinstance(getattr(module, "conv1d", None), nn.Conv1d)
            and all(_int(module, s) for s in ("num_heads", "head_dim", "qkv_dim", "conv_dim")))


def _sync_delta_attention(module: nn.Module) -> dict[str, int]:
    module.num_heads = module.b_proj.out_features
    module.qkv_dim = module.q_proj.out_features
    module.conv_dim = module.conv1d.weight.shape[0]
    return {}


register_attention_form("hf-delta-attention", AttentionForm(
    _delta_attention, lambda m: m.head_dim, _sync_delta_attention, built_heads=lambda m: m.num_heads),
    "Hugging Face Kimi Delta Attention (Kimi Linear, Bailing hybrid): linear attention with per-head beta and forget gate")
register_attention_form("hf-delta-forget-gate", AttentionForm(
    _forget_gate, lambda m: m.head_dim, _sync_forget_gate, part=True),
    "the per-head forget gate of Kimi Delta Attention (A_log per head, dt_bias per channel)")
