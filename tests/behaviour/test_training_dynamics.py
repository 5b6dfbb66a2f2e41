"""Warm-up, gradient clipping and label smoothing each change training as documented."""

from __future__ import annotations

import math

import pytest
import torch

from slimforge.train import Callback, TrainConfig, train

from .helpers import make_mlp

QUIET = dict(quiet=True, num_threads=1)


class RecordSteps(Callback):
    """The lr each optimizer step used, and the parameter change it made (L2 norm over all
    parameters)."""

    def __init__(self) -> None:
        self.lrs: list[float] = []
        self.changes: list[float] = []
        self._lr = self._before = None

    def on_train_start(self, state) -> None:
        self._remember(state)

    def on_step_end(self, state) -> None:  # the scheduler has stepped: its lr is the next step's
        after = [p.detach().clone() for p in state.model.parameters()]
        self.lrs.append(self._lr)
        self.changes.append(math.sqrt(sum(float((a - b).pow(2).sum()) for a, b in zip(after, self._before))))
        self._remember(state)

    def _remember(self, state) -> None:
        self._lr = state.optimizer.param_groups[0]["lr"]
        self._before = [p.detach().clone() for p in state.model.parameters()]


def test_warmup_starts_at_a_tenth_of_the_peak_and_rises_linearly_to_it(digits):
    """Planted bugs caught: warm-up ignored (`lr_factor` returns 1 during it); warm-up measured
    in steps instead of epochs (`warmup = int(cfg.warmup_epochs)`); a warm-up that starts at 0."""
    steps = RecordSteps()
    cfg = TrainConfig(epochs=2, batch_size=128, lr=0.05, warmup_epochs=1.0, schedule="constant", **QUIET)
    train(make_mlp(digits), digits, cfg, callbacks=[steps])
    per_epoch = len(steps.lrs) // 2
    warm, after = steps.lrs[:per_epoch], steps.lrs[per_epoch:]
    assert per_epoch >= 5
    assert warm[0] == pytest.approx(0.005, rel=1e-9)  # "linear warm-up from lr/10"
    assert all(b > a for a, b in zip(warm, warm[1:])), "the warm-up lr must rise at every step"
    slope = [b - a for a, b in zip(warm, warm[1:])]
    assert max(slope) - min(slope) < 1e-9, "the warm-up must be linear"
    assert max(warm) < 0.05 and after == [pytest.approx(0.05, rel=1e-9)] * len(after)  # peak only once warm-up ends


def test_grad_clip_bounds_every_step_by_lr_times_the_clip(digits):
    """With plain SGD (no momentum, no weight decay) a step moves the weights by lr * |g|, so a
    clipped step moves them by at most lr * grad_clip. Planted bugs caught: `grad_clip` ignored
    (the `clip_grad_norm_` call dropped); clipping only the first parameter group."""
    sgd = dict(batch_size=64, lr=0.5, momentum=0.0, weight_decay=0.0, schedule="constant", **QUIET)
    clip = 1e-3
    clipped, free = RecordSteps(), RecordSteps()
    train(make_mlp(digits), digits, TrainConfig(epochs=1, grad_clip=clip, **sgd), callbacks=[clipped])
    train(make_mlp(digits), digits, TrainConfig(epochs=1, **sgd), callbacks=[free])
    bounds = [lr * clip for lr in clipped.lrs]
    assert all(change <= bound * (1 + 1e-4) for change, bound in zip(clipped.changes, bounds)), max(
        c / b for c, b in zip(clipped.changes, bounds))
    assert min(clipped.changes) > 0.9 * bounds[0]  # the clip binds: every step is at the bound, not below it
    assert min(free.changes) > 10 * bounds[0]  # without the clip the same steps are far larger


def test_label_smoothing_raises_the_loss_floor_and_softens_predictions(digits):
    """With smoothing eps over K classes the cross-entropy can never fall below the entropy of the
    smoothed target, H = -(1-eps+eps/K) log(1-eps+eps/K) - (K-1)(eps/K) log(eps/K): 0.87 for
    eps=0.2, K=10; and the best confidence is 1-eps+eps/K = 0.82. Planted bug caught: the
    objective built without `cfg.label_smoothing` (smoothing silently off)."""
    eps, k = 0.2, 10
    p_true, p_other = 1 - eps + eps / k, eps / k
    floor = -(p_true * math.log(p_true) + (k - 1) * p_other * math.log(p_other))
    cfg = dict(epochs=6, batch_size=64, lr=0.1, **QUIET)
    smooth = train(make_mlp(digits, hidden=(64,)), digits, TrainConfig(label_smoothing=eps, **cfg))
    plain = train(make_mlp(digits, hidden=(64,)), digits, TrainConfig(**cfg))
    assert smooth.history[-1]["train_loss"] >= floor
    assert plain.history[-1]["train_loss"] < floor - 0.5  # without smoothing training goes well below that floor
    confidence = {name: _mean_top_probability(r.model, digits.val) for name, r in (("smooth", smooth), ("plain", plain))}
    assert confidence["smooth"] < p_true + 0.02 < confidence["plain"], confidence


def _mean_top_probability(model, dataset) -> float:
    x, _, _ = dataset.__getitems__(list(range(len(dataset))))
    model.eval()
    with torch.no_grad():
        return float(model(x).softmax(1).max(1).values.mean())


def test_the_epoch_log_shows_the_learning_rate_the_epoch_ended_with(digits):
    """issue 25: the log's lr column showed the warm-up's starting value (peak / 10) for the whole
    first epoch, as if the schedule were broken. Bug caught: lr read before the epoch's first step."""
    steps = RecordSteps()
    cfg = TrainConfig(epochs=2, batch_size=128, lr=0.05, warmup_epochs=1.0, schedule="constant", **QUIET)
    result = train(make_mlp(digits), digits, cfg, callbacks=[steps])
    per_epoch = len(steps.lrs) // 2
    assert [m["lr"] for m in result.history] == [steps.lrs[per_epoch - 1], steps.lrs[-1]]
    assert result.history[0]["lr"] > 0.04  # near the peak the warm-up reached, not 0.005
