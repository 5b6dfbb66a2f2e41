"""Self-describing artifact folders: weights in safetensors, structure in JSON, never pickle.

A run folder holds::

    model.safetensors   the weights
    model.json          how to rebuild the module: {"format": 1, "name", "kwargs", "edits": [...]}
    config.yaml         the resolved config of the stage that wrote it
    metrics.json        final figures ("test_accuracy" as a fraction, ...)
    metrics.jsonl       one line per epoch

``edits`` records structural changes in the order they were applied (a pruning plan, a
low-rank factorisation, ...). Each edit is ``{"kind": K, ...}`` and is replayed on load by the
function registered under K with :func:`register_edit`, so ``slimforge.load`` rebuilds exactly the
module that was saved: original factory, then each edit, then the weights.

This module is the format alone and imports nothing above it: building a model from a spec is
:func:`slimforge.models.build_model`; saving and loading a model folder is :mod:`slimforge.model_io`;
``slimforge.save``/``slimforge.load``, which dispatch over every kind of folder, are :mod:`slimforge.loading`.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from slimforge._registry import Registry
from slimforge.errors import ArtifactError, ConfigError

FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
STRUCTURE_FILE = "model.json"
CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.json"
SPEC_ATTR = "slimforge_spec"
PENDING_EDITS_ATTR = "slimforge_pending_edits"  # edits of a model whose factory is not known yet

EditReplay = Callable[[nn.Module, dict[str, Any]], nn.Module]
# Built-in edit kinds and the module that registers each, imported on first use so that
# `load` works without the caller importing the stage that made the edit.
BUILTIN_EDITS = {"prune": "slimforge.prune.plan", "factorize": "slimforge.factorize", "mixed_dim": "slimforge.recsys.mixed_dim",
                 "skip_blocks": "slimforge.prune.depth"}
EDITS: Registry[EditReplay] = Registry("structural edit", builtins=BUILTIN_EDITS)


def register_edit(kind: str) -> Callable[[EditReplay], EditReplay]:
    """Register how to replay an edit of ``kind`` onto a freshly built model (returns the model)."""
    return EDITS.register(kind)


def list_edits() -> list[str]:
    return EDITS.names()


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
    """Remember how ``model`` was built, so :func:`slimforge.save` can write ``model.json``.

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


def recorded_edits(model: nn.Module) -> list[dict[str, Any]]:
    """The structural edits made to ``model`` that slimforge knows of: its spec's, or those kept
    on a model without a spec (built by your own code, then pruned or factorised)."""
    spec = get_spec(model)
    return copy.deepcopy(spec.edits if spec is not None else model.__dict__.get(PENDING_EDITS_ATTR) or [])


def record_edit(model: nn.Module, edit: dict[str, Any]) -> None:
    """Append a structural edit (must hold a registered ``kind``) to the model's spec; a model
    without a spec keeps it until one is given (:func:`attach_spec`, ``save(..., factory=...)``)."""
    if edit.get("kind") not in EDITS:
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
    return EDITS.get(kind)


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


# ---------------------------------------------------------------- reading


def read_spec(path: str | Path) -> ModelSpec:
    folder = Path(path)
    return ModelSpec.from_json(read_json(folder / STRUCTURE_FILE), str(folder / STRUCTURE_FILE))


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
    _keep_saved_dtypes(model, tensors)


def _keep_saved_dtypes(model: nn.Module, tensors: Mapping[str, torch.Tensor]) -> None:
    """A model saved in bfloat16 / float16 comes back in it (load_state_dict casts into the fp32 build): each
    floating-point parameter and buffer takes its saved dtype, in place, so tied weights stay tied."""
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        saved = tensors.get(name)
        if saved is not None and saved.dtype != tensor.dtype and saved.is_floating_point() and tensor.is_floating_point():
            tensor.data = tensor.data.to(saved.dtype)


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
