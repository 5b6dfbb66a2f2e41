"""Grouped-query attention whose query heads go within their key/value groups (``AttentionForm.query_groups``).

Query head i reads key/value head ``i // (heads / kv_heads)`` (``repeat_kv``'s expand and view, or SDPA's
``enable_gqa``). Tying each query head to its key/value head makes a group one unit: whole groups go. Where a model
has too few key/value heads for that (2), the key/value heads stay whole and the query heads are units of their own,
with one rule the union-find cannot state: every group keeps as many as the others, so the mapping still holds with
``heads / kv_heads`` per group. The tracer records each attention's query heads as (groups, heads per group)
(``Tracing.balanced``): a ratio is applied to each group's heads (``structured._prune_at``), and
:func:`balance_groups` evens out a choice made otherwise (the latency-aware cut's).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from slimforge.prune._capture import Label, Tracing
from slimforge.prune._graph import DependencyGraph
from slimforge.prune._hand_written_attention import innermost_form


def query_groups(tr: Tracing, node: torch.fx.Node) -> int | None:
    """The key/value head count of the innermost attention around ``node`` if its query heads go within their groups."""
    module, form = innermost_form(tr, node)
    return form.query_groups(module) if form is not None and form.query_groups is not None else None


def repeat_per_group(tr: Tracing, node: torch.fx.Node, in_shape: tuple, out_shape: tuple, out: Label) -> bool:
    """``repeat_kv``'s expand (b, kv, 1, s, d) -> (b, kv, n_rep, s, d): the repeats get elements of their own, noted as
    per group, for the view that merges them with the groups into query heads (:func:`merged_group_heads`)."""
    groups = query_groups(tr, node)
    lead = len(out_shape) - len(in_shape)
    if groups is None:
        return False
    for d in range(1, len(in_shape)):
        if in_shape[d] == 1 and out_shape[lead + d] > 1 and in_shape[d - 1] == groups:
            vec = tr.uf.fresh(out_shape[lead + d])
            tr.group_repeats[int(vec[0])] = groups
            out[lead + d] = vec
            return True
    return False


def merged_group_heads(tr: Tracing, vec: np.ndarray, sizes: Sequence[int], k: int) -> np.ndarray | None:
    """A view merging (groups, repeats) into heads, ``vec`` the repeats' elements at position ``k`` of ``sizes``:
    fresh elements, one per query head, each group to keep as many as the others. None: not such a view."""
    groups = tr.group_repeats.get(int(vec[0]))
    if groups is None or len(sizes) != 2 or k != 1 or sizes[0] != groups:
        return None
    heads = _balanced_heads(tr, groups, sizes[1])
    tr.uf.tie(vec, heads[: sizes[1]])  # the repeats: as many as each group keeps, the first group's
    return heads


def sdpa_group_heads(tr: Tracing, node: torch.fx.Node, kv_heads: int, rep: int) -> np.ndarray | None:
    """SDPA's ``enable_gqa`` in such an attention: the key/value heads as the query heads see them, fresh elements per
    query head (the key/value heads themselves stay whole). None where whole groups go."""
    if query_groups(tr, node) != kv_heads:
        return None
    return _balanced_heads(tr, kv_heads, rep)


def _balanced_heads(tr: Tracing, groups: int, per_group: int) -> np.ndarray:
    heads = tr.uf.fresh(groups * per_group)
    tr.balanced.append(heads.reshape(groups, per_group))
    return heads


def balanced_units(graph: DependencyGraph) -> dict[int, list[list[np.ndarray]]]:
    """Per group (its index in ``graph.groups``), one entry per attention whose query heads are its units: the unit
    indices of each key/value group's query heads (:data:`DependencyGraph.balanced`). An attention some of whose heads
    are pinned or tied together is left out: nothing there to even out."""
    if not graph.balanced:
        return {}
    where = {unit.root: (g, i) for g, group in enumerate(graph.groups) for i, unit in enumerate(group.units)}
    out: dict[int, list[list[np.ndarray]]] = {}
    seen = set()
    for elements in graph.balanced:  # one per repeat_kv (keys, values) or SDPA call: the same heads, found once
        places = [where.get(graph.uf.find(int(e))) for e in elements.reshape(-1).tolist()]
        if None in places or len({g for g, _ in places}) != 1 or len(set(places)) != len(places) or tuple(places) in seen:
            continue
        seen.add(tuple(places))
        units = np.array([i for _, i in places], dtype=int).reshape(elements.shape)
        out.setdefault(places[0][0], []).append(list(units))
    return out


def balance_groups(graph: DependencyGraph, scores: Sequence[np.ndarray], pruned: set[int]) -> set[int]:
    """``pruned`` with each key/value group's query heads keeping as many as the other groups of their attention: the
    mean kept per group (rounded, at least one), the best-scored of each. For a choice not made per group (the
    latency-aware cut's candidates); a ratio is applied to each group's heads directly (``structured._prune_at``)."""
    out = set(pruned)
    for g, attentions in balanced_units(graph).items():
        units = graph.groups[g].units
        for blocks in attentions:
            kept = [sum(units[i].root not in pruned for i in block.tolist()) for block in blocks]
            keep = max(1, round(sum(kept) / len(kept)))
            for block in blocks:
                ranked = block[np.argsort(-np.asarray(scores[g])[block], kind="stable")]  # best first
                out.difference_update(units[i].root for i in ranked[:keep].tolist())
                out.update(units[i].root for i in ranked[keep:].tolist())
    return out
