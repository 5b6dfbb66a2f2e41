"""The time left once the edge of the budget is found: longer recovery of the pruned models.

On MNIST-5k the edge was found after 156 s of a 20-minute search (BENCHMARKS.md), with pruned
models that had had 8-16 recovery epochs. Distilled for longer, a pruned model agrees with its
teacher on more samples, so both its drop and its noise margin shrink: the time left goes to
continuing their recovery and checking them again. :func:`next_continuation` picks the next one:

- one model per size (MACs; per line of continuations when the size is unknown): the most
  trained of that size, since models pruned to different targets often end at the same size;
- not one whose last continuation did not lower its drop plus margin (its recovery has levelled
  off), nor one clearly over the budget (even its drop *minus* the margin is over), nor one that
  could not be as fast as the best model so far (then it cannot replace it);
- in rounds: every model is continued once before any is continued twice, fastest first within a
  round, each time for as many epochs again as it has had, or for what the time left still covers.

It returns None when no model is left, or the time left covers too few epochs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Recovering:
    """A pruned model whose recovery could be continued."""

    name: str
    family: str  # the pruned model its line of continuations started from
    macs: int | None
    speedup: float  # of the fastest model it gives: itself or an int8 form (measured, or estimated before there is one)
    epochs: int  # recovery epochs it has had in all
    low: float  # validation drop minus the noise margin, points
    high: float  # validation drop plus the noise margin, points: what the budget is checked on
    continued: int = 0  # continuations that led to it (0: it came from pruning)
    stalled: bool = False  # it is a continuation that did not lower ``high`` below its source's


def next_continuation(pool: list[Recovering], *, best_speedup: float, budget: float, seconds_per_epoch: float | None,
                      time_left_s: float, overhead_s: float = 30.0, min_epochs: int = 2,
                      same_speed: float = 1.05) -> tuple[str, int] | None:
    """(name of the model to continue, epochs to add), or None when nothing is worth it or fits.

    ``time_left_s``: seconds left for training after what the search keeps back for its report;
    ``overhead_s``: seconds a candidate costs besides its epochs (measuring, int8);
    ``same_speed``: within this ratio two models are equally fast (the search's tie rule)."""
    worth = [m for m in _latest_of_each_size(pool)
             if not m.stalled and m.low <= budget and m.speedup * same_speed >= best_speedup]
    for model in sorted(worth, key=lambda m: (m.continued, -m.speedup)):
        epochs = min(model.epochs, _affordable_epochs(seconds_per_epoch, time_left_s, overhead_s, model.epochs))
        if epochs >= min_epochs:
            return model.name, epochs
    return None


def _latest_of_each_size(pool: list[Recovering]) -> list[Recovering]:
    """Per size (MACs, else per family), the most trained model (ties: the lowest drop plus margin)."""
    latest: dict[object, Recovering] = {}
    for model in pool:
        key = model.macs if model.macs is not None else model.family
        held = latest.get(key)
        if held is None or (model.epochs, -model.high) > (held.epochs, -held.high):
            latest[key] = model
    return list(latest.values())


def _affordable_epochs(seconds_per_epoch: float | None, time_left_s: float, overhead_s: float, wanted: int) -> int:
    """Whole epochs the time left covers, with a 20% allowance for a slower epoch than the last."""
    if seconds_per_epoch is None:  # no recovery timed yet: only a whole doubling, and only with a minute to spare
        return wanted if time_left_s > 60 + overhead_s else 0
    return max(0, math.floor((time_left_s - overhead_s) / (1.2 * seconds_per_epoch) + 1e-9))  # 1e-9: an exact fit, whatever the rounding
