"""``slimforge optimize``: the fastest (``objective="latency"``, below) or the smallest
(``objective="size"``, :mod:`slimforge.optimize.size`) model within a validation budget,
searched across stages. Each objective is a registered search (:mod:`slimforge.optimize.objectives`).

The latency search tries, cheapest first, and measures every candidate for real (interleaved with the
baseline, fixed threads, the objective's batch size):

1. int8 of the baseline through each quantization backend;
2. structured pruning to a ladder of MAC targets, each recovered by distillation from the
   baseline (for enough optimizer steps, whatever the data's size), then int8 of each pruned
   model within the budget;
3. the rest of the time at the edge of the budget (:mod:`slimforge.optimize.edge`): targets in
   between the last one within the budget and the first one over it, then longer recovery for
   the one just over it;
4. low-rank factorisation (for linear-heavy models), recovered and quantized the same way;
5. the time still left (:mod:`slimforge.optimize.leftover`): the pruned models' recovery
   continued, fastest first, each checked and quantized again.

Candidates are chosen on the **validation** split (the budget is checked there, on the drop
plus a noise margin from the samples where candidate and baseline disagree, with the split's
95% interval said beside it) and their test accuracy is reported, so the test split never
steers the search. After every candidate, ``optimize.json`` and ``best/`` are rewritten
(atomically), so stopping the search, or missing the target, still leaves the best model found
and the record of every try.

Files: ``budget.py`` (settings, the budget and its noise margin, recovery length), ``edge.py``
(where to try next), ``leftover.py`` (which recovery to continue with the time left),
``search.py`` (the latency search: making and measuring candidates), ``size.py`` (the size search
and its candidate-generator registry), ``objectives.py`` (which search an objective runs).
"""

from slimforge.optimize.budget import (
    BUDGET_TOLERANCE_POINTS, Budget, Candidate, OptimizeConfig, PairedDrop, interval_points, paired_drop, within_budget,
)
from slimforge.optimize.objectives import list_objectives, optimize, register_objective

__all__ = ["BUDGET_TOLERANCE_POINTS", "Budget", "Candidate", "OptimizeConfig", "PairedDrop", "interval_points", "list_objectives",
           "optimize", "paired_drop", "register_objective", "within_budget"]
