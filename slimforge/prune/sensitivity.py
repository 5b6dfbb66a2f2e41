"""Measured sensitivity of each pruning group: what latency-aware pruning spends milliseconds against.

Weight-norm scores rank the units inside one group, but they cannot say whether a channel of one layer matters
more than a channel of another: normalised per group they are nearly flat, and the latency greedy on them
strips whichever layer's channels cost most time (issue 22: a 28x28 stage cut to 8 of 32 channels, 0.8 points
below uniform pruning at equal latency). Here each group is pruned alone to a few levels, least important units
first, and the loss on calibration batches is measured without fine-tuning: the group's curve of loss against
units removed. A unit's cost is its step up that curve, so the greedy in :func:`slimforge.prune.latency.select_by_latency`
removes channels where the loss per millisecond saved is lowest (NetAdapt's and AMC's measured-sensitivity idea,
one shot, no short-term fine-tuning).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from slimforge.prune._graph import DependencyGraph, unit_step
from slimforge.prune._query_groups import balance_groups
from slimforge.prune.errors import PruneConfigError

LEVELS = (0.25, 0.5, 0.75, 0.875)  # fractions of a group's units removed, where its loss is measured


def sensitivity_costs(model: nn.Module, graph: DependencyGraph, scores: Sequence[np.ndarray], calibration: Iterable[Any] | None,
                      loss_fn: Callable[[Any, Any], torch.Tensor] | None, groups: Sequence[int], round_to: int) -> list[np.ndarray]:
    """Per group, per unit: the loss its removal adds, with the group's units removed least important first
    (``scores`` order). Groups not in ``groups`` (no timed layer) keep their scores: they are never offered."""
    from slimforge.prune.plan import kept_indices, slice_tensors

    if calibration is None:
        raise PruneConfigError("latency allocation 'sensitivity' measures each group's loss: pass calibration=[(inputs, targets), ...] "
                               "(a few batches of training data).")
    batches = [(b[0], b[1]) for b in calibration]
    if not batches:
        raise PruneConfigError("latency allocation 'sensitivity': calibration is empty.")
    loss_fn = loss_fn or nn.functional.cross_entropy
    base = copy.deepcopy(model).eval()
    base_loss = _loss(base, batches, loss_fn)
    costs = [np.asarray(s, dtype=np.float64) for s in scores]
    for g in groups:
        group = graph.groups[g]
        order = np.argsort(np.clip(np.asarray(scores[g], dtype=np.float64), 0.0, None), kind="stable")  # the greedy's order
        n = len(order)
        step = unit_step(group.width, round_to)  # as the greedy offers them
        points = [(0, 0.0)]
        for k in sorted({min(n - step, max(step, int(round(f * n / step)) * step)) for f in LEVELS}):
            if k <= points[-1][0]:
                continue
            candidate = copy.deepcopy(base)
            slice_tensors(candidate, kept_indices(graph, balance_groups(graph, scores, {group.units[i].root for i in order[:k]})))
            points.append((k, max(points[-1][1], _loss(candidate.eval(), batches, loss_fn) - base_loss)))
        costs[g] = _per_unit(order, points)
    return costs


def _per_unit(order: np.ndarray, points: list[tuple[int, float]]) -> np.ndarray:
    """Unit order[r] costs curve(r + 1) - curve(r), the curve linear between the measured points and continued
    at its last slope; a small floor keeps every removal from being free (a curve flat within the noise)."""
    ks = np.array([k for k, _ in points], dtype=np.float64)
    ls = np.array([v for _, v in points], dtype=np.float64)
    n = len(order)
    r = np.arange(n + 1, dtype=np.float64)
    curve = np.interp(r, ks, ls)
    if ks[-1] < n and len(ks) > 1:
        slope = max((ls[-1] - ls[-2]) / (ks[-1] - ks[-2]), 0.0)
        beyond = r > ks[-1]
        curve[beyond] = ls[-1] + slope * (r[beyond] - ks[-1])
    steps = np.diff(curve)
    floor = 1e-6 + 1e-3 * max(float(ls.max()), 1e-6) / max(n, 1)
    out = np.empty(n)
    out[order] = np.maximum(steps, floor)
    return out


@torch.no_grad()
def _loss(model: nn.Module, batches: list[tuple[Any, Any]], loss_fn: Callable[[Any, Any], torch.Tensor]) -> float:
    total, count = 0.0, 0
    for inputs, targets in batches:
        out = model(*inputs) if isinstance(inputs, tuple) else model(inputs)
        out = getattr(out, "logits", out)
        total += float(loss_fn(out, targets)) * len(targets)
        count += len(targets)
    return total / max(count, 1)
