"""Accuracy of quantized models: on a labelled loader, or agreement with the fp32 model.

``evaluate`` callables everywhere in :mod:`slimforge.quantize` take something callable on an
input batch (a module, a :class:`~slimforge.quantize.QuantizedModel`) and return a score where
higher is better (accuracy as a fraction).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from slimforge.quantize._calibration import Batch, batch_inputs
from slimforge.train.evaluate import move_to

Predictor = Callable[[torch.Tensor], torch.Tensor]
Evaluator = Callable[[Predictor], float]


@torch.no_grad()
def accuracy(predict: Predictor, loader: Iterable[Batch]) -> float:
    """Top-1 accuracy (fraction) of ``predict`` over (inputs, targets) batches; logits (batch, classes)."""
    if isinstance(predict, nn.Module):
        predict.eval()
    correct = total = 0
    for batch in loader:
        x, y = batch_inputs(batch, structured=True), _targets(batch)
        correct += (predict(move_to(x, torch.device("cpu"))).argmax(1) == y.cpu()).sum().item()
        total += y.numel()
    if total == 0:
        raise ValueError("accuracy: the loader yielded no samples.")
    return correct / total


@torch.no_grad()
def agreement(reference: Predictor, candidate: Predictor, inputs: Iterable[Batch]) -> float:
    """Fraction of samples where ``candidate``'s top-1 class equals ``reference``'s.

    Without labels this stands in for accuracy: a quantized model loses at most
    ``1 - agreement`` of the reference's accuracy (points it gets right that it used to miss aside).
    """
    same = total = 0
    for batch in inputs:
        x = move_to(batch_inputs(batch, structured=True), torch.device("cpu"))
        expected = reference(x).argmax(1)
        same += (expected == candidate(x).argmax(1)).sum().item()
        total += expected.shape[0]
    if total == 0:
        raise ValueError("agreement: no inputs.")
    return same / total


def accuracy_evaluator(loader: Iterable[Batch]) -> Evaluator:
    """``evaluate(predict) -> accuracy`` on ``loader`` (re-iterated per call, so pass a list or a DataLoader)."""
    return lambda predict: accuracy(predict, loader)


def agreement_evaluator(reference: Predictor, inputs: list[torch.Tensor]) -> Evaluator:
    """``evaluate(predict) -> agreement with reference``: the accuracy stand-in for unlabelled data."""
    if isinstance(reference, nn.Module):
        reference.eval()
    return lambda predict: agreement(reference, predict, inputs)


def compare_accuracy(model: nn.Module, quantized: Predictor, loader: Iterable[Batch]) -> dict[str, Any]:
    """fp32 and int8 test accuracy and the drop in points, for a trained model and a test loader."""
    loader = list(loader)
    fp32 = accuracy(model, loader)
    int8 = accuracy(quantized, loader)
    return {"fp32_accuracy": fp32, "int8_accuracy": int8, "accuracy_drop_points": round(100 * (fp32 - int8), 4)}


def _targets(batch: Batch) -> torch.Tensor:
    if isinstance(batch, (tuple, list)) and len(batch) >= 2:
        return batch[1]
    if isinstance(batch, dict) and "targets" in batch:
        return batch["targets"]
    raise ValueError("accuracy needs labelled batches: (inputs, targets) or {'inputs', 'targets'}.")
