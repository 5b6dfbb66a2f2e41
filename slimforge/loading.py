"""The entry points that read and write every kind of slimforge folder: ``slimforge.save`` and
``slimforge.load``.

They sit above the techniques whose folders they dispatch to: a model run folder
(:mod:`slimforge.model_io`), an int8 artifact (:mod:`slimforge.quantize`), an export or program
(:mod:`slimforge.export`). Lower layers never import this module.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from slimforge.artifacts import METRICS_FILE, STRUCTURE_FILE, WEIGHTS_FILE, artifact_kind
from slimforge.errors import ArtifactError, ConfigError
from slimforge.files import read_json, write_json
from slimforge.model_io import load_model, save_model


def save(model: nn.Module, path: str | Path, *, config: Any = None, metrics: dict[str, Any] | None = None,
         factory: str | None = None, kwargs: dict[str, Any] | None = None, program: bool = False,
         example_inputs: torch.Tensor | None = None) -> Path:
    """Save ``model`` as an artifact folder (weights + structure [+ config, metrics]).

    The folder is written beside ``path`` and swapped in whole: an earlier folder at ``path`` is
    replaced in one step (a kill leaves the old or the new one, never a mixture).

    How the structure is known, one of:

    * the model was built by :func:`slimforge.models.create_model` or loaded by :func:`load`
      (any pruning since is recorded on it), or is a transformers model (saved as ``hf:``, its config);
    * ``factory="pkg.module:build", kwargs={...}``: your code builds the model; the folder records
      that call and the pruning slimforge did since, and :func:`load` replays them, which
      imports your factory and so needs ``trust_code=True``. Checked now: the factory plus the
      recorded edits must give the model's shapes;
    * ``program=True, example_inputs=x`` ((batch, ...)): a torch.export program (``model.pt2``,
      batch dimension dynamic where it can be, checked against the model on ``x``) that
      :func:`load` runs with no code at all (a callable module, no training).
    """
    out = Path(path)
    if program:
        return _save_program(model, out, example_inputs, metrics)
    return save_model(model, out, config=config, metrics=metrics, factory=factory, kwargs=kwargs)


def _save_program(model: nn.Module, out: Path, example: Any, metrics: dict[str, Any] | None) -> Path:
    """``model`` as a checked torch.export program in ``out`` (``model.pt2`` + ``export.json``)."""
    from slimforge.export import ExportConfig, export

    if not isinstance(example, torch.Tensor):
        raise ConfigError("save(program=True) needs example_inputs: a tensor (batch, ...) the model runs on, to trace the program.")
    was_training = model.training
    try:
        with torch.no_grad():
            output = model.eval()(example)
        if not isinstance(output, torch.Tensor):
            raise ConfigError(
                f"save(program=True) saves a model that returns one tensor; {type(model).__name__} returns {type(output).__name__}. "
                "Wrap it in a module whose forward returns the tensor you need (e.g. the .logits)."
            )
        export(model, example, out, ExportConfig(format="pt2"))
    finally:
        model.train(was_training)
    if metrics is not None:
        write_json(out / METRICS_FILE, metrics)
    return out


def load(path: str | Path, *, map_location: str | torch.device = "cpu", quantized: bool = True, trust_code: bool = False) -> nn.Module:
    """Rebuild the model saved at ``path`` (a run folder) and load its weights. Never unpickles.

    Nothing in the folder runs code: the model is built from a registered name or a library
    source (``torchvision:``). A folder whose ``model.json`` names a ``package.module:function``
    factory is refused unless ``trust_code=True`` (you trust where it came from; the factory is
    then imported and called) or this process already trusted that factory.

    The model takes the network's inputs (float tensors, normalised as in training) and raw data:
    numpy arrays and integer tensors go through ``model.preprocess``, the preprocessing recorded
    in ``model.json`` (pixels as stored, flat or shaped; see :mod:`slimforge.preprocess`).
    ``model.preprocess(x)`` turns raw float tensors into the network's inputs; it is None when
    the folder records no preprocessing.

    A quantized artifact (``quantized.json``) loads as its runtime-bound model instead: a
    callable on inputs (batch, ...) returning logits, not an ``nn.Module``; ``quantized=False``
    loads the fp32 model stored beside it, where the backend keeps one.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise ArtifactError(f"{folder} is not a run folder (expected a directory with {STRUCTURE_FILE} and {WEIGHTS_FILE}).")
    if quantized and (folder / "quantized.json").is_file():  # an int8 artifact: returns its runtime-bound callable
        from slimforge.quantize import load_quantized

        return load_quantized(folder)
    if not (folder / STRUCTURE_FILE).is_file() and (folder / "export.json").is_file():  # a program: no code, no spec
        return load_export(folder)
    return load_model(folder, map_location=map_location, trust_code=trust_code)


def load_export(folder: Path) -> Callable[[torch.Tensor], torch.Tensor]:
    """The runnable model of an export folder (``export.json`` + its file): a torch.export program
    as a module (``.pt2``, checked free of pickle first) or an ONNX Runtime session."""
    from slimforge.export import LOADERS

    info = read_json(folder / "export.json")
    fmt, name = (info.get("format"), info.get("path")) if isinstance(info, dict) else (None, None)
    if fmt not in LOADERS or not isinstance(name, str) or Path(name).name != name or name.startswith("."):
        raise ArtifactError(f"{folder / 'export.json'}: 'format' must be one of {sorted(LOADERS)} and 'path' a file name in "
                            f"the folder; got {fmt!r} and {name!r}. The file is corrupt.")
    runner = LOADERS[fmt](folder / name)
    if info.get("inputs") == "raw" and info.get("preprocess") is not None:  # slimforge export's default: the graph normalises
        from slimforge.preprocess import PreprocessSpec, raw_input_runner

        return raw_input_runner(runner, PreprocessSpec.from_json(info["preprocess"], str(folder / "export.json")))
    return runner


def load_module(path: str | Path, purpose: str, *, trust_code: bool = False) -> nn.Module:
    """:func:`load` for uses that need a PyTorch module (``purpose``: "prune", "a teacher", ...);
    an int8 artifact, a runtime-bound callable, is refused with an error naming the folder."""
    if artifact_kind(path) == "quantized":
        raise ConfigError(
            f"{path} holds a quantized (int8) artifact, not a PyTorch model; {purpose} needs the fp32 run folder it was "
            "made from (quantize last)."
        )
    if artifact_kind(path) == "export":
        raise ConfigError(
            f"{path} holds an exported program (export.json), which runs but cannot be changed or trained; {purpose} needs "
            "the run folder it was made from (model.json + model.safetensors)."
        )
    return load(path, trust_code=trust_code)
