"""``slimforge optimize``: the fastest model within an accuracy budget, searched across stages.

The search tries, cheapest first, and measures every candidate for real (interleaved with the
baseline, fixed threads, the objective's batch size):

1. int8 of the baseline through each quantization backend;
2. structured pruning to a ladder of MAC targets, each recovered by distillation from the
   baseline, then int8 of the best pruned model; the ladder moves towards more pruning while
   candidates stay within the budget and back when they fall out of it;
3. low-rank factorisation (for linear-heavy models), recovered and quantized the same way.

Candidates are chosen on the **validation** split (the budget is checked there) and their test
accuracy is reported, so the test split never steers the search. After every candidate,
``optimize.json`` and ``best/`` are rewritten (atomically), so stopping the search, or missing
the target, still leaves the best model found and the record of every try.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from slimforge import artifacts
from slimforge.data.core import DataSplits
from slimforge.errors import ConfigError, SlimforgeError
from slimforge.files import final_folder, relocated, staged_output
from slimforge.measure import Variant, count_macs, count_parameters, load_variant, measure_accuracy, measure_latency, measure_variants
from slimforge.train import Callback, TrainConfig, TrainState
from slimforge.train.evaluate import EVAL_BATCH_SIZE


@dataclass(frozen=True)
class OptimizeConfig:
    """max_accuracy_drop: points of validation accuracy the result may lose; batch_size and
    threads: how latency is measured; time_budget_s: wall-clock limit of the whole search;
    mac_targets: fractions of the baseline's MACs to try for pruning, in order; recovery: the
    distillation fine-tuning after each structural change."""

    max_accuracy_drop: float = 1.0
    objective: str = "latency"
    batch_size: int = 32
    threads: int = 1
    channels_last: bool = False  # time PyTorch CNN candidates in channels-last memory format
    time_budget_s: float = 3600.0
    backends: tuple[str, ...] = ("onnxruntime", "torch")
    mac_targets: tuple[float, ...] = (0.25, 0.12, 0.06, 0.5)
    importance: str = "l2"
    recovery: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=4, lr=0.02, batch_size=128, warmup_epochs=0.2))
    distill_loss: str = "kd"
    temperature: float = 4.0
    factorize: bool = True
    repeats: int = 20

    def __post_init__(self) -> None:
        if self.objective != "latency":
            raise ConfigError(f"optimize: objective {self.objective!r} is not supported; use 'latency'.")
        if not math.isfinite(self.max_accuracy_drop) or self.max_accuracy_drop < 0:
            raise ConfigError(f"optimize: max_accuracy_drop is in points and must be a finite number >= 0, not {self.max_accuracy_drop}.")
        if self.batch_size < 1 or self.threads < 1 or self.repeats < 1:
            raise ConfigError(f"optimize: batch_size, threads and repeats must be >= 1 (got {self.batch_size}, {self.threads}, {self.repeats}).")
        if self.time_budget_s <= 0:
            raise ConfigError(f"optimize: time_budget_s must be > 0, got {self.time_budget_s}.")
        from slimforge.quantize import list_backends

        unknown = [b for b in self.backends if b not in list_backends()]
        if unknown:  # found now, not after the pruning ladder has run
            raise ConfigError(f"optimize: unknown int8 backend(s) {unknown}; known: {', '.join(list_backends())}.")


@dataclass
class Candidate:
    name: str
    path: str
    recipe: str  # what was done, e.g. "prune(macs=0.25)+distill -> onnxruntime int8"
    val_accuracy: float
    test_accuracy: float
    latency_ms: float  # p50 at the config's batch size
    speedup: float  # baseline p50 / this p50, measured interleaved
    within_budget: bool
    seconds: float
    macs: int | None = None
    params: int | None = None


# Accuracies are fractions of a finite split, so a drop of exactly the budget comes out of
# floating point a hair over it: 100 * (0.9825 - 0.9725) = 1.0000000000000009 points.
BUDGET_TOLERANCE_POINTS = 1e-9


def within_budget(baseline: float, candidate: float, max_drop_points: float) -> bool:
    """True when ``candidate`` loses at most ``max_drop_points`` accuracy points against
    ``baseline`` (both fractions); a drop of exactly the budget is within it."""
    return 100 * (baseline - candidate) <= max_drop_points + BUDGET_TOLERANCE_POINTS


class Deadline(Callback):
    """Stops training at the end of the epoch in which the search's time runs out."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline

    def on_epoch_end(self, state: TrainState) -> None:
        if time.monotonic() > self.deadline:
            state.stop = True


def optimize(
    baseline_run: str | Path, data: DataSplits, config: OptimizeConfig, out: str | Path, log: Callable[[str], None] = print,
    data_config: Any = None,
) -> dict[str, Any]:
    """Search for the fastest model within ``config.max_accuracy_drop`` of the baseline; see the module docstring.

    ``data_config`` (a DataConfig) is written into every candidate's config.yaml so each
    candidate folder is self-describing (``slimforge eval``/``quantize`` find its data).
    """
    # The search builds its folder beside ``out`` and replaces ``out`` whole at the end; stopped
    # half-way (Ctrl-C, an error), what it found so far (optimize.json, best/) replaces it even so.
    with staged_output(Path(out), publish_if=lambda work: (work / "optimize.json").is_file()) as work:
        search = _Search(Path(baseline_run), data, config, work, log)
        search.record_extra = {"data": data_config.model_dump(mode="json")} if data_config is not None else {}
        search.run()
    return search.summary()


class _Search:
    def __init__(self, baseline: Path, data: DataSplits, config: OptimizeConfig, out: Path, log) -> None:
        self.baseline_dir, self.data, self.cfg, self.out, self.log = baseline, data, config, out, log
        self.final = final_folder(out).absolute()  # where ``out`` (a staging folder) goes when the search ends
        self.deadline = time.monotonic() + config.time_budget_s
        self.started = time.monotonic()
        self.candidates: list[Candidate] = []
        self.failures: list[dict[str, str]] = []
        self.record_extra: dict[str, Any] = {}
        self.best: Candidate | None = None
        out.mkdir(parents=True, exist_ok=True)
        self.example = data.train.__getitems__(list(range(2)))[0]
        self.batch = self.example.repeat(config.batch_size // 2 + 1, *([1] * (self.example.dim() - 1)))[: config.batch_size]
        self.val = _batches(data.val)
        self.test = _batches(data.test)
        self.base_variant = load_variant(baseline, "baseline", threads=config.threads, channels_last=config.channels_last)
        self.base_val = measure_accuracy(self.base_variant.predict, self.val, data.info.num_classes)["accuracy"]
        self.base_test = measure_accuracy(self.base_variant.predict, self.test, data.info.num_classes)["accuracy"]
        self.base_macs = count_macs(self.base_variant.module, self.example[:1])
        self.log(f"baseline: val {self.base_val:.4f}, test {self.base_test:.4f}, {self.base_macs / 1e6:.1f} M MACs; "
                 f"budget {config.max_accuracy_drop} points, {config.time_budget_s / 60:.0f} min")

    def time_left(self) -> float:
        return self.deadline - time.monotonic()

    # ---------------------------------------------------------------- the plan

    def run(self) -> None:
        for backend in self.cfg.backends:  # 1. int8 of the baseline
            if self.time_left() > 0:
                self.try_quantize(self.baseline_dir, backend, "baseline")
        within: list[float] = []  # MAC targets whose pruned model kept the accuracy
        targets = list(self.cfg.mac_targets)
        while targets and self.time_left() > 60:  # 2. pruning ladder, each success quantized at once
            target = targets.pop(0)
            cand = self.try_prune(target)
            if cand is None:
                continue
            if cand.within_budget:
                within.append(target)
                for backend in self.cfg.backends:  # int8 now, so the best so far includes it
                    if self.time_left() > 0:
                        self.try_quantize(Path(cand.path), backend, cand.name)
            # Only targets between the most aggressive success and this try are still worth it.
            lower = target if not cand.within_budget else 0.0
            upper = min(within) if within else 1.0
            targets = [t for t in targets if lower < t < upper]
        if self.cfg.factorize and _linear_share(self.base_variant.module) > 0.5 and self.time_left() > 0:
            self.try_factorize()  # 3. low-rank, for models whose weights sit in linear layers
        self.write_report()

    # ---------------------------------------------------------------- candidates

    def try_quantize(self, source: Path, backend: str, label: str) -> Candidate | None:
        from slimforge.quantize import QuantizeConfig, quantize, save_quantized

        name = f"{label}-int8-{backend}"
        t0 = time.monotonic()
        try:
            model = artifacts.load(source).eval()
            calibration = [(x, y) for x, y in _batches(self.data.train, limit=32 * 64, batch_size=64)]
            result = quantize(model, calibration, QuantizeConfig(backend=backend, calib_batches=32, threads=self.cfg.threads))
            folder = self.out / "candidates" / name
            # Its data section, as the model candidates have: `slimforge eval` scores it on that data.
            save_quantized(result, folder, config={**self.record_extra, "optimize": {"int8": backend, "source": str(source)}} if self.record_extra else None)
            return self.record(name, folder, f"{label} -> {backend} int8", time.monotonic() - t0)
        except Exception as exc:  # a backend that cannot handle this model is a failed candidate, not a failed search
            self.log(f"{name}: skipped ({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''})")
            self.failures.append({"name": name, "error": f"{type(exc).__name__}: {str(exc)[:500]}"})
            shutil.rmtree(self.out / "candidates" / name, ignore_errors=True)
            return None

    def try_prune(self, mac_target: float) -> Candidate | None:
        from slimforge.distill import DistillConfig
        from slimforge.distill.api import run as distill_run
        from slimforge.prune import prune

        name = f"prune-macs{mac_target:g}"
        t0 = time.monotonic()
        model = artifacts.load(self.baseline_dir).train()
        try:
            prune(model, self.example, target_macs=mac_target, importance=self.cfg.importance)
        except SlimforgeError as exc:  # e.g. the target is below what the model's pinned layers allow
            self.log(f"{name}: skipped ({exc})")
            self.failures.append({"name": name, "error": str(exc)})
            return None
        folder = self.out / "candidates" / name
        recovery = self.cfg.recovery.model_copy(update={"quiet": True, "num_threads": None})
        self.log(f"{name}: pruned to {count_macs(model, self.example[:1]) / 1e6:.1f} M MACs, recovering by distillation ({recovery.epochs} epochs)")
        distill_run(model, [self.baseline_dir], self.data, DistillConfig(loss=self.cfg.distill_loss, temperature=self.cfg.temperature),
                    recovery, folder, callbacks=[Deadline(self.deadline)], cache_dir=self.out / "teacher-cache",
                    record={**self.record_extra, "optimize": {"mac_target": mac_target, "train": recovery.model_dump(mode="json")}})
        return self.record(name, folder, f"prune(macs={mac_target:g}, {self.cfg.importance}) + {self.cfg.distill_loss} distillation", time.monotonic() - t0)

    def try_factorize(self) -> Candidate | None:
        from slimforge.distill import DistillConfig
        from slimforge.distill.api import run as distill_run
        from slimforge.factorize import FactorizeConfig, factorize

        t0 = time.monotonic()
        model = artifacts.load(self.baseline_dir).train()
        factorize(model, FactorizeConfig(target_ratio=0.5))
        folder = self.out / "candidates" / "lowrank-0.5"
        recovery = self.cfg.recovery.model_copy(update={"quiet": True, "num_threads": None})
        distill_run(model, [self.baseline_dir], self.data, DistillConfig(loss=self.cfg.distill_loss), recovery, folder,
                    callbacks=[Deadline(self.deadline)], cache_dir=self.out / "teacher-cache",
                    record={**self.record_extra, "optimize": {"factorize_target_ratio": 0.5}})
        return self.record("lowrank-0.5", folder, "SVD to half the parameters + distillation", time.monotonic() - t0)

    def record(self, name: str, folder: Path, recipe: str, seconds: float) -> Candidate:
        variant = load_variant(folder, name, threads=self.cfg.threads, channels_last=self.cfg.channels_last)
        val = measure_accuracy(variant.predict, self.val, self.data.info.num_classes)["accuracy"]
        test = measure_accuracy(variant.predict, self.test, self.data.info.num_classes)["accuracy"]
        lat = measure_latency({"baseline": self.base_variant.predict, name: variant.predict}, self.batch, threads=self.cfg.threads, repeats=self.cfg.repeats)
        base_ms, ms = lat["baseline"][self.cfg.batch_size].p50_ms, lat[name][self.cfg.batch_size].p50_ms
        cand = Candidate(
            name, str(folder), recipe, val, test, ms, base_ms / ms,
            within_budget=within_budget(self.base_val, val, self.cfg.max_accuracy_drop), seconds=round(seconds, 1),
            macs=count_macs(variant.module, self.example[:1]) if variant.module is not None else None,
            params=count_parameters(variant.module) if variant.module is not None else None,
        )
        self.candidates.append(cand)
        if cand.within_budget and (self.best is None or cand.speedup > self.best.speedup):
            self.best = cand
            _replace_folder(folder, self.out / "best")
        self.log(f"{name}: val {val:.4f} ({100 * (val - self.base_val):+.2f} pts), test {test:.4f}, {cand.speedup:.2f}x faster"
                 f"{' [best so far]' if self.best is cand else ''}{'' if cand.within_budget else ' (over budget)'}; {time.monotonic() - self.started:.0f} s elapsed")
        artifacts.write_json(self.out / "optimize.json", self.summary())
        return cand

    # ---------------------------------------------------------------- results

    def summary(self) -> dict[str, Any]:
        """The search so far, with paths where they will be once the folder is in place."""
        return relocated(self._summary(), self.out, self.final)

    def _summary(self) -> dict[str, Any]:
        return {
            "baseline": {"path": str(self.baseline_dir), "val_accuracy": self.base_val, "test_accuracy": self.base_test, "macs": self.base_macs},
            "config": {k: (v.model_dump() if hasattr(v, "model_dump") else v) for k, v in asdict(self.cfg).items()},
            "best": asdict(self.best) if self.best else None,
            "candidates": [asdict(c) for c in self.candidates],
            "failed": self.failures,
            "elapsed_s": round(time.monotonic() - self.started, 1),
            "threads": self.cfg.threads,
            "batch_size": self.cfg.batch_size,
        }

    def write_report(self) -> None:
        """Measure baseline and every candidate together, interleaved, and write the report."""
        from slimforge.report import write_report

        variants: list[Variant] = [self.base_variant] + [load_variant(c.path, c.name, threads=self.cfg.threads, channels_last=self.cfg.channels_last) for c in self.candidates]
        measurement = measure_variants(variants, self.example, (self.cfg.batch_size,), eval_batches=self.test,
                                       num_classes=self.data.info.num_classes, threads=self.cfg.threads, repeats=self.cfg.repeats)
        best = f"best within {self.cfg.max_accuracy_drop} points (chosen on validation): {self.best.name}" if self.best else "no candidate within the budget"
        write_report(self.out / "report", measurement, title="slimforge optimize", notes=[best] + [f"{c.name}: {c.recipe}" for c in self.candidates])


def _batches(dataset, limit: int | None = None, batch_size: int = EVAL_BATCH_SIZE) -> list[tuple[torch.Tensor, torch.Tensor]]:
    n = len(dataset) if limit is None else min(limit, len(dataset))
    saved = getattr(dataset, "augment", None)
    if saved is not None:
        dataset.augment = None
    try:
        return [tuple(dataset.__getitems__(list(range(i, min(i + batch_size, n))))[:2]) for i in range(0, n, batch_size)]
    finally:
        if saved is not None:
            dataset.augment = saved


def _linear_share(model: nn.Module) -> float:
    total = count_parameters(model)
    linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear))
    return linear / max(1, total)


def _replace_folder(src: Path, dst: Path) -> None:
    """Copy ``src`` to ``dst``, replacing it in one step (never half written)."""
    with staged_output(dst) as work:
        shutil.copytree(src, work, dirs_exist_ok=True, ignore=shutil.ignore_patterns("checkpoint.safetensors", "teacher-cache"))
