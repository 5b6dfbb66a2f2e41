"""Int8 quantization with pluggable backends, an accuracy-aware fallback and QAT.

Backends (``list_backends()``):

* ``onnxruntime``: static QDQ int8 with calibration for CNNs, dynamic int8 for linear models;
  runs in ONNX Runtime; artifact ``model.onnx``.
* ``torch``: PT2E through torchao's ``X86InductorQuantizer`` and ``torch.compile``; artifact
  ``model.pt2`` (``torch.export``), compiled again after loading.

    result = quantize(model, train_loader, QuantizeConfig(backend="onnxruntime", calib_batches=32))
    logits = result.quantized(x)                     # x: (batch, 1, 28, 28) -> (batch, 10)
    save_quantized(result, "runs/x-int8"); q = load_quantized("runs/x-int8")

``quantize_with_fallback`` returns the most sensitive layers to fp32 until the accuracy loss
is within a tolerance; ``prepare_qat``/``convert_qat`` fine-tune with fake quantization first.
"""

from __future__ import annotations

from slimforge._callable import make_callable

from slimforge.quantize.core import (
    BACKENDS,
    QuantizationError,
    QuantizeConfig,
    QuantizedModel,
    QuantizeResult,
    choose_mode,
    is_quantized_artifact,
    list_backends,
    load_quantized,
    quantizable_layers,
    quantize,
    register_backend,
    save_quantized,
)
from slimforge.quantize.evaluate import accuracy, accuracy_evaluator, agreement, agreement_evaluator, compare_accuracy

# Register the built-in backends (import for side effects; their heavy imports are lazy).
from slimforge.quantize import backend_onnxruntime, backend_torch, dynamic  # noqa: E402,F401,I001
from slimforge.quantize.fallback import FallbackConfig, FallbackResult, quantize_with_fallback  # noqa: E402
from slimforge.quantize.qat import QATCallback, QATConfig, convert_qat, prepare_qat  # noqa: E402

__all__ = [
    "BACKENDS",
    "FallbackConfig",
    "FallbackResult",
    "QATCallback",
    "QATConfig",
    "QuantizationError",
    "QuantizeConfig",
    "QuantizeResult",
    "QuantizedModel",
    "accuracy",
    "accuracy_evaluator",
    "agreement",
    "agreement_evaluator",
    "choose_mode",
    "compare_accuracy",
    "convert_qat",
    "is_quantized_artifact",
    "list_backends",
    "load_quantized",
    "prepare_qat",
    "quantizable_layers",
    "quantize",
    "quantize_with_fallback",
    "register_backend",
    "save_quantized",
]

make_callable(__name__, quantize)  # slimforge.quantize(...)
