"""Hugging Face attention forms of older or one-off layouts (issue 20's fifth held-out pass): XLM's and CTRL's
separate query/key/value projections under their own names, OpenAI GPT's fused ``Conv1D`` whose head size its
forward derives as width // n_head, ModernBERT's fused ``Wqkv`` viewed as (3, heads, head_dim), and Hiera's
fused ``qkv`` merged back to a width it keeps in ``hidden_size_output`` (seventh pass), and Perceiver's query, key and
value whose per-head sizes differ (``qk_channels_per_head``, ``v_channels_per_head``; eighth pass), and CPM-Ant's
projections with a position bias shared by all layers; and the speech Conformers' (ninth pass).

Each form only recomputes the head count from the sliced weights; the head size never changes.
"""

from __future__ import annotations

from torch import nn

from slimforge.prune.attention import AttentionForm, _hf_conv1d, _int, _linear, register_attention_form


def _xlm_attention(module: nn.Module) -> bool:
    """XLM / FlauBERT: ``q_lin``, ``k_lin``, ``v_lin``, ``out_lin``, heads viewed as (n_heads, head_dim)."""
    return all(_linear(module, n) for n in ("q_lin", "k_lin", "v_lin", "out_lin")) and _int(module, "n_heads") and _int(module, "head_dim")


def _xlm_sync(module: nn.Module) -> dict[str, int]:
    module.n_heads = module.q_lin.out_features // module.head_dim
    return {"num_attention_heads": module.n_heads}


register_attention_form("hf-xlm-attention", AttentionForm(_xlm_attention, lambda m: m.head_dim, _xlm_sync,
                                                          built_heads=lambda m: m.n_heads),  # its mask is expand_as(scores)
                        "Hugging Face XLM / FlauBERT (q_lin, k_lin, v_lin, out_lin)")


def _ctrl_attention(module: nn.Module) -> bool:
    """CTRL: ``Wq``, ``Wk``, ``Wv``, ``dense``, heads viewed as (-1, head_dim)."""
    return (all(_linear(module, n) for n in ("Wq", "Wk", "Wv", "dense")) and _int(module, "num_heads")
            and _int(module, "head_dim"))


def _ctrl_sync(module: nn.Module) -> dict[str, int]:
    module.num_heads = module.Wq.out_features // module.head_dim
    return {"num_attention_heads": module.num_heads}


register_attention_form("hf-ctrl-attention", AttentionForm(_ctrl_attention, lambda m: m.head_dim, _ctrl_sync),
                        "Hugging Face CTRL (Wq, Wk, Wv, dense)")


def _openai_gpt_attention(module: nn.Module) -> bool:
    """OpenAI GPT: a fused ``Conv1D`` ``c_attn`` split into q, k, v of ``split_size`` each, heads viewed as
    (n_head, width // n_head): the head size is derived from the width, so it is remembered before slicing."""
    return (_hf_conv1d(module, "c_attn") and _hf_conv1d(module, "c_proj") and _int(module, "n_head")
            and _int(module, "split_size") and not _int(module, "num_heads"))


def _openai_gpt_head_dim(module: nn.Module) -> int:
    return getattr(module, "head_dim", None) or module.split_size // module.n_head


def _openai_gpt_remember(module: nn.Module) -> None:
    module.head_dim = _openai_gpt_head_dim(module)


def _openai_gpt_sync(module: nn.Module) -> dict[str, int]:
    width = module.c_attn.weight.shape[1] // 3  # Conv1D's weight is (in, out)
    module.n_head = width // _openai_gpt_head_dim(module)
    module.split_size = width
    return {"num_attention_heads": module.n_head}


register_attention_form("hf-openai-gpt-attention", AttentionForm(_openai_gpt_attention, _openai_gpt_head_dim, _openai_gpt_sync,
                                                                 remember=_openai_gpt_remember),
                        "Hugging Face OpenAI GPT (Conv1D c_attn split by split_size, head size width // n_head)")


def _modernbert_attention(module: nn.Module) -> bool:
    """ModernBERT: a fused ``Wqkv`` viewed as (3, -1, head_dim) and unbound into q, k, v; output ``Wo``."""
    return _linear(module, "Wqkv") and _linear(module, "Wo") and _int(module, "head_dim")


def _modernbert_sync(module: nn.Module) -> dict[str, int]:
    return {"num_attention_heads": module.Wqkv.out_features // (3 * module.head_dim)}  # its forward reads nothing else


register_attention_form("hf-modernbert-attention", AttentionForm(_modernbert_attention, lambda m: m.head_dim, _modernbert_sync),
                        "Hugging Face ModernBERT (fused Wqkv as (3, heads, head_dim), Wo)")


def _hiera_attention(module: nn.Module) -> bool:
    """transformers' Hiera: a fused ``qkv`` viewed as (..., 3, num_heads, head_dim), query pooling by a max over
    ``query_stride``, the heads merged back with a reshape to ``hidden_size_output``, output ``proj``."""
    return (_linear(module, "qkv") and _linear(module, "proj") and _int(module, "num_heads") and _int(module, "head_dim")
            and _int(module, "hidden_size_output") and _int(module, "query_stride"))


def _hiera_sync(module: nn.Module) -> dict[str, int]:
    module.num_heads = module.qkv.out_features // (3 * module.head_dim)
    module.hidden_size_output = module.num_heads * module.head_dim  # the merge's width; proj keeps the block's
    return {"num_attention_heads": module.num_heads}  # HieraConfig has none (num_heads, per stage): nothing is set


register_attention_form("hf-hiera-attention", AttentionForm(_hiera_attention, lambda m: m.head_dim, _hiera_sync,
                                                            whole=lambda m: [("qkv.weight", 0)] if m.num_heads == 1 else []),
                        "Hugging Face Hiera (fused qkv as (3, heads, head_dim), query max-pooling, merged to hidden_size_output)")


def _perceiver_attention(module: nn.Module) -> bool:
    """Perceiver / Perceiver IO (``PerceiverSelfAttention``, cross- or self-attention): ``query``, ``key``, ``value``
    with ``qk_channels`` and ``v_channels`` split over ``num_heads``, the two per-head sizes kept as
    ``qk_channels_per_head`` and ``v_channels_per_head`` (they may differ); the output projection is its sibling's."""
    return (all(_linear(module, n) for n in ("query", "key", "value"))
            and all(_int(module, a) for a in ("num_heads", "qk_channels", "v_channels", "qk_channels_per_head", "v_channels_per_head")))


def _perceiver_sync(module: nn.Module) -> dict[str, int]:
    module.qk_channels, module.v_channels = module.query.out_features, module.value.out_features
    module.num_heads = module.qk_channels // module.qk_channels_per_head
    # PerceiverConfig has no num_attention_heads (nothing is set): one count for its self-attention layers, another for
    # the cross-attention, none for the decoders', so a pruned Perceiver keeps slimforge's format.
    return {"num_attention_heads": module.num_heads}


register_attention_form("hf-perceiver-attention", AttentionForm(
    _perceiver_attention, lambda m: m.qk_channels_per_head, _perceiver_sync,
    other_head_dims=lambda m: (m.v_channels_per_head,),
    whole=lambda m: [(f"{n}.weight", 0) for n in ("query", "key", "value")] if m.num_heads == 1 else []),
    "Hugging Face Perceiver (query / key / value of qk_channels and v_channels over num_heads)")


def _cpmant_attention(module: nn.Module) -> bool:
    """CPM-Ant: ``project_q``, ``project_k``, ``project_v`` viewed as (num_heads, dim_head), output ``attention_out``; its
    scores add a position bias of every head that one embedding computes for all layers, so all layers lose the same heads."""
    return (all(_linear(module, n) for n in ("project_q", "project_k", "project_v", "attention_out"))
            and _int(module, "num_heads") and _int(module, "dim_head"))


def _cpmant_sync(module: nn.Module) -> dict[str, int]:
    module.num_heads = module.project_q.out_features // module.dim_head
    return {"num_attention_heads": module.num_heads}


def _cpmant_position_bias(module: nn.Module) -> bool:
    """CPM-Ant's segment position embedding: a (buckets, num_heads) ``relative_attention_bias``."""
    bias = getattr(module, "relative_attention_bias", None)
    return (isinstance(bias, nn.Parameter) and bias.dim() == 2 and _int(module, "num_heads") and _int(module, "num_buckets")
            and _int(module, "num_segments"))


def _cpmant_position_bias_sync(module: nn.Module) -> dict[str, int]:
    module.num_heads = module.relative_attention_bias.shape[1]
    return {}


register_attention_form("hf-cpmant-attention", AttentionForm(_cpmant_attention, lambda m: m.dim_head, _cpmant_sync),
                        "Hugging Face CPM-Ant (project_q, project_k, project_v, attention_out; a position bias shared by all layers)")
register_attention_form("hf-cpmant-position-bias", AttentionForm(_cpmant_position_bias, lambda m: 1, _cpmant_position_bias_sync, part=True),
                        "the per-head position bias CPM-Ant computes once for all its layers")


def _conformer_attention(module: nn.Module) -> bool:
    """wav2vec 2.0 Conformer / Wav2Vec2-BERT: ``linear_q``, ``linear_k``, ``linear_v`` viewed as (-1, head_size), output
    ``linear_out``; relative positions add per-head biases (``pos_bias_u`` / ``pos_bias_v``, heads x head_size) and project
    the positions with ``linear_pos``, whose rows are heads too. (Their rotary variant views the block's input as heads:
    the residual then stays, as the capture finds.)"""
    return (all(_linear(module, n) for n in ("linear_q", "linear_k", "linear_v", "linear_out")) and _int(module, "num_heads")
            and _int(module, "head_size"))


def _conformer_sync(module: nn.Module) -> dict[str, int]:
    module.num_heads = module.linear_q.out_features // module.head_size
    return {"num_attention_heads": module.num_heads}


register_attention_form("hf-conformer-attention", AttentionForm(_conformer_attention, lambda m: m.head_size, _conformer_sync),
                        "Hugging Face wav2vec 2.0 Conformer / Wav2Vec2-BERT (linear_q, linear_k, linear_v, linear_out; relative positions)")


def _external_projection_attention(module: nn.Module) -> bool:
    """DAB-DETR: queries, keys and values projected outside the module (the decoder layer adds content and position
    projections, or concatenates them per head), viewed here as (attention_heads, attention_head_dim) for queries and
    keys and (attention_heads, values_head_dim) for values, merged to ``output_dim`` for ``output_proj``."""
    return (_linear(module, "output_proj") and all(_int(module, n) for n in ("attention_heads", "attention_head_dim", "values_head_dim", "output_dim"))
            and not any(_linear(module, n) for n in ("q_proj", "k_proj", "v_proj")))


def _external_projection_sync(module: nn.Module) -> dict[str, int]:
    module.attention_heads = module.output_proj.in_features // module.values_head_dim
    module.output_dim = module.attention_heads * module.values_head_dim
    if _int(module, "embed_dim"):
        module.embed_dim = module.attention_heads * module.attention_head_dim
    return {"num_attention_heads": module.attention_heads}


register_attention_form("hf-external-projection-attention", AttentionForm(
    _external_projection_attention, lambda m: m.values_head_dim, _external_projection_sync,
    other_head_dims=lambda m: (m.attention_head_dim,)),
    "Hugging Face DAB-DETR (queries, keys and values projected by the decoder layer; attention_heads, output_proj)")


def _external_projection_layer(module: nn.Module) -> bool:
    """DAB-DETR's cross-attention layer: views its query and key projections as (decoder_attention_heads, width //
    heads) to concatenate each head's content and sine position channels, before its ``cross_attn`` above."""
    inner = getattr(module, "cross_attn", None)
    return (inner is not None and _external_projection_attention(inner) and _int(module, "decoder_attention_heads")
            and _linear(module, "cross_attn_query_content_proj"))


def _external_projection_layer_sync(module: nn.Module) -> dict[str, int]:
    module.decoder_attention_heads = module.cross_attn_query_content_proj.out_features // module.cross_attn.values_head_dim
    return {}


register_attention_form("hf-external-projection-layer", AttentionForm(
    _external_projection_layer, lambda m: m.cross_attn.values_head_dim, _external_projection_layer_sync, part=True),
    "Hugging Face DAB-DETR's cross-attention layer (its per-head concatenation of content and position channels)")

