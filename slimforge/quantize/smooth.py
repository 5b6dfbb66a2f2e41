"""SmoothQuant for Linear layers: move activation outliers into the weights before int8.

Int8 activations share one scale per tensor, so a few input channels with large values (common
in transformers after LayerNorm and GELU) cost every other channel its precision. SmoothQuant
(Xiao et al., 2023) divides input channel ``j`` of each Linear by

    s_j = max|X_j| ** alpha / max|W[:, j]| ** (1 - alpha)

and multiplies the weight's column ``j`` by ``s_j``, which leaves the fp32 layer unchanged and
balances the two ranges; ``alpha`` (0..1) is how much of the difficulty moves to the weights.

The division runs as a forward pre-hook holding ``1 / s`` (a multiply before the layer; no
module is replaced, so layer names stay as they were and exported graphs carry the multiply).
The hooks survive ``torch.ao``'s module swap and ``torch.export``.

    scales = smoothing_scales(model, batches, alpha=0.8)       # layer -> s, (in_features,)
    smoothed = apply_smoothing(model, scales)                  # a copy; fp32 outputs unchanged
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from slimforge.errors import ConfigError


class ScaleInput:
    """Forward pre-hook: multiplies a Linear's input by ``inv_scale`` (in_features,)."""

    def __init__(self, inv_scale: torch.Tensor) -> None:
        self.inv_scale = inv_scale

    def __call__(self, module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
        return (args[0] * self.inv_scale, *args[1:])  # inv_scale has the weight's dtype already


@torch.no_grad()
def smoothing_scales(model: nn.Module, batches: Iterable[Any], alpha: float, layers: Iterable[str] | None = None) -> dict[str, torch.Tensor]:
    """Per-input-channel smoothing factors ``s`` (in_features,) of each Linear in ``layers`` (default all).

    batches: model inputs (tensors or dicts) run once each to measure ``max|X_j|``. Linears whose
    weight is tied to another module, or that the batches never reach, are left out.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"SmoothQuant alpha must be in [0, 1], got {alpha}.")
    linears = {name: m for name, m in model.named_modules() if isinstance(m, nn.Linear)}
    shared = _shared_weights(model)  # tied weights (e.g. to an embedding): scaling one would change the other
    names = [n for n in (linears if layers is None else layers) if n in linears and id(linears[n].weight) not in shared]
    amax: dict[str, torch.Tensor] = {}

    def observe(name: str):
        def hook(module: nn.Module, args: tuple[Any, ...]) -> None:
            x = args[0].detach().float()
            seen = x.abs().reshape(-1, x.shape[-1]).amax(0)
            amax[name] = torch.maximum(amax[name], seen) if name in amax else seen

        return hook

    handles = [linears[name].register_forward_pre_hook(observe(name)) for name in names]
    try:
        model.eval()
        for batch in batches:
            model(batch)
    finally:
        for handle in handles:
            handle.remove()
    scales = {}
    for name in names:
        if name not in amax:  # never called on these inputs: nothing to balance
            continue
        weight = linears[name].weight.detach().float().abs().amax(0)
        s = amax[name].clamp(min=1e-5) ** alpha / weight.clamp(min=1e-5) ** (1 - alpha)
        # A channel that is zero in the data or in the weight keeps scale 1.
        s = torch.where((amax[name] > 0) & (weight > 0), s, torch.ones_like(s))
        scales[name] = s
    return scales


@torch.no_grad()
def apply_smoothing(model: nn.Module, scales: dict[str, torch.Tensor]) -> nn.Module:
    """A copy of ``model`` whose Linear ``name`` has weight columns times ``scales[name]`` and input divided by it."""
    smoothed = copy.deepcopy(model)
    for name, s in scales.items():
        linear = smoothed.get_submodule(name)
        if not isinstance(linear, nn.Linear) or s.shape != (linear.in_features,):
            raise ConfigError(f"Smoothing scales for {name!r} do not fit it: {tuple(s.shape)} for {linear}.")
        linear.weight.mul_(s.to(linear.weight.dtype))
        linear.register_forward_pre_hook(ScaleInput((1.0 / s).to(linear.weight.dtype)))
    return smoothed


def _shared_weights(model: nn.Module) -> set[int]:
    """ids of the parameters that more than one module holds."""
    seen: dict[int, int] = {}
    for _, param in model.named_parameters(remove_duplicate=False):
        seen[id(param)] = seen.get(id(param), 0) + 1
    return {pid for pid, count in seen.items() if count > 1}


def smoothing_of(model: nn.Module) -> dict[str, torch.Tensor]:
    """layer -> ``1 / s`` of every smoothed module of ``model`` (what an artifact records)."""
    found = {}
    for name, module in model.named_modules():
        for hook in module._forward_pre_hooks.values():
            if isinstance(hook, ScaleInput):
                found[name] = hook.inv_scale
    return found


def restore_smoothing(model: nn.Module, inv_scales: dict[str, torch.Tensor]) -> nn.Module:
    """Re-attach the input scaling to a model whose weights were saved already smoothed (in place)."""
    for name, inv in inv_scales.items():
        try:
            linear = model.get_submodule(name)
        except AttributeError:
            raise ConfigError(f"The saved smoothing names layer {name!r}, which the model does not have.") from None
        if not isinstance(linear, nn.Linear) or inv.shape != (linear.in_features,):
            raise ConfigError(f"The saved smoothing for {name!r} has shape {tuple(inv.shape)}, which does not fit {linear}.")
        linear.register_forward_pre_hook(ScaleInput(inv.to(linear.weight.dtype)))
    return model
