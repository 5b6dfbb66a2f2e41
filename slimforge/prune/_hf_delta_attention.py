"""Linear attention in Hugging Face transformers whose heads go whole, as softmax attention's do: Kimi Delta Attention
(Kimi Linear, Bailing hybrid, GLM-5 Next) and Gated DeltaNet (Qwen3-Next, Qwen3.5, OLMo hybrid).

Kimi: a head is its ``head_dim`` rows of ``q_proj``, ``k_proj``, ``v_proj`` (and their short ``conv1d`` channels) and of
the output gate, its ``b_proj`` row (the delta rule's beta), its channels of the forget gate (``f_b_proj`` / ``f_proj``
rows, ``dt_bias``, ``A_log``) and its columns of ``o_proj``. The chunked scan starts its state as
``zeros(batch, heads, head_dim, head_dim)``, which follows the heads (``built_heads``). ``sync`` recomputes
``num_heads``, ``qkv_dim`` and ``conv_dim`` from the sliced weights, in the attention and in its forget gate.

Gated DeltaNet: each key head serves ``num_v_heads // num_k_heads`` value heads (``repeat_interleave`` in the scan),
so a key head goes with its value heads, and every layer keeps the ratio. Its forward splits the fused q/k/v channels at
``key_dim`` and ``value_dim`` (``fused``), which ``sync`` recomputes with both head counts and ``conv_dim``.

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


# ----------------------------------------------------------------------------- Gated DeltaNet


_GATED_DELTA_SIZES = ("num_k_heads", "num_v_heads", "head_k_dim", "head_v_dim", "key_dim", "value_dim", "conv_dim")


def _gated_delta_output(module: nn.Module) -> nn.Module | None:
    return next((getattr(module, n) for n in ("out_proj", "o_proj") if _linear(module, n)), None)


def _gated_delta_net(module: nn.Module) -> bool:
    """Gated DeltaNet (Qwen3-Next, Qwen3.5, OLMo hybrid): ``in_proj_qkv`` ([q; k; v] rows) with ``in_proj_z``,
    ``in_proj_b`` and ``in_proj_a`` (one row per value head); or Qwen3-Next's ``in_proj_qkvz`` and ``in_proj_ba`` (rows
    grouped per key head); or OLMo's ``q_proj``, ``k_proj``, ``v_proj``, ``a_proj``, ``b_proj`` and ``g_proj``. Then a
    depthwise ``conv1d`` over the q/k/v channels, ``A_log`` and ``dt_bias`` per value head, and an output projection
    (``out_proj`` or ``o_proj``) over the value heads."""
    projections = (all(_linear(module, n) for n in ("in_proj_qkv", "in_proj_z", "in_proj_b", "in_proj_a"))
                   or all(_linear(module, n) for n in ("in_proj_qkvz", "in_proj_ba"))
                   or all(_linear(module, n) for n in ("q_proj", "k_proj", "v_proj", "a_proj", "b_proj")))
    return (projections and _gated_delta_output(module) is not None
            and isinstance(getattr(module, "conv1d", None), nn.Conv1d)
            and all(isinstance(getattr(module, p, None), nn.Parameter) for p in ("A_log", "dt_bias"))
            and all(_int(module, s) for s in _GATED_DELTA_SIZES))


def _sync_gated_delta_net(module: nn.Module) -> dict[str, int]:
    # Each key head serves num_v_heads // num_k_heads value heads (repeat_interleave): whole groups go, the ratio stays.
    module.num_v_heads = module.A_log.numel()
    module.value_dim = _gated_delta_output(module).in_features
    if _linear(module, "in_proj_qkv"):
        module.key_dim = (module.in_proj_qkv.out_features - module.value_dim) // 2
    elif _linear(module, "in_proj_qkvz"):
        module.key_dim = (module.in_proj_qkvz.out_features - 2 * module.value_dim) // 2
    else:
        module.key_dim = module.q_proj.out_features
    module.num_k_heads = module.key_dim // module.head_k_dim
    module.conv_dim = module.conv1d.weight.shape[0]
    return {"linear_num_key_heads": module.num_k_heads, "linear_num_value_heads": module.num_v_heads}


def _gated_delta_head_dims(module: nn.Module) -> tuple[int, ...]:
    """Per-head sizes besides ``head_k_dim``: a value head's; Qwen3-Next's per-key-head groups of q, k, v and z rows
    and of b and a rows."""
    per_group = module.num_v_heads // module.num_k_heads
    return (module.head_v_dim, 2 * module.head_k_dim + 2 * per_group * module.head_v_dim, 2 * per_group)


register_attention_form("hf-gated-delta-net", AttentionForm(
    _gated_delta_net, lambda m: m.head_k_dim, _sync_gated_delta_net, fused=True,
    other_head_dims=_gated_delta_head_dims, built_heads=lambda m: m.num_v_heads),
    "Hugging Face Gated DeltaNet (Qwen3-Next, Qwen3.5, OLMo hybrid): linear attention whose key heads go whole with "
    "their value heads")
