"""The search itself: candidates made, measured and kept; see :mod:`slimforge.optimize`."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from slimforge import artifacts, loading
from slimforge.data.core import DataSplits
from slimforge.errors import ConfigError, SlimforgeError
from slimforge.files import final_folder, relocated, staged_output
from slimforge.measure import (
    Variant, count_macs, count_parameters, load_variant, machine_description, measure_accuracy, measure_latency, measure_variants,
)
from slimforge.optimize.budget import Candidate, OptimizeConfig, interval_points, paired_drop, recovery_epochs, within_budget
from slimforge.optimize.edge import Try, next_try
from slimforge.optimize.objectives import register_objective
from slimforge.optimize.leftover import Recovering, next_continuation
from slimforge.train import Callback, TrainState
from slimforge.train.evaluate import EVAL_BATCH_SIZE


class Deadline(Callback):
    """Stops training at the end of the epoch in which the search's time runs out."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline

    def on_epoch_end(self, state: TrainState) -> None:
        if time.monotonic() > self.deadline:
            state.stop = True


class Progress(Callback):
    """One line per recovery epoch: a long recovery is never silent."""

    def __init__(self, name: str, log: Callable[[str], None]) -> None:
        self.name, self.log = name, log
        self.started = time.monotonic()

    def on_epoch_end(self, state: TrainState) -> None:
        val = state.metrics.get("val_accuracy")
        shown = f"val {val:.4f}" if isinstance(val, float) else ""
        self.log(f"  {self.name} epoch {state.epoch + 1}: {shown} ({time.monotonic() - self.started:.0f} s)")


@register_objective("latency", help="the fastest model within an accuracy budget (classifiers)")
def optimize(
    baseline_run: str | Path, data: DataSplits, config: OptimizeConfig, out: str | Path, log: Callable[[str], None] = print,
    data_config: Any = None,
) -> dict[str, Any]:
    """Search for the fastest model within ``config.max_accuracy_drop`` of the baseline; see the module docstring.

    ``data_config`` (a DataConfig) is written into every candidate's config.yaml so each
    candidate folder is self-describing (``slimforge eval``/``quantize`` find its data).
    """
    config = _accuracy_points(config)
    # The search builds its folder beside ``out`` and replaces ``out`` whole at the end; stopped
    # half-way (Ctrl-C, an error), what it found so far (optimize.json, best/) replaces it even so.
    with staged_output(Path(out), publish_if=lambda work: (work / "optimize.json").is_file()) as work:
        search = _Search(Path(baseline_run), data, config, work, log)
        search.record_extra = {"data": data_config.model_dump(mode="json")} if data_config is not None else {}
        search.run()
    return search.summary()


class _Search:
    def __init__(self, baseline: Path, data: DataSplits, config: OptimizeConfig, out: Path, log) -> None:
        self.baseline_dir, self.data, self.cfg, self.out, self.log = baseline.absolute(), data, config, out, log
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
        self.channels_last = config.channels_last if config.channels_last is not None else self._faster_layout()
        self.base_variant = load_variant(baseline, "baseline", threads=config.threads, channels_last=self.channels_last)
        self.base_val_correct = correct_per_sample(self.base_variant.predict, self.val)  # paired with each candidate's
        self.base_val = sum(self.base_val_correct) / len(self.base_val_correct)
        self.base_test = measure_accuracy(self.base_variant.predict, self.test, data.info.num_classes)["accuracy"]
        self.base_macs = count_macs(self.base_variant.module, self.example[:1])
        self.val_interval = interval_points(self.base_val, len(data.val))
        self.tries: list[Try] = []
        # pruned architecture (parameter shapes) and recovery epochs -> the candidate made from it
        self.pruned: dict[tuple[Any, ...], Candidate] = {}
        # Until a recovery has run, an epoch of the baseline's own training is the estimate (the pruned model is cheaper).
        self.seconds_per_epoch: float | None = _baseline_seconds_per_epoch(baseline)
        self.base_epochs = (recovery_epochs(config.recovery.epochs, len(data.train), config.recovery.batch_size,
                                            seconds_per_epoch=self.seconds_per_epoch, time_budget_s=config.time_budget_s)
                            if config.auto_recovery else config.recovery.epochs)
        self.log(f"baseline: val {self.base_val:.4f}, test {self.base_test:.4f}, {self.base_macs / 1e6:.2f} M MACs; "
                 f"budget {config.max_accuracy_drop} points, {config.time_budget_s / 60:.0f} min; recovery {self.base_epochs} epochs")
        if config.max_accuracy_drop < self.val_interval:
            self.log(f"note: the budget ({config.max_accuracy_drop} points) is within the validation split's noise: "
                     f"+/-{self.val_interval:.2f} points (95%) on {len(data.val)} samples, so a candidate's measured drop "
                     "can be off by that much; a larger validation split measures it better.")
        if config.margin_z > 0:
            self.log(f"a candidate is within budget when its validation drop plus {config.margin_z:g} standard errors of its paired "
                     "difference with the baseline (from the samples where they disagree) is at most the budget")

    def _faster_layout(self) -> bool:
        """channels_last when it runs the baseline faster here (4-D inputs), measured, not assumed."""
        from slimforge.measure import choose_layout

        model = loading.load(self.baseline_dir)
        if not isinstance(model, nn.Module):
            return False
        layout = choose_layout(model.eval(), self.batch, threads=self.cfg.threads)
        self.log(f"layout: {layout} (the faster one for the baseline at batch {self.cfg.batch_size}, {self.cfg.threads} thread(s))")
        return layout == "channels_last"

    def final_path(self, path: Path) -> Path:
        """Where ``path`` (maybe inside the staging folder) will be once the search's folder is in place."""
        try:
            return self.final / Path(path).relative_to(self.out)
        except ValueError:
            return Path(path).absolute()

    def time_left(self) -> float:
        return self.deadline - time.monotonic()

    # ---------------------------------------------------------------- the plan

    def run(self) -> None:
        for backend in self.cfg.backends:  # 1. int8 of the baseline
            if self.time_left() > 0:
                self.try_quantize(self.baseline_dir, backend, "baseline")
        targets = list(self.cfg.mac_targets)
        while targets and self.can_afford(self.base_epochs):  # 2. the ladder, each success quantized at once
            target = targets.pop(0)
            cand = self.prune_and_quantize(target, self.base_epochs)
            if cand is None:
                continue
            # Only targets between the most aggressive success and this try are still worth it.
            lower = target if not cand.within_budget else 0.0
            upper = min((t.target for t in self.tries if t.within), default=1.0)
            targets = [t for t in targets if lower < t < upper]
        while self.cfg.refine:  # 3. the rest of the time at the budget's edge
            step = next_try(self.tries, self.base_epochs)
            if step is None or not self.can_afford(step[1]):
                break
            self.prune_and_quantize(*step)
        if self.cfg.factorize and _linear_share(self.base_variant.module) > 0.5 and self.time_left() > 0:
            self.try_factorize()  # 4. low-rank, for models whose weights sit in linear layers
        while self.cfg.refine:  # 5. the time still left: longer recovery of the pruned models worth it
            step = next_continuation(self.recovering(), best_speedup=self.best.speedup if self.best else 0.0,
                                     budget=self.cfg.max_accuracy_drop, seconds_per_epoch=self.seconds_per_epoch,
                                     time_left_s=self.time_left() - self.report_reserve_s())
            if step is None:
                break
            self.quantize_within(self.try_continue(*step))
        self.write_report()

    def can_afford(self, epochs: int) -> bool:
        """Enough time left for a pruning candidate with ``epochs`` of recovery (from the ones so far)."""
        if self.seconds_per_epoch is None:
            return self.time_left() > 60
        return self.time_left() > 1.2 * self.seconds_per_epoch * epochs + 30

    def report_reserve_s(self) -> float:
        """Seconds kept for the closing report, which measures every candidate again (about 1 s each)."""
        return 20.0 + 1.0 * len(self.candidates)

    def prune_and_quantize(self, target: float, epochs: int) -> Candidate | None:
        return self.quantize_within(self.try_prune(target, epochs))

    def quantize_within(self, cand: Candidate | None) -> Candidate | None:
        """int8 of ``cand`` through each backend when it is within the budget (now, so the best so far includes it)."""
        if cand is not None and cand.within_budget:
            for backend in self.cfg.backends:
                if self.time_left() > 0:
                    self.try_quantize(Path(cand.path), backend, cand.name)
        return cand

    def recovering(self) -> list[Recovering]:
        """The pruned models so far, as :func:`next_continuation` weighs them."""
        by_name = {c.name: c for c in self.candidates}
        speed = {"baseline": 1.0, **{c.name: c.speedup for c in self.candidates}}
        int8 = [c for c in self.candidates if c.epochs is None and c.source in speed]
        # A pruned model over the budget has no int8 form yet: its speed is estimated with the best int8 gain seen.
        int8_gain = max([1.0, *(c.speedup / speed[c.source] for c in int8)])
        pool = []
        for c in (c for c in self.candidates if c.epochs is not None):  # the pruned ones and their continuations
            forms = [q.speedup for q in int8 if q.source == c.name]
            drop = 100 * (self.base_val - c.val_accuracy)
            source = by_name.get(c.source or "")
            stalled = source is not None and drop + c.margin_points >= 100 * (self.base_val - source.val_accuracy) + source.margin_points
            pool.append(Recovering(c.name, c.name.split("+")[0], c.macs, max([c.speedup, *forms]) if forms else c.speedup * int8_gain, c.epochs,
                                   drop - c.margin_points, drop + c.margin_points, self._continuations(c, by_name), stalled))
        return pool

    @staticmethod
    def _continuations(c: Candidate, by_name: dict[str, Candidate]) -> int:
        """How many continued recoveries led to ``c``."""
        count = 0
        while c.source in by_name and by_name[c.source].epochs is not None:
            c, count = by_name[c.source], count + 1
        return count

    # ---------------------------------------------------------------- candidates

    def try_quantize(self, source: Path, backend: str, label: str) -> Candidate | None:
        from slimforge.quantize import QuantizeConfig, quantize, save_quantized

        name = f"{label}-int8-{backend}"
        t0 = time.monotonic()
        try:
            model = loading.load(source).eval()
            calibration = [(x, y) for x, y in _batches(self.data.train, limit=32 * 64, batch_size=64)]
            result = quantize(model, calibration, QuantizeConfig(backend=backend, calib_batches=32, threads=self.cfg.threads))
            folder = self.out / "candidates" / name
            # Its data section, as the model candidates have: `slimforge eval` scores it on that data.
            save_quantized(result, folder, config={**self.record_extra, "optimize": {"int8": backend, "source": str(self.final_path(source))}} if self.record_extra else None)
            return self.record(name, folder, f"{label} -> {backend} int8", time.monotonic() - t0, source=label)
        except Exception as exc:  # a backend that cannot handle this model is a failed candidate, not a failed search
            self.log(f"{name}: skipped ({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''})")
            self.failures.append({"name": name, "error": f"{type(exc).__name__}: {str(exc)[:500]}"})
            shutil.rmtree(self.out / "candidates" / name, ignore_errors=True)
            return None

    def try_prune(self, mac_target: float, epochs: int) -> Candidate | None:
        from slimforge.prune import prune

        by = self.cfg.prune_by
        name = f"prune-{by}{mac_target:.3g}" + ("" if epochs == self.base_epochs else f"-{epochs}ep")
        t0 = time.monotonic()
        model = loading.load(self.baseline_dir).train()
        try:
            if by == "latency":  # to a fraction of the latency measured here, at the search's batch size and threads
                from slimforge.prune.latency import LatencySettings

                settings = LatencySettings(batch_size=self.cfg.batch_size, threads=self.cfg.threads, channels_last=self.channels_last)
                prune(model, self.example, target_latency=mac_target, latency=settings, importance=self.cfg.importance)
            else:
                prune(model, self.example, target_macs=mac_target, importance=self.cfg.importance)
        except SlimforgeError as exc:  # e.g. the target is below what the model's pinned layers allow
            self.log(f"{name}: skipped ({exc})")
            self.failures.append({"name": name, "error": str(exc)})
            self.tries.append(Try(mac_target, epochs, within=False, possible=False))
            return None
        # Nearby targets often round to the same channel counts: that model was recovered already.
        shapes = (tuple((k, tuple(v.shape)) for k, v in model.state_dict().items()), epochs)
        if shapes in self.pruned:
            same = self.pruned[shapes]
            self.log(f"{name}: the same pruned model as {same.name} (every layer's width alike); not recovered again")
            self.tries.append(Try(mac_target, epochs, same.within_budget))
            return None
        folder = self.out / "candidates" / name
        self.log(f"{name}: pruned to {count_macs(model, self.example[:1]) / 1e6:.2f} M MACs, recovering by distillation ({epochs} epochs)")
        self.recover(model, name, folder, epochs, {f"{by}_target": mac_target})
        cand = self.record(name, folder, f"prune({by}={mac_target:.3g}, {self.cfg.importance}) + {self.cfg.distill_loss} distillation, "
                           f"{epochs} epochs", time.monotonic() - t0, epochs=epochs)
        self.tries.append(Try(mac_target, epochs, cand.within_budget))
        self.pruned[shapes] = cand
        return cand

    def try_continue(self, source_name: str, epochs: int) -> Candidate:
        """``epochs`` more distillation epochs for the pruned candidate ``source_name``, from its weights."""
        source = next(c for c in self.candidates if c.name == source_name)
        total = (source.epochs or 0) + epochs
        name = f"{source_name.split('+')[0]}+{total}ep"
        t0 = time.monotonic()
        model = loading.load(source.path).train()
        self.log(f"{name}: {source_name} recovering for {epochs} more epochs ({total} in all), with the time left")
        folder = self.out / "candidates" / name
        self.recover(model, name, folder, epochs, {"continued_from": str(self.final_path(Path(source.path)))})
        return self.record(name, folder, f"{source_name} + {epochs} more epochs of {self.cfg.distill_loss} distillation ({total} in all)",
                           time.monotonic() - t0, source=source_name, epochs=total)

    def recover(self, model: nn.Module, name: str, folder: Path, epochs: int, record: dict[str, Any]) -> None:
        """Distil the baseline into ``model`` for ``epochs`` (saved in ``folder``); times the epochs for the next plans."""
        from slimforge.distill import DistillConfig
        from slimforge.distill.api import run as distill_run

        recovery = self.cfg.recovery.model_copy(update={"quiet": True, "num_threads": self.cfg.train_threads, "epochs": epochs})
        t_train = time.monotonic()
        distill_run(model, [self.baseline_dir], self.data, DistillConfig(loss=self.cfg.distill_loss, temperature=self.cfg.temperature),
                    recovery, folder, callbacks=[Deadline(self.deadline), Progress(name, self.log)], cache_dir=self.out / "teacher-cache",
                    record={**self.record_extra, "optimize": {**record, "train": recovery.model_dump(mode="json")}})
        self.seconds_per_epoch = (time.monotonic() - t_train) / max(1, epochs)

    def try_factorize(self) -> Candidate | None:
        from slimforge.distill import DistillConfig
        from slimforge.distill.api import run as distill_run
        from slimforge.factorize import FactorizeConfig, factorize

        t0 = time.monotonic()
        model = loading.load(self.baseline_dir).train()
        factorize(model, FactorizeConfig(target_ratio=0.5))
        folder = self.out / "candidates" / "lowrank-0.5"
        recovery = self.cfg.recovery.model_copy(update={"quiet": True, "num_threads": self.cfg.train_threads, "epochs": self.base_epochs})
        self.log(f"lowrank-0.5: factorised to half the parameters, recovering by distillation ({self.base_epochs} epochs)")
        distill_run(model, [self.baseline_dir], self.data, DistillConfig(loss=self.cfg.distill_loss), recovery, folder,
                    callbacks=[Deadline(self.deadline), Progress("lowrank-0.5", self.log)], cache_dir=self.out / "teacher-cache",
                    record={**self.record_extra, "optimize": {"factorize_target_ratio": 0.5}})
        return self.record("lowrank-0.5", folder, "SVD to half the parameters + distillation", time.monotonic() - t0)

    def record(self, name: str, folder: Path, recipe: str, seconds: float, *, source: str | None = None, epochs: int | None = None) -> Candidate:
        """Measure a finished candidate (validation paired with the baseline, test, latency), keep it if it is the best."""
        variant = load_variant(folder, name, threads=self.cfg.threads, channels_last=self.channels_last)
        val_correct = correct_per_sample(variant.predict, self.val)
        paired = paired_drop(self.base_val_correct, val_correct)
        val = sum(val_correct) / len(val_correct)
        margin = self.cfg.margin_z * paired.se_points
        test = measure_accuracy(variant.predict, self.test, self.data.info.num_classes)["accuracy"]
        lat = measure_latency({"baseline": self.base_variant.predict, name: variant.predict}, self.batch, threads=self.cfg.threads, repeats=self.cfg.repeats)
        base_ms, ms = lat["baseline"][self.cfg.batch_size].p50_ms, lat[name][self.cfg.batch_size].p50_ms
        cand = Candidate(
            name, str(folder), recipe, val, test, ms, base_ms / ms,
            within_budget=within_budget(self.base_val, val, self.cfg.max_accuracy_drop, margin), seconds=round(seconds, 1),
            macs=count_macs(variant.module, self.example[:1]) if variant.module is not None else None,
            params=count_parameters(variant.module) if variant.module is not None else None,
            margin_points=round(margin, 4), val_gained=paired.gained, val_lost=paired.lost, source=source, epochs=epochs,
        )
        self.candidates.append(cand)
        if cand.within_budget and (self.best is None or _better(cand, self.best)):
            self.best = cand
            _replace_folder(folder, self.out / "best")
        self.log(f"{name}: val {val:.4f} ({100 * (val - self.base_val):+.2f} pts, noise margin {margin:.2f}), test {test:.4f}, {cand.speedup:.2f}x faster"
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
            "best": {**asdict(self.best), **getattr(self, "reference_speedups", {})} if self.best else None,
            "layout": "channels_last" if self.channels_last else "contiguous",
            "candidates": [{**asdict(c), "verdict": self.verdict(c)} for c in self.candidates],
            "failed": self.failures,
            "validation": {"samples": len(self.data.val), "interval_points": round(self.val_interval, 3)},
            "test": {"samples": len(self.data.test), "interval_points": round(interval_points(self.base_test, len(self.data.test)), 3)},
            "recovery_epochs": self.base_epochs,
            "time_budget_s": self.cfg.time_budget_s,
            "elapsed_s": round(time.monotonic() - self.started, 1),
            "threads": self.cfg.threads,
            "train_threads": self.cfg.train_threads or torch.get_num_threads(),
            "batch_size": self.cfg.batch_size,
            "machine": machine_description(),
        }

    def verdict(self, c: Candidate) -> str:
        """Why ``c`` was kept or not, in words (the budget is checked on validation)."""
        drop = 100 * (self.base_val - c.val_accuracy)
        checked = f"validation drop {drop:.2f} + noise margin {c.margin_points:.2f} = {drop + c.margin_points:.2f} points"
        if not c.within_budget:
            return f"rejected: {checked} > budget {self.cfg.max_accuracy_drop:g}"
        if c is self.best:
            return f"best: fastest within budget ({checked})"
        return f"within budget, slower than {self.best.name}" if self.best else "within budget"

    def write_report(self) -> None:
        """Measure baseline and every candidate together, interleaved, and write the report."""
        from slimforge.report import REFERENCE_KEYS, build_rows, write_report

        variants: list[Variant] = [self.base_variant] + [load_variant(c.path, c.name, threads=self.cfg.threads, channels_last=self.channels_last) for c in self.candidates]
        measurement = measure_variants(variants, self.example, (self.cfg.batch_size,), eval_batches=self.test,
                                       num_classes=self.data.info.num_classes, threads=self.cfg.threads, repeats=self.cfg.repeats,
                                       reference=self.cfg.reference)
        rows = {r["variant"]: r for r in build_rows(measurement)}
        self.reference_speedups = {k: rows[self.best.name].get(k) for k in REFERENCE_KEYS} if self.best and self.best.name in rows else {}
        extra = {c.name: {"val accuracy": f"{100 * c.val_accuracy:.2f}%", "Δ val (pts)": f"{100 * (c.val_accuracy - self.base_val):+.2f}",
                          "val gained/lost": f"{c.val_gained}/{c.val_lost}", "noise margin (pts)": f"{c.margin_points:.2f}",
                          "verdict": self.verdict(c)} for c in self.candidates}
        extra["baseline"] = {"val accuracy": f"{100 * self.base_val:.2f}%", "Δ val (pts)": "+0.00", "val gained/lost": "0/0",
                             "noise margin (pts)": "0.00", "verdict": "baseline"}
        notes = [f"{c.name}: {c.recipe}" for c in self.candidates]
        notes.append(f"Accuracy intervals (95%): validation +/-{self.val_interval:.2f} points on {len(self.data.val)} samples, "
                     f"test +/-{interval_points(self.base_test, len(self.data.test)):.2f} on {len(self.data.test)}. "
                     f"The budget is checked on validation, on the drop plus a noise margin of {self.cfg.margin_z:g} standard errors of the "
                     "paired difference (from the samples the candidate gains and loses against the baseline); "
                     "the test column is measured again here, in the same run as the latency.")
        write_report(self.out / "report", measurement, title="slimforge optimize", notes=notes, headline=self.headline(),
                     highlight=self.best.name if self.best else None, split="test", extra=extra)
        artifacts.write_json(self.out / "optimize.json", self.summary())

    def headline(self) -> str:
        """The result in one sentence: the best model, its speed-up, its accuracy change on both splits, the cost."""
        m = machine_description()
        spent = f"searched {(time.monotonic() - self.started) / 60:.1f} of {self.cfg.time_budget_s / 60:.0f} min on {m['cpu']} ({m['isa']})"
        if self.best is None:
            return f"No candidate within {self.cfg.max_accuracy_drop:g} points of validation accuracy; {spent}."
        b = self.best
        test_interval = interval_points(self.base_test, len(self.data.test))
        ref = getattr(self, "reference_speedups", {})
        against = (f"{faster(ref['speedup_vs_eager'])} than PyTorch eager and {faster(ref['speedup_vs_best_fp32'])} than the "
                   f"fastest fp32 deployment of the baseline ({ref['best_fp32_form']})" if ref.get("speedup_vs_best_fp32")
                   else f"{faster(b.speedup)} than the baseline (PyTorch eager)")
        return (f"Best: {b.name}, {against} at batch {self.cfg.batch_size}, "
                f"{self.cfg.threads} thread(s); accuracy {100 * (b.val_accuracy - self.base_val):+.2f} points on validation "
                f"(noise margin {b.margin_points:.2f}; +/-{self.val_interval:.2f}) and {100 * (b.test_accuracy - self.base_test):+.2f} on test (+/-{test_interval:.2f}); {spent}.")


def correct_per_sample(predict, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> list[bool]:
    """Whether ``predict`` gets each sample right (top-1), in the batches' order: the paired budget check's input."""
    correct: list[bool] = []
    for x, y in batches:
        correct.extend((predict(x).float().cpu().argmax(1) == y).tolist())
    return correct


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


def faster(speedup: float) -> str:
    """"2.50x faster" or, below 1, "1.92x slower": never "0.52x faster"."""
    return f"{speedup:.2f}x faster" if speedup >= 1 else f"{1 / speedup:.2f}x slower"


# Two latencies measured on a shared machine differ by a few percent run to run: within this
# ratio two candidates are equally fast, and the one that kept more validation accuracy is better.
SAME_SPEED = 1.05


def _better(cand: Candidate, best: Candidate) -> bool:
    """``cand`` beats ``best``: clearly faster, or as fast with more validation accuracy kept."""
    if cand.speedup > best.speedup * SAME_SPEED:
        return True
    return cand.speedup * SAME_SPEED >= best.speedup and cand.val_accuracy > best.val_accuracy


def _accuracy_points(config: OptimizeConfig) -> OptimizeConfig:
    """The latency search checks accuracy points: a ``budget`` in points becomes ``max_accuracy_drop``;
    a relative budget or another metric is refused (they belong to ``objective='size'``)."""
    if config.metric not in (None, "accuracy"):
        raise ConfigError(f"optimize: the latency search budgets validation accuracy, not {config.metric!r}; "
                          "a budget on another metric needs --objective size.")
    if config.budget is None:
        return config
    if config.budget.relative:
        raise ConfigError(f"optimize: the latency search takes its budget in accuracy points (--budget 1.0 or --max-accuracy-drop 1.0), "
                          f"not {config.budget.describe()}; a relative budget needs --objective size.")
    return replace(config, max_accuracy_drop=config.budget.amount, budget=None)


def _baseline_seconds_per_epoch(run: Path) -> float | None:
    """Seconds per training epoch of the baseline's own run, from its metrics.json (None when unknown)."""
    metrics = artifacts.read_json_quiet(Path(run) / artifacts.METRICS_FILE)
    seconds, epochs = metrics.get("train_seconds"), metrics.get("epochs_run")
    if isinstance(seconds, (int, float)) and isinstance(epochs, int) and epochs > 0 and seconds > 0:
        return float(seconds) / epochs
    return None


def _linear_share(model: nn.Module) -> float:
    total = count_parameters(model)
    linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear))
    return linear / max(1, total)


def _replace_folder(src: Path, dst: Path) -> None:
    """Copy ``src`` to ``dst``, replacing it in one step (never half written)."""
    with staged_output(dst) as work:
        shutil.copytree(src, work, dirs_exist_ok=True, ignore=shutil.ignore_patterns("checkpoint.safetensors", "teacher-cache"))
