"""Hugging Face multi-head latent attention (MLA: DeepSeek-V2/V3, MiniCPM3, Kimi-K2 style), issue 20's sixth
held-out pass.

Queries come from ``q_proj`` (or ``q_b_proj`` after a low-rank ``q_a_proj``), viewed as (heads, qk_head_dim) with
qk_head_dim = qk_nope_head_dim + qk_rope_head_dim; keys and values from one shared latent, ``kv_b_proj``'s output
viewed as (heads, qk_nope_head_dim + v_head_dim), the rotary key part shared by every head (expanded to the head
count); ``o_proj`` takes (heads, v_head_dim). A head is its rows of ``q_(b_)proj`` and ``kv_b_proj`` and its columns
of ``o_proj``; the latents (``q_a_proj``, ``kv_a_proj_with_mqa``) have no heads. The forward views with ``-1``
heads, so ``sync`` only recomputes the count; every per-head size stays.
"""

from __future__ import annotations

from torch import nn

from slimforge.prune.attention import AttentionForm, _int, _linear, register_attention_form


def _queries(module: nn.Module) -> nn.Linear:
    return module.q_proj if _linear(module, "q_proj") else module.q_b_proj


def _latent_attention(module: nn.Module) -> bool:
    return (all(_linear(module, n) for n in ("kv_a_proj_with_mqa", "kv_b_proj", "o_proj"))
            and (_linear(module, "q_proj") or _linear(module, "q_b_proj"))
            and all(_int(module, n) for n in ("num_heads", "qk_head_dim", "qk_nope_head_dim", "v_head_dim")))


def _latent_sync(module: nn.Module) -> dict[str, int]:
    module.num_heads = _queries(module).out_features // module.qk_head_dim
    sizes = {"num_attention_heads": module.num_heads}
    if _linear(module, "q_a_proj") and _int(module, "q_lora_rank"):  # the query latent's width can shrink too
        module.q_lora_rank = sizes["q_lora_rank"] = module.q_a_proj.out_features
    config = getattr(module, "config", None)
    if getattr(module, "num_key_value_groups", None) == 1 and config is not None and isinstance(getattr(config, "num_key_value_heads", None), int):
        sizes["num_key_value_heads"] = module.num_heads  # MLA's configs give as many key/value heads as query heads
    return sizes


register_attention_form(
    "hf-latent-attention",
    AttentionForm(_latent_attention, lambda m: m.qk_head_dim, _latent_sync,
                  other_head_dims=lambda m: (m.v_head_dim, m.qk_nope_head_dim + m.v_head_dim),
                  built_heads=lambda m: m.num_heads),  # the shared rotary key expanded to every head
    "Hugging Face multi-head latent attention (DeepSeek-V2/V3, MiniCPM3): q(_b)_proj, kv_b_proj, o_proj",
)
