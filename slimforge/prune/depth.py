"""Whole blocks removed before channels: latency-aware pruning in depth as well as width.

At 0.3 of a small residual network's measured latency, narrowing every layer the same share leaves the first
stage 16 channels wide; removing the block whose absence changes the outputs least and narrowing the rest less,
to the same measured latency, scored higher after the same distillation (issue 22, BENCHMARKS.md "Depth and width
at equal latency"). Deep networks are ensembles of shorter paths through their residual blocks, so one block can
go at a small cost, while every narrowed layer costs capacity everywhere.

A *block* is a child of an ``nn.Sequential`` or ``nn.ModuleList`` with weights of its own, called once, taking one
tensor and returning one of the same shape (a residual block without a stride or projection, a transformer block
that returns its hidden states); of nested ones the outermost, except a stage holding two or more blocks in one
container, whose blocks are offered instead. Removing one puts a :class:`SkippedBlock` in its place, which returns its input;
the edit ``skip_blocks`` records the names, so ``slimforge.load`` rebuilds the model from its factory without them.

Which: ``LatencySettings(blocks=N)`` removes the N blocks whose removal alone changes the outputs least (KL
divergence from the original's outputs on calibration inputs). How many is the user's choice: no one-shot measure
tried ranked the counts as training did. On the issue-22 reference (1 epoch of distillation, 2 seeds), 1 block
scored +0.34 points over none, 2 blocks +0.23, 3 blocks 0.0; the distance of each narrowed candidate from the
original after its batch norms were re-estimated (EagleEye's adaptive batch norm) fell steadily from 0 to 3 blocks,
so it would have chosen the most blocks.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from slimforge.artifacts import register_edit
from slimforge.errors import ArtifactError
from slimforge.prune._capture import _first_tensor as first_tensor
from slimforge.prune.errors import PruneConfigError

EDIT_KIND = "skip_blocks"
EDIT_VERSION = 1


class SkippedBlock(nn.Module):
    """Stands where a removed block was: returns its input (further arguments, an attention mask say, are ignored)."""

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        return x


# ---------------------------------------------------------------- which blocks can go


def find_blocks(model: nn.Module, args: tuple, kwargs: dict[str, Any]) -> list[str]:
    """Names of the blocks of ``model`` (see the module docstring), in the order they run on ``args``."""
    candidates = {name: m for name, m in _children_of_containers(model)
                  if next(m.parameters(), None) is not None and next(m.children(), None) is not None}
    calls: dict[str, list[bool]] = {name: [] for name in candidates}
    order: list[str] = []

    def hook(name: str) -> Callable:
        def record(module: nn.Module, inputs: tuple, output: Any) -> None:
            x = inputs[0] if inputs else None
            same = isinstance(x, torch.Tensor) and isinstance(output, torch.Tensor) and output.shape == x.shape and output.dtype == x.dtype
            calls[name].append(same)
            order.append(name)
        return record

    handles = [m.register_forward_hook(hook(name)) for name, m in candidates.items()]
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(*args, **kwargs)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    found = [name for name in dict.fromkeys(order) if calls[name] == [True]]
    stages = {name for name in found if _is_stage(name, found)}
    return [name for name in found if name not in stages and not any(name.startswith(o + ".") for o in found if o not in stages)]


def _is_stage(name: str, found: Sequence[str]) -> bool:
    """A shape-keeping module that holds blocks (two or more in one container: ConvNeXt's first stage, which keeps
    its input's shape) is a stage: its blocks are offered instead. A block's own shape-keeping parts (MobileNetV2's
    depthwise convolution inside an inverted residual) are not offered beside it."""
    inner = Counter(n.rpartition(".")[0] for n in found if n.startswith(name + "."))
    return any(count >= 2 for count in inner.values())


def _children_of_containers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(f"{name}.{child}" if name else child, m) for name, module in model.named_modules()
            if isinstance(module, (nn.Sequential, nn.ModuleList)) for child, m in module.named_children()]


def skip_blocks(model: nn.Module, names: Sequence[str]) -> nn.Module:
    """Replace each named block of ``model`` by a :class:`SkippedBlock` (in place)."""
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, SkippedBlock())  # a container's children are named modules too ("0", "encoder_layer_0")
    return model


@register_edit(EDIT_KIND)
def _replay(model: nn.Module, edit: dict[str, Any]) -> nn.Module:
    """Artifact replay: the recorded blocks skipped in a freshly built model. Each name must be a child of an
    ``nn.Sequential``/``nn.ModuleList`` of the model (no code runs from the file: only names are read)."""
    if not isinstance(edit, dict):
        raise ArtifactError(f"A {EDIT_KIND} edit must be an object; model.json is corrupt.")
    version = edit.get("version", EDIT_VERSION)
    if isinstance(version, bool) or not isinstance(version, int) or version > EDIT_VERSION:
        raise ArtifactError(f"{EDIT_KIND} edit: version {version!r} is not one this slimforge reads ({EDIT_VERSION}).")
    names = edit.get("blocks")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names) or len(set(names)) != len(names):
        raise ArtifactError(f"{EDIT_KIND} edit: 'blocks' must be a list of distinct module names; model.json is corrupt.")
    modules = dict(model.named_modules())
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = modules.get(parent_name) if parent_name else model
        if name not in modules or not isinstance(parent, (nn.Sequential, nn.ModuleList)):
            raise ArtifactError(f"{EDIT_KIND} edit: {name!r} is not a block of this {type(model).__name__} (a child of an "
                                "nn.Sequential or nn.ModuleList): the folder was made for a different architecture.")
    return skip_blocks(model, names)


# ---------------------------------------------------------------- how much each block matters


def output_tensor(out: Any) -> torch.Tensor:
    """The tensor the blocks are judged on: logits where the model returns them, else its first tensor."""
    found = first_tensor(getattr(out, "logits", out))
    if found is None:
        raise PruneConfigError(f"latency.blocks compares the model's outputs, and it returned {type(out).__name__} with no tensor in it.")
    return found


def _log_probs(out: Any) -> torch.Tensor:
    t = output_tensor(out).float()
    return t.flatten(0, -2).log_softmax(-1) if t.dim() > 1 else t.unsqueeze(-1).log_softmax(-1)


@torch.no_grad()
def distance(model: nn.Module, inputs: Sequence[Any], reference: Sequence[torch.Tensor]) -> float:
    """Mean KL divergence of ``model``'s output distributions from ``reference`` (log-probabilities per batch)."""
    total, count = 0.0, 0
    for x, ref in zip(inputs, reference):
        got = _log_probs(_call(model, x))
        total += float(nn.functional.kl_div(got, ref, log_target=True, reduction="sum"))
        count += ref.shape[0]
    return total / max(count, 1)


def _call(model: nn.Module, x: Any) -> Any:
    return model(*x) if isinstance(x, tuple) else model(x)


@torch.no_grad()
def reference_outputs(model: nn.Module, inputs: Sequence[Any]) -> list[torch.Tensor]:
    was_training = model.training
    model.eval()
    try:
        return [_log_probs(_call(model, x)) for x in inputs]
    finally:
        model.train(was_training)


def block_scores(model: nn.Module, names: Sequence[str], inputs: Sequence[Any], reference: Sequence[torch.Tensor]) -> dict[str, float]:
    """For each block, the distance of the model without it (alone) from the original. Each block is swapped out of
    ``model`` for its measurement and put back, so no copy of the model is made."""
    scores = {}
    was_training = model.training
    model.eval()
    try:
        for name in names:
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            block = getattr(parent, child)
            setattr(parent, child, SkippedBlock())
            try:
                scores[name] = distance(model, inputs, reference)
            finally:
                setattr(parent, child, block)
    finally:
        model.train(was_training)
    return scores


# ---------------------------------------------------------------- how many blocks, chosen


@dataclass
class DepthChoice:
    """The blocks removed (in the model's order), what removing them alone measured (fraction of the original's
    latency), the model narrowed after them to the target, and every removable block's score."""

    blocks: list[str]
    depth_fraction: float
    model: nn.Module
    scores: dict[str, float]


def choose_depth(model: nn.Module, args: tuple, kwargs: dict[str, Any], target: float, blocks: int,
                 calibration: Sequence[Any] | None, measure: Callable[[nn.Module, nn.Module], float],
                 narrow: Callable[[nn.Module, float], nn.Module], kept: Callable[[str], bool] = lambda name: False) -> DepthChoice:
    """The ``blocks`` blocks whose removal alone moves the outputs least, removed, and the rest narrowed to ``target``
    of the measured latency. measure(original, candidate): the candidate's fraction of the original's latency;
    narrow(model, fraction): a pruned copy at that fraction of the given model's latency; kept(name): a block
    that must stay (``skip`` patterns)."""
    inputs = _calibration_inputs(calibration, args)
    reference = reference_outputs(model, inputs)
    names = [n for n in find_blocks(model, args, kwargs) if not kept(n)]
    if blocks > len(names):
        raise PruneConfigError(f"latency.blocks={blocks}, but {type(model).__name__} has {len(names)} block(s) that can be removed "
                               f"(children of nn.Sequential/ModuleList taking and returning one tensor of one shape): {names}.")
    scores = block_scores(model, names, inputs, reference)
    chosen = sorted(sorted(names, key=lambda n: scores[n])[:blocks], key=names.index)
    dropped = skip_blocks(copy.deepcopy(model), chosen)
    fraction = measure(model, dropped)
    if fraction <= target:
        raise PruneConfigError(f"latency.blocks={blocks}: removing {', '.join(chosen)} alone measured {fraction:.3f} of the latency, "
                               f"already at or under the target {target}; remove fewer blocks.")
    return DepthChoice(chosen, fraction, narrow(dropped, target / fraction), scores)


def _calibration_inputs(calibration: Sequence[Any] | None, args: tuple) -> list[Any]:
    if calibration is None:
        raise PruneConfigError("latency.blocks judges blocks on the model's outputs: pass calibration=[(inputs, targets), ...] "
                               "(a few batches of training data; only the inputs are used).")
    inputs = [b[0] if isinstance(b, (tuple, list)) else b for b in calibration]
    if not inputs:
        raise PruneConfigError("latency.blocks: calibration is empty.")
    return inputs
