"""Outputs that keep their width while the layers before them narrow: ``prune(..., keep_outputs="project")``.

A bare backbone (``BertModel``, ``Dinov2Model``, a timm model with ``num_classes=0``) returns its hidden state,
whose width is the residual that every layer adds into. Kept whole, it pins that residual, and pruning removes
only heads and MLP neurons (22-31% of the parameters at ``ratio=0.3`` against 42-50% for the same model with a
head). Narrowed, it breaks whatever reads the features (a head trained on them, an index of embeddings, a
distillation loss against the unpruned model's states).

Projected, the residual narrows like any other group and each such output goes back to its width through a layer
that, right after pruning, puts the kept features in their old places and the unpruned model's mean (on the example
inputs) in each removed place, so whatever reads the features still fits; it trains with the rest. Two forms:

- ``OutputProjection`` (``"project"``, and ``"auto"`` for a bare backbone): a dense layer, ``y = x W^T + b``, W the
  0/1 map at first. It costs ``kept x width`` parameters (0.4-0.5% of BERT-base or DINOv2-small, 1.5-4% of a
  64-wide two-layer tower) and learns the most: distilled towards the unpruned MiniLM-L6's states, the pruned
  encoder's sentence embeddings find their own in the unpruned model's index for 87-88% of SST-2's dev sentences
  (two runs), against 75% with the fill (BENCHMARKS.md).
- ``OutputFill`` (``"fill"``): the kept features pass unchanged (``index_copy``) and each removed place reads a
  constant plus a learned mix of the kept features (``removed x kept``: about 30% of the dense layer's parameters).
  A linear probe on its features scores as on the dense layer's (76.3% on SST-2), so where a head is trained on the
  features anyway it is the smaller choice.

A second pruning narrows either layer's input with the residual (the dense weight's columns; the fill's index and
mix columns). Outputs made from the same features (a ViT's ``last_hidden_state`` and its ``pooler_output``) share
one layer. An output whose narrowing would save less than its layer costs, or under 2% of the model (a single
layer's outputs: BERT's pooler, a pose head's heatmaps), keeps its width instead. The layers live
in ``model.slimforge_outputs`` (a ``ModuleDict``, in the state dict), the plan records them under ``outputs`` and
:func:`install` rebuilds them on load.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import torch.utils._pytree as pytree
from torch import nn

from slimforge.errors import ArtifactError

ATTRIBUTE = "slimforge_outputs"
FILL = "fill"  # an entry's "form": OutputFill, keep_outputs="fill" (entries without one: OutputProjection)


class OutputProjection(nn.Module):
    """``width`` features from ``kept`` narrowed ones: ``y = x @ weight.T + bias`` along a dimension of each target.

    targets: the outputs it applies to, each (field, leaf, dim[, part]): the output's field (a transformers
    ``ModelOutput`` or dict key; None for a model that returns tensors), its position among the output's tensors
    (pytree order) as captured, used where there is no field, the dimension of that output it maps, and for a field
    of several tensors (a backbone's ``feature_maps``) which of them. Outputs cut from the same features (a ViT's
    ``last_hidden_state`` and its ``pooler_output``, the first token of it after the same norm; a ViT backbone's
    maps of several layers) share one projection."""

    def __init__(self, kept: int, width: int, targets: Sequence[tuple[str | None, int, int]]) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(width, kept))
        self.bias = nn.Parameter(torch.zeros(width))
        self.targets = [_target(t) for t in targets]

    @property
    def kept(self) -> int:  # after a second pruning slices the weight's input columns
        return self.weight.shape[1]

    def forward(self, x: torch.Tensor, dim: int = -1) -> torch.Tensor:
        if dim in (-1, x.dim() - 1):
            return F.linear(x, self.weight, self.bias)
        return F.linear(x.transpose(dim, -1), self.weight, self.bias).transpose(dim, -1)  # a feature map's channels

    def fits(self, x: Any, dim: int) -> bool:
        return isinstance(x, torch.Tensor) and x.dim() > dim and x.shape[dim] == self.kept

    def extra_repr(self) -> str:
        return f"{self.kept} -> {self.weight.shape[0]}: {_names(self.targets)}"


class OutputFill(nn.Module):
    """``width`` features from ``kept`` narrowed ones along a dimension: the kept ones in their places (``index``, the
    place of each, a buffer that a second pruning slices with the residual); each removed place (``removed``) reads
    its constant in ``fill`` plus a learned mix of the kept features (``mix``, removed x kept, zero at first), so
    training can rebuild what a removed feature carried from the kept ones. A place a later pruning removes reads its
    constant alone.

    targets: as :class:`OutputProjection`'s."""

    def __init__(self, index: Sequence[int], width: int, targets: Sequence[tuple[str | None, int, int]]) -> None:
        super().__init__()
        kept = np.asarray(index, dtype=np.int64)
        removed = np.setdiff1d(np.arange(width), kept)
        self.fill = nn.Parameter(torch.zeros(width))
        self.mix = nn.Parameter(torch.zeros(len(removed), len(kept)))
        self.register_buffer("index", torch.as_tensor(kept), persistent=False)  # both from the plan
        self.register_buffer("removed", torch.as_tensor(removed), persistent=False)
        self.targets = [_target(t) for t in targets]

    @property
    def kept(self) -> int:
        return self.index.shape[0]

    def forward(self, x: torch.Tensor, dim: int = -1) -> torch.Tensor:
        d = dim % x.dim()
        shape = [*x.shape[:d], self.fill.shape[0], *x.shape[d + 1:]]
        view = [-1 if i == d else 1 for i in range(x.dim())]
        fill = self.fill.to(x.dtype)
        out = fill.view(view).expand(shape)
        if self.removed.shape[0]:
            last = d == x.dim() - 1
            mixed = F.linear(x if last else x.transpose(d, -1), self.mix.to(x.dtype))
            mixed = mixed if last else mixed.transpose(d, -1)  # a feature map's channels
            rebuilt = mixed + fill.index_select(0, self.removed).view(view)
            out = out.index_copy(d, self.removed, rebuilt)
        return out.index_copy(d, self.index, x)

    def fits(self, x: Any, dim: int) -> bool:
        return isinstance(x, torch.Tensor) and x.dim() > dim and x.shape[dim] == self.kept

    def extra_repr(self) -> str:
        return f"{self.kept} -> {self.fill.shape[0]}: {_names(self.targets)}"


Target = tuple[str | None, int, int, int | None]  # (field, leaf, dim, part): see OutputProjection


def _target(t: Sequence[Any]) -> Target:
    """A target as (field, leaf, dim, part); part None where the field holds one tensor (plans before
    2026-12-07 record three values)."""
    field, leaf, dim, *rest = t
    return (field, leaf, dim, rest[0] if rest else None)


def target_record(t: Sequence[Any]) -> list[Any]:
    """A target as a plan records it: [field, leaf, dim], and the part where the field holds several tensors."""
    field, leaf, dim, part = _target(t)
    return [field, leaf, dim] if part is None else [field, leaf, dim, part]


def target_name(t: Sequence[Any]) -> str:
    """What a target names: its field (``feature_maps[1]`` for one of several tensors), else ``output <leaf>``."""
    field, leaf, _, part = _target(t)
    return f"{field or f'output {leaf}'}{'' if part is None else f'[{part}]'}"


def _names(targets: Sequence[Target]) -> str:
    return ", ".join(f"{target_name(t)} (dim {t[2]})" for t in targets)


def project_outputs(module: nn.Module, args: Any, output: Any) -> Any:
    """The forward hook: each projection applied to its outputs (by field where the output has fields, else by
    position). An output that does not have the narrowed width where the capture had it passes unchanged."""
    projections = getattr(module, ATTRIBUTE, None)
    if projections is None or _has_classifier_now(module):
        return output
    by_leaf = []
    for projection in projections.values():
        for field, leaf, dim, part in projection.targets:
            if field is not None and isinstance(output, MutableMapping):
                value = output.get(field)
                if part is None and projection.fits(value, dim):
                    output[field] = projection(value, dim)
                elif part is not None and isinstance(value, (tuple, list)) and part < len(value) and projection.fits(value[part], dim):
                    output[field] = type(value)(projection(v, dim) if i == part else v for i, v in enumerate(value))
            else:  # no fields, or the tuple a transformers model returns with return_dict=False: by position
                by_leaf.append((projection, leaf, dim))
    if by_leaf:
        leaves, spec = pytree.tree_flatten(output)
        for projection, leaf, dim in by_leaf:
            if leaf < len(leaves) and projection.fits(leaves[leaf], dim):
                leaves[leaf] = projection(leaves[leaf], dim)
        output = pytree.tree_unflatten(leaves, spec)
    return output


def _has_classifier_now(module: nn.Module) -> bool:
    """A timm feature extractor given a classifier after pruning (``reset_classifier(n)``): its head reads the
    narrowed features (``num_features`` followed them) and returns class scores, which no projection applies to."""
    return hasattr(module, "pretrained_cfg") and bool(getattr(module, "num_classes", 0))


def install(model: nn.Module, entries: Sequence[Mapping[str, Any]]) -> None:
    """Add the layers ``entries`` describe (``{"key", "targets": [[field, leaf, dim], ...], "width", "kept", "form"}``,
    kept as indices; ``form`` "fill" for an ``OutputFill``, absent for a dense ``OutputProjection``) to ``model``, with
    the forward hook that applies them once. Constants are 0 and a dense weight the 0/1 map of the kept features to
    their places (:func:`initialise` sets the constants; a saved folder's weights load over them)."""
    if not entries:
        return
    projections = getattr(model, ATTRIBUTE, None)
    if projections is None:
        projections = nn.ModuleDict()
        model.add_module(ATTRIBUTE, projections)
    for entry in entries:
        kept = np.asarray(entry["kept"], dtype=np.int64)
        if entry.get("form") == FILL:
            layer: nn.Module = OutputFill(kept, entry["width"], entry["targets"])
        else:
            layer = OutputProjection(len(kept), entry["width"], entry["targets"])
            with torch.no_grad():
                layer.weight[torch.from_numpy(kept), torch.arange(len(kept))] = 1.0
        projections[entry["key"]] = layer
    if project_outputs not in model._forward_hooks.values():
        model.register_forward_hook(project_outputs)


def remove(model: nn.Module, keys: Sequence[str]) -> None:
    """Take out the projections ``keys`` (a pruning that failed after installing them), and the hook with the last."""
    projections = getattr(model, ATTRIBUTE, None)
    if projections is None:
        return
    for key in keys:
        if key in projections:
            del projections[key]
    if not len(projections):
        delattr(model, ATTRIBUTE)
        for handle, hook in list(model._forward_hooks.items()):
            if hook is project_outputs:
                del model._forward_hooks[handle]


def initialise(model: nn.Module, entries: Sequence[Mapping[str, Any]], means: Mapping[int, Sequence[torch.Tensor]]) -> None:
    """Each place's constant: the unpruned output's mean there (``means[leaf][dim]`` of the first target: the mean
    over every other dimension, per position of ``dim``; :func:`output_means`), so a removed feature reads as its
    average, not 0 (and so does a kept one that a later pruning removes)."""
    if not entries:
        return
    projections = getattr(model, ATTRIBUTE)
    for entry in entries:
        _, leaf, dim, _ = _target(entry["targets"][0])
        per_dim = means.get(leaf)
        mean = per_dim[dim] if per_dim is not None and dim < len(per_dim) else None
        if mean is None or mean.numel() != entry["width"]:
            continue
        layer = projections[entry["key"]]
        with torch.no_grad():
            if isinstance(layer, OutputFill):
                layer.fill.copy_(mean.to(layer.fill.dtype))
                continue
            removed = np.setdiff1d(np.arange(entry["width"]), np.asarray(entry["kept"], dtype=np.int64))
            layer.bias[torch.from_numpy(removed)] = mean.to(layer.bias.dtype)[torch.from_numpy(removed)]


def output_means(output: Any) -> dict[int, list[torch.Tensor]]:
    """Per tensor of ``output`` (pytree position): its mean over every dimension but one, for each dimension."""
    means = {}
    for i, leaf in enumerate(pytree.tree_leaves(output)):
        if isinstance(leaf, torch.Tensor) and leaf.is_floating_point() and leaf.dim() > 0:
            x = leaf.detach().float()
            means[i] = [x.mean(dim=[d for d in range(x.dim()) if d != dim]) if x.dim() > 1 else x for dim in range(x.dim())]
    return means


def key_for(field: str | None, leaf: int, taken: Sequence[str]) -> str:
    """A ModuleDict key for a new projection: the field's name, else ``output<leaf>``; ``_2``, ``_3`` after a taken one."""
    base = (field or f"output{leaf}").replace(".", "_")
    key, n = base, 1
    while key in taken:
        n += 1
        key = f"{base}_{n}"
    return key


def checked_entries(entries: Any, largest: int) -> list[dict[str, Any]]:
    """A plan's ``outputs`` after checking every field's type, so replay never builds from a malformed record;
    ``largest``: the largest dimension of the unpruned model's parameters, which no projected width exceeds."""
    if not isinstance(entries, list):
        raise ArtifactError(f"Pruning edit: 'outputs' must be a list of projected outputs, not {type(entries).__name__}; model.json is corrupt.")
    out = []
    for i, entry in enumerate(entries):
        where = f"pruning edit outputs[{i}]"
        if not isinstance(entry, dict):
            raise ArtifactError(f"{where} must be an object; model.json is corrupt.")
        width = entry.get("width")
        if isinstance(width, bool) or not isinstance(width, int) or not 1 <= width <= largest:
            raise ArtifactError(f"{where}: 'width' must be a positive integer no larger than the model's widest "
                                f"dimension ({largest}), not {width!r}; model.json is corrupt.")
        key, targets = entry.get("key"), entry.get("targets")
        if not isinstance(key, str) or not key.isidentifier() or hasattr(nn.ModuleDict(), key):
            raise ArtifactError(f"{where}: 'key' must be a plain name, not {key!r}; model.json is corrupt.")
        if not isinstance(targets, list) or not targets or not all(
                isinstance(t, list) and (len(t) == 3 or len(t) == 4 and isinstance(t[0], str))
                and (t[0] is None or isinstance(t[0], str))
                and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in t[1:]) for t in targets):
            raise ArtifactError(f"{where}: 'targets' must be a non-empty list of [field or null, output position, "
                                "dimension] (and the tensor's place in a field of several); model.json is corrupt.")
        form = entry.get("form")
        if form not in (None, FILL):
            raise ArtifactError(f"{where}: 'form' must be {FILL!r} or absent (a dense projection), not {form!r}; "
                                "model.json is corrupt.")
        kept = _checked_runs(entry.get("kept"), where, width)
        out.append({"key": key, "targets": [tuple(t) for t in targets], "width": width, "kept": kept,
                    **({"form": form} if form else {})})
    return out


def _checked_runs(runs: Any, where: str, width: int) -> list[int]:
    ok = isinstance(runs, list) and runs and all(
        isinstance(r, list) and len(r) == 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in r) for r in runs)
    indices: list[int] = []
    if ok:
        previous = 0
        for start, stop in runs:
            if not previous <= start < stop <= width:
                ok = False
                break
            indices.extend(range(start, stop))
            previous = stop
    if not ok:
        raise ArtifactError(f"{where}: 'kept' must be increasing [start, stop) runs inside the width {width}; model.json is corrupt.")
    return indices


def projected_classes(graph: Any) -> list[list[int]]:
    """The unit roots along each dimension of the outputs ``graph`` recorded as projected, once per distinct order
    (the outputs one layer would share)."""
    seen: dict[tuple, list[int]] = {}
    for _, _, _, label in graph.projected_outputs:
        for vec in label:
            if isinstance(vec, np.ndarray):
                roots = graph.uf.roots(vec).tolist()
                seen.setdefault(tuple(roots), roots)
    return list(seen.values())


def layer_size(width: int, kept: int, fill: bool) -> int:
    """Parameters of the layer that puts ``kept`` of ``width`` features back: dense ``kept x width`` and a bias, or
    the fill's constants and its ``removed x kept`` mix."""
    return width + ((width - kept) * kept if fill else kept * width)


def entries_for(graph: Any, pruned: set[int], taken: Sequence[str] = (), fill: bool = False) -> list[dict[str, Any]]:
    """The projections a pruning needs: for each output ``graph`` recorded as projected (``keep_outputs="project"``),
    each dimension that loses positions, with the kept indices; dimensions that hold the same classes of units in
    the same order (a ViT's ``last_hidden_state`` and ``pooler_output``) share one."""
    by_classes: dict[tuple, dict[str, Any]] = {}
    keys = list(taken)
    for leaf, field, part, label in graph.projected_outputs:
        for dim, vec in enumerate(label):
            if not isinstance(vec, np.ndarray):
                continue
            roots = graph.uf.roots(vec).tolist()
            kept = [i for i, r in enumerate(roots) if r not in pruned]
            if len(kept) == len(roots):
                continue
            same = by_classes.get(tuple(roots))
            t = (field, leaf, dim) if part is None else (field, leaf, dim, part)
            if same is not None:
                same["targets"].append(t)
                continue
            key = key_for(field, leaf, keys)
            keys.append(key)
            by_classes[tuple(roots)] = {"key": key, "targets": [t], "width": len(roots), "kept": kept,
                                        **({"form": FILL} if fill else {})}
    return list(by_classes.values())
