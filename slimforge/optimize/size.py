"""``optimize --objective size``: the smallest weight file within a budget on a chosen metric.

The search knows no model family. Candidate generators (:func:`register_size_generator`), each
for the models it accepts, propose compressed models through a :class:`SizeSession`, which

1. saves each proposal as a folder ``slimforge eval`` and ``slimforge.load`` read (with the
   data's section in ``config.yaml`` and its assets, e.g. a recommender's catalogue);
2. measures its size: the bytes of the artifact's weight file (``model.safetensors``, or the
   runtime file ``quantized.json`` names), against the baseline's ``model.safetensors``;
3. scores it on the **validation** split with the chosen metric (the loaded folder, not the
   object in memory) and checks the budget there; the test split is scored for the report only.
   A ranking split's sampled metrics (HR@10, NDCG@10 among 99 drawn negatives) are scored on
   validation as their exact expectation over the draw (``sampled_expectation``, the default),
   per user and paired with the baseline's for the noise margin; test keeps its one fixed draw.
4. sizes the noise margin for the search, not for one candidate (:class:`JointMargin`, the default
   ``joint_margin``): the search keeps the smallest candidate validation admits, the one whose
   validation luck was best among all it tried, so the margin's confidence must hold for all of them
   at once. Each new candidate can widen every candidate's margin; verdicts and ``best/`` follow.

The smallest candidate within the budget is the best (ties: the higher validation score); it is
copied to ``best/`` and ``optimize.json`` and ``summary.md`` are rewritten after every candidate.

Built-in generator: ``embedding-tables`` (:mod:`slimforge.recsys.compress`, recommenders: table
widths, a per-table int4/int2 mix, SVD of the tables with a short fine-tune).
"""

from __future__ import annotations

import inspect
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from statistics import NormalDist
from typing import Any, Protocol

import torch
from torch import nn

from slimforge import artifacts, loading
from slimforge._registry import Registry
from slimforge.errors import ConfigError, did_you_mean
from slimforge.files import atomic_write_bytes, final_folder, relocated, staged_output
from slimforge.measure import machine_description
from slimforge.optimize.budget import Budget, JointMargin, OptimizeConfig, paired_standard_error
from slimforge.optimize.objectives import register_objective

# Figures an evaluation returns that are not a score where higher is better.
NOT_SCORES = ("loss", "count", "errors")


class SizeGenerator(Protocol):
    """Proposes smaller versions of the models it accepts; see :class:`SizeSession` for what it may call."""

    description: str

    def accepts(self, model: nn.Module) -> bool: ...

    def propose(self, session: SizeSession) -> None: ...


BUILTIN_SIZE_GENERATORS = {"embedding-tables": "slimforge.recsys.compress", "distilled-students": "slimforge.recsys.students"}
SIZE_GENERATORS: Registry[SizeGenerator] = Registry("size candidate generator", builtins=BUILTIN_SIZE_GENERATORS)


def register_size_generator(name: str, help: str = "") -> Callable[[SizeGenerator], SizeGenerator]:
    """Register a generator instance: ``register_size_generator("embedding-tables")(EmbeddingTables())``."""
    return SIZE_GENERATORS.register(name, help)


@dataclass
class SizeCandidate:
    name: str
    path: str
    recipe: str  # what was done, e.g. "SVD 80% energy + 2 epochs fine-tune -> int4 tables"
    bytes: int  # the artifact's weight file
    size_x: float  # baseline bytes / these bytes
    val: float  # the metric on validation (what the budget is checked on)
    test: float  # the metric on test (reported, never steers the search)
    within_budget: bool
    seconds: float
    details: dict[str, Any] = field(default_factory=dict)
    margin: float = 0.0  # the noise margin (critical value x the paired validation difference's standard error), in the budget's unit
    se: float = 0.0  # standard error of the paired validation difference with the baseline, in the metric's units


@register_objective("size", help="the smallest weight file within a budget on a chosen metric (recommenders)")
def optimize_size(baseline_run: str | Path, data: Any, config: OptimizeConfig, out: str | Path, log: Callable[[str], None] = print,
                  data_config: Any = None) -> dict[str, Any]:
    """Search for the smallest model within ``config.effective_budget()`` of the baseline on
    ``config.metric`` (validation); see the module docstring."""
    threads = torch.get_num_threads()
    try:
        with staged_output(Path(out), publish_if=lambda work: (work / "optimize.json").is_file()) as work:
            session = SizeSession(Path(baseline_run), data, config, work, log, data_config)
            for name, generator in session.generators:
                session.log(f"generator {name}: {generator.description}")
                generator.propose(session)
            session.write_summary()
    finally:
        torch.set_num_threads(threads)  # train_threads applied to this search only
    return session.summary()


class SizeSession:
    """One size search: the baseline, the budget, every candidate so far and the best one."""

    def __init__(self, baseline: Path, data: Any, config: OptimizeConfig, out: Path, log: Callable[[str], None],
                 data_config: Any = None) -> None:
        self.baseline_dir, self.data, self.cfg, self.out, self.log = baseline.absolute(), data, config, out, log
        self.final = final_folder(out).absolute()
        self.started = time.monotonic()
        self.deadline = self.started + config.time_budget_s
        self.record_extra = {"data": data_config.model_dump(mode="json")} if data_config is not None else {}
        self.budget: Budget = config.effective_budget()
        self.candidates: list[SizeCandidate] = []
        self.failures: list[dict[str, str]] = []
        self.best: SizeCandidate | None = None
        if config.train_threads:
            torch.set_num_threads(config.train_threads)
        self.threads = torch.get_num_threads()
        out.mkdir(parents=True, exist_ok=True)
        model = self.baseline_model()
        self.generators = _generators_for(model)
        self.expected = config.sampled_expectation and _takes(data.val, "expected")
        scores = _evaluate(model, data.val, per_sample=True, expected=self.expected)
        self.metric = _known_metric(config.metric or data.info.metric, scores)
        self.base_val, self.base_test = scores[self.metric], _evaluate(model, data.test)[self.metric]
        self.base_per_sample = (scores.get("per_sample") or {}).get(self.metric)  # None: no paired margin for this split
        self.joint = (JointMargin(config.margin_z, self.base_per_sample.tolist())
                      if config.joint_margin and self.base_per_sample is not None else None)
        self.base_bytes = weight_file(self.baseline_dir).stat().st_size
        self.log(f"baseline: {self.base_bytes / 1024:.0f} KB, validation {self.metric} {self.base_val:.4f}, test {self.base_test:.4f}; "
                 f"budget {self.budget.describe()} of validation {self.metric}, {config.time_budget_s / 60:.0f} min; "
                 f"validation's sampled metrics: {self.sampled_metrics()}")

    # ---------------------------------------------------------------- what generators call

    def baseline_model(self) -> nn.Module:
        """A fresh fp32 copy of the baseline, in eval mode."""
        return loading.load(self.baseline_dir).eval()

    def load(self, candidate: SizeCandidate) -> nn.Module:
        """The model a candidate folder holds (an fp32 candidate, e.g. to quantize it further)."""
        return loading.load(candidate.path).eval()

    def time_left(self) -> float:
        return self.deadline - time.monotonic()

    def score(self, model: Any) -> float:
        """The metric on validation of a model in memory (for a generator's own choices; not recorded)."""
        return _evaluate(model, self.data.val, expected=self.expected)[self.metric]

    def score_paired(self, model: Any) -> tuple[float, Any]:
        """The validation metric and its per-sample values (None where the split gives none): ``allows``' arguments."""
        scores = _evaluate(model, self.data.val, per_sample=True, expected=self.expected)
        return scores[self.metric], (scores.get("per_sample") or {}).get(self.metric)

    def standard_error(self, per_sample: Any) -> float:
        """Standard error of the paired difference with the baseline, in the metric's units (0 when the
        split gives no per-sample values). 610 validation users move NDCG@10 by about as much as a 2%
        budget: NeuMF's choice at -1.67% on validation lost 2.55% on test with no margin."""
        if per_sample is None or self.base_per_sample is None:
            return 0.0
        return paired_standard_error(self.base_per_sample.tolist(), per_sample.tolist())

    def critical_z(self, extra: Any = None) -> float:
        """Standard errors in the noise margin: ``margin_z``, or with ``joint_margin`` the critical value
        over every candidate so far (and ``extra``'s per-sample values, a model a generator is weighing)."""
        if self.joint is None:
            return self.cfg.margin_z
        return self.joint.with_extra(extra.tolist()) if extra is not None else self.joint.value

    def allows(self, val: float, per_sample: Any = None) -> bool:
        """A validation score within the budget once the noise margin of its paired difference is taken off."""
        return self.budget.allows(self.base_val, val - self.critical_z(per_sample) * self.standard_error(per_sample))

    def record_config(self, **extra: Any) -> dict[str, Any]:
        """What a candidate's config.yaml holds: the data section (``slimforge eval`` reads it) and ``extra``."""
        return {**self.record_extra, "optimize": {"baseline": str(self.baseline_dir), **extra}}

    def add(self, name: str, save: Callable[[Path], Any], recipe: str, details: dict[str, Any] | None = None,
            started: float | None = None) -> SizeCandidate | None:
        """Save a candidate with ``save(folder)``, then measure and score the folder; None when that failed."""
        t0 = started if started is not None else time.monotonic()
        folder = self.out / "candidates" / name
        try:
            save(folder)
            if hasattr(self.data, "save_assets"):
                self.data.save_assets(folder)  # what the folder needs to serve or predict alone (a catalogue, a tokenizer)
            return self._record(name, folder, recipe, details or {}, time.monotonic() - t0)
        except Exception as exc:  # one candidate that cannot be made is a failed candidate, not a failed search
            self.fail(name, exc)
            shutil.rmtree(folder, ignore_errors=True)
            return None

    def fail(self, name: str, exc: BaseException | str) -> None:
        text = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
        self.log(f"{name}: skipped ({text.splitlines()[0][:200] if text else ''})")
        self.failures.append({"name": name, "error": text[:500]})

    # ---------------------------------------------------------------- recording

    def _record(self, name: str, folder: Path, recipe: str, details: dict[str, Any], seconds: float) -> SizeCandidate:
        model = loading.load(folder)
        (val, per_sample), test = self.score_paired(model), _evaluate(model, self.data.test)[self.metric]
        size = weight_file(folder).stat().st_size
        cand = SizeCandidate(name, str(folder), recipe, size, round(self.base_bytes / size, 3), val, test, False,
                             round(seconds, 1), details, se=self.standard_error(per_sample))
        if self.joint is not None and per_sample is not None:
            self.joint.add(per_sample.tolist())
        self.candidates.append(cand)
        before = self.best
        self._judge()
        if self.best is not None and self.best is not before:
            _replace_folder(Path(self.best.path), self.out / "best")
        elif self.best is None and before is not None:
            shutil.rmtree(self.out / "best", ignore_errors=True)
        if before is not None and not before.within_budget:
            self.log(f"{before.name} is no longer within the budget with the margin over {len(self.candidates)} candidates "
                     f"({self.critical_z():.2f} standard errors)")
        self.log(f"{name}: {size / 1024:.0f} KB ({cand.size_x:.2f}x smaller), validation {self.metric} {val:.4f} "
                 f"({self.change(val, self.base_val)}, noise margin {cand.margin:.2f}), test {test:.4f}"
                 f"{' [best so far]' if self.best is cand else ''}{'' if cand.within_budget else ' (over budget)'}; "
                 f"{time.monotonic() - self.started:.0f} s elapsed")
        self.write_summary()
        return cand

    def _judge(self) -> None:
        """Every candidate's margin and verdict under the current critical value; the best: the smallest within."""
        z = self.critical_z()
        for c in self.candidates:
            noise = z * c.se
            margin = self.budget.loss(self.base_val, c.val - noise) - self.budget.loss(self.base_val, c.val)  # in the budget's unit
            c.margin = round(margin, 4) if math.isfinite(margin) else margin
            c.within_budget = self.budget.allows(self.base_val, c.val - noise)
        within = [c for c in self.candidates if c.within_budget]
        self.best = min(within, key=lambda c: (c.bytes, -c.val)) if within else None

    def margin_rule(self) -> str:
        """How the noise margin is sized, e.g. '2.61 standard errors: 95% for all 31 candidates at once'."""
        if self.base_per_sample is None or self.cfg.margin_z == 0:
            return "none"
        confidence = f"{NormalDist().cdf(self.cfg.margin_z):.0%}"
        if self.joint is None:
            return f"{self.cfg.margin_z:g} standard errors: {confidence} for each candidate alone"
        return f"{self.critical_z():.2f} standard errors: {confidence} for all {len(self.candidates)} candidates at once"

    def sampled_metrics(self) -> str:
        """How validation's sampled ranking metrics are scored (test: always its one fixed draw)."""
        return "expectation over the negative draw" if self.expected else "one fixed draw"

    def change(self, value: float, base: float) -> str:
        """A change in the budget's unit: '-1.23% rel.' or '-0.45 pts'."""
        unit = Budget(0.0, self.budget.relative)
        return f"{-unit.loss(base, value):+.2f}{'% rel.' if unit.relative else ' pts'}"

    def verdict(self, c: SizeCandidate) -> str:
        loss = self.budget.loss(self.base_val, c.val)
        if not c.within_budget:
            return f"rejected: validation loss {loss:.2f} + noise margin {c.margin:.2f} > budget {self.budget.describe()}"
        if c is self.best:
            return f"best: smallest within budget (validation loss {loss:.2f})"
        return f"within budget, larger than {self.best.name}" if self.best else "within budget"

    def summary(self) -> dict[str, Any]:
        """The search so far, with paths where they will be once the folder is in place."""
        return relocated(self._summary(), self.out, self.final)

    def _summary(self) -> dict[str, Any]:
        cfg = {k: (v.model_dump() if hasattr(v, "model_dump") else v) for k, v in asdict(self.cfg).items()}
        return {
            "objective": "size",
            "metric": self.metric,
            "budget": {"amount": self.budget.amount, "relative": self.budget.relative, "split": "validation",
                       "validation_sampled_metrics": self.sampled_metrics(), "noise_margin": self.margin_rule(),
                       "critical_z": self.critical_z() if self.base_per_sample is not None else 0.0},
            "baseline": {"path": str(self.baseline_dir), "bytes": self.base_bytes, "val": self.base_val, "test": self.base_test},
            "config": cfg,
            "best": asdict(self.best) if self.best else None,
            "candidates": [{**asdict(c), "verdict": self.verdict(c)} for c in self.candidates],
            "failed": self.failures,
            "generators": [name for name, _ in self.generators],
            "elapsed_s": round(time.monotonic() - self.started, 1),
            "time_budget_s": self.cfg.time_budget_s,
            "threads": self.threads,
            "machine": machine_description(),
            "headline": self.headline(),
            "table": self.table(),
        }

    def table(self) -> str:
        """The candidates as a Markdown table: size, validation and test metric, verdict."""
        m = self.metric
        lines = [f"| candidate | weight file (KB) | size x | val {m} | val change | noise margin | test {m} | test change | verdict |",
                 "|---|---|---|---|---|---|---|---|---|",
                 f"| baseline | {self.base_bytes / 1024:.0f} | 1.00 | {self.base_val:.4f} | | | {self.base_test:.4f} | | baseline |"]
        for c in sorted(self.candidates, key=lambda c: -c.size_x):
            lines.append(f"| {c.name} | {c.bytes / 1024:.0f} | {c.size_x:.2f} | {c.val:.4f} | {self.change(c.val, self.base_val)} | "
                         f"{c.margin:.2f} | {c.test:.4f} | {self.change(c.test, self.base_test)} | {self.verdict(c)} |")
        return "\n".join(lines)

    def write_summary(self) -> None:
        artifacts.write_json(self.out / "optimize.json", self.summary())
        notes = [f"{c.name}: {c.recipe}" for c in self.candidates]
        text = (f"# slimforge optimize --objective size\n\n{self.headline()}\n\nValidation's sampled metrics: {self.sampled_metrics()}; "
                f"test's: one fixed draw. Noise margin: {self.margin_rule()}.\n\n{self.table()}\n\n"
                + "".join(f"- {n}\n" for n in notes))
        atomic_write_bytes(self.out / "summary.md", text.encode())

    def headline(self) -> str:
        spent = f"searched {(time.monotonic() - self.started) / 60:.1f} of {self.cfg.time_budget_s / 60:.0f} min"
        if self.best is None:
            return f"No candidate within {self.budget.describe()} of validation {self.metric}; {spent}."
        b = self.best
        return (f"Best: {b.name}, {b.size_x:.2f}x smaller ({b.bytes / 1024:.0f} KB against {self.base_bytes / 1024:.0f} KB); "
                f"{self.metric} {self.change(b.val, self.base_val)} on validation, {self.change(b.test, self.base_test)} on test "
                f"(budget {self.budget.describe()}, validation); {spent}.")


def weight_file(folder: str | Path) -> Path:
    """The file holding an artifact's weights: ``model.safetensors``, or the runtime file of a quantized folder."""
    folder = Path(folder)
    if artifacts.artifact_kind(folder) == "quantized":
        from slimforge.quantize.core import read_quantized_info

        return folder / read_quantized_info(folder)["runtime_file"]
    return folder / artifacts.WEIGHTS_FILE


def _generators_for(model: nn.Module) -> list[tuple[str, SizeGenerator]]:
    found = [(name, SIZE_GENERATORS.get(name)) for name in SIZE_GENERATORS.names()]
    accepted = [(name, g) for name, g in found if g.accepts(model)]
    if not accepted:
        known = "; ".join(f"{name} ({g.description})" for name, g in found)
        raise ConfigError(f"optimize --objective size: no candidate generator accepts {type(model).__name__} (known generators: {known}). "
                          "For the fastest model within an accuracy budget use --objective latency.")
    return accepted


def _evaluate(model: Any, split: Any, per_sample: bool = False, expected: bool = False) -> dict[str, Any]:
    """The split's metrics; with ``per_sample``, also each sample's values where the split can give them
    (ranking splits: per user), under ``per_sample``; with ``expected``, a ranking split's sampled
    metrics as their expectation over the negative draw."""
    from slimforge.train.evaluate import evaluate

    options = {"per_user": per_sample and _takes(split, "per_user"), "expected": expected and _takes(split, "expected")}
    with torch.no_grad():
        if any(options.values()):
            return split.evaluate(model, **{k: v for k, v in options.items() if v})
        return evaluate(model, split)


def _takes(split: Any, option: str) -> bool:
    """Whether ``split.evaluate`` takes the keyword ``option`` (ranking splits: per_user, expected)."""
    evaluate = getattr(split, "evaluate", None)
    return evaluate is not None and option in inspect.signature(evaluate).parameters and (
        option != "expected" or getattr(split, "sampled_from", None) is not None)


def _known_metric(name: str, scores: dict[str, Any]) -> str:
    """``name`` when the validation split reports it as a score; else a ConfigError naming the ones it does."""
    known = [k for k, v in scores.items() if k not in NOT_SCORES and isinstance(v, float) and not math.isnan(v)]
    if name not in known:
        raise ConfigError(f"optimize: unknown metric {name!r}: the validation split reports {', '.join(known)}.{did_you_mean(name, known)} "
                          "(A recommender's validation ranks the whole catalogue, recall@20 / ndcg@20, only with the data option "
                          "val_full_catalogue=true.)")
    return name


def _replace_folder(src: Path, dst: Path) -> None:
    """Copy ``src`` to ``dst``, replacing it in one step (never half written)."""
    with staged_output(dst) as work:
        shutil.copytree(src, work, dirs_exist_ok=True, ignore=shutil.ignore_patterns("checkpoint.safetensors"))
