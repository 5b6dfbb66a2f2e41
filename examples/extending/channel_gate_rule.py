"""A pruning op rule: teach the engine a custom op it has never seen.

``demo::channel_gate(x, gate)`` scales channel c of ``x`` (batch, channels, ...) by ``gate[c]``.
slimforge.prune has rules for PyTorch's own ops; a custom op stops it with an UnsupportedOpError
that names the op. A rule tells the engine which elements of the op's inputs and outputs belong
together, so pruning a channel of ``x`` also removes that channel's entry of ``gate``:

    import channel_gate_rule            # defines the op and registers its rule
    slimforge.prune(model, example, ratio=0.3)

An elementwise op needs no function: ``register_op_rule("mylib::fused_act", like="gelu")``.
"""

from __future__ import annotations

import torch
from torch import nn

from slimforge.prune import register_op_rule


@torch.library.custom_op("demo::channel_gate", mutates_args=())
def channel_gate(x: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
    return x * gate.view(1, -1, *([1] * (x.dim() - 2)))


@channel_gate.register_fake
def _(x: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
    return torch.empty_like(x)


@register_op_rule("demo::channel_gate")
def channel_gate_rule(tr, node):
    """Output label: the input's. ``gate``'s only dimension is tied to ``x``'s channel dimension."""
    x, gate = tr.lab(node.args[0]), tr.lab(node.args[1])
    if x is None:  # an input the engine does not track: nothing of the output is prunable
        return [None] * len(node.meta["val"].shape)
    if gate is not None:
        tr.uf.tie(x[1], gate[0])
    return list(x)


class ChannelGate(nn.Module):
    """A learned per-channel scale through the custom op."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gate = nn.Parameter(torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return channel_gate(x, self.gate)
