"""Where the search tries next: bisection at the budget's edge, longer recovery, and an end."""

from __future__ import annotations

from slimforge.optimize.budget import interval_points, recovery_epochs
from slimforge.optimize.edge import Try, next_try


def _follow(keeps, start: list[Try], base_epochs: int = 4, limit: int = 50) -> list[tuple[float, int]]:
    tries, steps = list(start), []
    while len(steps) < limit:
        step = next_try(tries, base_epochs)
        if step is None:
            return steps
        steps.append((round(step[0], 4), step[1]))
        possible, within = keeps(*step)
        tries.append(Try(step[0], step[1], within, possible))
    raise AssertionError(f"no end after {limit} tries: {steps}")


def test_bisects_then_recovers_longer_then_stops():
    steps = _follow(lambda t, e: (True, t >= 0.16 or (t >= 0.13 and e >= 8)), [Try(0.25, 4, True), Try(0.12, 4, False)])
    assert steps[0] == (0.1732, 4) and steps[1] == (0.1442, 4)
    assert (0.1442, 8) in steps and steps[-1][1] <= 16


def test_everything_within_goes_further_until_pruning_cannot():
    steps = _follow(lambda t, e: (t > 0.02, True), [Try(0.25, 4, True), Try(0.12, 4, True), Try(0.06, 4, True)])
    assert steps == [(0.03, 4), (0.015, 4)]  # 0.015 cannot be reached: the search ends there


def test_nothing_within_moves_towards_less_pruning():
    steps = _follow(lambda t, e: (True, t >= 0.6), [Try(0.25, 4, False), Try(0.5, 4, False)])
    assert steps[0][0] > 0.5 and all(t > 0.5 for t, _ in steps)


def test_accuracy_interval_and_recovery_length():
    assert round(interval_points(0.98, 400), 2) == 1.37  # 1.96 * sqrt(.98 * .02 / 400) = 1.37 points
    assert interval_points(1.0, 400) > 0  # a perfect score is still a finite sample
    assert recovery_epochs(4, 3600, 128) == 18  # 29 steps an epoch: 500 steps take 18 epochs
    assert recovery_epochs(4, 54000, 128) == 4  # plenty of steps in 4 epochs
    assert recovery_epochs(4, 100, 128) == 30  # capped


def test_recovery_leaves_room_for_several_candidates():
    # 18 epochs would take 18 minutes at 60 s an epoch; a 20-minute search gets 5 (a quarter of it).
    assert recovery_epochs(4, 3600, 128, seconds_per_epoch=60, time_budget_s=1200) == 5
    assert recovery_epochs(4, 3600, 128, seconds_per_epoch=600, time_budget_s=1200) == 4  # never below the base
    assert recovery_epochs(4, 3600, 128, seconds_per_epoch=1, time_budget_s=3600) == 18
