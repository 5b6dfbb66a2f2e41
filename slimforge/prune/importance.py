"""Importance criteria: how much each prunable unit matters, in a registry.

A criterion scores the positions of one parameter dimension (a :class:`Slot`); the engine sums
a unit's positions within each dimension, divides by that dimension's mean so layers of
different scale weigh the same, and aggregates over the unit's dimensions (``reduction``:
mean, sum or max). A criterion returns ``None`` for dimensions it has no opinion on.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from slimforge._registry import Registry
from slimforge.prune._graph import DependencyGraph, Slot
from slimforge.prune.errors import PruneConfigError


@dataclass(frozen=True)
class ImportanceContext:
    """tensors: parameters and buffers by state_dict key; taylor: accumulated weight*grad by key
    (only for criteria that need gradients); norm_weights: keys of BatchNorm/LayerNorm/GroupNorm scales;
    calibration / loss_fn: the batches (inputs, targets) and loss pruning was given, if any."""

    tensors: dict[str, torch.Tensor]
    norm_weights: frozenset[str]
    generator: torch.Generator
    taylor: dict[str, torch.Tensor] | None = None
    calibration: list[Any] | None = None
    loss_fn: Callable[[Any, Any], torch.Tensor] | None = None


Criterion = Callable[[ImportanceContext, Slot], torch.Tensor | None]
IMPORTANCES: Registry[Criterion] = Registry("importance criterion")
register_importance = IMPORTANCES.register  # meta: needs_gradients=True fills ctx.taylor from calibration batches


def needs_gradients(name: str) -> bool:
    """Does criterion ``name`` read ``ImportanceContext.taylor`` (weight x gradient), so that
    pruning must run calibration batches backwards first?"""
    return bool(IMPORTANCES.meta(name).get("needs_gradients", False))


def list_importances() -> list[str]:
    return IMPORTANCES.names()


def _reduce_except(t: torch.Tensor, dim: int) -> torch.Tensor:
    return t.movedim(dim, 0).reshape(t.shape[dim], -1).sum(1)


def _norm_except(t: torch.Tensor, dim: int, order: int) -> torch.Tensor:
    others = [d for d in range(t.dim()) if d != dim]
    return torch.linalg.vector_norm(t.float(), ord=order, dim=others)


def _is_weight(ctx: ImportanceContext, slot: Slot) -> bool:
    t = ctx.tensors.get(slot.name)
    return t is not None and t.dim() >= 2 and t.is_floating_point()


@register_importance("l1", help="sum of |w| over each channel's weights")
def l1_importance(ctx: ImportanceContext, slot: Slot) -> torch.Tensor | None:
    if not _is_weight(ctx, slot):
        return None
    return _norm_except(ctx.tensors[slot.name].detach(), slot.dim, 1)


@register_importance("l2", help="L2 norm of each channel's weights")
def l2_importance(ctx: ImportanceContext, slot: Slot) -> torch.Tensor | None:
    if not _is_weight(ctx, slot):
        return None
    return _norm_except(ctx.tensors[slot.name].detach(), slot.dim, 2)


@register_importance("bn_scale", help="|gamma| of the normalisation layer after each channel (Network Slimming)")
def bn_scale_importance(ctx: ImportanceContext, slot: Slot) -> torch.Tensor | None:
    if slot.name not in ctx.norm_weights:
        return None
    return ctx.tensors[slot.name].detach().abs().float()


@register_importance("taylor", help="first-order Taylor |sum w*dL/dw| from calibration batches", needs_gradients=True)
def taylor_importance(ctx: ImportanceContext, slot: Slot) -> torch.Tensor | None:
    if ctx.taylor is None or slot.name not in ctx.taylor:
        return None
    wg = ctx.taylor[slot.name]
    if wg.dim() < 1:
        return None
    return _reduce_except(wg, slot.dim).abs()


@register_importance("random", help="uniform random scores (a baseline)")
def random_importance(ctx: ImportanceContext, slot: Slot) -> torch.Tensor | None:
    if not _is_weight(ctx, slot):
        return None
    return torch.rand(len(slot.elements), generator=ctx.generator)


REDUCTIONS = ("mean", "sum", "max")


def score_units(graph: DependencyGraph, ctx: ImportanceContext, criterion: str, reduction: str = "mean") -> list[np.ndarray]:
    """One score array per group (one entry per unit); a group the criterion cannot score falls back to l2."""
    if reduction not in REDUCTIONS:
        raise PruneConfigError(f"group reduction {reduction!r} is unknown; use one of {', '.join(REDUCTIONS)}.")
    fn = IMPORTANCES.get(criterion)
    cache: dict[tuple[str, int], np.ndarray | None] = {}

    def slot_scores(fn_: Criterion, tag: str, si: int) -> np.ndarray | None:
        key = (tag, si)
        if key not in cache:
            s = fn_(ctx, graph.slots[si])
            cache[key] = None if s is None else s.detach().double().cpu().numpy()
        return cache[key]

    out = []
    for group in graph.groups:
        scores = _group_scores(graph, group, lambda si: slot_scores(fn, criterion, si), reduction)
        if scores is None:
            scores = _group_scores(graph, group, lambda si: slot_scores(l2_importance, "l2", si), reduction)
        out.append(scores if scores is not None else np.zeros(len(group.units)))
    return out


def _group_scores(graph: DependencyGraph, group, slot_scores, reduction: str, normalize: bool = True) -> np.ndarray | None:
    """Per unit: its positions' scores summed within each slot, divided by the slot's mean unit
    score (unless ``normalize`` is off), then reduced over the slots the unit appears in."""
    unit_index = {u.root: i for i, u in enumerate(group.units)}
    rows = []
    for si in group.slots:
        s = slot_scores(si)
        if s is None:
            continue
        roots = graph.roots[si]
        values, inverse = np.unique(roots, return_inverse=True)
        sums = np.bincount(inverse.reshape(-1), weights=s, minlength=len(values))
        row = np.full(len(group.units), np.nan)
        for root, total in zip(values.tolist(), sums.tolist()):
            i = unit_index.get(root)
            if i is not None:
                row[i] = total
        present = row[~np.isnan(row)]
        if present.size == 0:
            continue
        scale = present.mean() if normalize and present.mean() > 0 else 1.0
        rows.append(row / scale)
    if not rows:
        return None
    table = np.vstack(rows)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        agg = {"mean": np.nanmean, "sum": np.nansum, "max": np.nanmax}[reduction](table, axis=0)
    return np.nan_to_num(agg, nan=0.0)
