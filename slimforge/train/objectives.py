"""Training objectives by name (``TrainConfig.loss``): ``objective_for(cfg)`` and ``list_objectives()``.

An entry is a factory ``(TrainConfig) -> Objective``. Built in: ``cross_entropy`` (classes,
the default) and ``bce`` (one logit per sample against 0/1 targets, e.g. a recommender's score
of a (user, item) pair); ``bpr`` comes from :mod:`slimforge.recsys.objectives`, imported on first use.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from slimforge._registry import Registry
from slimforge.train.callbacks import LossOutput, Objective
from slimforge.train.config import TrainConfig

OBJECTIVES: Registry[Callable[[TrainConfig], Objective]] = Registry("objective", builtins={name: "slimforge.recsys.objectives" for name in ("bpr", "softmax", "ranking")})
register_objective = OBJECTIVES.register


def list_objectives() -> list[str]:
    return OBJECTIVES.names()


def objective_for(cfg: TrainConfig) -> Objective:
    """The objective ``cfg.loss`` names, built from ``cfg``."""
    return OBJECTIVES.get(cfg.loss)(cfg)


class CrossEntropyObjective:
    """The default objective: cross-entropy on the labels, with optional label smoothing."""

    def __init__(self, label_smoothing: float = 0.0) -> None:
        self.label_smoothing = label_smoothing

    def __call__(self, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, indices: torch.Tensor) -> LossOutput:
        logits = model(inputs)
        return LossOutput(F.cross_entropy(logits.float(), targets, label_smoothing=self.label_smoothing), logits)


class BinaryCrossEntropyObjective:
    """Binary cross-entropy of one logit per sample (model output (batch,) or (batch, 1)) against
    targets in [0, 1]; the trainer's accuracy counts a logit > 0 as a predicted 1."""

    def __call__(self, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, indices: torch.Tensor) -> LossOutput:
        logits = model(inputs).float().reshape(-1)
        return LossOutput(F.binary_cross_entropy_with_logits(logits, targets.float().reshape(-1)), logits)


@register_objective("cross_entropy", help="cross-entropy over classes (label_smoothing applies)")
def _cross_entropy(cfg: TrainConfig) -> Objective:
    return CrossEntropyObjective(cfg.label_smoothing)


@register_objective("bce", help="binary cross-entropy of one logit per sample (recommendation: positives vs sampled negatives)")
def _bce(cfg: TrainConfig) -> Objective:
    return BinaryCrossEntropyObjective()
