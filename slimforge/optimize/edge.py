"""Where the next pruning try teaches most about the edge of the accuracy budget.

The first tries are a coarse ladder of MAC targets. After them, the search knows the most
aggressive target that stayed within budget (``ok``) and the least aggressive one below it that
did not (``bad``). :func:`next_try` then, in order:

1. bisects (geometrically) between them while they are more than ``resolution`` apart;
2. when they are close, recovers ``bad`` again with twice the epochs (a pruned model that was
   short of budget after a short recovery is often within it after a longer one), up to
   ``max_epoch_factor`` times the base epochs;
3. when every try so far was within budget, halves the MACs again, down to ``floor``.

It returns None when none of these is left: the edge is found to the resolution asked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Try:
    target: float  # fraction of the baseline's MACs kept
    epochs: int  # recovery epochs it had
    within: bool  # within the accuracy budget after recovery
    possible: bool = True  # False: pruning cannot reach this target (pinned layers)


def next_try(tries: list[Try], base_epochs: int, *, resolution: float = 1.25, floor: float = 0.01,
             max_epoch_factor: int = 4) -> tuple[float, int] | None:
    """(MAC target, recovery epochs) of the next try, or None when the edge is found."""
    impossible = max((t.target for t in tries if not t.possible), default=0.0)
    done = [t for t in tries if t.possible]
    ok_tries = [t for t in done if t.within]
    ok = min((t.target for t in ok_tries), default=1.0)
    # The recovery that worked at ``ok`` is the one to use from here on.
    epochs = min((t.epochs for t in ok_tries if t.target == ok), default=base_epochs)
    below = [t for t in done if not t.within and t.target < ok]
    tried = {(_key(t.target), t.epochs) for t in tries}
    if not below:
        target = ok / 2
        if target < floor or target <= impossible or (_key(target), epochs) in tried:
            return None
        return target, epochs
    bad = max(t.target for t in below)
    if ok / bad > resolution:
        target = math.sqrt(ok * bad)
        if target > impossible and (_key(target), epochs) not in tried:
            return target, epochs
    longest = max(t.epochs for t in below if t.target == bad)
    if longest * 2 <= base_epochs * max_epoch_factor:
        return bad, longest * 2
    return None


def _key(target: float) -> float:
    return round(target, 4)
