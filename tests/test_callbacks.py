"""The trainer's built-in callbacks, on a fake clock and hand-made weights (no training loop)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from slimforge.train import TimeLimit, TrainState
from slimforge.train.callbacks import MaxNorm


def _epochs_until_stop(budget: float, durations: list[float], start: float = 0.0) -> int | None:
    """Run TimeLimit over epochs of the given durations; the 1-based epoch it stops after."""
    now = [start]
    limit = TimeLimit(budget, clock=lambda: now[0])
    state = TrainState(model=nn.Linear(1, 1))
    limit.on_train_start(state)
    for epoch, seconds in enumerate(durations, 1):
        now[0] += seconds
        limit.on_epoch_end(state)
        if state.stop:
            return epoch
    return None


def test_time_limit_counts_from_training_start_not_from_the_clock_s_zero():
    assert _epochs_until_stop(35, [10] * 5, start=1000.0) == 3  # 30 s done + 10 s more > 35 s


def test_an_epoch_that_would_end_exactly_at_the_budget_still_runs():
    assert _epochs_until_stop(20, [10] * 5) == 2  # after epoch 1: 10 + 10 = 20, not over


def test_the_slowest_epoch_so_far_predicts_the_next():
    # A 10 s first epoch then 2 s ones: stops once 10 s more would pass 25 s, at 16 s.
    assert _epochs_until_stop(25, [10, 2, 2, 2, 2, 2]) == 4


def test_short_epochs_under_a_short_budget():
    # Nothing is assumed about an epoch before the first one ends: 0.4 s epochs, a 1.5 s budget.
    assert _epochs_until_stop(1.5, [0.4] * 5) == 3  # 1.2 s done + 0.4 s more > 1.5 s
    assert _epochs_until_stop(0.5, [0.2] * 5) == 2  # a budget under a second is a budget


@pytest.mark.parametrize("seconds", [0, -1.0, float("nan")])
def test_time_limit_needs_a_positive_budget(seconds):
    with pytest.raises(ValueError, match=f"positive number of seconds, got {seconds!r}"):
        TimeLimit(seconds)


def test_max_norm_rescales_only_the_units_over_the_limit():
    model = nn.Sequential(nn.Conv2d(1, 3, 2, bias=False), nn.Flatten(), nn.Linear(12, 2), nn.BatchNorm1d(2))
    conv, linear, norm = model[0], model[2], model[3]
    with torch.no_grad():
        conv.weight.copy_(torch.stack([torch.full((1, 2, 2), v) for v in (0.1, 1.0, 3.0)]))  # norms 0.2, 2, 6
        linear.weight.copy_(torch.stack([torch.full((12,), 0.1), torch.full((12,), 2.0)]))  # norms 0.35, 6.9
        linear.bias.fill_(5.0)
        norm.weight.fill_(7.0)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}

    MaxNorm(2.0).on_step_end(TrainState(model=model))

    assert torch.allclose(conv.weight.flatten(1).norm(dim=1), torch.tensor([0.2, 2.0, 2.0]))
    assert torch.allclose(conv.weight[2], before["0.weight"][2] / 3)  # direction kept
    assert torch.allclose(linear.weight[0], before["2.weight"][0])  # under the limit: untouched
    assert linear.weight[1].norm().item() == pytest.approx(2.0)
    assert torch.equal(linear.bias, before["2.bias"]) and torch.equal(norm.weight, before["3.weight"])


@pytest.mark.parametrize("layer", [nn.Conv1d(2, 2, 3), nn.Conv3d(2, 2, 1)])
def test_max_norm_covers_every_convolution(layer):
    with torch.no_grad():
        layer.weight.fill_(5.0)
    MaxNorm(1.0).on_step_end(TrainState(model=nn.Sequential(layer)))
    assert torch.allclose(layer.weight.flatten(1).norm(dim=1), torch.ones(2))


@pytest.mark.parametrize("limit", [0, -2.0])
def test_max_norm_needs_a_positive_limit(limit):
    with pytest.raises(ValueError, match=f"positive limit, got {limit!r}"):
        MaxNorm(limit)
