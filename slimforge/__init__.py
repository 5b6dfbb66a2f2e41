"""slimforge: make PyTorch models faster and smaller without losing accuracy.

The public API, one function per stage::

    model = slimforge.create_model("resnet20", num_classes=10, in_channels=1)
    data = slimforge.load_dataset("fashion-mnist")
    result = slimforge.train(model, data, TrainConfig(epochs=15), out="runs/x")
    slimforge.save(model, "runs/x"); model = slimforge.load("runs/x")
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

# Public name -> "module:attribute"; imported on first use so `import slimforge` stays cheap.
_EXPORTS = {
    "save": "slimforge.loading:save",
    "load": "slimforge.loading:load",
    "save_pretrained": "slimforge.models.hf:save_pretrained",
    "create_model": "slimforge.models:create_model",
    "list_models": "slimforge.models:list_models",
    "load_dataset": "slimforge.data:load_dataset",
    "list_datasets": "slimforge.data:list_datasets",
    "evaluate": "slimforge.train:evaluate",
    "TrainConfig": "slimforge.train:TrainConfig",
    "QuantizeConfig": "slimforge.quantize:QuantizeConfig",
    "load_quantized": "slimforge.quantize:load_quantized",
    "FactorizeConfig": "slimforge.factorize:FactorizeConfig",
    "ExportConfig": "slimforge.export:ExportConfig",
    # Stage packages, each callable as its stage: slimforge.prune(model, x, ratio=0.5), slimforge.quantize(model, batches).
    "prune": "slimforge.prune",
    "distill": "slimforge.distill",
    "quantize": "slimforge.quantize",
    "factorize": "slimforge.factorize",
    "export": "slimforge.export",
}


# `train` is both a subpackage and the public function: import the package first, then bind
# the function over the attribute the import system set (later submodule imports keep it).
from slimforge.train import train  # noqa: E402


def __getattr__(name: str) -> Any:
    target = _EXPORTS.get(name)
    if target is None:
        raise AttributeError(f"module 'slimforge' has no attribute {name!r}")
    module, _, attr = target.partition(":")
    value = getattr(import_module(module), attr) if attr else import_module(module)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


__all__ = ["__version__", "train", *_EXPORTS]
