"""Dynamic int8 for models with variable-length inputs: the ``torch-dynamic`` quantization backend.

The ``torch`` (PT2E) backend exports the model for one per-sample shape of float inputs, and
``onnxruntime`` takes text only as token ids; text batches are dicts of varying length. This
backend quantizes the model's ``nn.Linear`` layers (weights int8, per output channel unless
``per_channel`` is off, 7-bit on CPUs without VNNI, see ``QuantizeConfig.reduce_range``;
activations uint8, quantized per batch at run time) and keeps it an eager module, so it takes
whatever the fp32 model takes.

It uses ``torch.ao.quantization.quantize_dynamic``, which PyTorch marks deprecated in favour of
torchao; torchao's eager int8 (``Int8DynamicActivationInt8WeightConfig``) ran MiniLM-L6 18x
*slower* than fp32 here (batch 32, 1 thread, no ``torch.compile``), while ``quantize_dynamic``
ran it 1.5-1.9x faster. Its FBGEMM kernels need x86 (``torch.backends.quantized.engine``).

The artifact holds the fp32 weights (``model.safetensors`` + ``model.json``, no pickle) and
``quantized.json``; :func:`slimforge.quantize.load_quantized` rebuilds the fp32 model and
quantizes it again, which gives the same int8 weights (rounding is deterministic).
"""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from slimforge import artifacts
from slimforge.artifacts import atomic_write_bytes
from slimforge.errors import ArtifactError, ConfigError
from slimforge.model_io import load_model, save_model
from slimforge.quantize.core import QuantizationError, QuantizeConfig, QuantizeResult, quantize, register_backend, resolve_reduce_range
from slimforge.quantize.smooth import MIN_GAIN, apply_smoothing, join_groups, scale_groups, smoothing_record

BACKEND = "torch-dynamic"
SMOOTHING_FILE = "smoothing.safetensors"  # layer -> SmoothQuant's s, when the model was smoothed


class DynamicInt8Model(nn.Module):
    """An eagerly run model whose Linear layers are dynamic int8; call it like the fp32 model."""

    backend = BACKEND
    mode = "dynamic"

    def __init__(self, quantized: nn.Module, source: nn.Module, fp32_layers: tuple[str, ...]) -> None:
        super().__init__()
        self.model = quantized
        self.fp32_layers = fp32_layers
        self.__dict__["source"] = source  # the fp32 model it was made from (saved in its place)

    def train(self, mode: bool = True) -> DynamicInt8Model:
        """Inference only: stays in eval mode (dropout off) whatever a caller restores."""
        return super().train(False)

    def forward(self, inputs: Any) -> torch.Tensor:
        return self.model(inputs)

    def save(self, folder: Path) -> str:
        record = smoothing_record(self.source)
        if record is None:
            save_model(self.source, folder)
        else:  # the model's own fp32 weights, and the SmoothQuant scales that loading applies again
            original, scales = record
            save_model(original, folder)
            groups = {"groups": json.dumps(scale_groups(scales))}  # layers sharing one scale and one multiply
            atomic_write_bytes(Path(folder) / SMOOTHING_FILE, artifacts.state_dict_bytes(scales, groups))
        return artifacts.WEIGHTS_FILE


def dynamic_int8(
    model: nn.Module, fp32_layers: frozenset[str] = frozenset(), per_channel: bool = True, reduce_range: bool = True
) -> DynamicInt8Model:
    """A dynamic-int8 copy of ``model`` (its Linear layers not named in ``fp32_layers``); ``model`` is untouched.

    per_channel: one weight scale per output neuron (else one per layer); reduce_range: 7-bit
    weights, needed on x86 CPUs without VNNI, whose int8 kernels saturate otherwise. Narrowing
    the weights rather than the activations (torch.ao's own choice) is what ONNX Runtime does; on
    a MiniLM-L6 fine-tuned on SST-2 it halved the logit error against fp32 (BENCHMARKS.md).
    """
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and n not in fp32_layers]
    if not names:
        raise QuantizationError(f"{type(model).__name__} has no nn.Linear layer left to quantize dynamically.")
    _select_engine()
    source = copy.deepcopy(model).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*torch.ao.quantization.*")
        warnings.filterwarnings("ignore", message=".*quantized tensor creation functions.*")
        from torch.ao.quantization import quantize_dynamic

        qconfig = _dynamic_qconfig(per_channel, reduce_range)
        linear = _dynamic_linear_class()
        mapping = {nn.Linear: linear, nn.modules.linear.NonDynamicallyQuantizableLinear: linear}
        quantized = quantize_dynamic(copy.deepcopy(source), {n: qconfig for n in names}, dtype=torch.qint8, mapping=mapping)
    return DynamicInt8Model(quantized, source, tuple(sorted(fp32_layers))).eval()


_DYNAMIC_LINEAR: type | None = None


def _dynamic_qconfig(per_channel: bool, reduce_range: bool) -> Any:
    """Symmetric int8 weights (7-bit with ``reduce_range``), one scale per row or per layer;
    uint8 activations with their range measured on each batch."""
    from torch.ao.quantization import MinMaxObserver, PerChannelMinMaxObserver, PlaceholderObserver, QConfig

    low, high = (-64, 63) if reduce_range else (-128, 127)
    if per_channel:
        weight = PerChannelMinMaxObserver.with_args(dtype=torch.qint8, qscheme=torch.per_channel_symmetric, quant_min=low, quant_max=high)
    else:
        weight = MinMaxObserver.with_args(dtype=torch.qint8, qscheme=torch.per_tensor_symmetric, quant_min=low, quant_max=high)
    activation = PlaceholderObserver.with_args(dtype=torch.quint8, quant_min=0, quant_max=255, is_dynamic=True)
    return QConfig(activation=activation, weight=weight)


def _dynamic_linear_class() -> type:
    """torch.ao's dynamic int8 Linear with 8-bit activations.

    Its own forward always quantizes activations to 7 bits (``reduce_range=True``), so that
    u8 x s8 products summed in pairs fit int16 on CPUs without VNNI. Here the weights carry that
    constraint instead when needed (7-bit weights: 2 x 255 x 64 < 2^15), which costs less
    accuracy; activations always keep 8 bits. Built on first use so importing slimforge does not
    import the deprecated ``torch.ao.nn.quantized`` package.
    """
    global _DYNAMIC_LINEAR
    if _DYNAMIC_LINEAR is None:
        from torch.ao.nn.quantized.dynamic import Linear as AoDynamicLinear

        class DynamicLinear(AoDynamicLinear):
            def forward(self, x: torch.Tensor) -> torch.Tensor:
                if self._packed_params.dtype != torch.qint8:
                    return super().forward(x)
                y = torch.ops.quantized.linear_dynamic(x, self._packed_params._packed_params, reduce_range=False)
                return y.to(x.dtype)

        _DYNAMIC_LINEAR = DynamicLinear
    return _DYNAMIC_LINEAR


def quantize_dynamic_int8(
    model: nn.Module,
    calibration: Any,
    fp32_layers: tuple[str, ...] = (),
    per_channel: bool = True,
    smooth_alpha: float | None = None,
    calib_batches: int = 8,
    smooth_min_gain: float | None = MIN_GAIN,
) -> QuantizeResult:
    """``slimforge.quantize.quantize`` with the ``torch-dynamic`` backend: ``calibration`` is an
    iterable of batches. Without SmoothQuant only the first is used (to check the model runs);
    with ``smooth_alpha`` the first ``calib_batches`` measure the activation ranges, and
    ``smooth_min_gain`` selects the layers (``QuantizeConfig``)."""
    config = QuantizeConfig(
        backend=BACKEND, mode="dynamic", calib_batches=calib_batches if smooth_alpha is not None else 1,
        fp32_layers=fp32_layers, per_channel=per_channel, smooth_alpha=smooth_alpha, smooth_min_gain=smooth_min_gain,
    )
    return quantize(model, calibration, config)


def _select_engine() -> None:
    engines = torch.backends.quantized.supported_engines
    for engine in ("x86", "fbgemm", "qnnpack"):
        if engine in engines:
            torch.backends.quantized.engine = engine
            return
    raise QuantizationError(f"This PyTorch build has no quantized engine for dynamic int8 (supported: {engines}).")


class _Prepared:
    def __init__(self, model: nn.Module, config: QuantizeConfig) -> None:
        self.model = model
        self.config = config
        self.layers = [n for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d))]

    def quantize(self, fp32_layers: frozenset[str]) -> DynamicInt8Model:
        return dynamic_int8(self.model, fp32_layers, self.config.per_channel, resolve_reduce_range(self.config))


class TorchDynamicBackend:
    """Eager dynamic int8 of nn.Linear layers; any input structure (token-id dicts included)."""

    accepts_any_inputs = True
    layer_types = (nn.Linear,)  # convolutions stay fp32
    smoothing_modes = ("dynamic",)  # SmoothQuant's input-scaling hooks survive torch.ao's module swap
    modes = ("dynamic",)

    def prepare(self, model: nn.Module, calibration: list[Any], mode: str, config: QuantizeConfig) -> _Prepared:
        if mode != "dynamic":
            raise QuantizationError(f"Backend {BACKEND!r} only does dynamic int8 (mode='dynamic' or 'auto'); convolutions stay fp32, not {mode!r}.")
        return _Prepared(model, config)

    def load(self, folder: Path, info: dict[str, Any], threads: int) -> DynamicInt8Model:
        if threads:
            torch.set_num_threads(threads)
        # Artifacts from before per-channel weights were honoured record per_channel=True but were
        # per-tensor; they are rebuilt per channel (more accurate). The weight range follows
        # this machine's CPU unless it was set explicitly: 8 bits would saturate without VNNI.
        config = info.get("config", {})
        model = load_model(folder)
        if info.get("smoothed_layers"):
            model = _smooth_loaded(model, Path(folder) / SMOOTHING_FILE)
        return dynamic_int8(
            model,
            frozenset(info.get("fp32_layers", [])),
            per_channel=config.get("per_channel", True),
            reduce_range=resolve_reduce_range(QuantizeConfig(reduce_range=config.get("reduce_range"))),
        )


def _smooth_loaded(model: nn.Module, path: Path) -> nn.Module:
    """``model`` with the SmoothQuant scales saved in ``path`` applied again."""
    if not path.is_file():
        raise ArtifactError(f"{path} is missing; quantized.json says the model was smoothed (SmoothQuant).")
    scales = artifacts.read_tensors(path)
    try:
        groups = json.loads(artifacts.read_metadata(path).get("groups", "[]"))
        if not (isinstance(groups, list) and all(isinstance(g, list) and all(isinstance(n, str) for n in g) for g in groups)):
            raise ConfigError(f"its 'groups' metadata is not a list of lists of layer names: {groups!r}")
        return apply_smoothing(model, join_groups(scales, groups))
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{path} has unreadable 'groups' metadata ({exc}).") from None
    except ConfigError as exc:
        raise ArtifactError(f"{path} does not fit the saved model: {exc}") from None


register_backend(BACKEND, help="eager dynamic int8 of Linear layers (torch.ao quantize_dynamic); any inputs, e.g. text")(TorchDynamicBackend())
