"""Early stopping and weight decay: training settings a slip would change silently.

Each test's docstring names the planted bug (benchmarks/planted_bugs.py) it was checked against."""

from __future__ import annotations

import pytest
import torch

from slimforge.train import Callback, TrainConfig, train
from slimforge.train.optim import build_optimizer

from .helpers import make_mlp


def test_weight_decay_shrinks_weight_matrices_but_not_biases(digits):
    """Planted bug T5 (weight decay applied to biases and norm weights too). With zero gradients,
    an SGD step moves a parameter only by its weight decay."""
    model = make_mlp(digits, hidden=(32,))
    cfg = TrainConfig(optimizer="sgd", lr=0.5, momentum=0.0, weight_decay=0.1)
    optimizer = build_optimizer(model.parameters(), cfg)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()
    for name, p in model.named_parameters():
        if p.ndim > 1:  # shrunk by lr * weight_decay = 5%
            torch.testing.assert_close(p.detach(), before[name] * (1 - 0.5 * 0.1), msg=f"{name} was not decayed")
        else:
            assert torch.equal(p.detach(), before[name]), f"{name} (1-d) was decayed"


class Plateau(Callback):
    """Puts the initial weights back after every step: every epoch validates exactly alike, so
    the first epoch is the best and each later one adds one epoch without improvement."""

    def on_train_start(self, state) -> None:
        self.initial = {k: v.detach().clone() for k, v in state.model.state_dict().items()}

    def on_step_end(self, state) -> None:
        state.model.load_state_dict(self.initial)


@pytest.mark.parametrize("patience", [1, 2])
def test_early_stopping_stops_exactly_patience_epochs_after_the_best(digits, patience):
    """Planted bug T1 (early stopping compares `since_best > patience`: one epoch too many)."""
    cfg = TrainConfig(epochs=10, batch_size=256, lr=0.05, patience=patience, monitor="val_loss", quiet=True, num_threads=1)
    result = train(make_mlp(digits), digits, cfg, callbacks=[Plateau()])
    assert result.metrics["best_epoch"] == 1
    assert result.metrics["stopped_early"] and result.metrics["epochs_run"] == 1 + patience
