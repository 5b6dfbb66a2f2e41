"""Self-describing artifact folders: weights in safetensors, structure in JSON, never pickle.

A run folder holds::

    model.safetensors   the weights
    model.json          how to rebuild the module: {"format": 1, "name", "kwargs", "edits": [...]}
    config.yaml         the resolved config of the stage that wrote it
    metrics.json        final figures ("test_accuracy" as a fraction, ...)
    metrics.jsonl       one line per epoch

``edits`` records structural changes in the order they were applied (a pruning plan, a
low-rank factorisation, ...). Each edit is ``{"kind": K, ...}`` and is replayed on load by the
function registered under K with :func:`register_edit`, so ``load`` rebuilds exactly the
module that was saved: original factory, then each edit, then the weights.
"""

from __future__ import annotations

import contextlib
import copy
import json
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from slimforge._registry import Registry
from slimforge.errors import ArtifactError, ConfigError, SlimforgeError, UnknownNameError
from slimforge.preprocess import attach_preprocess

FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
STRUCTURE_FILE = "model.json"
CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.json"
SPEC_ATTR = "slimforge_spec"
PENDING_EDITS_ATTR = "slimforge_pending_edits"  # edits of a model whose factory is not known yet

EditReplay = Callable[[nn.Module, dict[str, Any]], nn.Module]
EDITS: Registry[EditReplay] = Registry("structural edit")

# Built-in edit kinds and the module that registers each, imported on first use so that
# `load` works without the caller importing the stage that made the edit.
BUILTIN_EDITS = {"prune": "slimforge.prune.plan", "factorize": "slimforge.factorize"}


def register_edit(kind: str) -> Callable[[EditReplay], EditReplay]:
    """Register how to replay an edit of ``kind`` onto a freshly built model (returns the model)."""
    return EDITS.register(kind)


def list_edits() -> list[str]:
    return sorted(set(EDITS.names()) | set(BUILTIN_EDITS))


@dataclass
class ModelSpec:
    """How to rebuild a model: a factory name, its keywords, and structural edits since.

    preprocess: how raw inputs become the network's inputs (``PreprocessSpec.to_json()``:
    normalisation, input shape), recorded by training from its data; None when unknown."""

    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    edits: list[dict[str, Any]] = field(default_factory=list)
    preprocess: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        data = {"format": FORMAT_VERSION, "name": self.name, "kwargs": self.kwargs, "edits": self.edits}
        return {**data, "preprocess": self.preprocess} if self.preprocess is not None else data

    def preprocess_spec(self, source: str = "model.json") -> Any:
        """The recorded :class:`slimforge.preprocess.PreprocessSpec`, or None."""
        from slimforge.preprocess import PreprocessSpec

        return None if self.preprocess is None else PreprocessSpec.from_json(self.preprocess, source)

    @classmethod
    def from_json(cls, data: dict[str, Any], source: str = "model.json") -> ModelSpec:
        if not isinstance(data, dict) or "name" not in data:
            raise ArtifactError(f"{source}: not a slimforge model description (no 'name' key).")
        fmt, name, kwargs, edits = data.get("format", FORMAT_VERSION), data["name"], data.get("kwargs", {}), data.get("edits", [])
        for key, value, kind, what in (("format", fmt, int, "an integer"), ("name", name, str, "a string"),
                                       ("kwargs", kwargs, dict, "an object"), ("edits", edits, list, "a list")):
            if not isinstance(value, kind) or isinstance(value, bool):
                raise ArtifactError(f"{source}: {key!r} must be {what}, not {value!r}; the file is corrupt.")
        if not all(isinstance(e, dict) and isinstance(e.get("kind"), str) for e in edits):
            raise ArtifactError(f"{source}: every entry of 'edits' must be an object with a 'kind'; the file is corrupt.")
        if fmt > FORMAT_VERSION:
            raise ArtifactError(f"{source}: format {fmt} is newer than this slimforge reads ({FORMAT_VERSION}); upgrade slimforge.")
        spec = cls(name=name, kwargs=dict(kwargs), edits=list(edits), preprocess=data.get("preprocess"))
        spec.preprocess_spec(source)  # checked now: a corrupt recipe is an error naming the file, not a wrong input later
        return spec


def attach_spec(model: nn.Module, spec: ModelSpec) -> nn.Module:
    """Remember how ``model`` was built, so :func:`save` can write ``model.json``.

    ``spec`` describes the model as its factory builds it. Edits made before (a model your code
    built, then pruned by slimforge) were kept on the model and are appended to a spec without
    edits, so the folder replays them; a spec with edits of its own is then refused (which
    edits were made would be ambiguous)."""
    pending = model.__dict__.get(PENDING_EDITS_ATTR) or []
    if pending:
        if spec.edits and spec.edits != pending:
            raise ArtifactError(
                f"The model was changed by {len(pending)} structural edit(s) ({', '.join(e['kind'] for e in pending)}) before a spec "
                f"was attached, and the spec attached holds {len(spec.edits)} other edit(s). Attach the spec of the model as its "
                "factory builds it (ModelSpec(name, kwargs), no edits): slimforge appends the edits it recorded."
            )
        spec = ModelSpec(spec.name, dict(spec.kwargs), copy.deepcopy(pending), spec.preprocess)
        del model.__dict__[PENDING_EDITS_ATTR]
    object.__setattr__(model, SPEC_ATTR, spec)
    return model


def get_spec(model: nn.Module) -> ModelSpec | None:
    return getattr(model, SPEC_ATTR, None)


def adopt_spec(model: nn.Module) -> ModelSpec | None:
    """The model's spec; for a model slimforge did not build but whose library describes it fully
    (a transformers model: its config, as ``hf:``), that description is attached first. Call it
    before a structural edit: afterwards the model no longer matches its own description."""
    spec = get_spec(model)
    if spec is None and not model.__dict__.get(PENDING_EDITS_ATTR):
        from slimforge.models.hf import spec_of

        spec = spec_of(model)
        if spec is not None:
            attach_spec(model, spec)
    return spec


def recorded_edits(model: nn.Module) -> list[dict[str, Any]]:
    """The structural edits made to ``model`` that slimforge knows of: its spec's, or those kept
    on a model without a spec (built by your own code, then pruned or factorised)."""
    spec = get_spec(model)
    return copy.deepcopy(spec.edits if spec is not None else model.__dict__.get(PENDING_EDITS_ATTR) or [])


def record_edit(model: nn.Module, edit: dict[str, Any]) -> None:
    """Append a structural edit (must hold a registered ``kind``) to the model's spec; a model
    without a spec keeps it until one is given (:func:`attach_spec`, ``save(..., factory=...)``)."""
    if edit.get("kind") not in EDITS and edit.get("kind") not in BUILTIN_EDITS:
        raise ValueError(f"edit kind {edit.get('kind')!r} is not registered; known: {list_edits()}")
    spec = get_spec(model)
    if spec is not None:
        attach_spec(model, ModelSpec(spec.name, dict(spec.kwargs), [*spec.edits, copy.deepcopy(edit)], spec.preprocess))
    else:
        model.__dict__[PENDING_EDITS_ATTR] = [*(model.__dict__.get(PENDING_EDITS_ATTR) or []), copy.deepcopy(edit)]


def record_preprocess(model: nn.Module, preprocess: Any) -> None:
    """Record in the model's spec how raw inputs become its inputs (a ``PreprocessSpec`` or its JSON; None: unknown)."""
    spec = get_spec(model)
    if spec is not None:
        data = preprocess.to_json() if hasattr(preprocess, "to_json") else preprocess
        attach_spec(model, ModelSpec(spec.name, dict(spec.kwargs), list(spec.edits), copy.deepcopy(data)))


def edit_replay(kind: str) -> EditReplay:
    """The replay function for edit ``kind``, importing its built-in provider when needed."""
    if kind not in EDITS and kind in BUILTIN_EDITS:
        import importlib

        importlib.import_module(BUILTIN_EDITS[kind])
    if kind not in EDITS:
        raise UnknownNameError(f"Unknown structural edit {kind!r}. Known structural edits: {', '.join(list_edits())}.")
    return EDITS.get(kind)


@contextlib.contextmanager
def _without_random_init() -> Iterator[None]:
    """Make ``torch.nn.init``'s fillers no-ops on parameters: a model whose every weight is
    loaded next need not draw random numbers first (8.6 s -> 1.9 s to build ViT-H/14 here).
    Buffers are still filled: non-persistent ones (Hugging Face's ``token_type_ids`` and
    ``position_ids``, which transformers 5 fills through ``nn.init``) are never in a state dict,
    and left empty they held garbage token types. Only ``strict`` loads follow this."""
    names = [n for n in dir(nn.init) if n.endswith("_") and not n.startswith("_")]
    saved = {n: getattr(nn.init, n) for n in names}

    def skip_parameters(fill: Any) -> Any:
        def init(tensor: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            return tensor if isinstance(tensor, nn.Parameter) else fill(tensor, *args, **kwargs)

        return init

    try:
        for n in names:
            setattr(nn.init, n, skip_parameters(saved[n]))
        yield
    finally:
        for n, fn in saved.items():
            setattr(nn.init, n, fn)


def build_model(spec: ModelSpec, *, init: bool = True, trust_code: bool = True, source: str = "") -> nn.Module:
    """Build the module ``spec`` describes: factory, then every edit in order (weights untouched).

    init=False skips random initialisation, for callers that load every weight next.
    trust_code=False (a spec read from a file): a ``package.module:function`` factory is refused
    unless trusted (see :func:`slimforge.models.resolve_factory`), and the keywords are checked
    before the call. ``source`` names the file, for errors."""
    from slimforge.models import build_model_from

    with contextlib.nullcontext() if init else _without_random_init():
        model = build_model_from(spec.name, spec.kwargs, trust_code=trust_code, source=source)
    attach_spec(model, ModelSpec(spec.name, dict(spec.kwargs)))
    for number, edit in enumerate(spec.edits, 1):
        kind = edit.get("kind", "?")
        replay = edit_replay(kind)
        try:
            model = replay(model, edit)
        except SlimforgeError as exc:
            if source and source not in str(exc):  # name the file the edit came from
                raise type(exc)(f"{source}: edit #{number} ({kind!r}): {exc}") from None
            raise
        except (KeyError, TypeError, ValueError, IndexError, AttributeError, RuntimeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ArtifactError(f"{source or 'model.json'}: edit #{number} ({kind!r}) cannot be replayed on {spec.name!r}: {first}. "
                                "The file is corrupt or was written for another model.") from None
        spec_now = get_spec(model) or ModelSpec(spec.name, dict(spec.kwargs))
        attach_spec(model, ModelSpec(spec.name, dict(spec.kwargs), [*spec_now.edits, edit]))
    attach_spec(model, spec)
    return model


# ---------------------------------------------------------------- writing

# The file primitives live on the ground floor (slimforge.files); re-exported for existing callers.
from slimforge.files import (  # noqa: E402
    atomic_write_bytes, plain as _plain, read_json, read_json_quiet, staged_output, write_json, write_yaml,
)


def state_dict_bytes(tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> bytes:
    """Serialise tensors to safetensors bytes; tensors sharing storage are copied apart, sparse
    ones (the optimizer state of embeddings with sparse gradients) are stored dense."""
    from safetensors.torch import save

    seen: set[int] = set()
    plain: dict[str, torch.Tensor] = {}
    for key, t in tensors.items():
        t = t.detach()
        if t.layout != torch.strided:
            t = t.to_dense()
        ptr = t.untyped_storage().data_ptr() if t.numel() else -1
        if ptr in seen or not t.is_contiguous():
            t = t.clone().contiguous()
        seen.add(ptr)
        plain[key] = t.cpu()
    return save(plain, metadata=metadata)


TRANSIENT_ATTR = "slimforge_transient"  # a module class attribute: training-time only, not part of the saved model


def saved_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The weights an artifact stores: ``model.state_dict()`` without training-time wrappers.

    Modules whose class sets ``slimforge_transient = True`` (QAT's fake quantization) are left
    out; a tensor wrapped only by such parametrizations is stored under its plain name as the
    original it wraps. The folder then loads into the plain architecture ``model.json`` names.
    Other parametrizations (weight norm built into a model) are kept as they are.
    """
    state = model.state_dict()
    renames: dict[str, str] = {}
    dropped: list[str] = []
    for name, module in model.named_modules():
        prefix = f"{name}." if name else ""
        if getattr(module, TRANSIENT_ATTR, False):
            dropped.append(prefix)
        for tensor, chain in getattr(module, "parametrizations", {}).items():
            if all(getattr(p, TRANSIENT_ATTR, False) for p in chain) and hasattr(chain, "original"):
                renames[f"{prefix}parametrizations.{tensor}.original"] = f"{prefix}{tensor}"
    return {renames.get(k, k): v for k, v in state.items() if k in renames or not any(k.startswith(d) for d in dropped)}


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
    if factory is not None:
        attach_spec(model, _checked_factory_spec(model, factory, kwargs or {}))
    spec = adopt_spec(model)
    if spec is None:
        raise ArtifactError(
            f"Cannot save to {out}: slimforge does not know how to rebuild this {type(model).__name__}. Either "
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


def _checked_factory_spec(model: nn.Module, factory: str, kwargs: dict[str, Any]) -> ModelSpec:
    """The spec ``factory(**kwargs)`` + the model's recorded edits, after checking that it
    rebuilds the model's shapes (built on the meta device: no memory, no random numbers)."""
    from slimforge.models import _jsonable

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
        with torch.device("meta"):
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


# ---------------------------------------------------------------- reading


def read_spec(path: str | Path) -> ModelSpec:
    folder = Path(path)
    return ModelSpec.from_json(read_json(folder / STRUCTURE_FILE), str(folder / STRUCTURE_FILE))


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


def _quantized_from(folder: Path) -> str | None:
    """The fp32 folder an int8 artifact was made from, as its config.yaml records it (quantize, optimize)."""
    from slimforge.config import read_yaml

    try:
        config = read_yaml(folder / CONFIG_FILE)
    except SlimforgeError:
        return None
    source = config.get("source") or (config.get("optimize") or {}).get("source")
    return str(source) if isinstance(source, str) else None


ARTIFACT_KINDS = {"model": "a model run folder", "quantized": "a quantized (int8) artifact", "export": "an export"}


def artifact_kind(path: str | Path) -> str | None:
    """What folder ``path`` holds: "quantized" (``quantized.json``), "export" (``export.json``),
    "model" (``model.json``), or None (nothing slimforge wrote, or no folder)."""
    folder = Path(path)
    for kind, marker in (("quantized", "quantized.json"), ("export", "export.json"), ("model", STRUCTURE_FILE)):
        if (folder / marker).is_file():
            return kind
    return None


def check_output_folder(out: str | Path, writes: str, source: str | Path | None = None) -> None:
    """Refuse to write a ``writes`` artifact ("model", "quantized", "export") into ``out`` when
    ``out`` is the ``source`` folder or already holds another kind of artifact: the two would mix
    (one folder, two models) and the earlier one's metrics would be overwritten."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"The output folder {out} is a file; choose a folder (--out).")
    if source is not None and out.resolve() == Path(source).resolve():
        raise ConfigError(f"The output folder {out} is the input folder; write the result to another folder (--out).")
    kind = artifact_kind(out)
    if kind is not None and kind != writes:
        raise ConfigError(
            f"{out} already holds {ARTIFACT_KINDS[kind]}; writing {ARTIFACT_KINDS[writes]} into it would mix the two "
            "and overwrite its metrics. Choose another output folder (--out) or delete that one first."
        )


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


def read_tensors(path: Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Read a safetensors file, with errors that name the file and what is wrong with it."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path} does not exist.")
    if is_pickle_file(path):
        raise ArtifactError(
            f"{path} is a pickle (torch.save) file. slimforge never unpickles, because loading a pickle can run "
            "arbitrary code. "
            + ("Convert it where you trust it: safetensors.torch.save_file(torch.load(path, weights_only=True), 'model.safetensors')."
               if path.name == WEIGHTS_FILE else "slimforge did not write it: its own files are safetensors.")
        )
    try:
        return load_file(str(path), device=str(device))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ArtifactError(f"{path} is not a readable safetensors file ({exc}); it is corrupt or truncated.") from None


def read_metadata(path: Path) -> dict[str, str]:
    """The string metadata of a safetensors file that :func:`read_tensors` reads ({} when none)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            return dict(handle.metadata() or {})
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ArtifactError(f"{path} is not a readable safetensors file ({exc}); it is corrupt or truncated.") from None


def load_weights(model: nn.Module, path: Path, map_location: str | torch.device = "cpu") -> None:
    """Load safetensors weights into ``model``, checking names and shapes first."""
    tensors = read_tensors(path, map_location)
    expected = model.state_dict()
    missing = [k for k in expected if k not in tensors]
    unexpected = [k for k in tensors if k not in expected]
    wrong = [
        f"{k}: file {tuple(tensors[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in expected
        if k in tensors and tensors[k].shape != expected[k].shape
    ]
    if missing or unexpected or wrong:
        parts = []
        if wrong:
            parts.append(f"{len(wrong)} tensors of the wrong shape (first: {'; '.join(wrong[:3])})")
        if missing:
            parts.append(f"{len(missing)} missing (first: {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (first: {', '.join(unexpected[:3])})")
        spec = get_spec(model)
        arch = f" ({spec.name})" if spec else ""
        raise ArtifactError(
            f"Weights in {path} do not match the architecture{arch}: {'; '.join(parts)}. "
            "The weights were saved from a different model or a different pruning/structure."
        )
    tensors = OrderedDict(tensors)
    tensors._metadata = getattr(expected, "_metadata", None)  # per-module versions (e.g. MNASNet checks them)
    model.load_state_dict(tensors, strict=True)


def is_pickle_file(path: Path) -> bool:
    """True for pickle streams and torch.save zip archives (both can run code when loaded).

    A safetensors file starts with its header's length (8 bytes, little-endian) and then
    ``{``; that length's first byte may be 0x80, so safetensors is recognised first.
    """
    with open(path, "rb") as f:
        head = f.read(9)
    if len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < 100_000_000:
        return False
    return head[:1] == b"\x80" or head[:2] == b"PK"
