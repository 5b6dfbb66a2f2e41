"""Models from other libraries: torchvision classification models by name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from slimforge.errors import SlimforgeError, UnknownNameError, did_you_mean


def torchvision_factory(name: str) -> Callable[..., nn.Module]:
    """A factory for ``torchvision.models.get_model(name)``.

    ``weights`` passes through to torchvision (for example ``"DEFAULT"``); without network
    access pretrained weights must already be in the torch hub cache. ``in_channels`` other
    than 3 replaces the first convolution by one of the same shape with that many inputs.
    """
    import torchvision

    known = torchvision.models.list_models(module=torchvision.models)
    if name not in known:
        raise UnknownNameError(
            f"Unknown torchvision model {name!r}.{did_you_mean(name, known)} "
            "See torchvision.models.list_models(module=torchvision.models)."
        )

    def factory(num_classes: int = 1000, in_channels: int = 3, weights: str | None = None, **kwargs: Any) -> nn.Module:
        kwargs.pop("input_size", None)
        if weights is None:
            model = torchvision.models.get_model(name, weights=None, num_classes=num_classes, **kwargs)
        else:
            try:
                model = torchvision.models.get_model(name, weights=weights, **kwargs)
            except Exception as exc:  # network or cache failures from the hub
                raise SlimforgeError(
                    f"Could not load weights {weights!r} for torchvision model {name!r}: {exc}. "
                    "Without network access, place the file in the torch hub cache (TORCH_HOME) first."
                ) from exc
            if num_classes != 1000:
                _replace_classifier(model, num_classes)
        if in_channels != 3:
            _adapt_first_conv(model, in_channels)
        return model

    return factory


def _first_module(model: nn.Module, kind: type) -> tuple[nn.Module, str, nn.Module] | None:
    for path, module in model.named_modules():
        for child_name, child in module.named_children():
            if isinstance(child, kind):
                return module, child_name, child
    return None


def _adapt_first_conv(model: nn.Module, in_channels: int) -> None:
    found = _first_module(model, nn.Conv2d)
    if found is None:
        raise SlimforgeError("in_channels adaptation needs a Conv2d input layer; this model has none.")
    parent, attr, conv = found
    new = nn.Conv2d(
        in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
        conv.dilation, 1 if conv.groups == conv.in_channels else conv.groups, conv.bias is not None,
    )
    setattr(parent, attr, new)


def _replace_classifier(model: nn.Module, num_classes: int) -> None:
    last = None
    for module in model.modules():
        for child_name, child in module.named_children():
            if isinstance(child, nn.Linear):
                last = (module, child_name, child)
    if last is None:
        raise SlimforgeError("num_classes adaptation needs a final nn.Linear; this model has none.")
    parent, attr, linear = last
    setattr(parent, attr, nn.Linear(linear.in_features, num_classes))
