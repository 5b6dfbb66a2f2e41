"""ONNX Runtime backend: static QDQ int8 with calibration for CNNs, dynamic int8 for linear models.

The fp32 model is exported once (``torch.onnx.export(dynamo=True)``, which folds BatchNorm into
the convolutions), then quantized by ``onnxruntime.quantization``: activations uint8, weights
int8 (per channel by default), the U8S8 combination ONNX Runtime's x86 kernels are fastest with.
A layer kept in fp32 is found in the ONNX graph by the module scope the exporter records on each
node (or, failing that, by its weight's name). Text models (token ids) also get ONNX Runtime's
transformer fusions before quantization (:func:`fuse_transformer`).
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from slimforge._logs import silenced
from slimforge.artifacts import atomic_write_bytes
from slimforge.export import DEFAULT_OPSET, OnnxSession, export_onnx_file
from slimforge.preprocess import model_input
from slimforge.quantize.core import QuantizationError, QuantizeConfig, quantizable_layers, register_backend, resolve_reduce_range

RUNTIME_FILE = "model.onnx"
_WEIGHTED_OPS = ("Conv", "Gemm", "MatMul", "ConvTranspose")


@dataclass
class OnnxQuantized:
    """An int8 ONNX model and its ONNX Runtime session."""

    model_bytes: bytes
    mode: str
    fp32_layers: tuple[str, ...]
    threads: int = 0
    backend: str = "onnxruntime"
    _session: OnnxSession | None = field(default=None, repr=False)
    preprocess: Any = field(default=None, repr=False)  # raw data -> the graph's inputs (slimforge.preprocess)

    def __call__(self, x: Any) -> torch.Tensor:
        x = model_input(x, self.preprocess)  # numpy arrays and integer tensors are raw data
        if self._session is None:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / RUNTIME_FILE
                path.write_bytes(self.model_bytes)
                self._session = OnnxSession(path, self.threads)
        return self._session(x)

    def save(self, folder: Path) -> str:
        atomic_write_bytes(Path(folder) / RUNTIME_FILE, self.model_bytes)
        return RUNTIME_FILE


class _Prepared:
    def __init__(self, model: nn.Module, calibration: list[torch.Tensor], mode: str, config: QuantizeConfig, workdir: Path) -> None:
        self.layers = quantizable_layers(model)
        self.calibration = calibration
        self.mode = mode
        self.config = config
        self.workdir = workdir
        fp32_path = export_onnx_file(model, calibration[0], workdir / "fp32.onnx", DEFAULT_OPSET, dynamic_batch=True)
        fp32_path = without_initializer_shapes(fp32_path, workdir / "fp32.clean.onnx")
        # Token-id graphs (text) skip pre-processing: its symbolic shape inference fails on their
        # free length dimension, and dynamic quantization does not need it. They get ONNX
        # Runtime's transformer fusions instead.
        text = not calibration[0].is_floating_point()
        if text:
            self.fp32_path = fuse_transformer(fp32_path, workdir / "fp32.fused.onnx", calibration[0])
        else:
            self.fp32_path = _preprocess(fp32_path, workdir / "fp32.pre.onnx")
        self.nodes_by_layer = _nodes_by_layer(self.fp32_path, self.layers)

    def quantize(self, fp32_layers: frozenset[str]) -> OnnxQuantized:
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_dynamic, quantize_static

        unmapped = sorted(set(fp32_layers) - set(self.nodes_by_layer))
        if unmapped:
            raise QuantizationError(
                f"Cannot keep {unmapped} in fp32 with onnxruntime: no weighted ONNX node records them as its module "
                "scope or uses their '<name>.weight' initializer."
            )
        # Dynamic quantization first rewrites a Gemm into '<name>_MatMul' + '<name>_Add'; exclude either name.
        excluded = [name for layer in sorted(fp32_layers) for node in self.nodes_by_layer[layer] for name in (node, f"{node}_MatMul")]
        reduce_range = resolve_reduce_range(self.config)
        if set(fp32_layers) >= set(self.layers):
            raise QuantizationError(f"Every quantizable layer is kept in fp32 ({sorted(fp32_layers)}); nothing to quantize.")
        out = self.workdir / f"int8-{len(list(self.workdir.iterdir()))}.onnx"
        with _quiet_onnxruntime():
            if self.mode == "static":
                quantize_static(
                    str(self.fp32_path),
                    str(out),
                    _Reader(self.calibration),
                    quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8,
                    per_channel=self.config.per_channel,
                    nodes_to_exclude=excluded,
                    reduce_range=reduce_range,
                    calibrate_method=CalibrationMethod.MinMax,
                )
            else:
                quantize_dynamic(
                    str(self.fp32_path),
                    str(out),
                    weight_type=QuantType.QInt8,
                    per_channel=self.config.per_channel,
                    nodes_to_exclude=excluded,
                    reduce_range=reduce_range,
                )
        data = out.read_bytes()
        out.unlink()
        return OnnxQuantized(data, self.mode, tuple(sorted(fp32_layers)), self.config.threads)


class OnnxRuntimeBackend:
    """Quantize with onnxruntime.quantization; run with ONNX Runtime's CPU provider.

    Takes float input tensors (static or dynamic int8) and text batches of token ids (dynamic
    int8; the graph's batch and length dimensions are both free).
    """

    accepts_token_ids = True
    # SmoothQuant's input multiplies ride in the exported graph. Static QDQ would quantize the
    # multiply's own input (outliers included) to int8 and undo it: dynamic mode only.
    smoothing_modes = ("dynamic",)

    def prepare(self, model: nn.Module, calibration: list[torch.Tensor], mode: str, config: QuantizeConfig) -> _Prepared:
        _require_onnxruntime()
        workdir = Path(tempfile.mkdtemp(prefix="slimforge-ort-"))
        # The temporary folder lives as long as the prepared model; the finalizer removes it.
        prepared = _Prepared(model, calibration, mode, config, workdir)
        import shutil
        import weakref

        weakref.finalize(prepared, shutil.rmtree, workdir, True)
        return prepared

    def load(self, folder: Path, info: dict[str, Any], threads: int) -> OnnxQuantized:
        _require_onnxruntime()
        path = Path(folder) / info["runtime_file"]
        # The session is made now, from the file itself: a corrupt file fails here, named.
        session = OnnxSession(path, threads)
        return OnnxQuantized(path.read_bytes(), info.get("mode", "static"), tuple(info.get("fp32_layers", [])), threads, _session=session)


register_backend("onnxruntime", help="ONNX Runtime: static QDQ int8 (CNNs) or dynamic int8 (linear models)")(OnnxRuntimeBackend())


class _Reader:
    """onnxruntime's CalibrationDataReader over a list of input batches."""

    def __init__(self, batches: list[torch.Tensor]) -> None:
        self._batches = batches
        self._iter = iter(batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        x = next(self._iter, None)
        return None if x is None else {"x": x.numpy()}

    def rewind(self) -> None:
        self._iter = iter(self._batches)


def _preprocess(path: Path, out: Path) -> Path:
    """Shape inference and graph optimisation before quantization, as ONNX Runtime recommends;
    the plain export is used where pre-processing fails (it is an optimisation, not a requirement)."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    try:
        # When its symbolic shape inference is incomplete, onnxruntime saves a debug model
        # (sym_shape_infer_temp.onnx + external data) into the working directory: run it in ours.
        with _quiet_onnxruntime(), contextlib.chdir(out.parent):
            quant_pre_process(str(path.resolve()), str(out.resolve()))
        return out
    except Exception as exc:  # onnxruntime raises assorted types from its optimiser
        logging.getLogger(__name__).warning("onnxruntime quant_pre_process failed (%s); quantizing the plain export.", exc)
        return path


def fuse_transformer(path: Path, out: Path, sample: torch.Tensor, atol: float = 1e-4) -> Path:
    """``path`` with ONNX Runtime's transformer fusions (bias + GELU, residual add + LayerNorm), saved to ``out``.

    The fused graph runs in ONNX Runtime only (the fused ops are its ``com.microsoft`` ops), so
    plain ``slimforge export`` does not apply it. It is used where the fusions agree with the
    plain graph within ``atol`` on ``sample`` (token ids: (batch, length)); otherwise, or where
    the optimiser fails, the plain graph is returned.
    """
    from onnxruntime.transformers.optimizer import optimize_model

    log = logging.getLogger(__name__)
    printed = io.StringIO()  # the optimiser prints its own shape-inference hiccups; they are no user's concern
    try:
        with _quiet_onnxruntime(), contextlib.redirect_stdout(printed):
            # opt_level 0: only the transformer fusions; the session applies its own graph optimisations.
            fused = optimize_model(str(path), model_type="bert", num_heads=0, hidden_size=0, opt_level=0)
            fused.save_model_to_file(str(out))
    except Exception as exc:  # noqa: BLE001 - the optimiser raises assorted types; it is an optimisation
        log.warning("onnxruntime transformer fusion failed (%s); quantizing the plain export.", exc)
        return path
    finally:
        if printed.getvalue().strip():
            log.debug("onnxruntime transformer optimiser printed: %s", printed.getvalue().strip())
    plain, candidate = OnnxSession(path), OnnxSession(out)
    diff = (candidate(sample) - plain(sample)).abs().max().item()
    if not diff <= atol:
        log.warning("onnxruntime transformer fusion changed the outputs by %.3g; quantizing the plain export.", diff)
        return path
    return out


def without_initializer_shapes(path: Path, out: Path) -> Path:
    """``path``, or a copy at ``out`` (same folder: external weights stay found) without the
    ``value_info`` entries that name initializers.

    torch's ONNX exporter records a shape for every weight; an initializer carries its own, so
    the entry is redundant, and it goes stale when onnxruntime 1.30's dynamic quantizer turns a
    Gemm into a MatMul by transposing the weight in place: its own shape inference then rejects
    the graph ("Inferred shape and existing shape differ", seen on MiniLM's pooler and classifier).
    """
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    weights = {init.name for init in model.graph.initializer}
    kept = [vi for vi in model.graph.value_info if vi.name not in weights]
    if len(kept) == len(model.graph.value_info):
        return path
    del model.graph.value_info[:]
    model.graph.value_info.extend(kept)
    onnx.save(model, str(out))
    return out


def _nodes_by_layer(path: Path, layers: list[str]) -> dict[str, list[str]]:
    """Module name -> names of the ONNX nodes that compute it.

    Found through the module scopes the dynamo exporter records on each node
    (``pkg.torch.onnx.name_scopes``); where those are missing, through the node's weight
    initializer (``<module>.weight``), a name the exporter drops when it folds a transpose into
    the weight (every Linear of a transformer).
    """
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    # export_onnx_file wraps the model as ``model``: its layers' scopes and weights carry that prefix.
    by_path = {f"model.{layer}": layer for layer in layers}
    weights = {f"{prefix}{layer}.weight": layer for layer in layers for prefix in ("", "model.")}
    found: dict[str, list[str]] = {}
    for node in graph.node:
        if node.op_type not in _WEIGHTED_OPS:
            continue
        layer = _scope_layer(node, by_path) or next((weights[i] for i in node.input if i in weights), None)
        if layer is not None:
            found.setdefault(layer, []).append(node.name)
    return found


def _scope_layer(node: Any, by_path: dict[str, str]) -> str | None:
    """The innermost module of ``by_path`` among the module scopes the exporter recorded on ``node``
    (the list's last entry is the op's own name, e.g. ``linear_1``, not a module)."""
    import ast

    text = next((p.value for p in node.metadata_props if p.key == "pkg.torch.onnx.name_scopes"), None)
    try:
        scopes = ast.literal_eval(text) if text else []  # a list of strings; literal_eval runs no code
    except (ValueError, SyntaxError):
        return None
    return next((by_path[s] for s in reversed(scopes[:-1]) if isinstance(s, str) and s in by_path), None)


def _require_onnxruntime() -> None:
    try:
        import onnxruntime  # noqa: F401
        import onnxruntime.quantization  # noqa: F401
    except ImportError:
        raise QuantizationError("The onnxruntime backend needs onnxruntime: pip install 'slimforge[quant]'.") from None


def _quiet_onnxruntime() -> contextlib.AbstractContextManager[None]:
    # onnxruntime.quantization logs a warning per pre-processing hint at the root logger.
    return silenced("")
