"""Feature hints (FitNets, Romero et al. 2015): match intermediate features through learned adapters.

A hint pairs a student module path with a teacher module path. During the objective's forward
pass, temporary forward hooks capture both modules' outputs; a trainable adapter (a 1x1 conv for
(batch, C, H, W) maps, a linear layer over the last dimension otherwise) maps the student's
feature to the teacher's width, and MSE or cosine distance compares them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from slimforge.errors import ConfigError, SlimforgeError, did_you_mean

HINT_LOSSES = ("mse", "cosine")


@dataclass(frozen=True)
class HintSpec:
    """student, teacher: dotted module paths as in ``model.named_modules()`` (e.g. ``layer2.0``)."""

    student: str
    teacher: str

    @classmethod
    def parse(cls, value: HintSpec | str | Sequence[str] | dict[str, str]) -> HintSpec:
        """Accept ``HintSpec``, ``"student_path:teacher_path"``, a pair, or ``{"student":, "teacher":}``."""
        if isinstance(value, HintSpec):
            return value
        if isinstance(value, str) and value.count(":") == 1:
            return cls(*value.split(":"))
        if isinstance(value, dict) and set(value) == {"student", "teacher"}:
            return cls(value["student"], value["teacher"])
        if isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, str) for v in value):
            return cls(value[0], value[1])
        raise ConfigError(
            f"hints: cannot read {value!r}; write each hint as 'student_path:teacher_path', "
            "a [student_path, teacher_path] pair or {student: ..., teacher: ...}."
        )


def list_module_paths(model: nn.Module) -> list[str]:
    """Every hookable module path of ``model`` (the root, named '', excluded)."""
    return [name for name, _ in model.named_modules() if name]


def resolve_module(model: nn.Module, path: str, role: str) -> nn.Module:
    """``model``'s submodule at ``path``; a wrong path raises an error listing nearby valid paths."""
    modules = dict(model.named_modules())
    if path and path in modules:
        return modules[path]
    paths = list_module_paths(model)
    parts = path.split(".")
    parent = next((".".join(parts[:i]) for i in range(len(parts) - 1, 0, -1) if ".".join(parts[:i]) in modules), "")
    siblings = [name for name, _ in modules[parent].named_children()] if parent in modules else []
    siblings = [f"{parent}.{s}" if parent else s for s in siblings]
    nearby = list(dict.fromkeys(siblings + [p for p in paths if p.count(".") == 0]))[:12]
    raise SlimforgeError(
        f"Feature hint: the {role} ({type(model).__name__}) has no module {path!r}.{did_you_mean(path, paths)} "
        f"Valid paths near it: {', '.join(nearby)}. "
        f"All {len(paths)} paths: slimforge.distill.list_module_paths(model)."
    )


@contextmanager
def capture_outputs(model: nn.Module, paths: Sequence[str], role: str) -> Iterator[dict[str, torch.Tensor]]:
    """Record the outputs of ``model``'s modules at ``paths`` while the block runs; hooks are removed after."""
    captured: dict[str, torch.Tensor] = {}
    handles = []
    for path in paths:
        def hook(module: nn.Module, args: object, output: object, path: str = path) -> None:
            captured[path] = output[0] if isinstance(output, (tuple, list)) else output

        handles.append(resolve_module(model, path, role).register_forward_hook(hook))
    try:
        yield captured
    finally:
        for handle in handles:
            handle.remove()


def build_adapter(student_shape: torch.Size, teacher_shape: torch.Size) -> nn.Module:
    """A 1x1 conv for 4-D feature maps, else a linear map over the last dimension."""
    if len(student_shape) != len(teacher_shape):
        raise SlimforgeError(
            f"Feature hint: student feature {tuple(student_shape)} and teacher feature {tuple(teacher_shape)} have "
            "different ranks; pair modules whose outputs are both feature maps or both vectors."
        )
    if len(student_shape) == 4:
        return nn.Conv2d(student_shape[1], teacher_shape[1], kernel_size=1, bias=False)
    return nn.Linear(student_shape[-1], teacher_shape[-1])


def hint_loss(adapter: nn.Module, student_feature: torch.Tensor, teacher_feature: torch.Tensor, kind: str) -> torch.Tensor:
    """Distance between adapter(student_feature) and the teacher's feature; spatial sizes are pooled to the teacher's."""
    mapped = adapter(student_feature)
    target = teacher_feature.detach().to(mapped.dtype)
    if mapped.dim() == 4 and mapped.shape[-2:] != target.shape[-2:]:
        mapped = F.adaptive_avg_pool2d(mapped, target.shape[-2:])
    if mapped.shape != target.shape:
        raise SlimforgeError(
            f"Feature hint: adapted student feature {tuple(mapped.shape)} does not match teacher feature {tuple(target.shape)}."
        )
    if kind == "mse":
        return F.mse_loss(mapped, target)
    return (1 - F.cosine_similarity(mapped.flatten(1), target.flatten(1), dim=1)).mean()
