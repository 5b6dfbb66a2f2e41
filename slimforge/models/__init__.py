"""Model registry: ``create_model(name, **kwargs)`` and ``list_models()``.

Names resolve in three ways:

* a registered name (``cnn``, ``resnet20``, ``mlp-800`` ...);
* ``torchvision:<name>``: any torchvision classification model, random init by default,
  with ``num_classes`` and ``in_channels`` adapted;
* ``package.module:function``: any user factory returning an ``nn.Module``.

Every factory receives the data-derived keywords ``num_classes``, ``in_channels`` and
``input_size`` when its signature accepts them; other keywords pass through unchanged.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

from slimforge._registry import Registry
from slimforge.errors import SlimforgeError, UnknownNameError

# Models of domain packages that register themselves when first used.
BUILTIN_MODELS = {name: "slimforge.recsys.models" for name in ("popularity", "mf", "neumf", "two-tower")}
MODELS: Registry[Callable[..., nn.Module]] = Registry("model", builtins=BUILTIN_MODELS)
register_model = MODELS.register

# Keywords that describe the data rather than the architecture; dropped for factories
# that do not take them.
DATA_KWARGS = ("num_classes", "in_channels", "input_size")


def list_models() -> list[str]:
    """Registered model names (``torchvision:*`` and ``module:function`` also work)."""
    return MODELS.names()


def resolve_factory(name: str) -> Callable[..., nn.Module]:
    """The callable that builds model ``name``."""
    if name.startswith("torchvision:"):
        from slimforge.models.external import torchvision_factory

        return torchvision_factory(name.split(":", 1)[1])
    if ":" in name:
        return _import_factory(name)
    return MODELS.get(name)


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build model ``name``; see the module docstring for the accepted names."""
    from slimforge.artifacts import ModelSpec, attach_spec

    factory = resolve_factory(name)
    accepted = _accepted_kwargs(factory, kwargs)
    try:
        model = factory(**accepted)
    except TypeError as exc:
        raise SlimforgeError(f"Model {name!r} could not be built with {accepted}: {exc}") from exc
    if not isinstance(model, nn.Module):
        raise SlimforgeError(f"Model factory {name!r} returned {type(model).__name__}, not an nn.Module.")
    return attach_spec(model, ModelSpec(name, _jsonable(accepted)))


def _jsonable(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in kwargs.items()}


def _accepted_kwargs(factory: Callable[..., Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return kwargs
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return kwargs
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
from slimforge.text import models as _text_models  # noqa: E402,F401,I001  (registers the text models)

__all__ = ["MODELS", "create_model", "list_models", "register_model", "resolve_factory"]
