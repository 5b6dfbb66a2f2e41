"""The time left after the edge: which pruned model's recovery is continued next, and for how long."""

from __future__ import annotations

import pytest

from slimforge.optimize.leftover import Recovering, next_continuation

BUDGET = 1.0


def model(name: str, macs: int | None, speedup: float, epochs: int = 8, high: float = 0.9, low: float = 0.1,
          continued: int = 0, stalled: bool = False) -> Recovering:
    return Recovering(name, name.split("+")[0], macs, speedup, epochs, low, high, continued, stalled)


def pick(pool, best_speedup=1.0, seconds_per_epoch=1.0, time_left_s=1000.0, **kw):
    return next_continuation(pool, best_speedup=best_speedup, budget=BUDGET, seconds_per_epoch=seconds_per_epoch,
                             time_left_s=time_left_s, **kw)


def test_the_fastest_is_continued_first_for_as_many_epochs_again():
    pool = [model("p25", 3_600_000, 4.6), model("p12", 1_800_000, 5.4, epochs=16), model("p50", 9_000_000, 3.0)]
    assert pick(pool) == ("p12", 16)


def test_every_model_is_continued_once_before_any_twice():
    # p12 has had its continuation (p12+32ep); p25, slower, has not: p25 goes first.
    pool = [model("p25", 3_600_000, 4.6), model("p12", 1_800_000, 5.4, epochs=16),
            model("p12+32ep", 1_800_000, 5.5, epochs=32, continued=1)]
    assert pick(pool) == ("p25", 8)
    pool.append(model("p25+16ep", 3_600_000, 4.7, epochs=16, continued=1))
    assert pick(pool) == ("p12+32ep", 32)  # round two: fastest first again


def test_of_one_size_only_the_most_trained_is_continued():
    # Three targets that pruned to the same size (as 0.101, 0.0849 and 0.0714 did on MNIST-5k).
    pool = [model("a-16ep", 1_185_568, 5.9, epochs=16, high=1.2), model("b-16ep", 1_185_568, 5.7, epochs=16, high=0.9),
            model("c", 1_185_568, 5.8, epochs=8, high=0.5)]
    assert pick(pool) == ("b-16ep", 16)  # most epochs; of those, the lower drop plus margin
    # Without a known size, a line of continuations is one family: its latest member stands for it.
    assert pick([model("x", None, 5.0), model("x+16ep", None, 5.1, epochs=16, continued=1)]) == ("x+16ep", 16)


@pytest.mark.parametrize(("change", "why"), [
    ({"stalled": True}, "its last continuation did not lower its drop plus margin"),
    ({"low": BUDGET + 0.01}, "clearly over the budget: even the drop minus the margin is over"),
    ({"speedup": 4.0 / 1.05 - 0.01}, "cannot be as fast as the best (4.0x) within the timing noise"),
])
def test_models_not_worth_more_time_are_left(change, why):
    fields = {"name": "p", "macs": 1, "speedup": 5.0, **change}
    assert pick([model(**fields)], best_speedup=4.0) is None, why
    assert pick([model(**fields), model("q", 2, 3.9)], best_speedup=4.0) == ("q", 8)  # 3.9 * 1.05 >= 4.0: still a chance


def test_exactly_at_the_edges_a_model_is_still_worth_it():
    assert pick([model("p", 1, 4.0, low=BUDGET)], best_speedup=4.0 * 1.05) == ("p", 8)


def test_the_last_continuation_is_cut_to_the_time_left():
    # 30 s of overhead, 1.2 x 2 s an epoch: 100 s cover floor(70 / 2.4) = 29 epochs; 64 are wanted.
    pool = [model("p", 1, 5.0, epochs=64)]
    assert pick(pool, seconds_per_epoch=2.0, time_left_s=100.0) == ("p", 29)
    assert pick(pool, seconds_per_epoch=2.0, time_left_s=30 + 2.4 * 2) == ("p", 2)  # exactly the minimum
    assert pick(pool, seconds_per_epoch=2.0, time_left_s=30 + 2.4 * 2 - 0.01) is None  # one epoch is not worth a candidate
    assert pick(pool, seconds_per_epoch=2.0, time_left_s=-5.0) is None


def test_an_untimed_search_continues_only_with_a_minute_and_a_half_to_spare():
    pool = [model("p", 1, 5.0, epochs=8)]
    assert pick(pool, seconds_per_epoch=None, time_left_s=91.0) == ("p", 8)
    assert pick(pool, seconds_per_epoch=None, time_left_s=90.0) is None


def test_nothing_to_continue():
    assert pick([]) is None
