"""Hugging Face attention forms with layouts of their own (issue 20's fourth held-out pass): Persimmon's fused
``query_key_value`` viewed as (heads, 3, head_dim) without Falcon's flags, XLNet's (d_model, n_head, d_head)
projection parameters used through einsum, DeBERTa v1's fused ``in_proj`` viewed as (heads, 3 * head_size)
with per-head ``q_bias`` / ``v_bias``, and SqueezeBERT's 1x1 ``Conv1d`` query/key/value.

SqueezeBERT's default grouped convolutions (a group per head) keep their groups when pruned, so there each
head loses channels instead of whole heads going; with ungrouped convolutions whole heads go.
"""

from __future__ import annotations

from torch import nn

from slimforge.prune.attention import AttentionForm, _falcon_split_axis, _int, _linear, register_attention_form


def _persimmon_attention(module: nn.Module) -> bool:
    """Persimmon: Falcon's original layout (a fused ``query_key_value`` viewed as (heads, 3, head_dim)) with
    partial rotary embeddings and no Falcon flags."""
    return (_linear(module, "query_key_value") and _linear(module, "dense") and _int(module, "num_heads")
            and _int(module, "head_dim") and _int(module, "rotary_ndims") and not hasattr(module, "new_decoder_architecture")
            and module.query_key_value.out_features % (3 * module.head_dim) == 0)


def _persimmon_sync(module: nn.Module) -> dict[str, int]:
    module.num_heads = module.query_key_value.out_features // (3 * module.head_dim)
    return {"num_attention_heads": module.num_heads}


register_attention_form("hf-persimmon-attention", AttentionForm(_persimmon_attention, lambda m: m.head_dim, _persimmon_sync,
                                                                split_axis=_falcon_split_axis),
                        "Hugging Face Persimmon (fused query_key_value as (heads, 3, head_dim), partial rotary)")


XLNET_HEAD_WEIGHTS = ("q", "k", "v", "o", "r")  # (d_model, n_head, d_head) each, used through einsum


def _xlnet_attention(module: nn.Module) -> bool:
    """XLNet's relative attention: its projections are (d_model, n_head, d_head) parameters, the heads an axis
    of their own (no reshape to split), with per-head biases and segment embeddings."""
    weights = [getattr(module, n, None) for n in XLNET_HEAD_WEIGHTS]
    return (_int(module, "n_head") and _int(module, "d_head") and all(isinstance(w, nn.Parameter) and w.dim() == 3 for w in weights)
            and len({w.shape[1:] for w in weights}) == 1)


def _xlnet_sync(module: nn.Module) -> dict[str, int]:
    module.n_head = module.q.shape[1]
    return {"num_attention_heads": module.n_head}


register_attention_form("hf-xlnet-relative-attention", AttentionForm(
    _xlnet_attention, lambda m: m.d_head, _xlnet_sync, sources=lambda m: [(n, 1) for n in XLNET_HEAD_WEIGHTS if n != "o"]),
    "Hugging Face XLNet relative attention ((d_model, n_head, d_head) projections through einsum)")


def _deberta_v1_attention(module: nn.Module) -> bool:
    """DeBERTa (v1): a fused ``in_proj`` viewed as (heads, 3 * head_size) and chunked into q, k, v per head, with
    separate per-head ``q_bias`` / ``v_bias`` vectors."""
    return (_linear(module, "in_proj") and isinstance(getattr(module, "q_bias", None), nn.Parameter)
            and _int(module, "num_attention_heads") and _int(module, "attention_head_size") and _int(module, "all_head_size"))


def _deberta_v1_sync(module: nn.Module) -> dict[str, int]:
    module.num_attention_heads = module.q_bias.shape[0] // module.attention_head_size
    module.all_head_size = module.num_attention_heads * module.attention_head_size
    return {"num_attention_heads": module.num_attention_heads}


register_attention_form("hf-deberta-v1-attention", AttentionForm(
    _deberta_v1_attention, lambda m: m.attention_head_size, _deberta_v1_sync, other_head_dims=lambda m: (3 * m.attention_head_size,),
    built_heads=lambda m: m.num_attention_heads),  # its relative positions' gather index is expanded to the heads
    "Hugging Face DeBERTa v1 (fused in_proj as (heads, 3 * head_size), q_bias / v_bias)")


def _squeezebert_attention(module: nn.Module) -> bool:
    """SqueezeBERT: 1x1 ``nn.Conv1d`` query/key/value over (N, C, W), viewed as (N, heads, head_size, W)."""
    return (all(isinstance(getattr(module, n, None), nn.Conv1d) for n in ("query", "key", "value"))
            and _int(module, "num_attention_heads") and _int(module, "attention_head_size") and _int(module, "all_head_size"))


def _squeezebert_sync(module: nn.Module) -> dict[str, int]:
    if module.query.groups > 1:  # grouped convolutions keep their groups: heads stay, each loses channels
        module.attention_head_size = module.query.out_channels // module.num_attention_heads
    else:
        module.num_attention_heads = module.query.out_channels // module.attention_head_size
    module.all_head_size = module.num_attention_heads * module.attention_head_size
    return {"num_attention_heads": module.num_attention_heads}


register_attention_form("hf-squeezebert-attention", AttentionForm(_squeezebert_attention, lambda m: m.attention_head_size, _squeezebert_sync),
                        "Hugging Face SqueezeBERT (1x1 Conv1d query/key/value, heads over channels)")


def _neox_japanese_attention(module: nn.Module) -> bool:
    """GPT-NeoX-Japanese: a fused ``query_key_value`` viewed as (heads, 3 * head_size) with the head count from
    the module's own ``num_attention_heads`` (GPT-NeoX itself infers it, -1), partial rotary, a separate ``dense_bias``."""
    return (_linear(module, "query_key_value") and _linear(module, "dense") and _int(module, "num_attention_heads")
            and _int(module, "head_size") and _int(module, "rotary_ndims")
            and module.query_key_value.out_features % (3 * module.head_size) == 0)  # once pruned too, before its sync


def _neox_japanese_sync(module: nn.Module) -> dict[str, int]:
    module.num_attention_heads = module.query_key_value.out_features // (3 * module.head_size)
    return {"num_attention_heads": module.num_attention_heads}


register_attention_form("hf-neox-japanese-attention", AttentionForm(
    _neox_japanese_attention, lambda m: 3 * m.head_size, _neox_japanese_sync,  # a head's block of q, k and v rows, as GPT-NeoX's
    built_heads=lambda m: m.num_attention_heads, built_batch_heads=True),  # its scores start as zeros(batch * heads, q, k)
    "Hugging Face GPT-NeoX-Japanese (fused query_key_value as (heads, 3 * head_size), its own head count)")
