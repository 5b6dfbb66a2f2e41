"""Model registry: ``create_model(name, **kwargs)`` and ``list_models()``.

Names resolve in three ways:

* a registered name (``cnn``, ``resnet20``, ``mlp-800`` ...);
* a library source (:data:`SOURCES`): ``torchvision:<name>`` (any torchvision classification
  model, random init by default, ``num_classes`` and ``in_channels`` adapted), ``timm:<name>``
  (any timm model; pretrained only from weights already on this machine) and
  ``hf:<folder or config.json>`` (a local transformers model, safetensors weights only);
* ``package.module:function``: any user factory returning an ``nn.Module``. Building one imports
  and calls code of the name's choosing, so a name read from a file (``model.json``, a
  checkpoint) is refused unless the caller trusts it (``trust_code=True``, ``--trust-code``) or
  this process built that factory itself before (see :func:`resolve_factory`).

Every factory receives the data-derived keywords ``num_classes``, ``in_channels`` and
``input_size`` when its signature accepts them; other keywords pass through unchanged.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import inspect
import math
import os
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

from slimforge._registry import Registry
from slimforge.artifacts import PENDING_EDITS_ATTR, ModelSpec, attach_spec, edit_replay, get_spec
from slimforge.errors import ArtifactError, ConfigError, SlimforgeError, UnknownNameError

# Models of domain packages that register themselves when first used (no lower package imports a domain).
BUILTIN_MODELS = {
    **{name: "slimforge.recsys.models" for name in ("popularity", "mf", "neumf", "two-tower")},
    **{name: "slimforge.text.models" for name in ("hf-text-classifier", "text-bilstm", "text-cnn", "text-transformer")},
}
MODELS: Registry[Callable[..., nn.Module]] = Registry("model", builtins=BUILTIN_MODELS)
register_model = MODELS.register

# Keywords that describe the data rather than the architecture; dropped for factories
# that do not take them.
DATA_KWARGS = ("num_classes", "in_channels", "input_size")


def list_models() -> list[str]:
    """Registered model names (the sources ``torchvision:*``, ``timm:*``, ``hf:*`` and ``module:function`` also work)."""
    return MODELS.names()


# Model sources that name a model of a library slimforge imports itself: building one runs no
# code of the name's choosing, so a file may name them freely. Prefix -> "module:function" that
# turns the rest of the name into a factory (imported on first use).
SOURCES = {
    "torchvision": "slimforge.models.external:torchvision_factory",
    "timm": "slimforge.models.external:timm_factory",
    "hf": "slimforge.models.hf:hf_factory",
}
SAFE_SOURCES = tuple(f"{prefix}:" for prefix in SOURCES)

# ``package.module:function`` names this process trusted (built through create_model by its own
# code, or loaded with trust_code=True): loading a folder that names one again needs no opt-in.
_TRUSTED_FACTORIES: set[str] = set()
_TRUST_CODE: contextvars.ContextVar[bool] = contextvars.ContextVar("slimforge_trust_code", default=False)


class UntrustedCodeError(ArtifactError):
    """A file names a ``package.module:function`` factory that nobody trusted."""


@contextlib.contextmanager
def trusting_code(trust: bool = True) -> Iterator[None]:
    """Inside the block, loading folders may import the factories they name (``--trust-code``)."""
    token = _TRUST_CODE.set(bool(trust) or _TRUST_CODE.get())
    try:
        yield
    finally:
        _TRUST_CODE.reset(token)


def code_trusted() -> bool:
    """Whether this block runs with ``--trust-code`` (:func:`trusting_code`)."""
    return _TRUST_CODE.get()


def refuse_code_in(raw: Any, source: str) -> None:
    """A config or recipe file is exchanged like a run folder: one that names a ``package.module:function``
    model, or grants ``trust_code: true`` itself, is refused unless the user trusts it (``--trust-code``).
    Names typed on the command line (``--model``, ``model.name=...``) are the user's own and are not checked."""
    if _TRUST_CODE.get():
        return
    found = sorted(set(_code_requests(raw)))
    if found:
        raise UntrustedCodeError(
            f"{source} asks to run code: {'; '.join(found)}. slimforge runs no code named by a file unless you trust "
            "where the file came from: run it with --trust-code (only if you would run its author's program)."
        )


def _code_requests(raw: Any, where: str = "") -> Iterator[str]:
    if isinstance(raw, list):
        for i, item in enumerate(raw):
            yield from _code_requests(item, f"{where}[{i}]")
    if not isinstance(raw, dict):
        return
    if raw.get("trust_code") is True:
        yield f"{where or 'top level'}: trust_code: true"
    for key, value in raw.items():
        name = value.get("name") if isinstance(value, dict) else None
        if key in ("model", "student") and isinstance(name, str) and is_code_reference(name):
            yield f"{where + '.' if where else ''}{key} {name!r}"
        yield from _code_requests(value, f"{where}.{key}" if where else str(key))


def is_code_reference(name: str) -> bool:
    """True for ``package.module:function`` names: building them imports code named by the string."""
    return ":" in name and not name.startswith(SAFE_SOURCES)


def resolve_factory(name: str, *, trust_code: bool = True, source: str = "") -> Callable[..., nn.Module]:
    """The callable that builds model ``name``.

    A ``package.module:function`` name is imported only when ``trust_code`` is true, the
    ambient :func:`trusting_code` is on, or this process trusted that very name before;
    otherwise an :class:`UntrustedCodeError` is raised and nothing is imported. ``source`` names
    the file the name came from, for the message.
    """
    if not isinstance(name, str) or not name:
        raise UnknownNameError(f"{source or 'model'}: the model name must be a non-empty string, not {name!r}.")
    if name.startswith(SAFE_SOURCES):
        prefix, _, target = name.partition(":")
        module, _, attr = SOURCES[prefix].partition(":")
        return getattr(importlib.import_module(module), attr)(target)
    if ":" in name:
        if not (trust_code or _TRUST_CODE.get() or name in _TRUSTED_FACTORIES):
            raise UntrustedCodeError(
                f"{source or 'The model'} names the factory {name!r}: building it would import module "
                f"{name.partition(':')[0]!r} and run its code. slimforge runs no code named by a file unless you trust "
                "where the file came from: pass trust_code=True (slimforge.load), --trust-code (command line) or "
                "'trust_code: true' (a recipe stage's input); or register the factory in your own code "
                "(slimforge.register_model) and save the model under that name."
            )
        factory = _import_factory(name)
        _TRUSTED_FACTORIES.add(name)
        return factory
    return MODELS.get(name)


def create_model(name: str, /, **kwargs: Any) -> nn.Module:
    """Build model ``name`` with keywords ``kwargs``; see the module docstring for the accepted names.

    Called by your own code, ``name`` is trusted (a ``package.module:function`` factory is
    imported). Names read from files go through :func:`build_model_from` instead."""
    return build_model_from(name, kwargs, trust_code=True)


def build_model_from(name: str, kwargs: dict[str, Any], *, trust_code: bool = False, source: str = "") -> nn.Module:
    """Build model ``name`` from a file's description: with ``trust_code=False`` a
    ``package.module:function`` factory is refused (see :func:`resolve_factory`), and the
    keywords are checked against the factory's signature and size limits before the call.
    ``source`` names the file, for errors."""
    factory = resolve_factory(name, trust_code=trust_code, source=source)
    if not isinstance(kwargs, dict):
        raise ArtifactError(f"{source or 'model'}: the keywords of model {name!r} must be an object, not {type(kwargs).__name__}.")
    accepted = _accepted_kwargs(factory, kwargs, name, strict=not trust_code)
    _check_data_kwargs(name, accepted, source)
    if not trust_code:
        _check_kwargs(name, accepted, source)
        _check_size(factory, name, accepted, source)
    try:
        model = factory(**accepted)
    except SlimforgeError as exc:  # a source's own check (hf: config, timm: keywords): name the file it came from
        if source and source not in str(exc):
            raise type(exc)(f"{source}: {exc}") from None
        raise
    except (TypeError, ValueError, RuntimeError, IndexError, KeyError, AssertionError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SlimforgeError(f"{source + ': ' if source else ''}model {name!r} could not be built with {accepted}: {first}") from exc
    if not isinstance(model, nn.Module):
        raise SlimforgeError(f"Model factory {name!r} returned {type(model).__name__}, not an nn.Module.")
    spec = ModelSpec(name, _jsonable(accepted))
    describe = getattr(factory, "describe_spec", None)  # a source may record what rebuilds it instead of a path
    return attach_spec(model, describe(model, spec) if describe is not None else spec)


# Limits on a model's keywords read from a file: far above any real model, far below a crafted one.

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


def adopt_spec(model: nn.Module) -> ModelSpec | None:
    """The model's spec; for a model slimforge did not build but whose library describes it fully
    (a transformers model: its config, as ``hf:``; a timm or torchvision model that a rebuild by name
    matches exactly, as ``timm:`` / ``torchvision:``), that description is attached first. Call it
    before a structural edit: afterwards the model no longer matches its own description."""
    spec = get_spec(model)
    if spec is None and not model.__dict__.get(PENDING_EDITS_ATTR):
        from slimforge.models.hf import spec_of  # transformers models describe themselves

        spec = spec_of(model)
        if spec is None:  # timm.create_model(...), torchvision.models.resnet18(...): a rebuild that matches exactly
            from slimforge.models.recognised import spec_of as library_spec_of

            spec = library_spec_of(model)
        if spec is not None:
            attach_spec(model, spec)
    return spec


MAX_KWARG_INT = 2**31
MAX_KWARG_ITEMS = 4096
MAX_MODEL_BYTES_FRACTION = 0.8  # of physical memory


def _check_kwargs(name: str, kwargs: dict[str, Any], source: str) -> None:
    """Types and bounds of a file's model keywords: JSON scalars and short lists, sane numbers,
    positive data sizes."""
    where = f"{source or 'model.json'}: model {name!r} keyword"
    for key, value in kwargs.items():
        stack = [value]
        while stack:
            v = stack.pop()
            if isinstance(v, bool) or v is None:
                continue
            if isinstance(v, int):
                if abs(v) > MAX_KWARG_INT:
                    raise ArtifactError(f"{where} {key!r} = {v} is out of range (|value| <= {MAX_KWARG_INT}).")
            elif isinstance(v, float):
                if not math.isfinite(v):
                    raise ArtifactError(f"{where} {key!r} is {v}; a finite number is needed.")
            elif isinstance(v, str):
                if len(v) > MAX_KWARG_ITEMS:
                    raise ArtifactError(f"{where} {key!r} is a string of {len(v)} characters (at most {MAX_KWARG_ITEMS}).")
            elif isinstance(v, (list, dict)):
                if len(v) > MAX_KWARG_ITEMS:
                    raise ArtifactError(f"{where} {key!r} holds {len(v)} items (at most {MAX_KWARG_ITEMS}).")
                stack.extend(v.values() if isinstance(v, dict) else v)
            else:
                raise ArtifactError(f"{where} {key!r} has a value of type {type(v).__name__}; only JSON values are allowed.")


def _check_data_kwargs(name: str, kwargs: dict[str, Any], source: str) -> None:
    """``num_classes``, ``in_channels`` and ``input_size`` are positive integers, whoever passes them (a timm model
    takes ``num_classes=0``: no classifier, the pooled features)."""
    where = f"{source + ': ' if source else ''}model {name!r} keyword"
    error = ArtifactError if source else ConfigError
    for key in ("num_classes", "in_channels"):
        least = 0 if key == "num_classes" and name.startswith("timm:") else 1
        if key in kwargs and (not isinstance(kwargs[key], int) or isinstance(kwargs[key], bool) or kwargs[key] < least):
            raise error(f"{where} {key!r} must be a {'non-negative' if least == 0 else 'positive'} integer, not {kwargs[key]!r}.")
    size = kwargs.get("input_size")
    sizes = list(size) if isinstance(size, (list, tuple)) else [size] if size is not None else []
    if any(not isinstance(s, int) or isinstance(s, bool) or s < 1 for s in sizes):
        raise error(f"{where} 'input_size' must be positive integers, not {size!r}.")


def _check_size(factory: Callable[..., nn.Module], name: str, kwargs: dict[str, Any], source: str) -> None:
    """Build the model on the meta device (no memory, no random numbers) and refuse one whose
    parameters would not fit in memory, before the real build allocates them."""
    try:
        with torch.device("meta"):
            model = factory(**kwargs)
        total = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
    except Exception:  # noqa: BLE001 - a factory that cannot build on meta is checked by the real build
        return
    limit = _physical_memory() * MAX_MODEL_BYTES_FRACTION
    if total > limit:
        raise ArtifactError(
            f"{source or 'model.json'}: model {name!r} with {kwargs} would need {total / 2**30:,.1f} GiB of parameters, "
            f"more than this machine's memory allows ({limit / 2**30:,.1f} GiB); the file is corrupt or crafted."
        )


def _physical_memory() -> float:
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return float(2**40)


def _jsonable(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in kwargs.items()}


def _accepted_kwargs(factory: Callable[..., Any], kwargs: dict[str, Any], name: str = "", strict: bool = False) -> dict[str, Any]:
    """``kwargs`` without data keywords the factory does not take; with ``strict``, any other
    keyword it does not take is an error naming the accepted ones (checked before the call)."""
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return kwargs
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return kwargs
    unknown = [k for k in kwargs if k not in params and k not in DATA_KWARGS]
    if strict and unknown:
        accepted = [p for p, v in params.items() if v.kind in (v.POSITIONAL_OR_KEYWORD, v.KEYWORD_ONLY)]
        raise ArtifactError(f"model {name!r} takes no keyword {unknown[0]!r}; it accepts: {', '.join(accepted) or 'none'}.")
    return {k: v for k, v in kwargs.items() if k in params or k not in DATA_KWARGS}


def _import_factory(path: str) -> Callable[..., nn.Module]:
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UnknownNameError(
            f"Model factory {path!r}: cannot import module {module_name!r} ({exc}). "
            "Use 'package.module:function' with the package on PYTHONPATH."
        ) from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise UnknownNameError(f"Model factory {path!r}: module {module_name!r} has no callable {attr!r}.")
    return factory


# Register the built-in families (import for side effects).
from slimforge.models import cnn, mlp, resnet  # noqa: E402,F401

__all__ = ["MODELS", "SOURCES", "UntrustedCodeError", "adopt_spec", "build_model", "build_model_from", "code_trusted", "create_model", "is_code_reference", "refuse_code_in", "list_models", "register_model", "resolve_factory", "trusting_code"]
