"""timm and torchvision models the user built with the library's own call (``timm.create_model(...)``,
``torchvision.models.resnet18(...)``): recognised as ``timm:<name>`` / ``torchvision:<name>`` so that they
save and load like models built by :func:`slimforge.create_model`, with no code trusted.

A model is recognised only when a rebuild from the guessed name and keywords matches it exactly:
the same module tree (types and every plain setting: sizes, eps, dropout and drop-path rates,
pooling) and the same parameter and buffer shapes. Anything else (a layer replaced by hand, a
keyword the guess does not cover) is not recognised, and :func:`recognise` says what differed.
"""

from __future__ import annotations

import sys
from typing import Any

import torch
from torch import nn

from slimforge.artifacts import ModelSpec, get_spec

_SCALARS = (int, float, str, bool, type(None))
# Builds on the meta device are free; a real build (for a constructor that reads tensor values) only under this size.
MAX_REAL_BUILD_PARAMETERS = 300_000_000


# Settings no forward reads whose value the shapes already tell: a head replaced by hand (torchvision's
# model.heads.head = nn.Linear(768, 10)) leaves num_classes at the old count.
_NOT_COMPARED = ("training", "num_classes")


def _plain(value: Any) -> bool:
    if isinstance(value, _SCALARS):
        return True
    return isinstance(value, (tuple, list)) and len(value) <= 64 and all(_plain(v) for v in value)


def fingerprint(model: nn.Module) -> dict[str, Any]:
    """What must agree for a rebuild to be this model: per module its class and plain settings,
    per parameter and buffer its shape (values are the weights', loaded afterwards)."""
    out: dict[str, Any] = {}
    for name, module in model.named_modules():
        settings = {k: v for k, v in vars(module).items() if not k.startswith("_") and k not in _NOT_COMPARED and _plain(v)}
        out[f"module {name or '(root)'}"] = (f"{type(module).__module__}.{type(module).__qualname__}", sorted(settings.items()))
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        out[f"tensor {name}"] = tuple(tensor.shape)
    return out


def _differences(model: nn.Module, rebuilt: nn.Module) -> list[str]:
    a, b = fingerprint(model), fingerprint(rebuilt)
    return [f"{key}: yours {_short(a.get(key))}, rebuilt {_short(b.get(key))}" for key in a.keys() | b.keys() if a.get(key) != b.get(key)]


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 160 else text[:157] + "..."


def _first_conv_inputs(model: nn.Module) -> int | None:
    for module in model.modules():
        if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            return module.in_channels
    return None


def _last_linear_outputs(model: nn.Module) -> int | None:
    last = None
    for module in model.modules():
        if isinstance(module, nn.Linear):
            last = module.out_features
    return last


def _timm_candidates(model: nn.Module) -> list[ModelSpec]:
    cfg = getattr(model, "pretrained_cfg", None)
    arch = cfg.get("architecture") if isinstance(cfg, dict) else None
    attribute = getattr(model, "num_classes", None)
    if isinstance(arch, str) and attribute is None and hasattr(model, "feature_info"):
        return _timm_feature_candidates(model, arch)
    if not isinstance(arch, str) or type(attribute) is not int:
        return []
    try:  # a classifier replaced by hand leaves num_classes at the old count: its outputs first
        head = model.get_classifier()
    except Exception:  # noqa: BLE001 - a model without the accessor, or one that needs more than itself
        head = None
    counts = list(dict.fromkeys([*([head.out_features] if isinstance(head, nn.Linear) else []), attribute]))
    kwargs: dict[str, Any] = {}
    channels = getattr(model, "in_chans", None)  # most timm models keep it; the first convolution's inputs otherwise
    channels = channels if type(channels) is int else _first_conv_inputs(model)
    if channels not in (None, 3):
        kwargs["in_channels"] = channels
    inner = getattr(model, "encoder", None)  # DeepSeek / Gemma 4 / Qwen 3 ViTs keep their blocks one level down
    img_size = getattr(getattr(model, "patch_embed", getattr(inner, "patch_embed", None)), "img_size", None)
    if isinstance(img_size, (tuple, list)) and len(img_size) == 2 and all(type(v) is int for v in img_size):
        kwargs["img_size"] = img_size[0] if img_size[0] == img_size[1] else list(img_size)
    extras: dict[str, Any] = {}
    drop_rate = getattr(model, "drop_rate", getattr(getattr(model, "head_drop", None), "p", None))  # ViTs: the head's dropout
    if isinstance(drop_rate, float) and drop_rate > 0:
        extras["drop_rate"] = drop_rate
    drop_path = max((m.drop_prob for m in model.modules() if type(m).__name__ == "DropPath" and isinstance(getattr(m, "drop_prob", None), float)),
                    default=0.0)
    if drop_path > 0:
        extras["drop_path_rate"] = drop_path
    # the rates as the user typed them (0.1; timm's float32 linspace turns it into 0.10000000149...), then as stored
    typed = {k: float(f"{v:.6g}") for k, v in extras.items()}
    blocks = getattr(model, "blocks", getattr(inner, "blocks", None))
    depth = {"depth": len(blocks)} if isinstance(blocks, (nn.Sequential, nn.ModuleList)) else None  # vit_small(depth=6)
    candidates = []
    for count in counts:
        common = {"num_classes": count, **kwargs}
        candidates += [{**common, **typed}, {**common, **extras}, common, *([{**common, **typed, **depth}] if depth else [])]
    unique = [c for i, c in enumerate(candidates) if c not in candidates[:i]]
    return [ModelSpec(f"timm:{arch}", c) for c in unique]


def _timm_feature_candidates(model: nn.Module, arch: str) -> list[ModelSpec]:
    """A ``features_only=True`` model (timm's ``FeatureListNet``, ``FeatureGetterNet`` ...): its maps' indices."""
    try:
        indices = [int(i) for i in model.feature_info.out_indices]
    except (AttributeError, TypeError, ValueError):
        return []
    kwargs: dict[str, Any] = {"features_only": True, "out_indices": indices}
    channels = _first_conv_inputs(model)
    if channels not in (None, 3):
        kwargs["in_channels"] = channels
    inner = getattr(model, "model", model)  # FeatureGetterNet keeps the whole model one level down
    img_size = getattr(getattr(inner, "patch_embed", None), "img_size", None)
    if isinstance(img_size, (tuple, list)) and len(img_size) == 2 and all(type(v) is int for v in img_size):
        kwargs["img_size"] = img_size[0] if img_size[0] == img_size[1] else list(img_size)
    return [ModelSpec(f"timm:{arch}", kwargs)]


def _torchvision_candidates(model: nn.Module) -> list[ModelSpec]:
    import torchvision

    module_name = type(model).__module__
    # the classifier's outputs first: a head replaced by hand (model.heads.head = nn.Linear(768, 10)) leaves the
    # attribute at the old count; SqueezeNet's classifier is a convolution, and only the attribute tells
    attribute = getattr(model, "num_classes", None)
    counts = [c for c in (_last_linear_outputs(model), attribute if type(attribute) is int else None) if c is not None]
    if not counts:
        return []
    kwargs: dict[str, Any] = {}
    channels = _first_conv_inputs(model)
    if channels not in (None, 3):
        kwargs["in_channels"] = channels
    image_size = getattr(model, "image_size", None)
    if type(image_size) is int:
        kwargs["image_size"] = image_size
    names = [n for n in torchvision.models.list_models(module=torchvision.models)
             if getattr(torchvision.models.get_model_builder(n), "__module__", None) == module_name]
    return [ModelSpec(f"torchvision:{n}", {"num_classes": c, **kwargs}) for c in dict.fromkeys(counts) for n in names]


def _candidates(model: nn.Module) -> list[ModelSpec]:
    module_name = type(model).__module__
    if module_name.startswith("timm.") and "timm" in sys.modules:
        return _timm_candidates(model)
    if module_name.startswith("torchvision.models.") and "torchvision" in sys.modules:
        return _torchvision_candidates(model)
    return []


def _rebuild(model: nn.Module, spec: ModelSpec) -> nn.Module | None:
    from slimforge.models import _without_random_init, build_model_from

    # trust_code=True only skips the checks meant for names read from files (one of them a second meta build): the
    # name here is a timm: / torchvision: source this module wrote, never a package.module:function
    try:
        with torch.device("meta"):
            return build_model_from(spec.name, spec.kwargs, trust_code=True)
    except Exception:  # noqa: BLE001 - a constructor that reads tensor values (.item(), numpy) cannot build on meta
        pass
    if sum(p.numel() for p in model.parameters()) > MAX_REAL_BUILD_PARAMETERS:
        return None
    try:
        with _without_random_init():
            return build_model_from(spec.name, spec.kwargs, trust_code=True)
    except Exception:  # noqa: BLE001 - a guess the library refuses is no match
        return None


def recognise(model: nn.Module) -> tuple[ModelSpec | None, str | None]:
    """``(spec, None)`` for a timm/torchvision model that ``spec`` rebuilds exactly; ``(None, why)`` for
    one that looks like a library model but differs from every guess (the closest guess named);
    ``(None, None)`` otherwise."""
    closest: tuple[int, str] | None = None
    for guess in _candidates(model):
        rebuilt = _rebuild(model, guess)
        if rebuilt is None:
            continue
        differences = _differences(model, rebuilt)
        if not differences:
            return get_spec(rebuilt) or guess, None
        if closest is None or len(differences) < closest[0]:
            closest = (len(differences), f"{guess.name} with {guess.kwargs} differs in {len(differences)} place(s), "
                                          f"first {sorted(differences)[0]}; if it is {guess.name} built with other keywords, "
                                          f"save(model, out, factory={guess.name!r}, kwargs={{...}}) records them and loads "
                                          "without trusting code")
    return None, closest[1] if closest else None


def spec_of(model: nn.Module) -> ModelSpec | None:
    """The ``timm:`` / ``torchvision:`` spec that rebuilds ``model`` exactly, or None."""
    return recognise(model)[0]
