"""Hugging Face WavLM's attention: a relative position bias, built once by the first layer for the model's head count
and handed to every layer, gated per head by a small linear layer applied to the head's slice of the block's *input*
(``hidden_states.view(..., num_heads, -1)``), then ``F.multi_head_attention_forward``, which checks that the heads'
width equals the input's. Its own forward thus ties the heads to the residual width: it kept them all.

While pruning (and when a plan is replayed on load) such a module gets a stand-in forward with the same parameters and
the same outputs, written out (query, key and value projections, the gate, softmax, output projection), that picks
its heads' rows of the shared bias and its heads' slices of the input for the gate through ``gate_heads``, a
non-persistent buffer of head indices (``arange(heads)``, a head source that pruning slices with the heads, so that
every head left keeps its original index). The first layer's bias table (``rel_attn_embed``) keeps every head's
column: later layers read their own heads' rows. The residual width can narrow too, at the same offsets in every
head's slice of it, and the gate's input with it.
When no head went, pruning gives the module its own class back. ``save_pretrained`` is refused for a model with
heads pruned this way: plain transformers would gate the wrong slices.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from slimforge.prune._head_index_stand_in import HeadIndexStandIn, transformers_class
from slimforge.prune.attention import AttentionForm, Swap, _int, _linear, register_attention_form, register_stand_in

GATE_HEADS = "gate_heads"
STAND_IN = HeadIndexStandIn(GATE_HEADS, __name__)


def _wavlm_attention(module: nn.Module) -> bool:
    """WavLM: q/k/v/out_proj, ``num_heads``, ``head_dim``, a gate ``gru_rel_pos_linear`` over each head's slice of
    the input and its per-head ``gru_rel_pos_const``."""
    return (transformers_class(module, "WavLMAttention", __name__) and all(_linear(module, n) for n in ("q_proj", "k_proj", "v_proj", "out_proj", "gru_rel_pos_linear"))
            and _int(module, "num_heads") and _int(module, "head_dim") and isinstance(getattr(module, "gru_rel_pos_const", None), nn.Parameter))


def _wavlm_sync(module: nn.Module) -> dict[str, int]:
    module.num_heads = module.q_proj.out_features // module.head_dim
    return {"num_attention_heads": module.num_heads}


def _ensure_stand_in(module: nn.Module) -> None:
    if not STAND_IN.installed(module):
        _use_stand_in(module)


def _whole(module: nn.Module) -> list[tuple[str, int]]:
    """The bias table's heads: every layer reads its own heads' rows of the bias the first layer builds."""
    return [("rel_attn_embed.weight", 1)] if isinstance(getattr(module, "rel_attn_embed", None), nn.Embedding) else []


register_attention_form("hf-gated-bias-attention", AttentionForm(_wavlm_attention, lambda m: m.head_dim, _wavlm_sync,
                                                                 sources=STAND_IN.source, remember=_ensure_stand_in, whole=_whole,
                                                                 slices_input_per_head=True),
                        "Hugging Face WavLM (q/k/v/out_proj; a shared relative position bias gated per head from the input, "
                        "picked per layer by a stand-in forward)")


def _wavlm_forward(self: nn.Module, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None,
                   position_bias: torch.Tensor | None = None, index: int = 0, **kwargs):
    """WavLMAttention's forward with ``F.multi_head_attention_forward`` written out, for the heads in ``gate_heads``
    of the ``_slimforge_full_heads`` the shared bias and the gate's slices are laid out for."""
    bsz, tgt_len, _ = hidden_states.size()
    full, heads = self._slimforge_full_heads, getattr(self, GATE_HEADS)
    if position_bias is None:
        position_bias = self.compute_bias(tgt_len, tgt_len)
        position_bias = position_bias.unsqueeze(0).repeat(bsz, 1, 1, 1).view(bsz * full, tgt_len, tgt_len)
    bias = position_bias.view(bsz, full, tgt_len, tgt_len).index_select(1, heads)
    gated = hidden_states.view(bsz, tgt_len, full, -1).index_select(2, heads).permute(0, 2, 1, 3)
    relative = self.gru_rel_pos_linear(gated).view(*gated.shape[:-1], 2, 4).sum(-1)
    gate_a, gate_b = torch.sigmoid(relative).chunk(2, dim=-1)
    gate = gate_a * (gate_b * self.gru_rel_pos_const - 1.0) + 2.0
    count = heads.shape[0]

    def split(x: torch.Tensor) -> torch.Tensor:
        return x.view(bsz, -1, count, self.head_dim).transpose(1, 2)

    query = split(self.q_proj(hidden_states)) * self.scaling
    key, value = split(self.k_proj(hidden_states)), split(self.v_proj(hidden_states))
    scores = torch.matmul(query, key.transpose(-2, -1)) + gate * bias
    if attention_mask is not None:
        scores = scores.masked_fill(attention_mask.ne(1)[:, None, None, :], float("-inf"))
    weights = F.softmax(scores, dim=-1)
    probs = F.dropout(weights, p=self.dropout, training=self.training)
    out = torch.matmul(probs, value).transpose(1, 2).reshape(bsz, tgt_len, count * self.head_dim)
    averaged = weights.mean(1)  # as multi_head_attention_forward's need_weights: averaged over the heads
    return self.out_proj(out), averaged[:, None].broadcast_to(bsz, count, tgt_len, tgt_len), position_bias


def _use_stand_in(module: nn.Module) -> None:
    STAND_IN.install(module, _wavlm_forward, module.num_heads, module.q_proj.weight.device)


register_stand_in("transformers.models.wavlm.modeling_wavlm.WavLMAttention",
                  Swap(_wavlm_attention, STAND_IN.heads_pruned, _use_stand_in, STAND_IN.uninstall))
