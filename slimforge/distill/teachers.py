"""Teachers: frozen, in eval mode, never DDP-wrapped, optionally run in another dtype."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from slimforge.errors import ConfigError

TeacherLike = nn.Module | str | Path
TEACHER_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def unwrap(model: nn.Module) -> nn.Module:
    """The raw module inside a DDP / DataParallel wrapper (anything with ``.module``), else ``model``."""
    inner = getattr(model, "module", None)
    return inner if isinstance(inner, nn.Module) else model


def prepare_teachers(teachers: TeacherLike | Sequence[TeacherLike], dtype: str | None = None) -> list[nn.Module]:
    """Load run folders, unwrap, freeze, switch to eval mode and cast to ``dtype`` (None keeps it)."""
    from slimforge.loading import load_module

    items = [teachers] if isinstance(teachers, (nn.Module, str, Path)) else list(teachers)
    if not items:
        raise ConfigError("No teacher given: pass a model, a run folder, or a list of them for an ensemble.")
    if dtype is not None and dtype not in TEACHER_DTYPES:
        raise ConfigError(f"teacher_dtype={dtype!r} is not supported; use one of {sorted(TEACHER_DTYPES)} or null.")
    prepared = []
    for item in items:
        teacher = unwrap(load_module(item, "a distillation teacher") if isinstance(item, (str, Path)) else item)
        teacher.eval().requires_grad_(False)
        if dtype is not None:
            teacher.to(TEACHER_DTYPES[dtype])
        prepared.append(teacher)
    return prepared


@torch.no_grad()
def run_teacher(teacher: nn.Module, inputs: Any) -> torch.Tensor:
    """Teacher logits as float32. Floating inputs are cast to the teacher's dtype first;
    ``inputs`` may be a tensor or a dict of tensors (text batches)."""
    param = next(teacher.parameters(), None)
    if param is not None:
        inputs = _to_teacher(inputs, param)
    return teacher(inputs).float()


def _to_teacher(inputs: Any, param: torch.Tensor) -> Any:
    if isinstance(inputs, dict):
        return {k: _to_teacher(v, param) for k, v in inputs.items()}
    if inputs.is_floating_point():
        inputs = inputs.to(param.dtype)
    return inputs.to(param.device)


def combine_teachers(logits: torch.Tensor, how: str, temperature: float) -> torch.Tensor:
    """Merge an ensemble's outputs (teachers, rows, classes) into one set of (rows, classes) logits.

    ``"probabilities"`` returns T * log(mean_k softmax(z_k / T)): pseudo-logits whose softmax at
    temperature T is exactly the average of the teachers' softened probabilities, so a loss can
    treat the ensemble as one teacher. ``"logits"`` averages the logits.
    """
    if logits.shape[0] == 1:
        return logits[0]
    if how == "logits":
        return logits.mean(0)
    mean_probs = F.softmax(logits / temperature, dim=-1).mean(0)
    return temperature * torch.log(mean_probs.clamp_min(torch.finfo(mean_probs.dtype).tiny))


def weights_hash(model: nn.Module) -> str:
    """sha256 of the state dict (names, dtypes, shapes and bytes): a teacher's identity for the cache."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
