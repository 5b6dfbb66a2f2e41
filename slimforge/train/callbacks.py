"""The trainer's extension points: callbacks and objectives.

Later stages hook into the one training loop instead of copying it:

* an **objective** computes the loss for a batch (distillation swaps in its own);
* **callbacks** run at fixed points (pruning schedules, sparsity masks, logging).

A callback sees the *unwrapped* model (``state.model``), never the DDP wrapper, and may
replace it (``state.model = pruned``) in ``on_epoch_start``/``on_epoch_end``; the trainer then
re-wraps it and rebuilds the optimizer and scheduler (``state.rebuild_optimizer = True``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn


@dataclass
class LossOutput:
    """loss: scalar to back-propagate; logits: (batch, classes) for accuracy; parts: named scalars to log."""

    loss: torch.Tensor
    logits: torch.Tensor
    parts: dict[str, float | torch.Tensor] = field(default_factory=dict)  # scalars; tensors spare a device sync per step


class Objective(Protocol):
    """Computes the training loss of ``model`` (possibly DDP-wrapped) on one batch.

    inputs: (batch, ...) on the training device; targets: (batch,) class indices;
    indices: (batch,) positions of the samples in the training split (for cached teachers).
    """

    def __call__(self, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, indices: torch.Tensor) -> LossOutput: ...


@dataclass
class TrainState:
    """What callbacks see. ``model`` is always the unwrapped module."""

    model: nn.Module
    optimizer: torch.optim.Optimizer | None = None
    epoch: int = 0  # 0-based index of the current epoch
    step: int = 0  # optimizer steps taken so far
    steps_per_epoch: int = 0
    total_steps: int = 0
    metrics: dict[str, Any] = field(default_factory=dict)  # last epoch's metrics
    rebuild_optimizer: bool = False
    stop: bool = False
    # A schedule is still changing the model (e.g. sparsity not at its target yet): the epoch does
    # not compete for keep-best or early stopping. Callbacks set it in on_epoch_end.
    provisional: bool = False
    summary: dict[str, Any] = field(default_factory=dict)  # callbacks' figures for the final metrics


class Callback:
    """Base class: override any subset of the hooks. Hooks must not keep state that resume
    cannot restore unless they implement ``state_dict``/``load_state_dict`` (JSON-able)."""

    def on_train_start(self, state: TrainState) -> None: ...

    def on_epoch_start(self, state: TrainState) -> None: ...

    def on_step_end(self, state: TrainState) -> None:
        """After each optimizer step (masks are re-applied here)."""

    def on_epoch_end(self, state: TrainState) -> None: ...

    def on_train_end(self, state: TrainState) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class TimeLimit(Callback):
    """Stop training after the epoch that leaves too little time for another one.

    ``seconds``: the time budget from training start. After each epoch the next one is
    predicted to last as long as the slowest so far; if it would end past the budget, training
    stops there (the best checkpoint and the final evaluation are kept as with early stopping).
    """

    def __init__(self, seconds: float, clock: Any = None) -> None:
        if not seconds > 0:
            raise ValueError(f"TimeLimit needs a positive number of seconds, got {seconds!r}.")
        import time

        self.seconds = float(seconds)
        self.clock = clock or time.monotonic
        self.started: float | None = None
        self.last: float | None = None
        self.slowest = 0.0

    def on_train_start(self, state: TrainState) -> None:
        self.started = self.last = self.clock()

    def on_epoch_end(self, state: TrainState) -> None:
        now = self.clock()
        self.slowest = max(self.slowest, now - self.last)
        self.last = now
        if now - self.started + self.slowest > self.seconds:
            state.stop = True


class MaxNorm(Callback):
    """Max-norm constraint (Srivastava et al. 2014, the weight constraint of Hinton et al. 2015's
    MNIST teacher): after every optimizer step, rescale the incoming weights of each unit of every
    ``nn.Linear`` and convolution (a row of ``weight``, or one output channel's filter) whose L2
    norm exceeds ``limit`` back to ``limit``. ``TrainConfig.max_norm`` turns it on."""

    def __init__(self, limit: float) -> None:
        if not limit > 0:
            raise ValueError(f"MaxNorm needs a positive limit, got {limit!r}.")
        self.limit = float(limit)

    @torch.no_grad()
    def on_step_end(self, state: TrainState) -> None:
        for module in state.model.modules():
            if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
                w = module.weight
                w.copy_(torch.renorm(w, 2, 0, self.limit))
