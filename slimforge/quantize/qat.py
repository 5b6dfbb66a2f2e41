"""Quantization-aware training: fine-tune with int8 rounding simulated, then quantize for real.

:func:`prepare_qat` adds fake quantization to every Conv/Linear layer in place: the weight
through a parametrization (symmetric int8, per output channel, as both backends quantize
weights), the input through a forward pre-hook (uint8, per tensor, range tracked by an
exponential moving average while training, frozen in eval). Gradients pass straight through
the rounding. The model stays an ordinary eager module, so the trainer, DDP and
``train()``/``eval()`` work unchanged, and the backend stays a free choice afterwards.

:func:`convert_qat` removes the fake quantization, keeping the fine-tuned weights, and
quantizes with any backend (calibrating again on the fine-tuned model).

    prepare_qat(model)                       # or QATCallback() in the trainer's callbacks
    slimforge.train(model, data, TrainConfig(epochs=2, lr=1e-4), callbacks=[...])
    result = convert_qat(model, calibration, QuantizeConfig(backend="torch"))
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

from slimforge.errors import ConfigError
from slimforge.quantize._calibration import Batch
from slimforge.quantize.core import QUANTIZABLE, QuantizationError, QuantizeConfig, QuantizeResult, quantize
from slimforge.train.callbacks import Callback, TrainState

_ACT_ATTR = "input_fake_quant"
_HOOK_ATTR = "_slimforge_qat_hook"


@dataclass(frozen=True)
class QATConfig:
    """fp32_layers: module names left without fake quantization (keep them fp32 when converting);
    momentum: weight of the newest batch in the activation range average;
    quantize_activations: also fake-quantize layer inputs (off models only weight rounding,
    as dynamic int8 does most of its damage there)."""

    fp32_layers: tuple[str, ...] = ()
    momentum: float = 0.01
    quantize_activations: bool = True

    def __post_init__(self) -> None:
        if not 0 < self.momentum <= 1:
            raise ConfigError(f"QATConfig.momentum must be in (0, 1], got {self.momentum}.")


class WeightFakeQuant(nn.Module):
    """Symmetric int8 per-output-channel rounding of a weight (out, ...); identity gradient."""

    slimforge_transient = True  # a saved run stores the weight it wraps (artifacts.saved_state_dict)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        flat = weight.detach().reshape(weight.shape[0], -1)
        scale = (flat.abs().amax(dim=1) / 127.0).clamp_min(1e-12).float()
        zero = torch.zeros_like(scale, dtype=torch.int32)
        return torch.fake_quantize_per_channel_affine(weight, scale, zero, 0, -127, 127)


class ActivationFakeQuant(nn.Module):
    """uint8 per-tensor rounding of an activation, its range an EMA of batch min/max while training."""

    slimforge_transient = True  # not saved in a run folder: its ranges are recalibrated when quantizing

    def __init__(self, momentum: float = 0.01) -> None:
        super().__init__()
        self.momentum = momentum
        self.register_buffer("min_val", torch.tensor(0.0))
        self.register_buffer("max_val", torch.tensor(0.0))
        self.register_buffer("initialised", torch.tensor(False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            lo, hi = x.detach().min().float(), x.detach().max().float()
            if not bool(self.initialised):
                self.min_val.copy_(lo)
                self.max_val.copy_(hi)
                self.initialised.fill_(True)
            else:
                self.min_val.lerp_(lo, self.momentum)
                self.max_val.lerp_(hi, self.momentum)
        if not bool(self.initialised):
            return x
        lo, hi = self.min_val.clamp(max=0.0), self.max_val.clamp(min=0.0)
        scale = ((hi - lo) / 255.0).clamp_min(1e-8)
        zero = (-lo / scale).round().clamp(0, 255).int()
        return torch.fake_quantize_per_tensor_affine(x, scale, zero, 0, 255)


def prepare_qat(model: nn.Module, config: QATConfig = QATConfig()) -> nn.Module:
    """Add fake quantization to ``model``'s Conv/Linear layers in place; returns ``model``.

    Rebuild the optimizer afterwards (the weights move under ``parametrizations``).
    """
    layers = {name: m for name, m in model.named_modules() if isinstance(m, QUANTIZABLE) and name not in config.fp32_layers}
    if not layers:
        raise QuantizationError(f"{type(model).__name__} has no Conv or Linear layer to train with fake quantization.")
    if is_qat_prepared(model):
        raise QuantizationError(f"{type(model).__name__} already has fake quantization (prepare_qat was called twice).")
    for layer in layers.values():
        parametrize.register_parametrization(layer, "weight", WeightFakeQuant())
        if config.quantize_activations:
            layer.add_module(_ACT_ATTR, ActivationFakeQuant(config.momentum))
            object.__setattr__(layer, _HOOK_ATTR, layer.register_forward_pre_hook(_quantize_input))
    return model


def strip_qat(model: nn.Module) -> nn.Module:
    """Remove the fake quantization in place, keeping the fine-tuned fp32 weights; returns ``model``."""
    for layer in model.modules():
        if parametrize.is_parametrized(layer, "weight"):
            parametrize.remove_parametrizations(layer, "weight", leave_parametrized=False)
        hook = getattr(layer, _HOOK_ATTR, None)
        if hook is not None:
            hook.remove()
            object.__delattr__(layer, _HOOK_ATTR)
        if _ACT_ATTR in layer._modules:
            del layer._modules[_ACT_ATTR]
    return model


def convert_qat(model: nn.Module, calibration: Iterable[Batch], config: QuantizeConfig = QuantizeConfig()) -> QuantizeResult:
    """Strip fake quantization from a QAT-trained ``model`` and quantize it with ``config.backend``."""
    return quantize(strip_qat(model).eval(), calibration, config)


def is_qat_prepared(model: nn.Module) -> bool:
    return any(parametrize.is_parametrized(m, "weight") and isinstance(m, QUANTIZABLE) for m in model.modules())


def _quantize_input(layer: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
    return (getattr(layer, _ACT_ATTR)(args[0]), *args[1:])


class QATCallback(Callback):
    """Trainer hook: adds fake quantization at the start of epoch ``start_epoch`` and asks the
    trainer to rebuild its optimizer. Convert after training with :func:`convert_qat`.

    On resume the trainer restores the callback state first; a model whose checkpoint was
    saved after preparation must be prepared before its weights are loaded (see ``prepared``).
    """

    def __init__(self, config: QATConfig = QATConfig(), start_epoch: int = 0) -> None:
        self.config = config
        self.start_epoch = start_epoch
        self.prepared = False

    def on_epoch_start(self, state: TrainState) -> None:
        if not self.prepared and state.epoch >= self.start_epoch and not is_qat_prepared(state.model):
            prepare_qat(state.model, self.config)
            self.prepared = True
            state.rebuild_optimizer = True

    def state_dict(self) -> dict[str, Any]:
        return {"prepared": self.prepared}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.prepared = bool(state.get("prepared", False))
