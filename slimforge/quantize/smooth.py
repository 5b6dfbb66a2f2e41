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
    original, scales = smoothing_record(smoothed)              # what an artifact saves
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

from slimforge.errors import ConfigError


class ScaleInput:
    """Forward pre-hook: multiplies a Linear's input by ``inv_scale`` (in_features,)."""

    def __init__(self, inv_scale: torch.Tensor) -> None:
        self.inv_scale = inv_scale

    def __call__(self, module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
        x = args[0]
        return (x * self.inv_scale.to(device=x.device, dtype=x.dtype), *args[1:])  # follows .to()/.half() of the model


@torch.no_grad()
def smoothing_scales(model: nn.Module, batches: Iterable[Any], alpha: float, layers: Iterable[str] | None = None) -> dict[str, torch.Tensor]:
    """Per-input-channel smoothing factors ``s`` (in_features,) of each Linear in ``layers`` (default all).

    batches: model inputs (tensors or dicts) run once each to measure ``max|X_j|``. Linears whose
    weight is tied to another module or parametrized, or that the batches never reach, are left out.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"SmoothQuant alpha must be in [0, 1], got {alpha}.")
    linears = {name: m for name, m in model.named_modules() if isinstance(m, nn.Linear)}
    # Left out: tied weights (scaling one would change the other module) and parametrized ones
    # (weight norm, fake quantization: the in-place scaling would hit a recomputed copy).
    shared = _shared_weights(model)
    names = [
        n for n in (linears if layers is None else layers)
        if n in linears and id(linears[n].weight) not in shared and not parametrize.is_parametrized(linears[n], "weight")
    ]
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
    """A copy of ``model`` whose Linear ``name`` has weight columns times ``scales[name]`` and input divided by it.

    The copy remembers the unsmoothed model and the scales (:func:`smoothing_record`), which is
    what an artifact saves: its fp32 weights stay the model's own, and loading re-applies the
    same scales to the same weights, giving the same smoothed weights bit for bit.
    """
    smoothed = copy.deepcopy(model)
    for name, s in scales.items():
        try:
            linear = smoothed.get_submodule(name)
        except AttributeError:
            raise ConfigError(f"Smoothing scales name layer {name!r}, which the model does not have.") from None
        if not isinstance(linear, nn.Linear) or s.shape != (linear.in_features,):
            raise ConfigError(f"Smoothing scales for {name!r} do not fit it: {tuple(s.shape)} for {linear}.")
        linear.weight.mul_(s.to(linear.weight.dtype))
        linear.register_forward_pre_hook(ScaleInput((1.0 / s).to(linear.weight.dtype)))
    smoothed.__dict__[_RECORD] = _Record((model, dict(scales)))
    return smoothed


_RECORD = "_slimforge_smoothing"


class _Record(tuple):
    """(unsmoothed model, scales), shared by every copy of a smoothed model: read-only, so
    ``copy.deepcopy`` (quantize_dynamic, each fallback trial) need not copy the fp32 model again."""

    def __deepcopy__(self, memo: dict[int, Any]) -> _Record:
        return self


def smoothing_record(model: nn.Module) -> tuple[nn.Module, dict[str, torch.Tensor]] | None:
    """(the unsmoothed model, layer -> s) for a model made by :func:`apply_smoothing`, else None."""
    return model.__dict__.get(_RECORD)


def _shared_weights(model: nn.Module) -> set[int]:
    """ids of the parameters that more than one module holds."""
    seen: dict[int, int] = {}
    for _, param in model.named_parameters(remove_duplicate=False):
        seen[id(param)] = seen.get(id(param), 0) + 1
    return {pid for pid, count in seen.items() if count > 1}
