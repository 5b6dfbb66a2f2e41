"""Models from other libraries: torchvision classification models and timm models by name."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
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


# ---------------------------------------------------------------- timm

# A timm model name: an architecture, optionally ".<pretrained tag>"; never a path.
_TIMM_NAME = re.compile(r"[A-Za-z0-9_]+(\.[A-Za-z0-9_-]+)?")
# timm keywords that point the build at files (and so, from a file, at any pickle on the disk).
_TIMM_FILE_KWARGS = ("pretrained_cfg", "pretrained_cfg_overlay", "checkpoint_path", "cache_dir")


def timm_factory(name: str) -> Callable[..., nn.Module]:
    """A factory for ``timm.create_model(name)``: random init, or ``pretrained=True`` from weights
    already on this machine (Hugging Face hub cache or ``TORCH_HOME``, safetensors only): slimforge
    never downloads and never unpickles. ``in_channels`` maps to timm's ``in_chans``; other keywords
    (``img_size``, ``drop_rate`` ...) pass through to the model's constructor."""
    try:
        import timm
    except ImportError:
        raise UnknownNameError(f"timm:{name} needs timm: pip install timm (or the 'vision' extra).") from None
    if not _TIMM_NAME.fullmatch(name or "") or not timm.is_model(name.split(".")[0]):
        known = timm.list_models()
        hint = "" if _TIMM_NAME.fullmatch(name or "") else " A timm model name holds letters, digits, '_' and one '.' tag; never a path."
        raise UnknownNameError(f"Unknown timm model {name!r}.{did_you_mean(name, known) if not hint else hint} See timm.list_models().")

    def factory(num_classes: int = 1000, in_channels: int = 3, pretrained: bool = False, **kwargs: Any) -> nn.Module:
        kwargs.pop("input_size", None)
        bad = [k for k in _TIMM_FILE_KWARGS if k in kwargs]
        if bad:
            raise SlimforgeError(f"timm:{name}: keyword {bad[0]!r} is not accepted (it points the build at files); "
                                 "build with pretrained=True from the local cache, or load your weights into the model yourself.")
        if not pretrained:
            return timm.create_model(name, pretrained=False, num_classes=num_classes, in_chans=in_channels, **kwargs)
        local = _local_timm_weights(timm, name)
        return timm.create_model(name, pretrained=True, num_classes=num_classes, in_chans=in_channels,
                                 pretrained_cfg_overlay={"source": "", "file": str(local), "state_dict": None}, **kwargs)

    # The saved folder holds the weights: it records a random-init build (pretrained=False).
    factory.describe_spec = lambda model, spec: type(spec)(spec.name, {**spec.kwargs, "pretrained": False}, list(spec.edits))
    return factory


def _local_timm_weights(timm: Any, name: str) -> Path:
    """The safetensors file of timm model ``name``'s pretrained weights on this machine, or an error saying where it was looked for."""
    import torch.hub

    cfg = timm.models.get_pretrained_cfg(name)
    if cfg is None:
        raise SlimforgeError(f"timm:{name} has no pretrained weights in timm; build it with pretrained=False.")
    cfg = cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg)
    looked: list[str] = []
    if cfg.get("hf_hub_id"):
        from huggingface_hub import try_to_load_from_cache

        filename = cfg.get("hf_hub_filename") or "model.safetensors"
        found = try_to_load_from_cache(cfg["hf_hub_id"], filename if filename.endswith(".safetensors") else "model.safetensors")
        if isinstance(found, str) and found.endswith(".safetensors"):
            return Path(found)
        looked.append(f"{cfg['hf_hub_id']}/model.safetensors in the Hugging Face cache (HF_HOME)")
    if cfg.get("url"):
        file = Path(torch.hub.get_dir()) / "checkpoints" / Path(cfg["url"]).name
        if file.is_file() and file.suffix == ".safetensors":
            return file
        looked.append(f"{file}" + (" (a pickle: slimforge never unpickles; convert it to safetensors)" if file.is_file() else ""))
    raise SlimforgeError(
        f"timm:{name}: pretrained weights are not on this machine (looked for {'; '.join(looked) or 'nothing: no source known'}). "
        "slimforge never downloads: fetch them once with timm where you have network access, or build with pretrained=False."
    )
