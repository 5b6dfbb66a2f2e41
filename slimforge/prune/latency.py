"""Latency-aware structured pruning (HALP, Shen et al., NeurIPS 2022), for CPUs.

MACs predict CPU latency poorly (a convolution with 49 channels can cost more per MAC than one
with 48). Here the cost of a channel is measured instead:

1. **Latency table.** Every convolution, linear and batch-norm layer (the latter with a ReLU
   after it, standing for the elementwise passes over a layer's output) whose width pruning can change is timed
   alone, with its real input shape, at the batch size, thread count and memory format of the
   deployment, on a grid of widths that are multiples of ``round_to`` (the widths pruning can
   leave). The table is cached as JSON under ``$SLIMFORGE_CACHE/latency/``, one file per machine,
   model and batch size, validated on read and rebuilt (with a warning) when it is not valid.
2. **Selection** (``LatencySettings.allocation``). ``"uniform"`` (the default): every group loses the
   same share of its units, least important first in whole ``round_to`` steps, the share bisected on the
   table until the predicted latency reaches the target; what rounding leaves of the budget goes back a
   step per group, cheapest first. ``"importance"`` (HALP's greedy): repeatedly remove from the group
   whose next ``round_to`` channels cost the least importance per millisecond saved (the latency saved is
   read from the table by bilinear interpolation), a unit's importance being its score over its group's
   mean times the number of layers its group touches (HALP sums a coupled channel's importance over its
   layers). ``"sensitivity"``: the same greedy on each group's measured loss curve. Measured on the
   issue-22 reference at 0.3 of its latency, the greedy ones cut the expensive 28x28 stage to a quarter and
   lost 0.8-1.7 points after the same fine-tuning to the uniform share, which matched MAC-targeted pruning.
3. **Verification.** The pruned model is built and timed against the original (interleaved,
   medians). When the measured fraction is off the target by more than ``tolerance`` (the table
   leaves out BatchNorm, activations and memory traffic), a new aim is read off a straight line
   of measured against predicted fraction (:func:`next_goal`) and the selection repeated, up to
   ``max_rounds`` times; the closest result
   is kept and its numbers recorded in the pruning plan under ``latency``.

    model = slimforge.prune(model, example, target_latency=0.3, latency=LatencySettings(batch_size=32))
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import os
import platform
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, ValidationError
from torch import nn

from slimforge.prune._capture import PIN
from slimforge.prune._graph import DependencyGraph, unit_step
from slimforge.prune._query_groups import balance_groups
from slimforge.prune.errors import PruneConfigError, PruningError

log = logging.getLogger(__name__)

CACHE_FORMAT = "slimforge-latency-table"
CACHE_VERSION = 1


@dataclass(frozen=True)
class LatencySettings:
    """How latency is measured for ``target_latency`` pruning.

    batch_size / threads / channels_last: the deployment the latency is for (channels_last None:
    the faster layout for this model, decided by timing both, for 4-D inputs); grid: widths timed
    per layer dimension (multiples of round_to, the full width included); steps: where the latency curve is a
    staircase of 2 or 4 round_to steps (AVX-512 kernels block output channels by 16: 24 channels cost what 32
    do), keep widths on its treads (:func:`latency_step`; off by default: on the issue-22 reference it cost 0.44
    and 0.15 points at equal latency, two seeds); repeats: interleaved
    timed calls per width (medians); tolerance: relative error of the measured fraction that
    triggers another round, at most max_rounds; cache_dir: None for ``$SLIMFORGE_CACHE/latency``;
    blocks: how many whole residual blocks are removed before the rest is narrowed to the same target (those whose
    removal alone moves the outputs least on calibration inputs, which it needs; :mod:`slimforge.prune.depth`).
    """

    batch_size: int = 32
    threads: int = 1
    channels_last: bool | None = None
    grid: int = 5
    repeats: int = 7
    tolerance: float = 0.1
    max_rounds: int = 4
    cache_dir: str | None = None
    allocation: str = "uniform"  # how the cut is spread over groups: "uniform", "importance" or "sensitivity"
    steps: bool = False  # widths in the steps the latency curve has (2x, 4x round_to where measured so), see latency_step
    blocks: int = 0  # whole blocks removed first (slimforge.prune.depth)

    def validate(self) -> None:
        for key, low in (("batch_size", 1), ("threads", 1), ("grid", 2), ("repeats", 1), ("max_rounds", 1)):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise PruneConfigError(f"latency.{key} must be an integer >= {low}; got {value!r}.")
        if not 0.0 < self.tolerance < 1.0:
            raise PruneConfigError(f"latency.tolerance is a relative error in (0, 1); got {self.tolerance}.")
        if isinstance(self.blocks, bool) or not isinstance(self.blocks, int) or self.blocks < 0:
            raise PruneConfigError(f"latency.blocks is a number of blocks >= 0; got {self.blocks!r}.")
        if self.allocation not in ALLOCATIONS:
            raise PruneConfigError(f"latency.allocation is one of {', '.join(ALLOCATIONS)}; got {self.allocation!r}.")


# "uniform" (default): every group loses the same share of its units, the share chosen from the latency table
# (select_uniform); "importance": HALP's greedy on each group's scores over their mean per millisecond (cannot
# compare layers); "sensitivity": the greedy on each group's measured loss curve (slimforge.prune.sensitivity).
# On the issue-22 reference the uniform allocation matched MAC-targeted pruning at equal latency and the two
# greedy ones lost 0.8-1.7 points to it (BENCHMARKS.md, "Recovery at equal measured latency").
ALLOCATIONS = ("uniform", "importance", "sensitivity")


# ---------------------------------------------------------------- the layers a latency table covers


@dataclass(frozen=True)
class LayerSpec:
    """One convolution or linear layer as called in the model: enough to rebuild and time it alone.

    kind: "conv1d"/"conv2d"/"conv3d"/"linear"/"batchnorm" (timed with a ReLU after it); cin/cout: full widths; inner: the input's shape
    after (batch, channels) for a convolution, between batch and features for a linear layer.
    cin_grid / cout_grid: the widths timed (one value where pruning cannot change that dimension).
    out_slot / in_slot: the dependency graph slots of the weight's dimensions 0 and 1.
    """

    name: str
    kind: str
    cin: int
    cout: int
    groups: int
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...] | str
    dilation: tuple[int, ...]
    inner: tuple[int, ...]
    cin_grid: tuple[int, ...]
    cout_grid: tuple[int, ...]
    out_slot: int | None
    in_slot: int | None

    @property
    def depthwise(self) -> bool:
        return self.kind != "linear" and self.groups > 1 and self.groups == self.cin

    def signature(self, with_name: bool = True) -> str:
        """What the timings depend on (not the graph slots), with the layer's name for the cache to check on read."""
        d = asdict(self)
        d.pop("out_slot"), d.pop("in_slot")
        if not with_name:
            d.pop("name")
        return json.dumps(d, sort_keys=True)

    def widths(self, kept: dict[int, int]) -> tuple[int, int]:
        """(cin, cout) given the kept positions per slot."""
        cout = kept.get(self.out_slot, self.cout) if self.out_slot is not None else self.cout
        if self.kind == "batchnorm" or (self.kind != "linear" and self.groups > 1):
            # Depthwise: the input width follows the output (the table's cin axis is one point).
            # Grouped otherwise: the input width is not modelled.
            return self.cin, cout
        cin = kept.get(self.in_slot, self.cin) if self.in_slot is not None else self.cin
        return cin, cout


def find_layers(model: nn.Module, graph: DependencyGraph, example: torch.Tensor, grid: int, round_to: int) -> list[LayerSpec]:
    """The conv, linear and batch-norm layers of ``model`` with their input shapes on ``example`` (batch, ...)."""
    shapes: dict[str, tuple[int, ...]] = {}
    hooks = []
    for name, module in model.named_modules():
        timed = (nn.Linear, nn.modules.conv._ConvNd, nn.modules.batchnorm._BatchNorm)
        if isinstance(module, timed) and not isinstance(module, nn.modules.conv._ConvTransposeNd):
            hooks.append(module.register_forward_hook(_shape_hook(shapes, name)))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(example)
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    slot_index = {(s.name, s.dim): i for i, s in enumerate(graph.slots)}
    prunable = [any(r != PIN for r in roots.tolist()) for roots in graph.roots]
    modules = dict(model.named_modules())
    layers = []
    for name, shape in shapes.items():
        module = modules[name]
        prefix = f"{name}." if name else ""
        weight = f"{prefix}weight" if getattr(module, "weight", None) is not None else f"{prefix}running_mean"
        out_slot, in_slot = slot_index.get((weight, 0)), slot_index.get((weight, 1))
        out_free = out_slot is not None and prunable[out_slot]
        in_free = in_slot is not None and prunable[in_slot]
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            spec = dict(kind="batchnorm", cin=module.num_features, cout=module.num_features, groups=1, kernel=(), stride=(),
                        padding=(), dilation=(), inner=tuple(shape[2:]))
        elif isinstance(module, nn.Linear):
            spec = dict(kind="linear", cin=module.in_features, cout=module.out_features, groups=1, kernel=(), stride=(),
                        padding=(), dilation=(), inner=tuple(shape[1:-1]))
        else:
            spec = dict(kind=f"conv{len(module.kernel_size)}d", cin=module.in_channels, cout=module.out_channels, groups=module.groups,
                        kernel=tuple(module.kernel_size), stride=tuple(module.stride),
                        padding=module.padding if isinstance(module.padding, str) else tuple(module.padding),
                        dilation=tuple(module.dilation), inner=tuple(shape[2:]))
        depthwise = spec["kind"] != "linear" and spec["groups"] > 1 and spec["groups"] == spec["cin"]
        grouped = spec["kind"] != "linear" and spec["groups"] > 1 and not depthwise
        one_width = depthwise or grouped or spec["kind"] == "batchnorm"  # the input width is the output's, or not modelled
        cout_grid = width_grid(spec["cout"], round_to, grid) if out_free and not grouped else (spec["cout"],)
        cin_grid = width_grid(spec["cin"], round_to, grid) if in_free and not one_width else (spec["cin"],)
        layers.append(LayerSpec(name, **spec, cin_grid=cin_grid, cout_grid=cout_grid, out_slot=out_slot, in_slot=in_slot))
    return layers


def _shape_hook(shapes: dict[str, tuple[int, ...]], name: str) -> Callable:
    def hook(module: nn.Module, inputs: tuple, output: Any) -> None:
        shapes.setdefault(name, tuple(inputs[0].shape))  # a layer called twice is timed at its first call

    return hook


def width_grid(full: int, round_to: int, points: int) -> tuple[int, ...]:
    """``points`` widths from round_to up to ``full``, all multiples of round_to except ``full`` itself."""
    step = max(1, round_to)
    if full <= step:
        return (full,)
    multiples = list(range(step, full, step)) + [full]
    if len(multiples) <= points:
        return tuple(multiples)
    picks = {multiples[round(i * (len(multiples) - 1) / (points - 1))] for i in range(points)}
    return tuple(sorted(picks))


# ---------------------------------------------------------------- timing and the table


Timer = Callable[[LayerSpec, Sequence[tuple[int, int]], "LatencySettings"], list[float]]


def time_layer(spec: LayerSpec, points: Sequence[tuple[int, int]], settings: LatencySettings) -> list[float]:
    """Median milliseconds of ``spec`` rebuilt at each (cin, cout) of ``points``; the points are timed
    interleaved (one call each per round, ``settings.repeats`` rounds, after one warm-up call)."""
    with torch.random.fork_rng(devices=[]):  # the layers' random init must not move the caller's RNG
        torch.manual_seed(0)
        calls = [_layer_call(spec, cin, cout, settings) for cin, cout in points]
    times: list[list[float]] = [[] for _ in calls]
    previous = torch.get_num_threads()
    torch.set_num_threads(settings.threads)
    try:
        with torch.inference_mode():
            for call in calls:
                call()
            for _ in range(settings.repeats):
                for i, call in enumerate(calls):
                    t0 = time.perf_counter()
                    call()
                    times[i].append((time.perf_counter() - t0) * 1000.0)
    finally:
        torch.set_num_threads(previous)
    return [statistics.median(t) for t in times]


def _layer_call(spec: LayerSpec, cin: int, cout: int, settings: LatencySettings) -> Callable[[], Any]:
    bs = settings.batch_size
    if spec.kind == "batchnorm":
        # A normalisation and the activation after it: the elementwise passes over a layer's
        # output, which cost in proportion to its channels too (a fifth of ResNet-20 x2's time).
        layer = {0: nn.BatchNorm1d, 1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}[len(spec.inner)](cout).eval()
        x = torch.randn(bs, cout, *spec.inner)
        if settings.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return lambda: torch.relu(layer(x))
    if spec.kind == "linear":
        layer = nn.Linear(cin, cout)
        x = torch.randn(bs, *spec.inner, cin)
    else:
        conv = {"conv1d": nn.Conv1d, "conv2d": nn.Conv2d, "conv3d": nn.Conv3d}[spec.kind]
        if spec.depthwise:  # one group per input channel, each with cout/cin outputs
            cin = max(1, cout * spec.cin // spec.cout)
        groups = cin if spec.depthwise else spec.groups
        padding = spec.padding if isinstance(spec.padding, str) else tuple(spec.padding)
        layer = conv(cin, cout, tuple(spec.kernel), tuple(spec.stride), padding, tuple(spec.dilation), groups)
        x = torch.randn(bs, cin, *spec.inner)
        if settings.channels_last and x.dim() == 4:
            layer = layer.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
    layer.eval()
    return lambda: layer(x)


@dataclass(frozen=True)
class LayerTable:
    """Milliseconds of one layer on its (cin_grid x cout_grid) widths; ``ms[i][j]`` at (cin_grid[i], cout_grid[j])."""

    cin_grid: tuple[int, ...]
    cout_grid: tuple[int, ...]
    ms: tuple[tuple[float, ...], ...]

    def predict(self, cin: int, cout: int) -> float:
        """Bilinear interpolation on the grid (proportional outside it)."""
        return _interpolate(self.cin_grid, [_interpolate(self.cout_grid, row, cout) for row in self.ms], cin)


def _interpolate(grid: Sequence[int], values: Sequence[float], x: int) -> float:
    """Piecewise-linear through (grid, values); proportional to x outside the grid (a width of 0 costs 0)."""
    if x <= grid[0]:
        return values[0] * x / grid[0]
    if x >= grid[-1]:
        return values[-1] * x / grid[-1]
    k = next(k for k in range(len(grid) - 1) if grid[k] <= x <= grid[k + 1])
    f = (x - grid[k]) / (grid[k + 1] - grid[k])
    return values[k] * (1 - f) + values[k + 1] * f


def measure_tables(layers: Sequence[LayerSpec], settings: LatencySettings, timer: Timer = time_layer) -> dict[str, LayerTable]:
    """{layer name: table}. Layers of the same shape (a ResNet stage's convolutions) are timed once
    and share the table: on a busy machine, separate timings of identical layers differed by up to
    50%, and the greedy then pruned one and kept its twin for no real reason."""
    tables: dict[str, LayerTable] = {}
    by_shape: dict[str, LayerTable] = {}
    for spec in layers:
        key = spec.signature(with_name=False)
        if key not in by_shape:
            points = [(ci, co) for ci in spec.cin_grid for co in spec.cout_grid]
            ms = timer(spec, points, settings)
            width = len(spec.cout_grid)
            by_shape[key] = LayerTable(spec.cin_grid, spec.cout_grid, tuple(tuple(ms[i * width:(i + 1) * width]) for i in range(len(spec.cin_grid))))
        tables[spec.name] = by_shape[key]
    return tables


def monotone(table: LayerTable) -> LayerTable:
    """``table`` with each time raised to the largest at smaller widths (running max along both axes).

    Between grid points that are all multiples of round_to, a wider layer being faster is timing
    noise far more often than a real effect; left in, it makes removing channels look like it costs
    time, and the greedy would never take that step."""
    ms = np.maximum.accumulate(np.maximum.accumulate(np.asarray(table.ms, dtype=np.float64), axis=0), axis=1)
    return LayerTable(table.cin_grid, table.cout_grid, tuple(tuple(float(v) for v in row) for row in ms))


# ---------------------------------------------------------------- the cache


class _CachedLayer(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    signature: str
    cin: list[int]
    cout: list[int]
    ms: list[list[float]]


class _CacheFile(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    format: str
    version: int
    machine: dict[str, str]
    batch_size: int
    threads: int
    channels_last: bool
    layers: dict[str, _CachedLayer]


def machine_description() -> dict[str, str]:
    """What latency depends on besides the model: this machine (host name), its CPU, ISA, cores and torch build."""
    from slimforge.measure import machine_description as cpu_description

    return {"node": platform.node(), **{k: str(v) for k, v in cpu_description().items()}}


def cache_path(layers: Sequence[LayerSpec], settings: LatencySettings, channels_last: bool) -> Path:
    """``<cache>/latency/<machine>-<model>-bs<batch>-t<threads>[-cl].json``; the model part hashes every layer's signature."""
    root = Path(settings.cache_dir) if settings.cache_dir else Path(os.environ.get("SLIMFORGE_CACHE", Path.home() / ".cache" / "slimforge")) / "latency"
    machine = hashlib.sha256(json.dumps(machine_description(), sort_keys=True).encode()).hexdigest()[:12]
    model = hashlib.sha256("\n".join(f"{s.name}={s.signature()}" for s in layers).encode()).hexdigest()[:12]
    return root / f"{machine}-{model}-bs{settings.batch_size}-t{settings.threads}{'-cl' if channels_last else ''}.json"


def load_or_measure_tables(layers: Sequence[LayerSpec], settings: LatencySettings, channels_last: bool,
                           timer: Timer = time_layer) -> dict[str, LayerTable]:
    """The cached table for these layers when the file is valid; else measure and write it."""
    path = cache_path(layers, settings, channels_last)
    if path.is_file():
        try:
            return read_tables(path, layers, settings, channels_last)
        except PruningError as exc:
            log.warning("%s; measuring the latency table again and replacing the file.", exc)
    timed = replace(settings, channels_last=channels_last)  # the layout decided for this model, not "auto"
    tables = measure_tables(layers, timed, timer)
    write_tables(path, layers, tables, timed)
    return tables


def write_tables(path: Path, layers: Sequence[LayerSpec], tables: dict[str, LayerTable], settings: LatencySettings) -> None:
    data = {"format": CACHE_FORMAT, "version": CACHE_VERSION, "machine": machine_description(), "batch_size": settings.batch_size,
            "threads": settings.threads, "channels_last": bool(settings.channels_last),
            "layers": {s.name: {"signature": s.signature(), "cin": list(tables[s.name].cin_grid), "cout": list(tables[s.name].cout_grid),
                                "ms": [list(r) for r in tables[s.name].ms]} for s in layers}}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def read_tables(path: Path, layers: Sequence[LayerSpec], settings: LatencySettings, channels_last: bool) -> dict[str, LayerTable]:
    """The tables in ``path``, after checking it is a latency table for exactly these layers and
    settings; anything else is a :class:`PruningError` naming the file and what is wrong."""
    try:
        data = _CacheFile.model_validate_json(path.read_bytes())
    except (ValidationError, OSError, UnicodeDecodeError) as exc:
        first = str(exc).strip().splitlines()
        raise PruningError(f"latency cache {path} is not a valid latency table ({first[0] if first else type(exc).__name__})") from None
    if data.format != CACHE_FORMAT or data.version != CACHE_VERSION:
        raise PruningError(f"latency cache {path} has format {data.format!r} version {data.version}, expected {CACHE_FORMAT!r} version {CACHE_VERSION}")
    want = (settings.batch_size, settings.threads, channels_last)
    if (data.batch_size, data.threads, data.channels_last) != want:
        raise PruningError(f"latency cache {path} is for (batch, threads, channels_last) {(data.batch_size, data.threads, data.channels_last)}, not {want}")
    tables = {}
    for spec in layers:
        entry = data.layers.get(spec.name)
        if entry is None or entry.signature != spec.signature():
            raise PruningError(f"latency cache {path} has no timings for layer {spec.name!r} as this model has it")
        shape_ok = tuple(entry.cin) == spec.cin_grid and tuple(entry.cout) == spec.cout_grid and len(entry.ms) == len(entry.cin) and all(
            len(r) == len(entry.cout) for r in entry.ms)
        if not shape_ok or not all(math.isfinite(v) and v >= 0 for r in entry.ms for v in r):
            raise PruningError(f"latency cache {path}: layer {spec.name!r} has a malformed grid or negative/non-finite times")
        tables[spec.name] = LayerTable(tuple(entry.cin), tuple(entry.cout), tuple(tuple(r) for r in entry.ms))
    return tables


# ---------------------------------------------------------------- greedy selection


def select_by_latency(graph: DependencyGraph, scores: Sequence[np.ndarray], layers: Sequence[LayerSpec], tables: dict[str, LayerTable],
                      target: float, round_to: int, costs: Sequence[np.ndarray] | None = None) -> tuple[set[int], float]:
    """Roots of the units to remove, and the predicted fraction of the latency left.

    Greedy on importance per millisecond: at each step every group offers its next ``round_to``
    channels (least important first); the offer with the least importance lost per millisecond
    saved is taken (a unit's importance: its score over its group's mean score, times the number of
    tabled layers the group touches), until the tabled layers' total is at most ``target`` x its value for the whole
    model. The rest of the model (normalisation, activations, pooling) is assumed to shrink in the
    same proportion: at the sizes measured its cost scales with the channels too, and
    :func:`choose_by_latency` corrects what this misses by measuring. Each group keeps at least one
    step of units; groups whose layers are not in the table are left alone. ``costs``: per group, per unit, what
    removing it costs in place of its normalised score (measured loss steps, :mod:`slimforge.prune.sensitivity`);
    units still go in ``scores`` order.
    """
    kept = {si: len(r) for si, r in enumerate(graph.roots)}
    occurrences = [Counter(r.tolist()) for r in graph.roots]
    by_slot = _layers_by_slot(layers)
    tables = {name: monotone(t) for name, t in tables.items()}
    current = {spec.name: tables[spec.name].predict(*spec.widths(kept)) for spec in layers}
    full_ms = sum(current.values())
    if full_ms <= 0:
        raise PruningError("target_latency: the model has no convolution or linear layer whose width pruning can change.")
    target_ms = target * full_ms
    offers = _offers(graph, scores, by_slot, round_to, costs)
    removed = [0] * len(graph.groups)
    pruned: set[int] = set()
    predicted = full_ms
    while predicted > target_ms:
        best = None
        for g, offer in enumerate(offers):
            found = _next_offer(graph, g, offer, removed[g], kept, occurrences, layers, tables, current)
            if found is not None and (best is None or found[0] < best[0]):
                best = found
        if best is None:
            break
        _, g, roots, after, saved = best
        kept.update(after)
        pruned.update(roots)
        removed[g] += len(roots)
        for li in offers[g][3]:
            current[layers[li].name] = tables[layers[li].name].predict(*layers[li].widths(kept))
        predicted -= saved
    return pruned, predicted / full_ms


def select_uniform(graph: DependencyGraph, scores: Sequence[np.ndarray], layers: Sequence[LayerSpec], tables: dict[str, LayerTable],
                   target: float, round_to: int) -> tuple[set[int], float]:
    """Like :func:`select_by_latency`, but every tabled group loses the same share of its units (least
    important first, whole ``round_to`` steps): the smallest share whose predicted latency is at most
    ``target`` (bisected on the table). The budget that rounding leaves is then spent one step per group,
    the groups whose step costs the fewest milliseconds first, so a width that sits just below a step of the
    latency curve is taken back where that is free. Which layers lose how much is the uniform rule's, which
    measured better than the greedy's scores on the issue-22 reference (BENCHMARKS.md); the latency table
    decides only how far to go.
    """
    by_slot = _layers_by_slot(layers)
    tables = {name: monotone(t) for name, t in tables.items()}
    offers = _offers(graph, scores, by_slot, round_to)
    occurrences = [Counter(r.tolist()) for r in graph.roots]
    full = {si: len(r) for si, r in enumerate(graph.roots)}
    groups = [g for g, offer in enumerate(offers) if offer[3]]

    def plan(removed: dict[int, int]) -> tuple[set[int], float]:
        kept, pruned = dict(full), set()
        for g, count in removed.items():
            roots = [graph.groups[g].units[i].root for i in offers[g][0][:count]]
            kept = _kept_after(kept, occurrences, graph.groups[g].slots, roots)
            pruned.update(roots)
        return pruned, sum(tables[spec.name].predict(*spec.widths(kept)) for spec in layers)

    def counts(share: float) -> dict[int, int]:
        out = {}
        for g in groups:
            n, step = len(offers[g][0]), offers[g][2]
            out[g] = max(0, min(n - step, int(round(share * n / step)) * step))
        return out

    full_ms = plan({})[1]
    if full_ms <= 0:
        raise PruningError("target_latency: the model has no convolution or linear layer whose width pruning can change.")
    target_ms = target * full_ms
    low, high = 0.0, 1.0  # shares removed: low too little (or nothing), high enough or the most there is
    if plan(counts(low))[1] > target_ms:
        for _ in range(40):
            mid = (low + high) / 2
            if plan(counts(mid))[1] <= target_ms:
                high = mid
            else:
                low = mid
    else:
        high = low
    removed = counts(high)
    pruned, predicted = plan(removed)
    grow = []
    for g in groups:
        if removed[g]:
            back = {**removed, g: removed[g] - offers[g][2]}
            grow.append((plan(back)[1] - predicted, g))
    for _, g in sorted(grow):
        back = {**removed, g: removed[g] - offers[g][2]}
        more = plan(back)
        if more[1] <= target_ms:
            removed, (pruned, predicted) = back, more
    return pruned, predicted / full_ms


def _layers_by_slot(layers: Sequence[LayerSpec]) -> dict[int, list[int]]:
    """Dependency-graph slot -> the tabled layers whose weight has it as output or input dimension."""
    by_slot: dict[int, list[int]] = {}
    for li, spec in enumerate(layers):
        for si in (spec.out_slot, spec.in_slot):
            if si is not None:
                by_slot.setdefault(si, []).append(li)
    return by_slot


def tabled_groups(graph: DependencyGraph, layers: Sequence[LayerSpec]) -> list[int]:
    """The groups whose units change the width of a tabled layer: the only ones the greedy offers."""
    by_slot = _layers_by_slot(layers)
    return [g for g, group in enumerate(graph.groups) if any(si in by_slot for si in group.slots)]


def _offers(graph: DependencyGraph, scores: Sequence[np.ndarray], by_slot: dict[int, list[int]], round_to: int,
            costs: Sequence[np.ndarray] | None = None) -> list[tuple]:
    """Per group: (order of units, least important first; each unit's cost; step; tabled layers touched)."""
    offers = []
    for g, (group, s) in enumerate(zip(graph.groups, scores)):
        s = np.clip(np.asarray(s, dtype=np.float64), 0.0, None)
        step = unit_step(group.width, round_to)
        touched = sorted({li for si in group.slots for li in by_slot.get(si, [])})
        # Scores relative to the group's mean (magnitudes differ between layers), times the layers
        # a unit takes part in: a residual stream's channel counts once per convolution it feeds,
        # as HALP sums a coupled channel's importance over its layers. Measured costs need neither.
        norm = (s / s.mean() if s.mean() > 0 else np.ones(len(s))) * len(touched)
        offers.append((np.argsort(s, kind="stable"), norm if costs is None else np.asarray(costs[g], dtype=np.float64), step, touched))
    return offers


def _next_offer(graph: DependencyGraph, g: int, offer: tuple, removed: int, kept: dict[int, int], occurrences: Sequence[Counter],
                layers: Sequence[LayerSpec], tables: dict[str, LayerTable], current: dict[str, float]) -> tuple | None:
    """Group ``g``'s next offer: (importance lost per ms saved, g, roots, widths after, ms saved), or None.
    The next step of units, or as many steps as it takes to save time where the table is flat."""
    order, norm, step, touched = offer
    if not touched:
        return None
    for size in range(step, len(order) - removed - step + 1, step):
        take = order[removed:removed + size]
        roots = [graph.groups[g].units[i].root for i in take]
        after = _kept_after(kept, occurrences, graph.groups[g].slots, roots)
        saved = sum(current[layers[li].name] - tables[layers[li].name].predict(*layers[li].widths(after)) for li in touched)
        if saved > 1e-9:
            return float(norm[take].sum()) / saved, g, roots, after, saved
    return None


def _kept_after(kept: dict[int, int], occurrences: Sequence[Counter], slots: Sequence[int], roots: Sequence[int]) -> dict[int, int]:
    out = dict(kept)
    for si in slots:
        out[si] = kept[si] - sum(occurrences[si].get(r, 0) for r in roots)
    return out


# ---------------------------------------------------------------- measure, select, verify


@dataclass(frozen=True)
class LatencyResult:
    """What latency-aware pruning aimed at and got; recorded in the pruning plan under ``latency``."""

    target: float  # fraction of the original latency asked for
    measured: float  # fraction measured on the pruned model (median of interleaved calls)
    predicted: float  # fraction the latency table predicted for it
    base_ms: float  # the original model's median latency
    batch_size: int
    threads: int
    channels_last: bool
    rounds: int
    cache: str
    allocation: str = "uniform"  # LatencySettings.allocation: how the cut was spread over groups
    round_to: int = 0  # the width step used: round_to, or the latency curve's step (latency_step)


ModelTimer = Callable[[nn.Module, nn.Module, torch.Tensor, LatencySettings, bool], tuple[float, float]]


def time_models(original: nn.Module, pruned: nn.Module, example: torch.Tensor, settings: LatencySettings, channels_last: bool) -> tuple[float, float]:
    """Median milliseconds of the original and the pruned model, timed interleaved (eval mode)."""
    from slimforge.measure import _channels_last_inputs, measure_latency

    def deploy(m: nn.Module) -> Callable:
        m = m.eval()
        return _channels_last_inputs(m.to(memory_format=torch.channels_last)) if channels_last else m

    repeats = max(10, 2 * settings.repeats)
    lat = measure_latency({"original": deploy(original), "pruned": deploy(pruned)}, example, threads=settings.threads,
                          warmup=2, repeats=repeats)
    bs = int(example.shape[0])
    return lat["original"][bs].p50_ms, lat["pruned"][bs].p50_ms


def latency_step(layers: Sequence[LayerSpec], settings: LatencySettings, round_to: int, timer: Timer = time_layer) -> int:
    """The width step that buys time on this machine: ``round_to``, or 2x / 4x it where the latency curve is a staircase.

    Convolution kernels compute output channels in blocks of the vector width (16 fp32 lanes with AVX-512,
    8 with AVX2): measured on an AMD EPYC with AVX-512 (session 31), a 3x3 convolution with 24 or 56 output
    channels took as long as with 32 or 64, so pruning to 24 buys nothing over 16 and keeps fewer channels
    than 32 for the same time. The most expensive tabled convolution or linear layer whose output width
    pruning can change is timed at every multiple of the step up to 8 of them (its input width whole); the
    step doubles while the odd multiples cost no more than a third of what the even ones add (the time
    climbs only at the block boundaries), up to 4x ``round_to``."""
    free = [s for s in layers if s.kind != "batchnorm" and not s.depthwise and len(s.cout_grid) > 1]
    if not free or round_to < 1:
        return max(1, round_to)
    spec = max(free, key=lambda s: s.cin * s.cout * math.prod(s.inner or (1,)) * math.prod(s.kernel or (1,)))
    step = round_to
    while step < 4 * round_to and spec.cout >= 8 * step:
        widths = [step * k for k in range(1, 9)]
        ms = timer(spec, [(spec.cin, w) for w in widths], settings)
        inside = [ms[k + 1] - ms[k] for k in range(0, 8, 2)]  # step -> 2 step, 3 step -> 4 step, ...: within a block of 2 steps
        across = [ms[k + 1] - ms[k] for k in range(1, 7, 2)]  # 2 step -> 3 step, ...: into the next block
        climb = statistics.mean(across)
        if climb <= 0 or statistics.mean(inside) > climb / 3:
            break
        step *= 2
    return step


def choose_by_latency(model: nn.Module, graph: DependencyGraph, scores: Sequence[np.ndarray], target: float, round_to: int,
                      example: Any, settings: LatencySettings, *, timer: Timer = time_layer,
                      model_timer: ModelTimer = time_models, calibration: Iterable[Any] | None = None,
                      loss_fn: Callable[[Any, Any], torch.Tensor] | None = None) -> tuple[set[int], LatencyResult]:
    """Roots to remove so that the pruned model runs in ``target`` x the original's measured latency.

    example: one input batch of the model (batch, ...); it is repeated to ``settings.batch_size`` rows.
    calibration / loss_fn: batches (inputs, targets) the ``sensitivity`` allocation measures loss on.
    """
    from slimforge.measure import _batch_of
    from slimforge.prune.plan import kept_indices, slice_tensors

    settings.validate()
    if not isinstance(example, torch.Tensor):
        raise PruneConfigError("target_latency needs a single tensor input (batch, ...) to time the model with.")
    batch = _batch_of(example, settings.batch_size)
    channels_last = _layout(model, batch, settings)
    original = copy.deepcopy(model).eval()
    layers = find_layers(original, graph, batch, settings.grid, round_to)
    if settings.steps:
        step = latency_step(layers, replace(settings, channels_last=channels_last), round_to, timer)
        if step != round_to:
            log.info("latency-aware pruning: the latency curve climbs in steps of %d channels here; widths are multiples of %d, "
                     "not %d (latency.steps)", step, step, round_to)
            round_to = step
            layers = find_layers(original, graph, batch, settings.grid, round_to)
    path = cache_path(layers, settings, channels_last)
    tables = load_or_measure_tables(layers, settings, channels_last, timer)
    costs = None
    if settings.allocation == "sensitivity":
        from slimforge.prune.sensitivity import sensitivity_costs

        costs = sensitivity_costs(original, graph, scores, calibration, loss_fn, tabled_groups(graph, layers), round_to)

    def measure(pruned: set[int]) -> tuple[float, float]:
        candidate = copy.deepcopy(original)
        slice_tensors(candidate, kept_indices(graph, balance_groups(graph, scores, pruned)))
        base, after = model_timer(original, candidate, batch, settings, channels_last)
        return base, after / base

    goal, best, tried = target, None, []
    for round_ in range(1, settings.max_rounds + 1):
        if settings.allocation == "uniform":
            pruned, predicted = select_uniform(graph, scores, layers, tables, goal, round_to)
        else:
            pruned, predicted = select_by_latency(graph, scores, layers, tables, goal, round_to, costs)
        base_ms, measured = measure(pruned)
        log.info("latency-aware pruning round %d: aimed at %.3f, predicted %.3f, measured %.3f of %.2f ms",
                 round_, goal, predicted, measured, base_ms)
        result = LatencyResult(target, measured, predicted, base_ms, settings.batch_size, settings.threads, channels_last, round_, str(path),
                               settings.allocation, round_to)
        if best is None or abs(measured - target) < abs(best[1].measured - target):
            best = (pruned, result)
        if abs(measured - target) <= settings.tolerance * target:
            break
        tried.append((predicted, measured))
        goal = next_goal(tried, target)
    pruned, result = best
    if abs(result.measured - target) > settings.tolerance * target:
        log.warning("latency-aware pruning: measured %.3f of the original latency after %d rounds, target %.3f (tolerance %.0f%%)",
                    result.measured, settings.max_rounds, target, 100 * settings.tolerance)
    return pruned, result


def next_goal(tried: Sequence[tuple[float, float]], target: float) -> float:
    """The table fraction to aim at next, from the (predicted, measured) fractions of the tries so far.

    Measured latency is modelled as a straight line in the predicted fraction: between the closest
    tries on either side of ``target`` when there are some; else through the closest try and the
    unpruned model (1, 1). The line's intercept is the part of the latency that the table's layers
    do not account for and pruning does not remove (about a fifth of ResNet-20 x2's at 28x28);
    scaling the aim by target / measured would ignore it and need several rounds."""
    below = [t for t in tried if t[1] < target]
    above = [t for t in tried if t[1] >= target]
    if below and above:
        (p1, m1), (p2, m2) = max(below, key=lambda t: t[1]), min(above, key=lambda t: t[1])
    else:
        (p1, m1), (p2, m2) = min(tried, key=lambda t: abs(t[1] - target)), (1.0, 1.0)
    if abs(m2 - m1) < 1e-9:
        return min(1.0, max(1e-3, p1 * target / max(m1, 1e-6)))
    return min(1.0, max(1e-3, p1 + (p2 - p1) * (target - m1) / (m2 - m1)))


def _layout(model: nn.Module, batch: torch.Tensor, settings: LatencySettings) -> bool:
    if settings.channels_last is not None:
        return bool(settings.channels_last) and batch.dim() == 4
    from slimforge.measure import choose_layout

    return choose_layout(model, batch, settings.threads) == "channels_last"
