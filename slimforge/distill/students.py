"""Students: a model, a registry name or ``module:function`` factory, or any callable returning a model."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

from slimforge.errors import SlimforgeError

StudentLike = nn.Module | str | Callable[..., nn.Module]


def build_student(student: StudentLike, *, num_classes: int, in_channels: int | None = None, **kwargs: Any) -> nn.Module:
    """The student as a module. Names go through ``create_model`` (so the student can be saved);
    callables get the data keywords they accept. A module (e.g. a pruned copy of the teacher) is
    returned as it is."""
    from slimforge.models import DATA_KWARGS, create_model

    data = {"num_classes": num_classes, **({"in_channels": in_channels} if in_channels is not None else {})}
    if isinstance(student, nn.Module):
        return student
    if isinstance(student, str):
        return create_model(student, **data, **kwargs)
    if callable(student):
        try:
            params = inspect.signature(student).parameters
            takes_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
            data = {k: v for k, v in data.items() if takes_all or k in params or k not in DATA_KWARGS}
        except (TypeError, ValueError):
            pass
        model = student(**data, **kwargs)
        if not isinstance(model, nn.Module):
            raise SlimforgeError(f"Student factory {student!r} returned {type(model).__name__}, not an nn.Module.")
        return model
    raise SlimforgeError(f"Cannot build a student from {type(student).__name__}; pass a model, a model name or a factory.")
