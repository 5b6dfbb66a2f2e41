"""SmoothQuant for Linear layers: move activation outliers into the weights before int8.

Int8 activations share one scale per tensor, so a few input channels with large values (common
in transformers after LayerNorm and GELU) cost every other channel its precision. SmoothQuant
(Xiao et al., 2023) divides input channel ``j`` of each Linear by

    s_j = max|X_j| ** alpha / max|W[:, j]| ** (1 - alpha)

and multiplies the weight's column ``j`` by ``s_j``, which leaves the fp32 layer unchanged and
balances the two ranges; ``alpha`` (0..1) is how much of the difficulty moves to the weights.

The division runs as a forward pre-hook holding ``1 / s`` (a multiply before the layer; no
module is replaced, so layer names stay as they were and exported graphs carry the multiply).
The hooks survive ``torch.ao``'s module swap and ``torch.export``.

Two refinements keep the multiplies few, since in a post-LayerNorm transformer (BERT) they
cannot be folded into the LayerNorm, whose output also feeds the residual path:

- Linears that read the same input tensor (a transformer's query, key and value) share one
  ``s``, taken over all their weights, and one multiply per input, as the paper does for QKV.
- A layer (or such a group) is smoothed only where smoothing cuts its own simulated int8 output
  error on the calibration inputs by at least ``min_gain`` (10% by default): layers without
  outlier channels (a classifier head, most MLPs) keep their input as it is.

    scales = smoothing_scales(model, batches, alpha=0.8)       # layer -> s, (in_features,)
    smoothed = apply_smoothing(model, scales)                  # a copy; fp32 outputs unchanged
    original, scales = smoothing_record(smoothed)              # what an artifact saves
"""

from __future__ import annotations

import copy
import weakref
from collections import Counter
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

from slimforge.errors import ConfigError

MIN_GAIN = 0.1  # default: smooth a layer only where its simulated int8 error drops by 10%


class ScaleInput:
    """Forward pre-hook: multiplies a Linear's input by ``inv_scale`` (in_features,).

    One hook may serve ``users`` Linears that read the same input tensor (the group
    :func:`smoothing_scales` observed): without autograd, the first of them multiplies and the
    others reuse that product while the input is the same tensor object, unchanged since (its
    version counter; inference tensors have none, and the group was formed only from layers that
    read their input unchanged; no product outlives a call of the whole model). With autograd,
    and under ``torch.compile``/``torch.export`` tracing, every user multiplies (ONNX Runtime's
    optimiser merges the repeats; an FX graph keeps them).
    """

    def __init__(self, inv_scale: torch.Tensor, users: int = 1) -> None:
        self.inv_scale = inv_scale
        self.users = users
        self._cache: tuple[Any, int | None, torch.Tensor, int] | None = None  # (weakref to input, its version, product, uses left)

    def __call__(self, module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
        x = args[0]
        if self.users == 1 or torch.is_grad_enabled() or torch.compiler.is_compiling():
            self._cache = None
            return (self._scale(x), *args[1:])
        cached = self._cache
        if cached is not None and cached[0]() is x and cached[1] == _version(x):
            self._cache = (*cached[:3], cached[3] - 1) if cached[3] > 1 else None  # the last user lets go of it
            return (cached[2], *args[1:])
        scaled = self._scale(x)
        self._cache = (weakref.ref(x), _version(x), scaled, self.users - 1)
        return (scaled, *args[1:])

    def _scale(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.inv_scale.to(device=x.device, dtype=x.dtype)  # follows .to()/.half() of the model

    def __deepcopy__(self, memo: dict[int, Any]) -> ScaleInput:
        return ScaleInput(copy.deepcopy(self.inv_scale, memo), self.users)  # without the cached product

    def __getstate__(self) -> dict[str, Any]:
        return {"inv_scale": self.inv_scale, "users": self.users, "_cache": None}


class _ClearProducts:
    """Forward pre- and post-hook of the whole smoothed model: drops the products its shared hooks hold."""

    def __init__(self, hooks: list[ScaleInput]) -> None:
        self.hooks = hooks

    def __call__(self, module: nn.Module, *args: Any) -> None:
        for hook in self.hooks:
            hook._cache = None


def _version(x: torch.Tensor) -> int | None:
    """How often ``x`` was changed in place; None for inference tensors, which do not count."""
    return None if x.is_inference() else x._version


@torch.no_grad()
def smoothing_scales(
    model: nn.Module, batches: Iterable[Any], alpha: float, layers: Iterable[str] | None = None,
    min_gain: float | None = MIN_GAIN, weight_bits: int = 8, per_channel: bool = True,
) -> dict[str, torch.Tensor]:
    """Per-input-channel smoothing factors ``s`` (in_features,) of each Linear in ``layers`` (default all).

    batches: model inputs (tensors or dicts) run once each to measure ``max|X_j|``. Linears whose
    weight is tied to another module or parametrized, or that the batches never reach, are left out.
    Linears that read the same input tensor get the same ``s`` (one tensor object;
    :func:`apply_smoothing` then multiplies once for all of them). ``min_gain``: keep only the
    layers (groups) whose simulated int8 output error on the first batch drops by at least this
    fraction; None keeps all. weight_bits, per_channel: the weights of that simulation (7 bits
    where the backend narrows them, ``reduce_range``); activations are 8-bit per tensor.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"SmoothQuant alpha must be in [0, 1], got {alpha}.")
    if min_gain is not None and not 0.0 <= min_gain < 1.0:
        raise ConfigError(f"SmoothQuant min_gain must be in [0, 1) or None, got {min_gain}.")
    linears = {name: m for name, m in model.named_modules() if isinstance(m, nn.Linear)}
    # Left out: tied weights (scaling one would change the other module) and parametrized ones
    # (weight norm, fake quantization: the in-place scaling would hit a recomputed copy).
    shared = _shared_weights(model)
    names = [
        n for n in (linears if layers is None else layers)
        if n in linears and id(linears[n].weight) not in shared and not parametrize.is_parametrized(linears[n], "weight")
    ]
    batches = [_detached_inputs(batch) for batch in batches]
    amax, readers = _observe_inputs(model, {name: linears[name] for name in names}, batches)
    groups, scales = _sibling_groups([n for n in names if n in amax], readers), {}  # never reached: nothing to balance
    for group in groups:
        x_max = torch.stack([amax[n] for n in group]).amax(0)
        w_max = torch.stack([linears[n].weight.detach().float().abs().amax(0) for n in group]).amax(0)
        s = x_max.clamp(min=1e-5) ** alpha / w_max.clamp(min=1e-5) ** (1 - alpha)
        s = torch.where((x_max > 0) & (w_max > 0), s, torch.ones_like(s))  # a channel zero in data or weights keeps 1
        scales.update({n: s for n in group})
    if min_gain is None or not scales:
        return scales
    errors = _int8_errors(model, {n: linears[n] for n in scales}, scales, batches, weight_bits, per_channel)
    kept = {}
    for group in groups:
        plain = sum(errors.get(n, (0.0, 0.0))[0] for n in group)  # never measured: nothing speaks against it
        smoothed = sum(errors.get(n, (0.0, 0.0))[1] for n in group)
        if smoothed <= (1.0 - min_gain) * plain:
            kept.update({n: scales[n] for n in group})
    return kept


def _detached_inputs(batch: Any) -> Any:
    """``batch`` with inference tensors cloned into normal ones (which count changes in place)."""
    from torch.utils._pytree import tree_map

    with torch.inference_mode(False):
        return tree_map(lambda t: t.clone() if isinstance(t, torch.Tensor) and t.is_inference() else t, batch)


def _observe_inputs(
    model: nn.Module, linears: dict[str, nn.Linear], batches: list[Any],
) -> tuple[dict[str, torch.Tensor], list[list[str]]]:
    """Runs the batches: per layer ``max|X_j|``, and the groups of layers that read one input tensor, unchanged in between."""
    amax: dict[str, torch.Tensor] = {}
    readers: list[list[str]] = []
    current: dict[int, tuple[Any, int | None, list[str]]] = {}  # id(input) -> (weakref to it, its version, readers)

    def observe(name: str):
        def hook(module: nn.Module, args: tuple[Any, ...]) -> None:
            x = args[0]
            if x.numel() == 0:  # an empty batch says nothing about the ranges
                return
            seen = x.detach().float().abs().reshape(-1, x.shape[-1]).amax(0)
            amax[name] = torch.maximum(amax[name], seen) if name in amax else seen
            entry = current.get(id(x))
            if entry is not None and entry[0]() is x and entry[1] == _version(x):
                entry[2].append(name)
            else:  # a new tensor, or this one changed in place since its last reader
                if entry is not None:
                    readers.append(entry[2])
                current[id(x)] = (weakref.ref(x), _version(x), [name])

        return hook

    handles = [linear.register_forward_pre_hook(observe(name)) for name, linear in linears.items()]
    try:
        model.eval()
        for batch in batches:  # outside inference mode, so that the model's own tensors count changes in place
            with torch.inference_mode(False), torch.no_grad():
                model(batch)
            readers.extend(entry[2] for entry in current.values())
            current.clear()
    finally:
        for handle in handles:
            handle.remove()
    return amax, readers


def _sibling_groups(names: list[str], readers: list[list[str]]) -> list[list[str]]:
    """``names`` split into groups of layers that read one input tensor together on every call, in order."""
    together = {n: set(names) for n in names}
    for group in readers:
        for n in group:
            if n in together:
                together[n] &= set(group)
    groups, done = [], set()
    for n in names:
        if n not in done:
            group = [m for m in names if m in together[n] and n in together[m]]
            groups.append(group)
            done.update(group)
    return groups


_GAIN_ROWS = 4096  # input rows per layer that judge the gain


def _int8_errors(
    model: nn.Module, linears: dict[str, nn.Linear], scales: dict[str, torch.Tensor], batches: list[Any], weight_bits: int, per_channel: bool,
) -> dict[str, tuple[float, float]]:
    """Per layer, the simulated int8 error of its output on the first input it gets (up to
    _GAIN_ROWS rows), plain and smoothed; batches run until every layer has had one."""
    errors: dict[str, tuple[float, float]] = {}

    def measure(name: str):
        def hook(module: nn.Linear, args: tuple[Any, ...]) -> None:
            if name not in errors and args[0].numel():
                x = args[0].detach().float().reshape(-1, module.in_features)[:_GAIN_ROWS]
                weight, s = module.weight.detach().float(), scales[name]
                exact = x @ weight.T  # the same for both: smoothing is exact in fp32
                errors[name] = tuple(_int8_error(a, w, exact, weight_bits, per_channel) for a, w in ((x, weight), (x / s, weight * s)))

        return hook

    handles = [linear.register_forward_pre_hook(measure(name)) for name, linear in linears.items()]
    try:
        for batch in batches:
            with torch.no_grad():
                model(batch)
            if len(errors) == len(linears):
                break
    finally:
        for handle in handles:
            handle.remove()
    return errors


def _int8_error(x: torch.Tensor, weight: torch.Tensor, exact: torch.Tensor, weight_bits: int, per_channel: bool) -> float:
    """Relative error against ``exact`` of ``x @ weight.T`` with 8-bit per-tensor activations and symmetric weights."""
    lo, hi = min(float(x.min()), 0.0), max(float(x.max()), 0.0)
    x_scale = max(hi - lo, 1e-12) / 255
    zero = round(-lo / x_scale)
    xq = ((x / x_scale).round() + zero).clamp(0, 255).sub(zero) * x_scale
    top = 2 ** (weight_bits - 1) - 1
    w_max = weight.abs().amax(1, keepdim=True) if per_channel else weight.abs().amax()
    w_scale = w_max.clamp(min=1e-12) / top
    wq = (weight / w_scale).round().clamp(-top - 1, top) * w_scale
    return float((xq @ wq.T - exact).norm() / exact.norm().clamp(min=1e-12))


@torch.no_grad()
def apply_smoothing(model: nn.Module, scales: dict[str, torch.Tensor]) -> nn.Module:
    """A copy of ``model`` whose Linear ``name`` has weight columns times ``scales[name]`` and input divided by it.

    The copy remembers the unsmoothed model and the scales (:func:`smoothing_record`), which is
    what an artifact saves: its fp32 weights stay the model's own, and loading re-applies the
    same scales to the same weights, giving the same smoothed weights bit for bit. Layers given
    one scale tensor (object) share one hook, which multiplies once per input tensor they share.
    """
    smoothed = copy.deepcopy(model)
    users = Counter(id(s) for s in scales.values())
    hooks: dict[int, ScaleInput] = {}
    for name, s in scales.items():
        try:
            linear = smoothed.get_submodule(name)
        except AttributeError:
            raise ConfigError(f"Smoothing scales name layer {name!r}, which the model does not have.") from None
        if not isinstance(linear, nn.Linear) or s.shape != (linear.in_features,):
            raise ConfigError(f"Smoothing scales for {name!r} do not fit it: {tuple(s.shape)} for {linear}.")
        linear.weight.mul_(s.to(linear.weight.dtype))
        if id(s) not in hooks:
            hooks[id(s)] = ScaleInput((1.0 / s).to(linear.weight.dtype), users[id(s)])
        linear.register_forward_pre_hook(hooks[id(s)])
    shared = [hook for hook in hooks.values() if hook.users > 1]
    if shared:  # no product outlives a call of the whole model (nor one cut short by an exception)
        clear = _ClearProducts(shared)
        smoothed.register_forward_pre_hook(clear)
        smoothed.register_forward_hook(clear)
    smoothed.__dict__[_RECORD] = _Record((model, dict(scales)))
    return smoothed


_RECORD = "_slimforge_smoothing"


class _Record(tuple):
    """(unsmoothed model, scales), shared by every copy of a smoothed model: read-only, so
    ``copy.deepcopy`` (quantize_dynamic, each fallback trial) need not copy the fp32 model again."""

    def __deepcopy__(self, memo: dict[int, Any]) -> _Record:
        return self


def smoothing_record(model: nn.Module) -> tuple[nn.Module, dict[str, torch.Tensor]] | None:
    """(the unsmoothed model, layer -> s) for a model made by :func:`apply_smoothing`, else None."""
    return model.__dict__.get(_RECORD)


def scale_groups(scales: dict[str, torch.Tensor]) -> list[list[str]]:
    """The layers that share one scale tensor, groups of two or more (what an artifact records)."""
    groups: dict[int, list[str]] = {}
    for name, s in scales.items():
        groups.setdefault(id(s), []).append(name)
    return [names for names in groups.values() if len(names) > 1]


def join_groups(scales: dict[str, torch.Tensor], groups: list[list[str]]) -> dict[str, torch.Tensor]:
    """``scales`` with each group's layers given its first layer's tensor (the inverse of :func:`scale_groups`)."""
    joined = dict(scales)
    for names in groups:
        missing = [n for n in names if n not in scales]
        if missing or any(not torch.equal(scales[n], scales[names[0]]) for n in names):
            raise ConfigError(f"Smoothing group {names} does not match the scales: {'missing ' + str(missing) if missing else 'unequal scales'}.")
        joined.update({n: scales[names[0]] for n in names})
    return joined


def _shared_weights(model: nn.Module) -> set[int]:
    """ids of the parameters that more than one module holds."""
    seen: dict[int, int] = {}
    for _, param in model.named_parameters(remove_duplicate=False):
        seen[id(param)] = seen.get(id(param), 0) + 1
    return {pid for pid, count in seen.items() if count > 1}
