"""The dependency graph: which parameter dimensions must lose the same channels together.

Captured with ``torch.export`` (non-strict), not ``torch.fx.symbolic_trace``: fx cannot trace
Hugging Face models (``BertForSequenceClassification`` fails in transformers 5 with "co_varnames
is too small") and stops at Python control flow, while export handles both torchvision and
Hugging Face models, records every node's shape (``meta['val']``, fake tensors, no real compute),
names parameters by their ``state_dict`` keys and keeps the calling module of every op in
``nn_module_stack``, which is what error messages and attention rules need. Its ATen op set is
finite, so an op without a rule is detected rather than guessed at.

How coupling is found: every dimension of every tensor carries a vector of *elements*, one per
index (``None`` means "not prunable here", for example spatial or batch dimensions). A weight's
output dimension gets fresh elements; each op's rule then ties elements that must go together
(an add ties its inputs index by index, a convolution ties its input channels to the weight's
input dimension, a concat concatenates vectors, a flatten repeats them) in a union-find. Tying to
the special element ``PIN`` means "never prune". Afterwards each union-find class that holds a
weight's output index and is not pinned is one prunable *unit*; units that share a parameter
dimension form a *group* (one ratio, one ranking).
"""

from __future__ import annotations

import math

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from slimforge.prune._capture import _size, _UnionFind, _opname, _shapes_differ, export_model, module_path, module_paths
from slimforge.prune.errors import PruningError


@dataclass
class Slot:
    """One dimension of one parameter or buffer: ``name`` is its state_dict key."""

    name: str
    dim: int
    elements: np.ndarray
    is_source: bool = False  # an output dimension (conv/linear out, embedding dim)


@dataclass
class Unit:
    """One prunable class: every position of every slot whose class is ``root`` goes together."""

    root: int


@dataclass
class Group:
    """Units coupled through shared parameter dimensions; ranked and pruned with one ratio."""

    anchor: str  # "state_dict_key:dim" of the first output dimension it touches
    module: str  # module path of the anchor, for name patterns
    units: list[Unit]
    width: int  # channels per unit in the anchor dimension (for rounding)
    slots: list[int]  # indices of the slots its units appear in
    # Per unit, the output slot that produces it: a concat's inputs (DenseNet, Inception branches)
    # are one group but several layers, each of which should keep a rounded channel count.
    branches: list[int] = field(default_factory=list)
    # Per unit, the class of units that appear in exactly the same slots. A group can couple units of
    # very different reach (a residual stream's channels, read by a hundred layers, tied to one
    # attention's inner channels, read by a few): their mean slot-normalised scores are not comparable,
    # so a ratio is applied per class (``structured._prune_at``).
    classes: list[int] = field(default_factory=list)


@dataclass
class DependencyGraph:
    """Slots, the union-find classes over their elements, and the resulting groups."""

    slots: list[Slot]
    groups: list[Group]
    roots: list[np.ndarray]  # per slot: class of every position
    macs_terms: list[list[Any]]  # per MAC-bearing op: factors (int or element vector)
    uf: _UnionFind
    _term_roots: list[list[Any]] | None = None
    fixed_splits: int = 0  # guesses that a size the capture records as a constant follows its tensor: equal splits (_split_op), repeated gather indices (_gather)
    records: list[tuple[torch.fx.Node, Any]] = field(default_factory=list)  # every op's output labels
    unreached: list[str] = field(default_factory=list)  # modules with parameters the example inputs never read
    projected_outputs: list[tuple[int, str | None, int | None, Any]] = field(default_factory=list)  # keep_outputs="project": (leaf, field, part, label)
    # Elements as (groups, units per group) where every group must keep as many units as the others (query heads
    # pruned within their key/value groups): see ``_query_groups``.
    balanced: list[np.ndarray] = field(default_factory=list)

    def verify(self, pruned_roots: set[int], model: nn.Module, example_inputs: tuple, example_kwargs: dict | None = None) -> dict[int, int]:
        """Capture the pruned model again and check every op's output shape is the one the
        dependency graph predicts; a module that derives a size from elsewhere is caught here. Returns the integers
        read off the data that changed (original -> pruned model's), which sizes of the outputs may follow."""
        ep = export_model(model, example_inputs, example_kwargs or {})
        # contiguous() of an already contiguous tensor is not captured: a dimension pruned to size 1
        # (one head left) makes a permuted tensor contiguous. It keeps its input's shape, so skip it. A split into
        # pieces that are whole heads (the Set Transformer's, AutoInt's) has fewer pieces once heads go: the getitems
        # that pick them are left out, and the split itself is compared only where the count of pieces is the same
        # (what the pieces make, a cat or a stack, is compared as every op is).
        ops = [n for n in ep.graph.nodes if n.op == "call_function" and _compared(n)]
        records = [(n, label) for n, label in self.records if _compared(n)]
        if [_opname(n.target) for n in ops] != [_opname(n.target) for n, _ in records]:
            raise PruningError(
                "The pruned model's captured graph has different ops from the original's, so slimforge cannot "
                "verify it; this happens when a forward() branches on tensor sizes. Skip the layers involved."
            )
        kept_count: dict[int, int] = {}
        # A count the data decides (nonzero's: SuperPoint's keypoints over a threshold), which a capture along the
        # example's branches records as a plain number: once the weights change, so does the count, and every size
        # made from it downstream. Original count -> the pruned model's: a size that differs by exactly that is excused.
        scalars = _scalars_read(self.records, ep)
        counted: dict[int, int] = dict(scalars)
        # Once an integer read off the data changed, sizes computed from it (a relative position table of 2 * frames - 1)
        # change too, beyond what a table of counts can excuse: the positions, tokens and frames no channel label names
        # are then not compared, only the channels pruning changed (the eager run checks the outputs' shapes).
        loose = bool(scalars)

        def expected(label: Any, val: Any) -> Any:
            if isinstance(val, torch.Tensor) and isinstance(label, list):
                if len(label) != val.dim():  # the capture's own record disagrees with the op (an unbind of sizes the
                    return None  # data decides: Qwen2.5-VL's window lengths): nothing to compare against
                dims = []
                for vec, size in zip(label, val.shape):
                    if vec is None:
                        dims.append(-1 if loose else _size(size))
                    else:
                        key = id(vec)
                        if key not in kept_count:
                            kept_count[key] = int(sum(1 for r in self.uf.roots(vec).tolist() if r not in pruned_roots))
                        dims.append(kept_count[key])
                return tuple(dims)
            if isinstance(val, (tuple, list)) and isinstance(label, tuple):
                return tuple(expected(lb, v) for lb, v in zip(label, val))
            return None

        def actual(val: Any) -> Any:
            if isinstance(val, torch.Tensor):
                return tuple(_size(s) for s in val.shape)
            if isinstance(val, (tuple, list)):
                return tuple(actual(v) for v in val)
            return None

        for new, (old, label) in zip(ops, records):
            if new.op == "call_function" and not new.users:
                continue  # a tensor nothing reads (Mamba-2's recurrent state when no cache is passed): its size cannot matter
            if _data_sized(new) and isinstance(old.meta.get("val"), torch.Tensor) and isinstance(new.meta.get("val"), torch.Tensor):
                counted[_size(old.meta["val"].shape[0])] = _size(new.meta["val"].shape[0])
            want = expected(label, old.meta.get("val"))
            got = actual(new.meta.get("val"))
            if isinstance(want, tuple) and 0 in want and isinstance(got, tuple) and 0 in got and len(want) == len(got):
                continue  # an empty tensor (Inkling 2's block states start as new_zeros(b, l, 0, width)) holds no channels
            if isinstance(want, tuple) and isinstance(got, tuple) and len(want) != len(got) and _pieces(label):
                continue
            if want is not None and got is not None and _shapes_differ(_excused(want, got, counted), got):
                path = module_path(new)
                error = PruningError(
                    f"After pruning, op {_opname(new.target)!r} in module {path or '<top level>'!r} produces shape "
                    f"{got} where the dependency graph expects {want}: that module computes a size slimforge did not "
                    f"update, and the model would be silently wrong. Skip it: slimforge.prune(..., skip=[{(path or '*')!r}])."
                )
                error.module_paths = module_paths(new)  # the modules around the op, outermost first
                raise error
        return scalars

    def kept_positions(self, pruned_roots: set[int]) -> dict[tuple[str, int], np.ndarray]:
        """For every slot that loses positions: the kept indices."""
        kept = {}
        for slot, roots in zip(self.slots, self.roots):
            mask = np.fromiter((r not in pruned_roots for r in roots.tolist()), dtype=bool, count=len(roots))
            if not mask.all():
                kept[(slot.name, slot.dim)] = np.nonzero(mask)[0]
        return kept

    def count_macs(self, pruned_roots: set[int]) -> int:
        """Multiply-accumulates of convolutions, linear layers and matmuls after pruning."""
        if self._term_roots is None:
            self._term_roots = [[self.uf.roots(f) if isinstance(f, np.ndarray) else int(f) for f in fs]
                                for fs in self.macs_terms]
        pruned = np.fromiter(pruned_roots, dtype=np.int64, count=len(pruned_roots))
        total = 0
        for factors in self._term_roots:
            n = 1
            for f in factors:
                n *= int(np.count_nonzero(~np.isin(f, pruned))) if isinstance(f, np.ndarray) else f
            total += n
        return total


_UNCOMPARED = ("contiguous", "getitem")
_DATA_SIZED = ("nonzero", "argwhere", "masked_select", "_unique2", "unique_dim", "unique_consecutive")  # rows: a count of the data


def _excused(want: Any, got: Any, counted: dict[int, int]) -> Any:
    """``want`` with each size that a data-decided count explains (``counted``: the original count -> the pruned
    model's) replaced by the one ``got`` has."""
    if not counted or not isinstance(want, tuple) or not isinstance(got, tuple) or len(want) != len(got):
        return want
    return tuple(_excused(w, g, counted) if isinstance(w, tuple) else (g if isinstance(w, int) and counted.get(w) == g else w)
                 for w, g in zip(want, got))


def _scalars_read(records: list[tuple[torch.fx.Node, Any]], ep: torch.export.ExportedProgram) -> dict[int, int]:
    """Integers the forward reads off its data (``.item()``: FastSpeech2-Conformer's frame count, the longest sum of
    the durations it predicts), original -> pruned model's, paired in the order the two captures read them, where
    both read as many: sizes made from them change with the weights, as counts of ``nonzero`` do."""
    read = ("item", "_local_scalar_dense")
    old = [n.meta.get("val") for n, _ in records if _opname(n.target) in read]
    new = [n.meta.get("val") for n in ep.graph.nodes if n.op == "call_function" and _opname(n.target) in read]
    if len(old) != len(new):
        return {}
    pairs = {_size(a): _size(b) for a, b in zip(old, new)
             if isinstance(a, (int, torch.SymInt)) and isinstance(b, (int, torch.SymInt)) and not isinstance(a, bool)}
    return {a: b for a, b in pairs.items() if a != b and a > 1 and b >= 0}


def _data_sized(node: torch.fx.Node) -> bool:
    """An op whose first dimension counts what the data selects: nonzero and its kind, indexing by a boolean mask, or
    rows repeated as often as a tensor says (FastSpeech2-Conformer's length regulator: each phoneme for its duration)."""
    if _opname(node.target) in _DATA_SIZED:
        return True
    if _opname(node.target) == "repeat_interleave" and len(node.args) > 1 and isinstance(node.args[1], torch.fx.Node):
        return True
    return _opname(node.target) == "index" and len(node.args) > 1 and isinstance(node.args[1], (list, tuple)) and any(
        isinstance(i, torch.fx.Node) and getattr(i.meta.get("val"), "dtype", None) == torch.bool for i in node.args[1])
_SCALAR_CHECKS = ("_assert_scalar", "sym_constrain_range", "sym_constrain_range_for_size")


def _compared(node: torch.fx.Node) -> bool:
    """An op whose output the check compares: not one left out above, and no arithmetic on sizes or check of one (a
    size the data decides, Qwen2.5-VL's windows from its patch grid, is checked against the widths it is computed from,
    ``mod``, ``eq``, ``_assert_scalar``, and a narrower width needs different checks): tensors are what must match."""
    if _opname(node.target) in _UNCOMPARED or _opname(node.target) in _SCALAR_CHECKS:
        return False
    return not isinstance(node.meta.get("val"), (torch.SymInt, torch.SymBool, torch.SymFloat, int, float, bool))


def _pieces(label: Any) -> bool:
    """A label of a split's pieces (a tuple of per-piece labels)."""
    return isinstance(label, tuple) and all(isinstance(p, list) for p in label)


def unit_step(width: int, round_to: int) -> int:
    """Units a group gives up at a time (``width``: channels per unit): as many as keep its channel
    count a multiple of ``round_to`` when a unit is narrower than ``round_to`` (channels: 8 at a time);
    one when a unit is at least ``round_to`` wide. A unit that wide (an attention head) already fills
    the vector lanes the multiple is for, and taking units in pairs would double the steps of a layer
    with few of them: heads of 12 channels at ``round_to=8`` left a 4-head layer at ratio 0.3 with 2
    heads (half its width), where one step is 1 head (3 kept)."""
    if round_to <= 1 or width >= round_to:
        return 1
    return round_to // math.gcd(round_to, width)
