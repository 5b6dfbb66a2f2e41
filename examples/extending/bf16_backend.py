"""A quantization backend: bfloat16 weights and arithmetic for Linear and convolution layers.

Half the bytes of fp32 for those layers, and faster where the CPU has bf16 instructions
(AVX-512 BF16, AMX); elsewhere it saves memory only. A backend has two methods: ``prepare`` (once
per model) returns an object whose ``quantize(fp32_layers)`` gives the model to run and save, and
``load`` rebuilds that model from the folder it saved, without pickle. Optional attributes say what
it can do: ``modes`` (here weight-only), ``layer_types``, ``accepts_any_inputs``.

    import bf16_backend                 # registers "bf16"
    result = slimforge.quantize(model, calibration, QuantizeConfig(backend="bf16"))
    slimforge.quantize.save_quantized(result, "runs/cnn-bf16"); slimforge.load("runs/cnn-bf16")

    SLIMFORGE_PLUGINS=bf16_backend slimforge quantize runs/cnn --backend bf16 --out runs/cnn-bf16
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
from torch import nn

from slimforge.artifacts import WEIGHTS_FILE
from slimforge.model_io import load_model, save_model
from slimforge.quantize import register_backend

LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def _in_bf16(module: nn.Module, inputs: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(x.to(torch.bfloat16) if torch.is_tensor(x) and x.is_floating_point() else x for x in inputs)


def _in_fp32(module: nn.Module, inputs: Any, output: torch.Tensor) -> torch.Tensor:
    return output.float()


class Bf16Model(nn.Module):
    """The model with its layers not in ``fp32_layers`` in bfloat16; takes and returns fp32 tensors."""

    backend, mode = "bf16", "weight-only"

    def __init__(self, model: nn.Module, fp32_layers: frozenset[str]) -> None:
        super().__init__()
        self.model = copy.deepcopy(model).eval()
        self.fp32_layers = tuple(sorted(fp32_layers))
        for name, layer in self.model.named_modules():
            if isinstance(layer, LAYERS) and name not in fp32_layers:
                layer.to(torch.bfloat16)
                layer.register_forward_pre_hook(_in_bf16)
                layer.register_forward_hook(_in_fp32)

    def forward(self, x: Any) -> torch.Tensor:
        return self.model(x)

    def save(self, folder: Path) -> str:
        save_model(self.model, folder)  # model.json + bf16 safetensors: half the bytes of those layers
        return WEIGHTS_FILE


class _Prepared:
    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.layers = [n for n, m in model.named_modules() if isinstance(m, LAYERS)]

    def quantize(self, fp32_layers: frozenset[str]) -> Bf16Model:
        return Bf16Model(self.model, fp32_layers)


class Bf16Backend:
    modes = ("weight-only",)
    layer_types = LAYERS

    def prepare(self, model: nn.Module, calibration: list[Any], mode: str, config: Any) -> _Prepared:
        return _Prepared(model)  # nothing to calibrate: bf16 keeps fp32's range

    def load(self, folder: Path, info: dict[str, Any], threads: int) -> Bf16Model:
        if threads:
            torch.set_num_threads(threads)
        return Bf16Model(load_model(folder), frozenset(info.get("fp32_layers", [])))


register_backend("bf16", help="bfloat16 Linear/Conv layers (half the bytes; fast with AVX-512 BF16 or AMX)")(Bf16Backend())
