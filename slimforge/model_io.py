"""A model run folder (``model.json`` + ``model.safetensors`` [+ config, metrics]) to and from a PyTorch model.

The layer between the folder format (:mod:`slimforge.artifacts`) and the models it names
(:mod:`slimforge.models`). :mod:`slimforge.loading` dispatches over every kind of folder
(int8, export) on top of it; stages that only write or read fp32 models use this module.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from slimforge.artifacts import (
    CONFIG_FILE, METRICS_FILE, PENDING_EDITS_ATTR, STRUCTURE_FILE, WEIGHTS_FILE, ModelSpec, attach_spec, load_weights, read_spec,
    recorded_edits, saved_state_dict, state_dict_bytes,
)
from slimforge.errors import ArtifactError, ConfigError, SlimforgeError
from slimforge.files import atomic_write_bytes, staged_output, write_json, write_yaml
from slimforge.models import _jsonable, adopt_spec, build_model
from slimforge.preprocess import attach_preprocess


def save_model(model: nn.Module, path: str | Path, *, config: Any = None, metrics: dict[str, Any] | None = None,
               factory: str | None = None, kwargs: dict[str, Any] | None = None) -> Path:
    """:func:`slimforge.save` of a model run folder (``model.json`` + weights); see there."""
    out = Path(path)
    if factory is not None:
        attach_spec(model, _checked_factory_spec(model, factory, kwargs or {}))
    spec = adopt_spec(model)
    if spec is None:
        raise ArtifactError(
            f"Cannot save to {out}: slimforge does not know how to rebuild this {type(model).__name__}{_why_not_recognised(model)}. Either "
            "say which of your functions builds it: slimforge.save(model, out, factory='pkg.module:build', kwargs={...}) "
            "(loaded with trust_code=True; pruning done by slimforge is replayed); or save a code-free program: "
            "slimforge.save(model, out, program=True, example_inputs=x); or build it with slimforge.create_model "
            "(a registered name, torchvision:, timm:, hf:)."
        )
    with staged_output(out) as folder:  # the whole folder is replaced in one step
        atomic_write_bytes(folder / WEIGHTS_FILE, state_dict_bytes(saved_state_dict(model), {"format": "pt"}))
        write_json(folder / STRUCTURE_FILE, spec.to_json())
        if config is not None:
            write_yaml(folder / CONFIG_FILE, config)
        if metrics is not None:
            write_json(folder / METRICS_FILE, metrics)
    return out


def _why_not_recognised(model: nn.Module) -> str:
    """For a timm/torchvision model no rebuild by name matches: the closest guess and where it differs."""
    from slimforge.models.recognised import recognise

    if model.__dict__.get(PENDING_EDITS_ATTR):  # changed since it was built: no rebuild by name can match
        return ""
    why = recognise(model)[1]
    return f" ({why})" if why else ""


def _checked_factory_spec(model: nn.Module, factory: str, kwargs: dict[str, Any]) -> ModelSpec:
    """The spec ``factory(**kwargs)`` + the model's recorded edits, after checking that it
    rebuilds the model's shapes (built on the meta device: no memory, no random numbers; for real where the
    factory cannot build there)."""
    if not isinstance(factory, str) or ":" not in factory:
        raise ConfigError(f"save(factory=...) takes 'package.module:function' (or a source such as 'timm:resnet18'), not {factory!r}.")
    if not isinstance(kwargs, dict):
        raise ConfigError(f"save(kwargs=...) must be a dict of the factory's keywords, not {type(kwargs).__name__}.")
    spec = ModelSpec(factory, _jsonable(dict(kwargs)), recorded_edits(model))
    try:
        spec = ModelSpec.from_json(json.loads(json.dumps(spec.to_json(), allow_nan=False)), "save(factory=...)")
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"save(kwargs=...) must hold JSON values (numbers, strings, lists, dicts): {exc}") from None
    call = f"{factory}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())})"
    advice = ("The model was changed in a way slimforge did not record (another pruning tool, a layer replaced by hand), or "
              "the keywords differ from those it was built with. Save a code-free program instead: "
              "save(model, out, program=True, example_inputs=x).")
    try:
        try:
            with torch.device("meta"):
                rebuilt = build_model(spec, trust_code=True)
        except SlimforgeError:  # a factory that needs data while it builds (a QR of random features): build it for real
            rebuilt = build_model(spec, trust_code=True)
    except SlimforgeError as exc:
        raise ArtifactError(f"{call} plus the {len(spec.edits)} structural edit(s) slimforge recorded cannot rebuild this model: "
                            f"{exc} {advice}") from None
    expected = {k: tuple(v.shape) for k, v in saved_state_dict(rebuilt).items()}
    actual = {k: tuple(v.shape) for k, v in saved_state_dict(model).items()}
    wrong = [f"{k}: model {actual[k]} vs rebuilt {expected[k]}" for k in actual if k in expected and actual[k] != expected[k]]
    missing = [k for k in actual if k not in expected] + [k for k in expected if k not in actual]
    if wrong or missing:
        detail = "; ".join(wrong[:3]) or f"tensors in one but not the other: {', '.join(missing[:3])}"
        raise ArtifactError(f"{call} plus the {len(spec.edits)} structural edit(s) slimforge recorded does not rebuild this model "
                            f"({len(wrong) + len(missing)} tensors differ; {detail}). {advice}")
    return spec


def load_model(path: str | Path, *, map_location: str | torch.device = "cpu", trust_code: bool = False) -> nn.Module:
    """:func:`slimforge.load` of a model run folder (``model.json`` + weights): the PyTorch model,
    never the int8 model stored beside it; see there."""
    folder = Path(path)
    if not folder.is_dir():
        raise ArtifactError(f"{folder} is not a run folder (expected a directory with {STRUCTURE_FILE} and {WEIGHTS_FILE}).")
    if (folder / "quantized.json").is_file() and not (folder / STRUCTURE_FILE).is_file():
        source = _quantized_from(folder)
        raise ArtifactError(
            f"{folder} holds an int8 model only: its fp32 model is not stored beside it"
            + (f"; it was quantized from {source}, load that folder for fp32" if source else "")
            + ". Load this folder with quantized=True for the int8 model."
        )
    spec = read_spec(folder)
    # load_weights is strict: every parameter and buffer is overwritten
    model = build_model(spec, init=False, trust_code=trust_code, source=str(folder / STRUCTURE_FILE))
    load_weights(model, folder / WEIGHTS_FILE, map_location=map_location)
    model.eval()
    # raw inputs (numpy arrays, integer tensors) go through the recorded preprocessing; see slimforge.preprocess
    return attach_preprocess(model, spec.preprocess_spec(str(folder / STRUCTURE_FILE)))


def _quantized_from(folder: Path) -> str | None:
    """The fp32 folder an int8 artifact was made from, as its config.yaml records it (quantize, optimize)."""
    from slimforge.config import read_yaml

    try:
        config = read_yaml(folder / CONFIG_FILE)
    except SlimforgeError:
        return None
    source = config.get("source") or (config.get("optimize") or {}).get("source")
    return str(source) if isinstance(source, str) else None
