"""Hugging Face PEGASUS-X's encoder attention (``PegasusXGlobalLocalAttention``): global tokens attend to every token,
each block of tokens to its block and the global tokens. Its forward merges the heads' output back with a view to the
*input's* width (``DimensionInfo.hidden_dim = token_hidden_states.shape[2]``), which equals the heads' width only
while no head is pruned. Once heads go, the module gets a stand-in forward (same parameters, same outputs) that merges
to ``num_heads * head_dim``; ``sync`` makes the swap, so a plan replayed on load makes it too. While pruning, the
stand-in is used from the capture on and given back where no head went.

transformers is imported nowhere here: the class is recognised by name, its ``DimensionInfo`` taken from its module.
"""

from __future__ import annotations

import sys

import torch
from torch import nn

from slimforge.prune.attention import (AttentionForm, NamedStandIn, Swap, _int, _linear, register_attention_form,
                                       register_stand_in)

_OWN = "PegasusXGlobalLocalAttention"
_STAND_IN = "PrunablePegasusXGlobalLocalAttention"


def _matches(module: nn.Module) -> bool:
    return (type(module).__name__ in (_OWN, _STAND_IN) and all(_linear(module, n) for n in ("q_proj", "k_proj", "v_proj", "out_proj"))
            and _int(module, "num_heads") and _int(module, "head_dim") and _int(module, "block_size"))


def _forward(self: nn.Module, token_hidden_states: torch.Tensor, global_hidden_states: torch.Tensor,
             attention_mask: torch.Tensor | None = None, **kwargs):
    """transformers' PegasusXGlobalLocalAttention.forward with the heads merged to num_heads * head_dim."""
    own = _own_class(type(self))
    dim = sys.modules[own.__module__].DimensionInfo(
        batch_size=token_hidden_states.shape[0], seq_len=token_hidden_states.shape[1], block_size=self.block_size,
        num_heads=self.num_heads, hidden_dim=self.num_heads * self.head_dim, dim_per_head=self.head_dim,
        num_blocks=token_hidden_states.shape[1] // self.block_size, global_len=global_hidden_states.shape[1],
        padded_seq_len=token_hidden_states.shape[1])
    local_q, local_k, local_v = (self._shape(t, seq_len=dim.padded_seq_len, bsz=dim.batch_size) for t in (
        self.q_proj(token_hidden_states) * self.scaling, self.k_proj(token_hidden_states), self.v_proj(token_hidden_states)))
    global_q, global_k, global_v = (self._shape(t, seq_len=dim.global_len, bsz=dim.batch_size) for t in (
        self.q_proj(global_hidden_states) * self.scaling, self.k_proj(global_hidden_states), self.v_proj(global_hidden_states)))
    global_out, global_probs = self.compute_global_attention_representations(
        global_q=global_q, global_k=global_k, global_v=global_v, local_k=local_k, local_v=local_v, mask=attention_mask, dim=dim)
    local_out, local_probs = self.compute_local_attention_representations(
        global_k=global_k, global_v=global_v, local_q=local_q, local_k=local_k, local_v=local_v, mask=attention_mask, dim=dim)
    global_out = self.out_proj(global_out.transpose(1, 2).contiguous().view(dim.batch_size, dim.global_len, dim.hidden_dim))
    local_out = self.out_proj(local_out.permute(0, 2, 3, 1, 4).contiguous().view(dim.batch_size, dim.padded_seq_len, dim.hidden_dim))
    return local_out, global_out, {"global": global_probs, "local": local_probs}


_STAND_IN_CLASS = NamedStandIn(_OWN, _forward, __name__, f"transformers' {_OWN}, heads merged to num_heads * head_dim.")
_own_class, _use = _STAND_IN_CLASS.own_class, _STAND_IN_CLASS.use


def _pruned(module: nn.Module) -> bool:
    return module.q_proj.out_features != module.out_proj.out_features


def _sync(module: nn.Module) -> dict[str, int]:
    module.num_heads = module.q_proj.out_features // module.head_dim
    if _pruned(module):
        _use(module)
    return {"num_attention_heads": module.num_heads}  # PEGASUS-X maps it to encoder_attention_heads: written when all layers agree


register_attention_form("hf-global-local-attention", AttentionForm(_matches, lambda m: m.head_dim, _sync),
                        "Hugging Face PEGASUS-X encoder (global-local attention; heads merged to the input's width by its own forward, "
                        "to num_heads * head_dim by a stand-in once heads go)")
register_stand_in(f"transformers.models.pegasus_x.modeling_pegasus_x.{_OWN}",
                  Swap(_matches, _pruned, _use, lambda m, cls: setattr(m, "__class__", cls)))
