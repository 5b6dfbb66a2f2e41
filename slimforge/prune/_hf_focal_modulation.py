"""Hugging Face FocalNet's focal modulation (``FocalNetModulation``, the attention of a FocalNet block).

Its forward splits ``projection_in``'s output into the query, the context and the level gates with sizes read from
the block's *input*: ``torch.split(x, (num_channels, num_channels, focal_level + 1), 1)`` with ``num_channels =
hidden_state.shape[-1]``. The capture records those sizes as constants, so the query and context channels stayed
whole (focalnet-tiny at its published widths: 18.8% of its parameters removed at ratio 0.3, timm's FocalNet 50%).

The stand-in forward (same parameters, same outputs) reads the query's width from ``projection_context``'s output and
the context's from its input, and says so with ``slimforge_split_follows``: the tracer lets those two pieces shrink
on their own (:func:`slimforge.prune._split_blocks.split_follows`) and keeps the gates whole, as the forward indexes
them one level at a time. The swap stays once the query or context no longer has the input's width (its own forward
could not run it); :func:`slimforge.prune.attention.use_needed_stand_ins` makes it again when a plan is replayed.

transformers is imported nowhere here: the class is recognised by name and attributes.
"""

from __future__ import annotations

import torch
from torch import nn

from slimforge.prune.attention import NamedStandIn, Swap, _int, _linear, register_stand_in

_OWN = "FocalNetModulation"


def _matches(module: nn.Module) -> bool:
    context = getattr(module, "projection_context", None)
    return (_linear(module, "projection_in") and _linear(module, "projection_out") and isinstance(context, nn.Conv2d)
            and _int(module, "focal_level") and isinstance(getattr(module, "focal_layers", None), nn.ModuleList)
            and module.projection_in.out_features == context.out_channels + context.in_channels + module.focal_level + 1)


def _forward(self: nn.Module, hidden_state: torch.Tensor) -> torch.Tensor:
    """transformers' FocalNetModulation.forward with the query's and context's widths read from ``projection_context``
    instead of from ``hidden_state``."""
    x = self.projection_in(hidden_state).permute(0, 3, 1, 2).contiguous()
    sizes = (self.projection_context.out_channels, self.projection_context.in_channels, self.focal_level + 1)
    q, ctx, gates = torch.split(x, sizes, 1)
    ctx_all = 0
    for level in range(self.focal_level):
        ctx = self.focal_layers[level](ctx)
        ctx_all = ctx_all + ctx * gates[:, level:level + 1]
    ctx_global = self.activation(ctx.mean(2, keepdim=True).mean(3, keepdim=True))
    ctx_all = ctx_all + ctx_global * gates[:, self.focal_level:]
    if self.normalize_modulator:
        ctx_all = ctx_all / (self.focal_level + 1)
    modulator = self.projection_context(ctx_all)
    x_out = (q * modulator).permute(0, 2, 3, 1).contiguous()
    if self.use_post_layernorm_in_modulation:
        x_out = self.layernorm(x_out)
    return self.projection_dropout(self.projection_out(x_out))


# query and context: their own widths; the gates: whole
_STAND_IN_CLASS = NamedStandIn(_OWN, _forward, __name__,
                               f"transformers' {_OWN}, its query and context widths read from projection_context.",
                               {"slimforge_split_follows": (True, True, False)})


def _own_forward_cannot_run(module: nn.Module) -> bool:
    """The query or the context is no longer as wide as the block's input, which the class's own forward splits by."""
    width = module.projection_in.in_features
    return not module.projection_context.in_channels == module.projection_context.out_channels == width


register_stand_in(f"transformers.models.focalnet.modeling_focalnet.{_OWN}",
                  Swap(_matches, _own_forward_cannot_run, _STAND_IN_CLASS.use, lambda m, cls: setattr(m, "__class__", cls)))
