"""Unstructured sparsity: global magnitude masks, the gradual cubic schedule, N:M patterns.

Zeros in dense tensors do not make a model faster on CPU: PyTorch's dense kernels do the same
work for a zero as for any other weight, and 2:4 sparse kernels exist only for some GPUs. What
sparsity buys here is compressibility (zeros compress well) and a path to sparse hardware;
:func:`sparsity_report` reports the zeros honestly, and nothing in slimforge claims a speed-up
from them.

Schedule (Zhu & Gupta 2017, "To prune, or not to prune"): from step t0 over n steps,

    s_t = s_f + (s_i - s_f) * (1 - (t - t0) / n) ** 3

masks are recomputed every ``frequency`` steps and re-applied after every optimizer step, and
folded into the weights (masks dropped, zeros kept) at the end.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from slimforge.prune._trace import matches
from slimforge.prune.errors import PruneConfigError
from slimforge.train.callbacks import Callback, TrainState

Masks = dict[str, torch.Tensor]


def cubic_sparsity(step: int, final: float, start_step: int, end_step: int, initial: float = 0.0) -> float:
    """Target sparsity at ``step`` on the cubic schedule (constant outside [start_step, end_step])."""
    if end_step <= start_step:
        return final if step >= start_step else initial
    progress = min(max((step - start_step) / (end_step - start_step), 0.0), 1.0)
    return final + (initial - final) * (1.0 - progress) ** 3


def prunable_weights(model: nn.Module, skip: Sequence[str] = ()) -> dict[str, nn.Parameter]:
    """Weights of Linear and Conv layers (not biases, norms or embeddings), minus ``skip`` patterns."""
    out = {}
    for path, module in model.named_modules():
        if isinstance(module, (nn.Linear, nn.modules.conv._ConvNd)) and not (skip and matches(path, skip)):
            out[f"{path}.weight" if path else "weight"] = module.weight
    return out


def magnitude_masks(model: nn.Module, sparsity: float, *, n_m: tuple[int, int] | None = None,
                    skip: Sequence[str] = ()) -> Masks:
    """Boolean keep-masks: global magnitude (one threshold over all weights) or N:M per group.

    n_m=(2, 4) keeps the 2 largest of every 4 consecutive weights along the input dimension
    (sparsity is then fixed at 1 - N/M and ``sparsity`` is ignored).
    """
    weights = prunable_weights(model, skip)
    if n_m is not None:
        return {name: _n_m_mask(w.detach(), *n_m) for name, w in weights.items()}
    if not 0.0 <= sparsity < 1.0:
        raise PruneConfigError(f"sparsity must be in [0, 1); got {sparsity}.")
    if sparsity == 0.0 or not weights:
        return {name: torch.ones_like(w, dtype=torch.bool) for name, w in weights.items()}
    magnitudes = torch.cat([w.detach().abs().flatten().float() for w in weights.values()])
    k = int(sparsity * magnitudes.numel())
    if k == 0:
        return {name: torch.ones_like(w, dtype=torch.bool) for name, w in weights.items()}
    threshold = torch.kthvalue(magnitudes, k).values
    return {name: w.detach().abs() > threshold for name, w in weights.items()}


def _n_m_mask(w: torch.Tensor, n: int, m: int) -> torch.Tensor:
    if not 0 < n < m:
        raise PruneConfigError(f"N:M needs 0 < N < M; got {n}:{m}.")
    rows = w.reshape(w.shape[0], -1)
    if rows.shape[1] % m:
        return torch.ones_like(w, dtype=torch.bool)  # input size not a multiple of M: left dense
    groups = rows.abs().reshape(rows.shape[0], -1, m)
    keep = torch.zeros_like(groups, dtype=torch.bool)
    keep.scatter_(2, groups.topk(n, dim=2).indices, True)
    return keep.reshape(w.shape)


@torch.no_grad()
def apply_masks(model: nn.Module, masks: Masks) -> None:
    params = dict(model.named_parameters())
    for name, mask in masks.items():
        params[name].mul_(mask.to(params[name].dtype))


def sparsity_report(model: nn.Module, skip: Sequence[str] = ()) -> dict[str, Any]:
    """Fraction of exactly-zero weights, per layer and overall (Linear and Conv weights only)."""
    layers = {}
    zeros = total = 0
    for name, w in prunable_weights(model, skip).items():
        z = int((w == 0).sum())
        layers[name] = round(z / w.numel(), 4)
        zeros += z
        total += w.numel()
    return {
        "sparsity": round(zeros / max(total, 1), 4),
        "zeros": zeros,
        "weights": total,
        "layers": layers,
        "note": "zeros in dense tensors: no CPU speed-up, smaller only when compressed",
    }


class GradualMagnitudeSparsity(Callback):
    """Global magnitude pruning on the cubic schedule during fine-tuning (or N:M from ``start_step``).

    final: target sparsity; steps are optimizer steps; end_step defaults to 80% of training.
    """

    def __init__(self, final: float = 0.5, *, start_step: int = 0, end_step: int | None = None, frequency: int = 100,
                 initial: float = 0.0, n_m: tuple[int, int] | None = None, skip: Sequence[str] = ()) -> None:
        if not 0.0 <= final < 1.0 or frequency < 1:
            raise PruneConfigError(f"GradualMagnitudeSparsity needs 0 <= final < 1 and frequency >= 1; got {final}, {frequency}.")
        self.final, self.start_step, self.end_step, self.frequency = final, start_step, end_step, frequency
        self.initial, self.n_m, self.skip = initial, n_m, tuple(skip)
        self._masks: Masks | None = None
        self.current = initial

    def _end(self, state: TrainState) -> int:
        return self.end_step if self.end_step is not None else max(self.start_step + 1, int(0.8 * state.total_steps))

    def target(self, state: TrainState) -> float:
        return cubic_sparsity(state.step, self.final, self.start_step, self._end(state), self.initial)

    def on_train_start(self, state: TrainState) -> None:
        self._update(state, force=True)

    def on_step_end(self, state: TrainState) -> None:
        due = state.step >= self.start_step and (state.step - self.start_step) % self.frequency == 0
        if due and state.step <= self._end(state) + self.frequency:
            self._update(state)
        elif self._masks is not None:
            apply_masks(state.model, self._masks)

    def on_epoch_end(self, state: TrainState) -> None:
        state.metrics["sparsity"] = round(self.current, 4) if self.n_m is None else sparsity_report(state.model, self.skip)["sparsity"]
        # Until the target is reached the weights are not the final model's: keep-best must not
        # pick (and reload) a less sparse epoch.
        state.provisional = self.n_m is None and self.current < self.final - 1e-9

    def on_train_end(self, state: TrainState) -> None:
        if self._masks is not None:
            apply_masks(state.model, self._masks)  # fold: the zeros stay, the masks go
        self._masks = None
        state.metrics["sparsity"] = state.summary["sparsity"] = sparsity_report(state.model, self.skip)["sparsity"]

    def _update(self, state: TrainState, force: bool = False) -> None:
        if state.step < self.start_step and not force:
            return
        if self.n_m is not None:
            if state.step >= self.start_step:
                self._masks = magnitude_masks(state.model, 0.0, n_m=self.n_m, skip=self.skip)
        else:
            self.current = self.target(state)
            self._masks = magnitude_masks(state.model, self.current, skip=self.skip)
        if self._masks is not None:
            apply_masks(state.model, self._masks)

    def state_dict(self) -> dict[str, Any]:
        # Masks are not saved: masked weights are exactly zero, so recomputing from magnitudes restores them.
        return {"current": self.current}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.current = float(state.get("current", self.initial))


class IterativePruning(Callback):
    """Prune -> fine-tune -> prune: removes channels at the start of the given epochs so that the
    last one reaches the target overall. With ``ratio`` each step removes the same fraction of the
    channels left; with ``target_macs``/``target_params``/``target_latency`` (fraction kept) each step
    keeps the same fraction of what the model had before it, so the steps multiply to the target. A latency
    step measures the model it is given; so that its errors do not multiply, step k aims at target^(k/N) of the
    original's latency over what the steps before it measured (clamped to [0.01, 0.99])."""

    def __init__(self, example_inputs: Any, ratio: float | Mapping[str, float] | None = None, epochs: Sequence[int] = (0,), *,
                 target_macs: float | None = None, target_params: float | None = None, target_latency: float | None = None,
                 **prune_kwargs: Any) -> None:
        given = {k: v for k, v in (("ratio", ratio), ("target_macs", target_macs), ("target_params", target_params),
                                   ("target_latency", target_latency)) if v is not None}
        if len(given) != 1 or not epochs:
            raise PruneConfigError("IterativePruning needs exactly one of ratio, target_macs, target_params, target_latency and at least one "
                                   f"epoch; got {given}, {list(epochs)}.")
        (self.target_key, target), = given.items()
        targets = dict(target) if isinstance(target, Mapping) else {"": target}  # ratio may be {module pattern: ratio}, as for prune()
        bad = {k: v for k, v in targets.items() if not (isinstance(v, (int, float)) and 0.0 < v < 1.0)}
        if bad or (isinstance(target, Mapping) and self.target_key != "ratio"):
            raise PruneConfigError(f"IterativePruning: {self.target_key} must be in (0, 1) (per pattern for a ratio dict); got {target}.")
        self.example_inputs = example_inputs
        self.epochs = sorted(set(int(e) for e in epochs))
        n = len(self.epochs)
        blocks = getattr(prune_kwargs.get("latency"), "blocks", 0)
        if n > 1 and blocks:
            raise PruneConfigError(f"IterativePruning: latency.blocks={blocks} removes whole blocks in one shot, and steps would "
                                   "judge them on a model already narrowed; prune in one step (one epoch), or set latency.blocks to 0.")

        def per_step(value: float) -> float:
            return 1.0 - (1.0 - value) ** (1.0 / n) if self.target_key == "ratio" else value ** (1.0 / n)

        steps = {k: per_step(v) for k, v in targets.items()}
        self.step_value = steps if isinstance(target, Mapping) else steps[""]
        self.prune_kwargs = prune_kwargs
        self.target = target
        self.done: list[int] = []
        self.measured: list[float] = []  # latency steps: the fraction of its input's latency each step measured

    def on_epoch_start(self, state: TrainState) -> None:
        if state.epoch in self.epochs and state.epoch not in self.done:
            from slimforge.prune.structured import prune
            from slimforge.train.evaluate import move_to

            device = next(state.model.parameters()).device
            inputs = move_to(self.example_inputs, device)
            state.model = prune(state.model, inputs, **{self.target_key: self._next_value()}, **self.prune_kwargs)
            state.rebuild_optimizer = True
            self.done.append(state.epoch)
            if self.target_key == "target_latency":
                from slimforge.artifacts import get_spec

                self.measured.append(float(get_spec(state.model).edits[-1]["latency"]["measured"]))

    def _next_value(self) -> Any:
        if self.target_key != "target_latency" or not self.measured:
            return self.step_value
        goal = self.target ** ((len(self.measured) + 1) / len(self.epochs))  # of the original's latency, after this step
        return min(0.99, max(0.01, goal / math.prod(self.measured)))

    def state_dict(self) -> dict[str, Any]:
        return {"done": list(self.done), "measured": list(self.measured)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.done = [int(e) for e in state.get("done", [])]
        self.measured = [float(m) for m in state.get("measured", [])]
