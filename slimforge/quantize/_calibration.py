"""Calibration and evaluation inputs: batches of tensors, checked before any backend runs."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from slimforge.errors import DataError

Batch = torch.Tensor | tuple[Any, ...] | list[Any] | dict[str, Any]


def batch_inputs(batch: Batch, structured: bool = False) -> Any:
    """The inputs of a batch: the tensor itself, the first item of (inputs, targets, ...), or
    ``batch["inputs"]``. ``structured``: the first item may also be a dict of tensors (a text
    batch ``{"input_ids", "attention_mask"}``), for models that take one."""
    if isinstance(batch, torch.Tensor):
        return batch
    if isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], torch.Tensor):
        return batch[0]
    if structured and isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], dict):
        return batch[0]
    if isinstance(batch, dict) and isinstance(batch.get("inputs"), torch.Tensor):
        return batch["inputs"]
    raise DataError(
        f"Calibration batches must be tensors, (inputs, targets) pairs or {{'inputs': tensor}}; got {type(batch).__name__}."
    )


def token_ids(inputs: Any) -> torch.Tensor | None:
    """The (batch, length) int64 token ids of a text batch (an id tensor or ``{"input_ids", ...}``), else None.

    Text models in slimforge derive the attention mask from the padding id, so the ids alone
    carry the batch; a runtime fed ids needs no mask input.
    """
    if isinstance(inputs, dict) and isinstance(inputs.get("input_ids"), torch.Tensor):
        inputs = inputs["input_ids"]
    if isinstance(inputs, torch.Tensor) and not inputs.is_floating_point() and inputs.dim() == 2:
        return inputs.detach().cpu().long()
    return None


def collect_calibration(
    data: Iterable[Batch],
    n_batches: int,
    model: nn.Module,
    input_shape: tuple[int, ...] | None = None,
    any_inputs: bool = False,
    token_inputs: bool = False,
) -> list[torch.Tensor]:
    """The first ``n_batches`` input tensors of ``data`` (each (batch, *input_shape)), on the CPU.

    Raises :class:`DataError` naming the batch and shapes when the data is empty, of mixed
    per-sample shapes, not ``input_shape``, or of a shape ``model`` cannot run.
    ``any_inputs``: for backends that run the eager model, inputs of any structure (e.g. text
    batches ``{"input_ids", "attention_mask"}`` of varying length) are taken as they are.
    ``token_inputs``: for backends that run exported graphs on token ids, text batches become
    (batch, length) id tensors, their lengths free to differ.
    """
    if n_batches < 1:
        raise DataError(f"calib_batches must be >= 1, got {n_batches}.")
    if any_inputs:
        return _collect_any(data, n_batches, model)
    if token_inputs:
        data = iter(data)
        first = next(data, None)
        if first is not None and token_ids(batch_inputs(first, structured=True)) is not None:
            return _collect_tokens([first, *(b for _, b in zip(range(n_batches - 1), data))], model)
        data = itertools.chain([] if first is None else [first], data)
    batches: list[torch.Tensor] = []
    for i, batch in enumerate(data):
        if i >= n_batches:
            break
        x = batch_inputs(batch).detach().cpu()
        if x.dim() < 2 or not x.is_floating_point():
            raise DataError(f"Calibration batch {i} is a {x.dtype} tensor of shape {tuple(x.shape)}; expected float (batch, ...).")
        if batches and x.shape[1:] != batches[0].shape[1:]:
            raise DataError(
                f"Calibration batch {i} has per-sample shape {tuple(x.shape[1:])}, batch 0 had {tuple(batches[0].shape[1:])}."
            )
        if not torch.isfinite(x).all():
            bad = int((~torch.isfinite(x)).sum())
            raise DataError(f"Calibration batch {i} holds {bad} NaN or infinite values; int8 ranges need finite inputs.")
        batches.append(x.float())
    if not batches:
        raise DataError("The calibration data is empty: pass an iterable of input batches (e.g. the train loader).")
    sample = tuple(batches[0].shape[1:])
    if input_shape is not None and sample != tuple(input_shape):
        raise DataError(f"Calibration data has per-sample shape {sample}; the model expects {tuple(input_shape)}.")
    check_model_runs(model, batches[0], "calibration batch 0")
    return batches


@torch.no_grad()
def check_model_runs(model: Callable[[torch.Tensor], Any], x: torch.Tensor, what: str) -> None:
    try:
        model(x[:2])
    except (RuntimeError, ValueError, IndexError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(
            f"{type(model).__name__} cannot run on {what} of shape {tuple(x.shape)} "
            f"(per-sample {tuple(x.shape[1:])}): {first}. Calibrate with inputs shaped like the training data."
        ) from None


@torch.no_grad()
def _collect_any(data: Iterable[Batch], n_batches: int, model: nn.Module) -> list[Any]:
    batches = [_to_cpu(b[0] if isinstance(b, (tuple, list)) else b) for _, b in zip(range(n_batches), data)]
    if not batches:
        raise DataError("The calibration data is empty: pass an iterable of input batches (e.g. the train loader).")
    _check_runs(model, batches[0], f"calibration batch 0 ({_describe(batches[0])})")
    return batches


def _check_runs(model: nn.Module, inputs: Any, what: str) -> None:
    """Run ``model`` on ``inputs`` once; a failure becomes a DataError naming ``what``."""
    try:
        model(inputs)
    except (RuntimeError, ValueError, IndexError, KeyError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{type(model).__name__} cannot run on {what}: {first}") from None


@torch.no_grad()
def _collect_tokens(batches: list[Batch], model: nn.Module) -> list[torch.Tensor]:
    ids = []
    for i, batch in enumerate(batches):
        x = token_ids(batch_inputs(batch, structured=True))
        if x is None:
            raise DataError(f"Calibration batch {i} is not token ids like batch 0 ({_describe(batch_inputs(batch, structured=True))}).")
        ids.append(x)
    _check_runs(model, ids[0], f"token ids of shape {tuple(ids[0].shape)}")
    return ids


def _to_cpu(inputs: Any) -> Any:
    if isinstance(inputs, torch.Tensor):
        return inputs.detach().cpu()
    if isinstance(inputs, dict):
        return {k: _to_cpu(v) for k, v in inputs.items()}
    return inputs


def _describe(inputs: Any) -> str:
    if isinstance(inputs, torch.Tensor):
        return f"shape {tuple(inputs.shape)}, per-sample {tuple(inputs.shape[1:])}"
    if isinstance(inputs, dict):
        return ", ".join(f"{k}: {_describe(v)}" for k, v in inputs.items())
    return type(inputs).__name__
