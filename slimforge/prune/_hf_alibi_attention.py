"""Hugging Face attention with ALiBi (MPT, BLOOM, Falcon-RW): the model builds one bias for all layers from the config's
head count and hands it to every layer (Falcon folds it into the attention mask), so a layer that loses heads must pick
its kept heads' rows of that bias.

Before slicing (while pruning, or replaying a plan on load), such an attention module gets a stand-in forward
(same parameters, same outputs) that selects its heads' rows of the bias (``index_select`` by ``alibi_heads``)
before the module's own forward; ``alibi_heads`` is a non-persistent buffer of head indices (``arange(heads)``),
a head source for the tracer, so pruning slices it with the heads and it keeps the original index of every head
left. When no head went, pruning gives the module its own class back (a replayed plan leaves the stand-in, whose
selection is then the identity). The buffer is not saved: loading replays the pruning plan, which makes and
slices it again. A folder for plain transformers (``save_pretrained``) is refused: its model would build the
bias with other slopes.
"""

from __future__ import annotations

import torch
from torch import nn

from slimforge.prune._head_index_stand_in import HeadIndexStandIn, transformers_class
from slimforge.prune.attention import (
    AttentionForm, Swap, _falcon_split_axis, _falcon_sync, _int, _linear, falcon_original_layout, register_attention_form, register_stand_in,
)

ALIBI_HEADS = "alibi_heads"
STAND_IN = HeadIndexStandIn(ALIBI_HEADS, __name__)


def _transformers_class(module: nn.Module, name: str) -> bool:
    return transformers_class(module, name, __name__)


def _mpt_attention(module: nn.Module) -> bool:
    """MPT: a fused ``Wqkv`` chunked into q, k, v, heads as (n_heads, head_dim), ``out_proj``, an ALiBi bias."""
    return (_transformers_class(module, "MptAttention") and _linear(module, "Wqkv") and _linear(module, "out_proj")
            and _int(module, "n_heads") and _int(module, "head_dim"))


def _mpt_sync(module: nn.Module) -> dict[str, int]:
    module.n_heads = module.Wqkv.out_features // (3 * module.head_dim)
    return {"num_attention_heads": module.n_heads}


def _ensure_stand_in(module: nn.Module) -> None:
    """Before slicing (pruning, or a plan replayed on load): the stand-in and its head indices, for the plan to slice."""
    if not STAND_IN.installed(module):
        _use_stand_in(module)


register_attention_form("hf-mpt-attention", AttentionForm(_mpt_attention, lambda m: m.head_dim, _mpt_sync, sources=STAND_IN.source,
                                                          remember=_ensure_stand_in),
                        "Hugging Face MPT (fused Wqkv, out_proj; the model's ALiBi bias is picked per layer by a stand-in forward)")


def _mpt_forward(self: nn.Module, hidden_states: torch.Tensor, position_bias: torch.Tensor | None, *args, **kwargs):
    """MPT's bias is (heads, 1, positions)."""
    if position_bias is not None:
        position_bias = position_bias.index_select(0, getattr(self, ALIBI_HEADS))
    return super(type(self), self).forward(hidden_states, position_bias, *args, **kwargs)


def _bloom_forward(self: nn.Module, hidden_states: torch.Tensor, residual: torch.Tensor, alibi: torch.Tensor, *args, **kwargs):
    """BLOOM's bias is (batch * heads, 1, positions), built for the model's head count."""
    full = self._slimforge_full_heads
    picked = alibi.view(-1, full, *alibi.shape[1:]).index_select(1, getattr(self, ALIBI_HEADS))
    return super(type(self), self).forward(hidden_states, residual, picked.flatten(0, 1), *args, **kwargs)


def _falcon_forward(self: nn.Module, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None, *args, **kwargs):
    """Falcon-RW's bias comes folded into the attention mask, (batch, heads, queries, keys), for the model's head count."""
    if attention_mask is not None and attention_mask.dim() == 4 and attention_mask.shape[1] == self._slimforge_full_heads > 1:
        attention_mask = attention_mask.index_select(1, getattr(self, ALIBI_HEADS))
    return super(type(self), self).forward(hidden_states, attention_mask, *args, **kwargs)


_FORWARDS = {"MptAttention": (_mpt_forward, "n_heads", "Wqkv"), "BloomAttention": (_bloom_forward, "num_heads", "query_key_value"),
             "FalconAttention": (_falcon_forward, "num_heads", "query_key_value")}


def _use_stand_in(module: nn.Module) -> None:
    forward, heads, weight = _FORWARDS[type(module).__name__]
    STAND_IN.install(module, forward, getattr(module, heads), getattr(module, weight).weight.device)


register_stand_in("transformers.models.mpt.modeling_mpt.MptAttention",
                  Swap(_mpt_attention, STAND_IN.heads_pruned, _use_stand_in, STAND_IN.uninstall))


def _bloom_attention(module: nn.Module) -> bool:
    """BLOOM: a fused ``query_key_value`` viewed as (heads, 3, head_dim) (Falcon's original layout), heads merged
    with the batch for ``baddbmm`` with the model's ALiBi bias."""
    return (_transformers_class(module, "BloomAttention") and _linear(module, "query_key_value")
            and _linear(module, "dense") and _int(module, "num_heads") and _int(module, "head_dim"))


def _bloom_sync(module: nn.Module) -> dict[str, int]:
    module.num_heads = module.query_key_value.out_features // (3 * module.head_dim)
    module.split_size = module.num_heads * module.head_dim  # hidden_size stays: the residual width (pretraining_tp reads it)
    return {"num_attention_heads": module.num_heads}


register_attention_form("hf-bloom-attention", AttentionForm(_bloom_attention, lambda m: m.head_dim, _bloom_sync, sources=STAND_IN.source,
                                                            remember=_ensure_stand_in, split_axis=_falcon_split_axis),
                        "Hugging Face BLOOM (fused query_key_value as (heads, 3, head_dim); the model's ALiBi bias picked per layer)")
register_stand_in("transformers.models.bloom.modeling_bloom.BloomAttention",
                  Swap(_bloom_attention, STAND_IN.heads_pruned, _use_stand_in, STAND_IN.uninstall))


def _falcon_alibi_attention(module: nn.Module) -> bool:
    """Falcon's original layout with ALiBi (Falcon-RW): as ``hf-falcon-attention``, the bias in the mask."""
    return (_transformers_class(module, "FalconAttention") and falcon_original_layout(module)
            and bool(getattr(getattr(module, "config", None), "alibi", False)))


register_attention_form("hf-falcon-alibi-attention", AttentionForm(_falcon_alibi_attention, lambda m: m.head_dim, _falcon_sync,
                                                                   sources=STAND_IN.source, remember=_ensure_stand_in,
                                                                   split_axis=_falcon_split_axis),
                        "Hugging Face Falcon-RW (Falcon's original layout with ALiBi; the bias, folded into the mask, picked per layer)")
register_stand_in("transformers.models.falcon.modeling_falcon.FalconAttention",
                  Swap(_falcon_alibi_attention, STAND_IN.heads_pruned, _use_stand_in, STAND_IN.uninstall))
