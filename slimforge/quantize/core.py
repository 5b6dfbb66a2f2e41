"""The quantization entry point, its config, the backend registry and quantized artifacts."""

from __future__ import annotations

import logging
import platform
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from slimforge._paths import file_inside
from slimforge._registry import Registry
from slimforge.artifacts import CONFIG_FILE, get_spec, read_json, write_json, write_yaml
from slimforge.errors import ArtifactError, ConfigError, SlimforgeError
from slimforge.files import staged_output
from slimforge.quantize._calibration import Batch, collect_calibration
from slimforge.quantize.smooth import MIN_GAIN, apply_smoothing, smoothing_scales

QUANT_INFO_FILE = "quantized.json"
QUANT_FORMAT_VERSION = 1
MODES = ("auto", "static", "dynamic", "weight-only")
log = logging.getLogger(__name__)
QUANTIZABLE = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


class QuantizationError(SlimforgeError):
    """The model cannot be quantized as asked (no quantizable layer, unknown layer, backend failure)."""


@dataclass(frozen=True)
class QuantizeConfig:
    """backend: a registered backend (``list_backends()``); mode: static, dynamic or auto
    (static int8 for models with convolutions, dynamic for linear-only models, the one
    faster than fp32 on each; weight-only for backends that store weights only in fewer bits,
    such as the fbgemm-int* embedding tables); calib_batches: how many batches of the calibration data to use;
    per_channel: per-output-channel weight scales; fp32_first_last: keep the first and last
    quantizable layers in fp32; fp32_layers: module names kept in fp32; threads: intra-op
    threads of the runtime session (0: the runtime's default); compile: torch backend only,
    run the converted model through torch.compile (inductor, freezing) for int8 kernels;
    reduce_range: 7-bit weights (onnxruntime, torch-dynamic) or activations (torch), which avoids
    the int16 saturation of x86 U8S8 kernels on CPUs without VNNI (None: on exactly those CPUs);
    smooth_alpha: SmoothQuant migration strength (0..1) for the Linear layers, measured on the
    calibration batches (None: off; 0.8 suited a fine-tuned MiniLM, see docs/quantize.md);
    smooth_min_gain: smooth only the layers whose simulated int8 error that cuts by this fraction
    (None: every Linear)."""

    backend: str = "onnxruntime"
    mode: str = "auto"
    calib_batches: int = 32
    per_channel: bool = True
    fp32_first_last: bool = False
    fp32_layers: tuple[str, ...] = ()
    threads: int = 0
    compile: bool = True
    reduce_range: bool | None = None
    smooth_alpha: float | None = None
    smooth_min_gain: float | None = MIN_GAIN

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"QuantizeConfig.mode must be one of {MODES}, got {self.mode!r}.")
        if self.calib_batches < 1:
            raise ConfigError(f"QuantizeConfig.calib_batches must be >= 1, got {self.calib_batches}.")
        if self.smooth_alpha is not None and not 0.0 <= self.smooth_alpha <= 1.0:
            raise ConfigError(f"QuantizeConfig.smooth_alpha must be in [0, 1] (or None: off), got {self.smooth_alpha}.")
        if self.smooth_min_gain is not None and not 0.0 <= self.smooth_min_gain < 1.0:
            raise ConfigError(f"QuantizeConfig.smooth_min_gain must be in [0, 1) (or None: every layer), got {self.smooth_min_gain}.")


class QuantizedModel(Protocol):
    """A quantized model bound to its runtime: call it on x (batch, ...) to get logits (batch, classes)."""

    backend: str
    mode: str
    fp32_layers: tuple[str, ...]

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...

    def save(self, folder: Path) -> str:
        """Write the runtime file into ``folder``; return its file name."""
        ...


class PreparedModel(Protocol):
    """A model made ready for one backend (exported, calibration data attached) that can be
    quantized several times with different fp32 layers without exporting again."""

    layers: list[str]  # quantizable module names, in model order

    def quantize(self, fp32_layers: frozenset[str]) -> QuantizedModel: ...


class Backend(Protocol):
    """A quantization backend: prepares a model once, loads what its models saved."""

    def prepare(self, model: nn.Module, calibration: list[torch.Tensor], mode: str, config: QuantizeConfig) -> PreparedModel: ...

    def load(self, folder: Path, info: dict[str, Any], threads: int) -> QuantizedModel: ...


# Backends of domain packages that register themselves when first used.
BUILTIN_BACKENDS = {name: "slimforge.recsys.quantize" for name in ("fbgemm-int8", "fbgemm-int4", "fbgemm-int2")}
BACKENDS: Registry[Backend] = Registry("quantization backend", builtins=BUILTIN_BACKENDS)


def register_backend(name: str, help: str = "") -> Callable[[Backend], Backend]:
    """Register a backend instance: ``register_backend("onnxruntime")(OnnxRuntimeBackend())``."""
    return BACKENDS.register(name, help)


def list_backends() -> list[str]:
    return BACKENDS.names()


@dataclass
class QuantizeResult:
    """quantized: the int8 model; info: what ``quantized.json`` records (backend, mode, layers, metrics)."""

    quantized: QuantizedModel
    info: dict[str, Any] = field(default_factory=dict)


def quantize(model: nn.Module, calibration: Iterable[Batch], config: QuantizeConfig = QuantizeConfig()) -> QuantizeResult:
    """Quantize ``model`` to int8 with ``config.backend``.

    calibration: batches of inputs (batch, ...) or (inputs, targets); the first
    ``config.calib_batches`` are used (dynamic mode uses the first to export). The model is put
    in eval mode and otherwise left as it is. Returns the quantized model and a description for
    :func:`save_quantized`.
    """
    # Set-up: backend, mode, the layers kept in fp32, calibration data.
    prepared, info = prepare(model, calibration, config)

    # Quantize.
    start = time.perf_counter()
    quantized = prepared.quantize(frozenset(info["fp32_layers"]))
    info["seconds"] = round(time.perf_counter() - start, 3)
    bind_preprocess(quantized, info)
    return QuantizeResult(quantized, info)


def prepare(model: nn.Module, calibration: Iterable[Batch], config: QuantizeConfig) -> tuple[PreparedModel, dict[str, Any]]:
    """Check inputs and prepare ``model`` for ``config.backend`` (shared by :func:`quantize` and the fallback search)."""
    backend = BACKENDS.get(config.backend)
    types = getattr(backend, "layer_types", QUANTIZABLE)
    layers = quantizable_layers(model, types)
    if not layers:
        raise QuantizationError(
            f"{type(model).__name__} has no quantizable layer for backend {config.backend!r} "
            f"({'/'.join(t.__name__ for t in types)}); int8 would not change it."
        )
    left = [name for name in quantizable_layers(model) if name not in layers]
    if left:
        log.warning("Backend %r quantizes %s layers only; %d other layers stay fp32 (first: %s).",
                    config.backend, "/".join(t.__name__ for t in types), len(left), left[0])
    unknown = [name for name in config.fp32_layers if name not in layers]
    if unknown:
        raise ConfigError(f"QuantizeConfig.fp32_layers names {unknown}, which are not quantizable layers of the model. Known: {layers}.")
    model = model.eval()
    batches = collect_calibration(
        calibration,
        config.calib_batches,
        model,
        any_inputs=getattr(backend, "accepts_any_inputs", False),
        token_inputs=getattr(backend, "accepts_token_ids", False),
    )
    tokens = isinstance(batches[0], torch.Tensor) and not batches[0].is_floating_point()
    mode = _resolve_mode(model, backend, config, tokens)
    fp32 = list(config.fp32_layers)
    if config.fp32_first_last:
        fp32 += [layers[0], layers[-1]]
    smoothed: list[str] = []
    if config.smooth_alpha is not None:  # a smoothed copy; the fp32 layers stay as they are
        model, smoothed = _smoothed(model, backend, config, mode, batches, [n for n in layers if n not in fp32])
    prepared = backend.prepare(model, batches, mode, config)
    spec = get_spec(model)
    info = {
        "backend": config.backend,
        "mode": mode,
        "fp32_layers": sorted(set(fp32)),
        "quantizable_layers": layers,
        "input_shape": list(batches[0].shape[1:]) if isinstance(batches[0], torch.Tensor) and not tokens else None,
        "inputs": "token_ids" if tokens else ("tensor" if isinstance(batches[0], torch.Tensor) else "any"),
        "calib_batches": len(batches),
        "reduce_range": resolve_reduce_range(config),
        "smoothed_layers": smoothed,
        "source_model": spec.to_json() if spec is not None else None,
        "config": asdict(config),
        "parameters": parameter_shares(model, layers),
    }
    return prepared, info


def _resolve_mode(model: nn.Module, backend: Any, config: QuantizeConfig, tokens: bool) -> str:
    """static or dynamic: the config's, or for "auto" the model's kind, within what the backend and the inputs allow."""
    mode = choose_mode(model) if config.mode == "auto" else config.mode
    if tokens and mode == "static":
        if config.mode == "static":
            raise QuantizationError(
                f"Backend {config.backend!r} quantizes text models (token-id inputs) dynamically only; use mode='dynamic' or 'auto'."
            )
        mode = "dynamic"  # auto on a text CNN: activations scaled per batch, as for transformers
    modes = getattr(backend, "modes", ("static", "dynamic"))
    if config.mode == "auto" and mode not in modes:  # e.g. a dynamic-only backend on a CNN
        mode = modes[0]
    return mode


def _smoothed(model: nn.Module, backend: Any, config: QuantizeConfig, mode: str, batches: list[Any],
              layers: list[str]) -> tuple[nn.Module, list[str]]:
    """A SmoothQuant copy of ``model`` (``config.smooth_alpha``) and the layers it smoothed."""
    if mode not in getattr(backend, "smoothing_modes", ()):
        able = {name: list(BACKENDS.get(name).smoothing_modes) for name in list_backends() if hasattr(BACKENDS.get(name), "smoothing_modes")}
        raise QuantizationError(
            f"Backend {config.backend!r} does not support SmoothQuant (smooth_alpha) in {mode} mode; backends and modes that do: {able}."
        )
    bits = 7 if resolve_reduce_range(config) else 8  # both backends narrow the weights under reduce_range
    scales = smoothing_scales(model, batches, config.smooth_alpha, layers, min_gain=config.smooth_min_gain, weight_bits=bits,
                              per_channel=config.per_channel)
    return apply_smoothing(model, scales), sorted(scales)


def parameter_shares(model: nn.Module, layers: Sequence[str]) -> dict[str, Any]:
    """Where the model's parameters sit: in each quantizable layer, and in the other module types
    (an LSTM, embeddings, norms) that stay float. Says how much of the model int8 covers."""
    modules = dict(model.named_modules())
    own = {name: sum(p.numel() for p in m.parameters(recurse=False)) for name, m in modules.items()}
    others: dict[str, int] = {}
    for name, count in own.items():
        if count and name not in layers:
            kind = type(modules[name]).__name__
            others[kind] = others.get(kind, 0) + count
    return {"total": sum(own.values()), "by_layer": {name: own[name] for name in layers},
            "float_by_type": dict(sorted(others.items(), key=lambda kv: -kv[1]))}


def coverage_line(info: Mapping[str, Any]) -> str | None:
    """One line: how much of the model the backend converted, and what stays float (and why). Named
    after the backend, not "int8": a backend may store int4, int2 or bf16."""
    shares = info.get("parameters")
    if not isinstance(shares, dict) or not shares.get("total"):
        return None
    total, fp32 = shares["total"], set(info.get("fp32_layers", []))
    int8 = {n: c for n, c in shares["by_layer"].items() if n not in fp32}
    line = f"quantized ({info['backend']}): {len(int8)} of {len(shares['by_layer'])} layers, {100 * sum(int8.values()) / total:.1f}% of the parameters"
    kept = [f"{n} (kept fp32)" for n in sorted(fp32)]
    kept += [f"{kind} {100 * c / total:.1f}%" for kind, c in shares["float_by_type"].items() if c / total >= 0.001]
    if kept:
        line += "; float: " + ", ".join(kept)
    if sum(int8.values()) < 0.5 * total:
        line += ". Most of the model stays float, so quantizing cannot make it much faster."
    return line


def quantizable_layers(model: nn.Module, types: tuple[type[nn.Module], ...] = QUANTIZABLE) -> list[str]:
    """Names of the Conv and Linear modules (or of ``types``), in definition order."""
    return [name for name, m in model.named_modules() if isinstance(m, types)]


def choose_mode(model: nn.Module) -> str:
    """``static`` for models with convolutions, ``dynamic`` for linear-only ones (MLPs, transformers).

    Static int8 needs calibration but quantizes activations once per tensor; on linear-only
    models dynamic quantization avoids the per-layer requantization overhead that makes static
    int8 of small matmuls slower than fp32 on some runtimes.
    """
    return "static" if any(isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)) for m in model.modules()) else "dynamic"


def cpu_has_vnni() -> bool:
    """Whether this x86 CPU has VNNI (AVX512-VNNI, AVX-VNNI or AMX); False when unknown.

    Without it, x86 U8S8 int8 kernels (ONNX Runtime's and oneDNN's) sum pairs of u8*s8 products
    in int16 (vpmaddubsw), which saturates for large weights and activations; 7-bit values
    (reduce_range) avoid that. Measured on an AVX2-only EPYC: without it, dynamic int8 of an MLP
    was 6x (onnxruntime) and 20x (torch/inductor) further from fp32.
    """
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return any(f in flags for f in ("avx512_vnni", "avx_vnni", "amx_int8"))


def resolve_reduce_range(config: QuantizeConfig) -> bool:
    """``config.reduce_range``, or, when None, True exactly on CPUs without VNNI."""
    return config.reduce_range if config.reduce_range is not None else not cpu_has_vnni()


# ---------------------------------------------------------------- artifacts


def save_quantized(result: QuantizeResult, out: str | Path, metrics: dict[str, Any] | None = None, *, config: Any = None) -> Path:
    """Write the runtime file and ``quantized.json`` (and ``metrics.json``) into folder ``out``.

    ``config`` is written as ``config.yaml``, as :func:`slimforge.save` does: with a ``data``
    section (``{"data": data.config_section()}`` for a ``data = slimforge.load_dataset(...)``),
    ``slimforge eval`` and ``measure`` score the folder on that data without being told.
    """
    with staged_output(Path(out)) as folder:  # replaces ``out`` whole: never a new runtime file beside an old quantized.json
        runtime_file = result.quantized.save(folder)
        info = {
            "format": QUANT_FORMAT_VERSION,
            **result.info,
            "runtime_file": runtime_file,
            "torch": torch.__version__,
            "machine": platform.machine(),
        }
        if metrics is not None:
            info["metrics"] = metrics
            write_json(folder / "metrics.json", metrics)
        if config is not None:
            write_yaml(folder / CONFIG_FILE, config)
        write_json(folder / QUANT_INFO_FILE, info)
    return Path(out)


def load_quantized(path: str | Path, threads: int = 0) -> QuantizedModel:
    """Load a folder written by :func:`save_quantized`: a model callable on x (batch, ...) -> logits.

    ONNX Runtime artifacts run in an ONNX Runtime session; torch artifacts are reloaded from the
    .pt2 (checked to hold no pickled payload) and compiled on first call. Never unpickles, and
    reads no file outside ``path``.
    """
    folder = Path(path)
    info = read_quantized_info(folder)
    if info["backend"] not in BACKENDS:
        raise ArtifactError(f"{folder / QUANT_INFO_FILE}: unknown backend {info['backend']!r}; this slimforge has {', '.join(list_backends())}.")
    return bind_preprocess(BACKENDS.get(info["backend"]).load(folder, info, threads), info, str(folder / QUANT_INFO_FILE))


def bind_preprocess(quantized: Any, info: dict[str, Any], source: str = "quantized.json") -> Any:
    """Give an int8 model the preprocessing its fp32 source recorded (``source_model.preprocess``):
    it then takes raw data (numpy arrays, integer tensors) as the fp32 model does."""
    from slimforge.preprocess import Preprocess, PreprocessSpec

    recorded = (info.get("source_model") or {}).get("preprocess") if isinstance(info.get("source_model"), dict) else None
    if hasattr(quantized, "preprocess"):
        quantized.preprocess = Preprocess(PreprocessSpec.from_json(recorded, source)) if recorded is not None else None
    return quantized


# quantized.json's keys that loading reads, with the type each must have when present.
_INFO_TYPES: dict[str, tuple[type, str]] = {
    "format": (int, "an integer"),
    "backend": (str, "a backend name"),
    "runtime_file": (str, "a file name"),
    "mode": (str, "a string"),
    "inputs": (str, "a string"),
    "fp32_layers": (list, "a list of layer names"),
    "smoothed_layers": (list, "a list of layer names"),
    "input_shape": (list, "a list of sizes"),  # null for token-id inputs
    "config": (dict, "an object"),
    "metrics": (dict, "an object"),
}
_NULLABLE = ("input_shape",)


def read_quantized_info(folder: str | Path) -> dict[str, Any]:
    """``folder/quantized.json``, checked: known keys of the right types, and a runtime file that
    lies inside ``folder`` (no absolute path, no ``..``, no symlink out). :class:`ArtifactError`
    names the file and the key otherwise."""
    folder = Path(folder)
    source = folder / QUANT_INFO_FILE
    info = read_json(source)
    if not isinstance(info, dict) or "backend" not in info or "runtime_file" not in info:
        raise ArtifactError(f"{source} does not describe a quantized model (no 'backend'/'runtime_file').")
    for key, (kind, what) in _INFO_TYPES.items():
        value = info.get(key)
        if key in info and (not isinstance(value, kind) or isinstance(value, bool)) and not (value is None and key in _NULLABLE):
            raise ArtifactError(f"{source}: {key!r} must be {what}, not {value!r}; the file is corrupt.")
    for key in ("fp32_layers", "smoothed_layers"):
        if not all(isinstance(n, str) for n in info.get(key, [])):
            raise ArtifactError(f"{source}: {key!r} must list layer names (strings), not {info[key]!r}.")
    shape = info.get("input_shape") or []
    if not all(isinstance(n, int) and not isinstance(n, bool) and 0 < n < 2**31 for n in shape):
        raise ArtifactError(f"{source}: 'input_shape' must list positive sizes, not {shape!r}.")
    for key in ("compile", "per_channel", "reduce_range"):  # the recorded settings loading applies again
        value = info.get("config", {}).get(key)
        if value is not None and not isinstance(value, bool):
            raise ArtifactError(f"{source}: 'config.{key}' must be true or false, not {value!r}.")
    if info.get("format", QUANT_FORMAT_VERSION) > QUANT_FORMAT_VERSION:
        raise ArtifactError(f"{source}: format {info['format']} is newer than this slimforge reads; upgrade slimforge.")
    file_inside(folder, info["runtime_file"], str(source), "runtime_file")
    return info


def is_quantized_artifact(path: str | Path) -> bool:
    """True for a folder written by :func:`save_quantized` (``slimforge.load`` can dispatch on it)."""
    return (Path(path) / QUANT_INFO_FILE).is_file()
