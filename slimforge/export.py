"""Export a model to a runtime format and check it against PyTorch.

Two formats, in a registry (``list_exporters()``):

* ``onnx``: ``torch.onnx.export(..., dynamo=True)`` (the torch.export-based exporter), opset
  :data:`DEFAULT_OPSET`, batch dimension dynamic; run with ONNX Runtime.
* ``pt2``: ``torch.export.export`` saved with ``torch.export.save``; reloaded with
  :func:`load_pt2`, which first refuses any archive that could make torch.export.load unpickle,
  eval or call anything but torch operators (:mod:`slimforge._pt2`).

Every export is run on sample inputs next to the PyTorch model; the largest absolute
difference is reported in ``export.json`` and an export that differs by more than
``ExportConfig.atol`` raises :class:`ExportMismatchError`. Nothing written here needs pickle to load.

    result = export(model, torch.randn(1, 1, 28, 28), "runs/x-onnx", ExportConfig(format="onnx"))
    session = load_onnx("runs/x-onnx/model.onnx"); logits = session(x)
"""

from __future__ import annotations

from slimforge._callable import make_callable

import contextlib
import io
import logging
import math
import os
import platform
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from slimforge._pt2 import check_pt2_bytes
from slimforge._registry import Registry
from slimforge.artifacts import atomic_write_bytes, write_json
from slimforge.errors import ArtifactError, ConfigError, DataError, SlimforgeError
from slimforge.files import final_folder, staged_output

DEFAULT_OPSET = 18
# torch.onnx's dynamo exporter implements opset 18 and up; asked for less, it runs a version
# converter that may fail silently and leave the file at 18 (opset 5 and 13 did, torch 2.14).
MIN_OPSET = 18
ONNX_FILE = "model.onnx"
PT2_FILE = "model.pt2"
EXPORT_INFO_FILE = "export.json"


class ExportError(SlimforgeError):
    """The model could not be exported, or the export does not match PyTorch."""


class ExportMismatchError(ExportError):
    """The exported model's outputs differ from PyTorch's by more than the tolerance."""


@dataclass(frozen=True)
class ExportConfig:
    """format: a registered exporter (``onnx`` or ``pt2``); opset: ONNX opset version;
    dynamic_batch: export with a symbolic batch dimension; atol: largest allowed |export - torch|;
    check_batches: how many random sample batches the check runs (besides the example);
    preprocess: bake the model's recorded preprocessing (``model.preprocess``, see
    :mod:`slimforge.preprocess`) into the graph, so the file takes raw inputs (batch, *raw_shape)
    float32, e.g. pixels 0..255 as stored; False exports the bare network (normalised inputs)."""

    format: str = "onnx"
    opset: int = DEFAULT_OPSET
    dynamic_batch: bool = True
    atol: float = 1e-4
    check_batches: int = 3
    seed: int = 0
    preprocess: bool = True

    def __post_init__(self) -> None:
        for key, kind in (("opset", int), ("check_batches", int), ("seed", int), ("dynamic_batch", bool), ("preprocess", bool)):
            value = getattr(self, key)
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                raise ConfigError(f"ExportConfig.{key} must be {kind.__name__}, not {value!r}.")
        if isinstance(self.atol, bool) or not isinstance(self.atol, (int, float)) or not math.isfinite(self.atol) or self.atol < 0:
            raise ConfigError(f"ExportConfig.atol must be a finite number >= 0, not {self.atol!r}.")
        if self.check_batches < 0:
            raise ConfigError(f"ExportConfig.check_batches must be >= 0, not {self.check_batches}.")
        if self.format == "onnx" and self.opset < MIN_OPSET:  # the upper end needs onnx: export_onnx_file checks it
            raise ConfigError(
                f"ONNX opset {self.opset} is not supported: the exporter writes opset {MIN_OPSET} and newer (--opset, ExportConfig.opset)."
            )


@dataclass(frozen=True)
class ExportResult:
    """path: the runtime file; max_abs_diff: largest |export - torch| over the sample inputs."""

    path: Path
    format: str
    exporter: str
    opset: int | None
    max_abs_diff: float
    input_shape: tuple[int, ...]
    seconds: float

    def to_json(self) -> dict[str, Any]:
        info = asdict(self)
        info["path"] = self.path.name
        info["torch"] = torch.__version__
        return info


Exporter = Callable[[nn.Module, torch.Tensor, Path, ExportConfig], tuple[Path, str]]
Loader = Callable[[Path], Callable[[torch.Tensor], torch.Tensor]]
EXPORTERS: Registry[Exporter] = Registry("exporter")
LOADERS: Mapping[str, Loader] = EXPORTERS.view("loader")  # format -> what runs the file it wrote


def register_exporter(name: str, loader: Loader, help: str = "") -> Callable[[Exporter], Exporter]:
    """Register ``exporter(model, example, out_dir, config) -> (file, exporter description)``
    with the ``loader(file) -> callable`` that runs what it wrote."""

    def add(fn: Exporter) -> Exporter:
        return EXPORTERS.register(name, help, loader=loader)(fn)

    return add


def list_exporters() -> list[str]:
    return EXPORTERS.names()


def export(model: nn.Module, example: torch.Tensor, out: str | Path, config: ExportConfig = ExportConfig()) -> ExportResult:
    """Export ``model`` (run on ``example``: (batch, ...)) into folder ``out`` and check it.

    Writes the runtime file and ``export.json``; raises :class:`ExportMismatchError` when the
    export differs from PyTorch by more than ``config.atol`` on the sample inputs.
    """
    # Set-up: the model in eval mode on the CPU, a known exporter.
    exporter = EXPORTERS.get(config.format)
    if not isinstance(example, torch.Tensor):
        raise ConfigError(f"export needs an example input tensor (batch, ...), got {type(example).__name__}.")
    if config.format == "onnx" and config.opset not in onnx_opsets():  # before anything is written
        raise ConfigError(f"ONNX opset {config.opset} is not supported: the exporter writes opsets {onnx_opsets().start} to {onnx_opsets().stop - 1}.")
    model = model.eval().cpu()
    example = example.detach().cpu()
    out_dir = Path(out)
    preprocess = getattr(model, "preprocess", None) if config.preprocess else None
    if preprocess is not None:  # the graph takes raw inputs: normalisation is part of it
        model, example = RawInputs(preprocess, model).eval(), preprocess.example(example.shape[0])

    # Export into a staging folder that replaces ``out`` whole once the check passes: a rejected
    # export never replaces a good one, and a kill never leaves a new file beside an old export.json.
    with staged_output(out_dir) as work:
        final = final_folder(work)
        start = time.perf_counter()
        staged, description = exporter(model, example, work, config)
        seconds = time.perf_counter() - start

        # Check against PyTorch on the example and random batches of other sizes.
        diff = max_abs_difference(model, LOADERS[config.format](staged), sample_inputs(example, config))
        if not diff <= config.atol:
            rejected = _move_files(work, final / "rejected") if final.is_dir() else _move_files(work, final.with_name(final.name + "-rejected"))
            raise ExportMismatchError(
                f"{config.format} export differs from PyTorch by {diff:.3g} (max abs), more than atol={config.atol:g}; "
                f"nothing in {final} was replaced (the rejected file is {rejected / staged.name}). "
                "Raise the tolerance (--atol, ExportConfig.atol) if the difference is expected (e.g. a quantized model)."
            )
        result = ExportResult(
            path=final / staged.name,
            format=config.format,
            exporter=description,
            opset=written_opset(staged) if config.format == "onnx" else None,
            max_abs_diff=diff,
            input_shape=tuple(example.shape),
            seconds=round(seconds, 3),
        )
        inputs = {"inputs": "raw" if preprocess is not None else "network",
                  "preprocess": preprocess.spec.to_json() if preprocess is not None else None}
        write_json(work / EXPORT_INFO_FILE, {**result.to_json(), **inputs, "config": asdict(config), "machine": platform.machine()})
    return result


class RawInputs(nn.Module):
    """``network(preprocess(x))``: the module an export with preprocessing traces; x (batch, *raw_shape) -> logits."""

    def __init__(self, preprocess: nn.Module, network: nn.Module) -> None:
        super().__init__()
        self.preprocess = preprocess
        self.network = network

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(self.preprocess(x))


def _move_files(source: Path, target: Path) -> Path:
    """Move every file of ``source`` into ``target`` (created), replacing files of the same name."""
    target.mkdir(parents=True, exist_ok=True)
    for f in source.iterdir():
        os.replace(f, target / f.name)
    return target


def sample_inputs(example: torch.Tensor, config: ExportConfig) -> list[torch.Tensor]:
    """The example, plus random batches of the same per-sample shape (batch 1 and 2x when dynamic)."""
    gen = torch.Generator().manual_seed(config.seed)
    batch = example.shape[0]
    sizes = [1, max(2, 2 * batch)] if config.dynamic_batch else [batch]
    samples = [example]
    for i in range(config.check_batches):
        shape = (sizes[i % len(sizes)], *example.shape[1:])
        samples.append(torch.randn(shape, generator=gen, dtype=example.dtype) if example.is_floating_point() else example)
    return samples


@torch.no_grad()
def max_abs_difference(
    model: Callable[[torch.Tensor], torch.Tensor], runner: Callable[[torch.Tensor], torch.Tensor], inputs: list[torch.Tensor]
) -> float:
    """Largest |runner(x) - model(x)| over ``inputs``; NaN in either counts as infinite."""
    worst = 0.0
    for x in inputs:
        expected = model(x).float()
        actual = runner(x).float()
        if actual.shape != expected.shape:
            raise ExportMismatchError(f"export returns shape {tuple(actual.shape)} for input {tuple(x.shape)}; PyTorch returns {tuple(expected.shape)}.")
        diff = (actual - expected).abs().max().item() if expected.numel() else 0.0
        worst = max(worst, diff if np.isfinite(diff) else float("inf"))
    return worst


# ---------------------------------------------------------------- ONNX


def export_onnx_file(model: nn.Module, example: torch.Tensor, path: Path, opset: int = DEFAULT_OPSET, dynamic_batch: bool = True) -> Path:
    """Write ``model`` to ``path`` with the torch.export-based ONNX exporter; input named ``x``, output ``logits``.

    An integer (batch, length) ``example`` is a batch of token ids: the length is dynamic too.
    ``opset`` must be in :func:`onnx_opsets`.
    """
    if isinstance(opset, bool) or not isinstance(opset, int) or opset not in onnx_opsets():
        raise ConfigError(f"ONNX opset {opset!r} is not supported: the exporter writes opsets {onnx_opsets().start} to {onnx_opsets().stop - 1}.")
    dims = {0: torch.export.Dim("batch", min=1)}
    if not example.is_floating_point() and example.dim() == 2:
        dims[1] = torch.export.Dim("length", min=2, max=getattr(model, "max_length", 512))
    dynamic_shapes = {"x": dims} if dynamic_batch else None
    wrapped = _NamedInput(model)
    try:
        with _quiet():
            program = torch.onnx.export(
                wrapped,
                (example,),
                dynamo=True,
                opset_version=opset,
                input_names=["x"],
                output_names=["logits"],
                dynamic_shapes=dynamic_shapes,
                verbose=False,
            )
    except Exception as exc:  # the exporter raises many types; name the model and the cause
        raise ExportError(f"ONNX export of {type(model).__name__} on input {tuple(example.shape)} failed: {exc}") from exc
    if program is None:
        raise ExportError("torch.onnx.export returned no program; is torch.onnx's dynamo exporter installed (onnxscript)?")
    # Save beside the target and rename, so a reader never sees half a file.
    tmp = path.with_name(f".{path.name}.tmp")
    program.save(str(tmp))
    os.replace(tmp, path)
    return path


class _NamedInput(nn.Module):
    """Gives the exported graph's input the stable name ``x`` whatever the model calls it."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


# ONNX Runtime input types and the torch dtype a batch is cast to (same kind only: float to float, int to int).
_ORT_TYPES = {"tensor(float)": torch.float32, "tensor(double)": torch.float64, "tensor(float16)": torch.float16,
              "tensor(int64)": torch.int64, "tensor(int32)": torch.int32}


class OnnxSession:
    """An ONNX Runtime session callable on tensors: x (batch, ...) -> logits (batch, classes).

    threads: intra-op threads (0 lets ONNX Runtime decide).
    """

    def __init__(self, path: str | Path, threads: int = 0) -> None:
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise ArtifactError(f"{path} does not exist.")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise ArtifactError(f"ONNX Runtime cannot load {path}: {exc}") from None
        self.path = path
        graph_input = self.session.get_inputs()[0]
        self.input_name, self.input_shape, self.input_type = graph_input.name, list(graph_input.shape), graph_input.type

    def __call__(self, x: Any) -> torch.Tensor:
        if isinstance(x, dict):  # a text batch: the graph takes the ids and derives the mask from padding
            x = x.get("input_ids")
        return torch.from_numpy(self.session.run(None, {self.input_name: self._checked(x)})[0])

    def _checked(self, x: Any) -> np.ndarray:
        """``x`` as the array the graph takes, or a :class:`DataError` saying what it takes instead
        (ONNX Runtime's own error is a multi-line InvalidArgument)."""
        dtype = _ORT_TYPES.get(self.input_type)
        fits = isinstance(x, torch.Tensor) and x.dim() == len(self.input_shape) and all(
            not isinstance(d, int) or d == n for d, n in zip(self.input_shape, x.shape)
        ) and (dtype is None or x.is_floating_point() == dtype.is_floating_point)
        if not fits:
            got = f"{tuple(x.shape)} {str(x.dtype).removeprefix('torch.')}" if isinstance(x, torch.Tensor) else type(x).__name__
            raise DataError(f"{self.path} takes {self.input_name!r} of shape {self.input_shape} ({self.input_type}); got {got}.")
        return x.detach().cpu().to(dtype or x.dtype).numpy()


def load_onnx(path: str | Path, threads: int = 0) -> OnnxSession:
    """An ONNX Runtime session for ``path`` that takes and returns tensors."""
    return OnnxSession(path, threads)


def onnx_opsets() -> range:
    """The ONNX opsets :func:`export_onnx_file` writes: 18 up to the newest the installed onnx defines."""
    try:
        import onnx
    except ImportError:  # the exporter needs onnx anyway; it says so when it runs
        return range(MIN_OPSET, DEFAULT_OPSET + 1)
    return range(MIN_OPSET, onnx.defs.onnx_opset_version() + 1)


def written_opset(path: str | Path) -> int:
    """The default-domain opset an ONNX file declares (read from the file, not from what was asked)."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError and others for a corrupt file
        raise ArtifactError(f"{path} is not a readable ONNX file ({exc}).") from None
    versions = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
    if not versions:
        raise ArtifactError(f"{path} declares no ONNX opset; it is corrupt.")
    return int(versions[0])


@register_exporter("onnx", load_onnx, help="ONNX via torch.onnx.export(dynamo=True), run with ONNX Runtime")
def _export_onnx(model: nn.Module, example: torch.Tensor, out_dir: Path, config: ExportConfig) -> tuple[Path, str]:
    path = export_onnx_file(model, example, out_dir / ONNX_FILE, config.opset, config.dynamic_batch)
    written = written_opset(path)
    if written != config.opset:
        raise ExportError(f"Asked for ONNX opset {config.opset}, the exporter wrote opset {written}; choose an opset in {onnx_opsets()}.")
    return path, f"torch.onnx.export(dynamo=True, opset_version={written}) torch {torch.__version__}"


# ---------------------------------------------------------------- torch.export (.pt2)


def save_pt2(program: torch.export.ExportedProgram, path: Path) -> Path:
    """``torch.export.save`` into ``path`` atomically."""
    # The example inputs would be written with torch.save (a pickle); they are not needed to run.
    program.example_inputs = None
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def export_program(model: nn.Module, example: torch.Tensor, dynamic_batch: bool = True, strict: bool = False) -> torch.export.ExportedProgram:
    """``torch.export.export`` of ``model`` on ``example``, the batch dimension dynamic where it can be.

    strict: trace with TorchDynamo, which records each node's ``source_fn_stack`` (the module or
    function it came from). PT2E quantizers find their patterns through it, and torch 2.11's
    non-strict export does not record it.
    """
    dynamic_shapes = ({0: torch.export.Dim("batch", min=1)},) if dynamic_batch else None
    try:
        return torch.export.export(model, (example,), dynamic_shapes=dynamic_shapes, strict=strict)
    except Exception as exc:
        if dynamic_batch:
            # Some graphs specialise the batch size (e.g. a reshape to a constant); fall back to static.
            logging.getLogger(__name__).warning("torch.export with a dynamic batch failed (%s); exporting a fixed batch.", exc)
            return export_program(model, example, dynamic_batch=False, strict=strict)
        raise ExportError(f"torch.export of {type(model).__name__} on input {tuple(example.shape)} failed: {exc}") from exc


def check_pt2_is_pickle_free(path: str | Path) -> None:
    """Refuse a .pt2 archive that ``torch.export.load`` would unpickle, ``eval`` or make call
    anything but torch operators (see :mod:`slimforge._pt2` for every path that could)."""
    check_pt2_bytes(_read_archive(path), str(path))


def load_pt2(path: str | Path) -> nn.Module:
    """Load a .pt2 written by :func:`save_pt2` as a callable module, after :func:`check_pt2_is_pickle_free`.

    The file is read once: torch loads the very bytes that were checked.
    """
    data = _read_archive(path)
    check_pt2_bytes(data, str(path))
    try:
        with _quiet():
            return torch.export.load(io.BytesIO(data)).module()
    except Exception as exc:
        raise ArtifactError(f"torch.export.load cannot read {path}: {exc}") from None


def _read_archive(path: str | Path) -> bytes:
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path} does not exist." if not path.exists() else f"{path} is not a file.")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ArtifactError(f"{path} cannot be read ({exc}).") from None


@register_exporter("pt2", load_pt2, help="torch.export program saved with torch.export.save (.pt2)")
def _export_pt2(model: nn.Module, example: torch.Tensor, out_dir: Path, config: ExportConfig) -> tuple[Path, str]:
    program = export_program(model, example, config.dynamic_batch)
    return save_pt2(program, out_dir / PT2_FILE), f"torch.export.export + torch.export.save, torch {torch.__version__}"


@contextlib.contextmanager
def _quiet():
    """Silence the exporters' progress prints and warnings (they go to stdout)."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


__all__ = [
    "DEFAULT_OPSET",
    "EXPORTERS",
    "ExportConfig",
    "ExportError",
    "ExportMismatchError",
    "ExportResult",
    "OnnxSession",
    "check_pt2_is_pickle_free",
    "export",
    "export_onnx_file",
    "export_program",
    "list_exporters",
    "load_onnx",
    "load_pt2",
    "onnx_opsets",
    "register_exporter",
    "save_pt2",
    "written_opset",
]

make_callable(__name__, export)  # slimforge.export(...)
