"""Capture-time forwards for Hugging Face mixtures of experts that loop over the experts the data picked.

Switch Transformers and NLLB-MoE keep their experts as an ``nn.ModuleDict`` and run ``for e in mask.nonzero()``
(OpenAI Privacy Filter: (experts, in, out) weights, the same loop),
a loop over data that torch.export cannot capture. While slimforge captures a model (to find which channels belong
together, and again to verify the pruned one), such a module runs every expert on every token, each weighted by its
routing weight (zero where the token was not routed to it): the same sum, computed densely, so each expert's input
and output are tied to the model's width as in the real forward. Only the capture sees this; the model keeps its own
sparse forward.
"""
from __future__ import annotations

import torch
from torch import nn

from slimforge.prune._capture import register_capture_forward


def _every_expert(experts: nn.ModuleDict, hidden_states: torch.Tensor, expert_mask: torch.Tensor,
                  probs: torch.Tensor) -> torch.Tensor:
    """``expert_mask`` (experts, k, tokens) 0/1 and ``probs`` (tokens, k): expert e's weight for token t is
    sum_k mask[e, k, t] * probs[t, k], the routing weight the sparse loop multiplies its output by."""
    weights = torch.einsum("ekt,tk->et", expert_mask.to(probs.dtype), probs)
    out = torch.zeros_like(hidden_states)
    for e in range(expert_mask.shape[0]):
        out = out + experts[f"expert_{e}"](hidden_states) * weights[e, :, None]
    return out


def _switch_experts(self: nn.ModuleDict, hidden_states: torch.Tensor, selected_experts: torch.Tensor,
                    routing_weights: torch.Tensor) -> torch.Tensor:
    return _every_expert(self, hidden_states, selected_experts.permute(2, 1, 0), routing_weights)


def _nllb_moe_experts(self: nn.ModuleDict, hidden_states: torch.Tensor, router_mask: torch.Tensor,
                      router_probs: torch.Tensor) -> torch.Tensor:
    mask = nn.functional.one_hot(router_mask, num_classes=self.num_experts).permute(2, 1, 0)
    out = _every_expert(self, hidden_states, mask, router_probs)
    return out if self.training else out * (1 - self.moe_token_dropout)


register_capture_forward("transformers.models.switch_transformers.modeling_switch_transformers.SwitchTransformersExperts",
                         _switch_experts)
register_capture_forward("transformers.models.nllb_moe.modeling_nllb_moe.NllbMoeExperts", _nllb_moe_experts)


def _privacy_filter_experts(self: nn.Module, hidden_states: torch.Tensor, router_indices: torch.Tensor | None = None,
                            routing_weights: torch.Tensor | None = None) -> torch.Tensor:
    """OpenAI Privacy Filter's experts: (experts, in, out) weights with biases, looped over the experts the data hit
    (``nonzero``); every expert runs on every token here, weighted by its routing weight (zero where not routed)."""
    mask = nn.functional.one_hot(router_indices, num_classes=self.num_experts).to(torch.float32)  # (tokens, k, experts)
    weights = (mask * routing_weights.float()[..., None]).sum(1)  # (tokens, experts)
    states = hidden_states.float()
    out = torch.zeros_like(states)
    for e in range(self.num_experts):
        gated = self._apply_gate(states @ self.gate_up_proj[e].float() + self.gate_up_proj_bias[e].float()).float()
        out = out + (gated @ self.down_proj[e].float() + self.down_proj_bias[e].float()) * weights[:, e, None]
    return out.to(hidden_states.dtype)


register_capture_forward("transformers.models.openai_privacy_filter.modeling_openai_privacy_filter.OpenAIPrivacyFilterExperts",
                         _privacy_filter_experts)
