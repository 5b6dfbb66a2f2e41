"""The ``torch-dynamic`` int8 backend moved to :mod:`slimforge.quantize.dynamic` (it quantizes any
model's ``nn.Linear`` layers, not only text models); these names are kept for existing imports."""

from slimforge.quantize.dynamic import (  # noqa: F401
    BACKEND, SMOOTHING_FILE, DynamicInt8Model, TorchDynamicBackend, dynamic_int8, quantize_dynamic_int8,
)
