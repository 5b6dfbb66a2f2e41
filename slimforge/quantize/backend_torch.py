"""PyTorch-native backend: PT2E quantization with torchao's X86InductorQuantizer, run by torch.compile.

The model is captured with ``torch.export`` (strict, so each node records the module it came
from, which the quantizer's pattern matching needs; non-strict when strict tracing fails), annotated by ``X86InductorQuantizer`` (static:
uint8 activations calibrated per tensor, int8 per-channel weights; dynamic: activations scaled
per batch), calibrated, converted with ``convert_pt2e`` and compiled with inductor (freezing on),
which lowers the quantize/dequantize patterns to oneDNN int8 kernels. Without compile the
converted graph runs reference quantize/dequantize ops in fp32 and is *slower* than fp32.

The artifact is the converted graph re-exported with ``torch.export`` and saved as ``model.pt2``;
it is compiled again after loading (compiled code itself cannot be saved without pickle).
Deprecated ``torch.ao.quantization`` eager/FX APIs are not used.
"""

from __future__ import annotations

import copy
import io
import logging
import warnings
from contextlib import redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from slimforge.errors import ArtifactError
from slimforge.export import export_program, load_pt2, save_pt2
from slimforge.preprocess import model_input
from slimforge.quantize.core import QuantizationError, QuantizeConfig, quantizable_layers, register_backend, resolve_reduce_range

RUNTIME_FILE = "model.pt2"

# Known-harmless notices of torch/torchao internals that every torch-backend run would print:
# torchao registering its enums with pytree, inductor building a tensor from a tensor in its
# oneDNN lowering, and cpp_extension looking for a CUDA toolkit on a CPU-only machine.
for _name in ("torch.utils._pytree", "torch.utils.cpp_extension"):
    logging.getLogger(_name).setLevel(logging.ERROR)
warnings.filterwarnings("ignore", message="To copy construct from a tensor", category=UserWarning, module=r"torch\._inductor\.mkldnn_lowerings")


@dataclass
class TorchQuantized:
    """A PT2E-converted graph; compiled with inductor on first call when ``compile`` is set."""

    graph: nn.Module
    mode: str
    fp32_layers: tuple[str, ...]
    input_shape: tuple[int, ...]  # per sample, e.g. (1, 28, 28)
    compile: bool = True
    backend: str = "torch"
    _compiled: Any = field(default=None, repr=False)
    preprocess: Any = field(default=None, repr=False)  # raw data -> the graph's inputs (slimforge.preprocess)

    @torch.no_grad()
    def __call__(self, x: Any) -> torch.Tensor:
        x = model_input(x, self.preprocess)  # numpy arrays and integer tensors are raw data
        if not self.compile:
            return self.graph(x)
        if self._compiled is None:
            # Static shapes: a new batch size compiles its own graph. With dynamic shapes,
            # inductor's quantized-conv lowering asserts a wrong stride (seen with torch 2.14).
            self._compiled = torch.compile(self.graph, dynamic=False)
        # Freezing folds the int8 weights into constants, which the oneDNN int8 kernels need.
        with torch._inductor.config.patch(freezing=True):
            return self._compiled(x)

    def save(self, folder: Path) -> str:
        with _quiet():
            program = export_program(self.graph, torch.zeros(2, *self.input_shape), dynamic_batch=True)
        save_pt2(program, Path(folder) / RUNTIME_FILE)
        return RUNTIME_FILE


class _Prepared:
    def __init__(self, model: nn.Module, calibration: list[torch.Tensor], mode: str, config: QuantizeConfig) -> None:
        self.layers = quantizable_layers(model)
        self.calibration = calibration
        self.mode = mode
        self.config = config
        self.input_shape = tuple(calibration[0].shape[1:])
        self.graph = capture(model, calibration[0])

    def quantize(self, fp32_layers: frozenset[str]) -> TorchQuantized:
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
        from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as xiq

        if set(fp32_layers) >= set(self.layers):
            raise QuantizationError(f"Every quantizable layer is kept in fp32 ({sorted(fp32_layers)}); nothing to quantize.")
        quantizer = xiq.X86InductorQuantizer()
        quantizer.set_global(
            xiq.get_default_x86_inductor_quantization_config(
                is_dynamic=self.mode == "dynamic", reduce_range=resolve_reduce_range(self.config)
            )
        )
        for name in fp32_layers:
            quantizer.set_module_name_qconfig(name, None)
        with _quiet(), torch.no_grad():
            observed = prepare_pt2e(copy.deepcopy(self.graph), quantizer)
            for x in self.calibration:
                observed(x)
            converted = convert_pt2e(observed)
        check_quantized(converted)
        return TorchQuantized(converted, self.mode, tuple(sorted(fp32_layers)), self.input_shape, self.config.compile)


def capture(model: nn.Module, example: torch.Tensor) -> nn.Module:
    """The graph PT2E annotates: strict ``torch.export`` (TorchDynamo) where it works.

    X86InductorQuantizer finds convolutions and linears through each node's ``source_fn_stack``,
    which only strict export records with torch 2.11: its non-strict graph got no annotation at
    all (torch 2.14's matcher falls back to other metadata). Models dynamo cannot trace are
    exported non-strict; :func:`check_quantized` then catches a graph left unannotated.
    """
    with _quiet():
        try:
            return export_program(model, example, dynamic_batch=True, strict=True).module()
        except Exception as exc:  # noqa: BLE001 - any tracing failure: fall back to the other tracer
            logging.getLogger(__name__).info("strict torch.export failed (%s); capturing non-strict.", exc)
            return export_program(model, example, dynamic_batch=True).module()


def quantize_ops(graph: nn.Module) -> int:
    """How many quantize/dequantize nodes a converted PT2E graph holds."""
    return sum(1 for n in graph.graph.nodes if n.op == "call_function" and "quantize" in str(n.target))


def check_quantized(converted: nn.Module) -> None:
    """Refuse a conversion that quantized nothing: it would run in fp32 under an int8 label.

    Seen with torch 2.11 + torchao 0.18: X86InductorQuantizer annotated no node of the exported
    graph, and convert_pt2e returned the fp32 graph unchanged.
    """
    if quantize_ops(converted) == 0:
        import torchao

        raise QuantizationError(
            f"PT2E quantized no layer of this model (torch {torch.__version__}, torchao {torchao.__version__}): "
            "the quantizer annotated nothing, so the result would be fp32. Use the torchao release built for this "
            "torch version, or --backend onnxruntime."
        )


class TorchBackend:
    """torchao PT2E + X86InductorQuantizer, executed by torch.compile.

    No SmoothQuant: the quantizer groups a Linear's nodes by the module they come from, and the
    input multiply inside it breaks its pattern match ("mul is not an aten linear operator").
    """

    def prepare(self, model: nn.Module, calibration: list[torch.Tensor], mode: str, config: QuantizeConfig) -> _Prepared:
        _require_torchao()
        return _Prepared(model, calibration, mode, config)

    def load(self, folder: Path, info: dict[str, Any], threads: int) -> TorchQuantized:
        _require_torchao()
        # threads: PyTorch's thread count is process-wide; set it with torch.set_num_threads.
        if not info.get("input_shape"):
            raise ArtifactError(f"{Path(folder) / 'quantized.json'} has no 'input_shape'; the torch backend needs it to compile the graph.")
        graph = load_pt2(Path(folder) / info["runtime_file"])
        compile_ = info.get("config", {}).get("compile", True) is not False
        return TorchQuantized(graph, info.get("mode", "static"), tuple(info.get("fp32_layers", [])), tuple(info["input_shape"]), compile_)


register_backend("torch", help="PyTorch PT2E (torchao X86InductorQuantizer) + torch.compile")(TorchBackend())


def _require_torchao() -> None:
    try:
        import torchao.quantization.pt2e  # noqa: F401
    except ImportError:
        raise QuantizationError("The torch backend needs torchao: pip install 'slimforge[quant]'.") from None


class _quiet:
    """Silence export/PT2E progress prints and deprecation warnings."""

    def __enter__(self) -> None:
        self._warnings = warnings.catch_warnings()
        self._warnings.__enter__()
        warnings.simplefilter("ignore")
        self._stdout = redirect_stdout(io.StringIO())
        self._stdout.__enter__()

    def __exit__(self, *exc: object) -> None:
        self._stdout.__exit__(*exc)
        self._warnings.__exit__(*exc)
