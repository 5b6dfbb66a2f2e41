"""What ``optimize`` searches for: its settings, a candidate's record, and the accuracy budget.

Accuracies are fractions of a finite split, so three facts shape the budget: a drop of exactly the
budget comes out of floating point a hair over it; a split of n samples measures accuracy only to
about ``1.96 * sqrt(p (1 - p) / n)``; and a candidate and the baseline are scored on the *same*
samples, so the noise in their difference comes from the samples where they disagree
(:class:`PairedDrop`). A candidate is within the budget only when its drop plus ``margin_z``
standard errors of that paired difference is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np

from slimforge.errors import ConfigError, did_you_mean
from slimforge.optimize.objectives import list_objectives
from slimforge.train import TrainConfig

# 100 * (0.9825 - 0.9725) = 1.0000000000000009 points: a drop of exactly the budget is within it.
BUDGET_TOLERANCE_POINTS = 1e-9

# One-sided z of the paired margin: within budget means drop + z * SE <= budget, i.e. the budget
# holds at about 95% one-sided confidence. Measured on MNIST-5k (400 validation, 1,000 test images;
# BENCHMARKS.md): the search chose a pruned int8 model at -0.75 validation points (9 disagreements
# with the baseline, SE 0.75) that lost 1.30 points on test; z = 1.0 would still admit a 0.25-point
# drop with 5 disagreements (SE 0.56, bound 0.81), and that model lost 1.20 on test; z = 1.28 (90%)
# admits it too (0.97). The search then keeps the fastest of some 20 candidates that pass, which
# favours the ones whose validation score was lucky, so the stricter end of the range is chosen.
DEFAULT_MARGIN_Z = 1.645

# Recovery after pruning is sized in optimizer steps, not epochs: 4 epochs of 5,000 images are
# about 130 steps, too few for a pruned model to come back; 4 epochs of 50,000 are plenty.
AUTO_RECOVERY_STEPS = 500
MAX_AUTO_RECOVERY_EPOCHS = 30


@dataclass(frozen=True)
class Budget:
    """How much of the chosen metric a candidate may lose against the baseline (on validation).

    ``amount`` is in **points** (100 x the absolute loss of a metric that is a fraction: accuracy
    0.90 -> 0.89 is 1 point) or, with ``relative``, in **percent of the baseline's own value**
    (NDCG@10 0.4615 -> 0.4523 is a 2% relative loss, 0.92 points). A gain is always within; a
    loss of exactly the budget is within it too."""

    amount: float
    relative: bool = False

    def __post_init__(self) -> None:
        if not math.isfinite(self.amount) or self.amount < 0:
            raise ConfigError(f"optimize: the budget must be a finite number >= 0, not {self.amount}.")

    @classmethod
    def parse(cls, text: str) -> Budget:
        """'2%' -> 2% relative loss; '0.5' (or '0.5pt') -> 0.5 points."""
        raw = text.strip().lower()
        relative = raw.endswith("%")
        number = raw.rstrip("%").removesuffix("points").removesuffix("pts").removesuffix("pt").strip()
        try:
            amount = float(number)
        except ValueError:
            raise ConfigError(f"--budget {text!r} is neither a relative loss like '2%' nor a number of points like '0.5'.") from None
        return cls(amount, relative)

    def loss(self, baseline: float, candidate: float) -> float:
        """What ``candidate`` loses against ``baseline``, in the budget's unit (negative: a gain)."""
        if not self.relative:
            return 100 * (baseline - candidate)
        if baseline <= 0:  # nothing to lose relative to: any drop below it is unbounded
            return 0.0 if candidate >= baseline else float("inf")
        return 100 * (baseline - candidate) / baseline

    def allows(self, baseline: float, candidate: float) -> bool:
        return self.loss(baseline, candidate) <= self.amount + BUDGET_TOLERANCE_POINTS

    def describe(self) -> str:
        return f"{self.amount:g}% relative" if self.relative else f"{self.amount:g} point(s)"


@dataclass(frozen=True)
class OptimizeConfig:
    """max_accuracy_drop: points of validation accuracy the result may lose (when ``budget`` is
    None); objective: the registered search to run ("latency": the fastest model, "size": the
    smallest weight file); metric: the validation metric the budget is on (size; None: the
    data's headline metric); budget: a :class:`Budget`, relative or in points; batch_size and
    threads: how latency is measured; train_threads: threads of recovery training (None: all
    cores); time_budget_s: wall-clock limit of the whole search; mac_targets: fractions of the
    baseline's MACs to try first; recovery: the distillation fine-tuning after each structural
    change (auto_recovery: at least AUTO_RECOVERY_STEPS optimizer steps); refine: after those,
    spend the remaining time at the edge of the budget (in-between targets, longer recovery)."""

    max_accuracy_drop: float = 1.0
    objective: str = "latency"  # a registered search (slimforge.optimize.objectives): "latency" or "size"
    metric: str | None = None  # what the budget is on (size objective); None: the data's headline metric
    budget: Budget | None = None  # None: max_accuracy_drop points
    batch_size: int = 32
    threads: int = 1
    train_threads: int | None = None
    channels_last: bool | None = None  # PyTorch CNN candidates in channels-last memory format; None: whichever runs the baseline faster
    reference: tuple[str, ...] = ("eager", "channels_last", "onnxruntime")  # fp32 forms of the baseline the report times
    time_budget_s: float = 3600.0
    backends: tuple[str, ...] = ("onnxruntime", "torch")
    mac_targets: tuple[float, ...] = (0.25, 0.12, 0.06, 0.5)  # fractions kept: of the MACs, or of the latency (prune_by)
    prune_by: str = "macs"  # "latency": prune to a fraction of the measured latency (slimforge.prune.latency)
    importance: str = "l2"
    recovery: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=4, lr=0.02, batch_size=128, warmup_epochs=0.2))
    auto_recovery: bool = True
    refine: bool = True
    distill_loss: str = "kd"
    temperature: float = 4.0
    factorize: bool = True
    repeats: int = 20
    margin_z: float = DEFAULT_MARGIN_Z  # standard errors of the paired validation difference added to the drop (0: the raw drop)
    joint_margin: bool = True  # size objective: margin_z's confidence held by all candidates at once (JointMargin), not by each alone
    sampled_expectation: bool = True  # size objective, ranking splits: sampled HR/NDCG on validation as their expectation over the negative draw

    def __post_init__(self) -> None:
        if self.objective not in list_objectives():
            raise ConfigError(f"optimize: objective {self.objective!r} is not supported.{did_you_mean(self.objective, list_objectives())} "
                              f"Known objectives: {', '.join(list_objectives())}.")
        if not math.isfinite(self.max_accuracy_drop) or self.max_accuracy_drop < 0:
            raise ConfigError(f"optimize: max_accuracy_drop is in points and must be a finite number >= 0, not {self.max_accuracy_drop}.")
        if not math.isfinite(self.margin_z) or self.margin_z < 0:
            raise ConfigError(f"optimize: margin_z is a number of standard errors, finite and >= 0, not {self.margin_z}.")
        if self.batch_size < 1 or self.threads < 1 or self.repeats < 1 or (self.train_threads is not None and self.train_threads < 1):
            raise ConfigError(f"optimize: batch_size, threads, train_threads and repeats must be >= 1 "
                              f"(got {self.batch_size}, {self.threads}, {self.train_threads}, {self.repeats}).")
        if self.prune_by not in ("macs", "latency"):
            raise ConfigError(f"optimize: prune_by is 'macs' or 'latency', not {self.prune_by!r}.")
        if self.time_budget_s <= 0:
            raise ConfigError(f"optimize: time_budget_s must be > 0, got {self.time_budget_s}.")
        if not self.mac_targets or not all(0 < t < 1 for t in self.mac_targets):
            raise ConfigError(f"optimize: mac_targets are fractions of the baseline's MACs in (0, 1), got {list(self.mac_targets)}.")
        from slimforge.deploy_forms import list_reference_forms
        from slimforge.quantize import list_backends

        unknown_forms = [f for f in self.reference if f not in list_reference_forms()]
        if unknown_forms:
            raise ConfigError(f"optimize: unknown reference form(s) {unknown_forms}; known: {', '.join(list_reference_forms())}.")

        unknown = [b for b in self.backends if b not in list_backends()]
        if unknown:  # found now, not after the pruning ladder has run
            raise ConfigError(f"optimize: unknown int8 backend(s) {unknown}; known: {', '.join(list_backends())}.")


    def effective_budget(self) -> Budget:
        """The budget the search checks: ``budget``, or ``max_accuracy_drop`` points."""
        return self.budget if self.budget is not None else Budget(self.max_accuracy_drop)


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
    margin_points: float = 0.0  # margin_z standard errors of the paired validation difference, added to the drop
    val_gained: int | None = None  # validation samples this candidate gets right and the baseline wrong
    val_lost: int | None = None  # ... and the other way round
    source: str | None = None  # the candidate (or "baseline") an int8 or longer-recovered candidate was made from
    epochs: int | None = None  # recovery epochs a pruned candidate has had in all


@dataclass(frozen=True)
class PairedDrop:
    """A candidate's accuracy against the baseline's on the same ``n`` samples: ``gained`` it gets
    right where the baseline is wrong, ``lost`` the other way round (everything else agrees)."""

    n: int
    gained: int
    lost: int

    @property
    def drop_points(self) -> float:
        return 100 * (self.lost - self.gained) / self.n

    @property
    def se_points(self) -> float:
        """Standard error, in points, of the mean paired difference: per sample it is +1, -1 or 0,
        so its variance is ((gained + lost) - (gained - lost)^2 / n) / n, and the mean's SE that over sqrt(n)."""
        return 100 * math.sqrt(max(0.0, self.gained + self.lost - (self.gained - self.lost) ** 2 / self.n)) / self.n


def paired_drop(baseline_correct: Sequence[bool], candidate_correct: Sequence[bool]) -> PairedDrop:
    """Count the disagreements of two per-sample correctness lists over the same samples."""
    if len(baseline_correct) != len(candidate_correct) or not len(baseline_correct):
        raise ValueError(f"paired_drop: the baseline was scored on {len(baseline_correct)} samples and the candidate "
                         f"on {len(candidate_correct)}; both need the same, non-empty split.")
    gained = sum(1 for b, c in zip(baseline_correct, candidate_correct) if c and not b)
    lost = sum(1 for b, c in zip(baseline_correct, candidate_correct) if b and not c)
    return PairedDrop(len(baseline_correct), gained, lost)


def paired_standard_error(baseline: Sequence[float], candidate: Sequence[float]) -> float:
    """Standard error of the mean of ``candidate - baseline``, per-sample values of one metric on
    the same samples (a ranking metric per user; for 0/1 correctness it is PairedDrop's, as a fraction)."""
    if len(baseline) != len(candidate) or not len(baseline):
        raise ValueError(f"paired_standard_error: the baseline has {len(baseline)} values and the candidate "
                         f"{len(candidate)}; both need the same, non-empty split.")
    diffs = [float(c) - float(b) for b, c in zip(baseline, candidate)]
    mean = sum(diffs) / len(diffs)
    return math.sqrt(sum((d - mean) ** 2 for d in diffs) / len(diffs)) / math.sqrt(len(diffs))


class JointMargin:
    """How many standard errors make a noise margin that holds for every candidate of a search at once.

    A search scores many candidates on one validation split and keeps the smallest (or fastest) one
    within the budget, so it keeps the one whose validation luck was best: a margin of ``z`` standard
    errors (one-sided confidence ``Phi(z)``) holds for each candidate alone, not for the one chosen.
    Here the confidence holds for all of them together: ``critical()`` is the ``Phi(z)`` quantile of
    ``max_k Z_k``, ``Z`` normal with the correlation of the candidates' paired differences (the max-T
    method of simultaneous inference), simulated with a fixed seed. Correlated candidates (int8 and
    int4 of one model) cost little; independent ones cost like Bonferroni. It is never below ``z``,
    and adding a candidate never lowers it (each candidate's column of draws is fixed by its position,
    the Cholesky factor is extended, not redone), so a verdict can only tighten as the search goes on."""

    DRAWS = 20_000

    def __init__(self, z: float, baseline: Sequence[float], seed: int = 0) -> None:
        self.z, self.seed = z, seed
        self.confidence = NormalDist().cdf(z)
        self.baseline = np.asarray(baseline, dtype=np.float64)
        self.diffs: list = []  # each candidate's centred per-sample difference / its norm (a unit vector), or None (no spread)
        self.draws = np.zeros((self.DRAWS, 0))
        self.value = z

    def add(self, candidate: Sequence[float]) -> float:
        """Take in one more candidate's per-sample values; the critical value over all of them so far."""
        self.value = self.with_extra(candidate, keep=True)
        return self.value

    def with_extra(self, candidate: Sequence[float], keep: bool = False) -> float:
        """The critical value were ``candidate`` one more of the candidates (kept only with ``keep``)."""
        if self.z <= 0:
            return 0.0
        values = np.asarray(candidate, dtype=np.float64)
        if values.shape != self.baseline.shape:
            raise ValueError(f"JointMargin: the baseline has {self.baseline.size} values and the candidate {values.size}.")
        diff = values - self.baseline
        diff = diff - diff.mean()
        norm = float(np.linalg.norm(diff))
        unit = diff / norm if norm > 1e-12 * max(1.0, float(np.abs(self.baseline).max(initial=0.0))) else None
        column = self._column(unit, len(self.diffs))
        draws = self.draws if column is None else np.concatenate([self.draws, column[:, None]], axis=1)
        if keep:
            self.diffs.append(unit)
            self.draws = draws
        if not draws.shape[1]:
            return self.value
        return max(self.value, float(np.quantile(draws.max(axis=1), self.confidence)))  # value starts at z

    def _column(self, unit, position: int):
        """Draws of this candidate's Z: correlated with the earlier ones as the paired differences are,
        from a standard normal stream of its own (seeded by position), by regression on the earlier ones."""
        if unit is None:
            return None  # no spread in the difference (the candidate scores every sample as the baseline does, or shifted): no noise
        own = np.random.default_rng([self.seed, position]).standard_normal(self.DRAWS)
        earlier = [u for u in self.diffs if u is not None]
        if not earlier:
            return own
        basis = np.stack(earlier, axis=1)  # n x k unit vectors, their Gram matrix the correlation of the earlier Z
        coef, *_ = np.linalg.lstsq(basis, unit, rcond=None)  # unit ~ basis @ coef + residual
        residual = float(np.linalg.norm(unit - basis @ coef))
        # Z_new = sum_j coef_j * (the earlier Z_j) + residual * own: the correlation with Z_j is <unit, u_j>, its variance 1
        return self.draws @ coef + residual * own


def within_budget(baseline: float, candidate: float, max_drop_points: float, margin_points: float = 0.0) -> bool:
    """True when ``candidate`` loses at most ``max_drop_points`` accuracy points against
    ``baseline`` (both fractions) once ``margin_points`` (the noise margin) is added to the drop;
    a drop of exactly the budget, with no margin, is within it."""
    return 100 * (baseline - candidate) + margin_points <= max_drop_points + BUDGET_TOLERANCE_POINTS


def interval_points(accuracy: float, n: int) -> float:
    """Half-width, in points, of the 95% interval of an accuracy measured on ``n`` samples
    (normal approximation, with the Wilson floor of one sample when the accuracy is 0 or 1)."""
    if n <= 0:
        return float("inf")
    p = min(max(accuracy, 0.5 / n), 1 - 0.5 / n)
    return 100 * 1.96 * math.sqrt(p * (1 - p) / n)


def recovery_epochs(base_epochs: int, train_samples: int, batch_size: int, *, seconds_per_epoch: float | None = None,
                    time_budget_s: float | None = None) -> int:
    """Epochs that give recovery at least AUTO_RECOVERY_STEPS optimizer steps (at most
    MAX_AUTO_RECOVERY_EPOCHS), never fewer than ``base_epochs``; and, when an epoch's time is
    known, no more than a quarter of the time budget for one candidate (the search needs several)."""
    steps_per_epoch = max(1, math.ceil(train_samples / batch_size))
    epochs = min(MAX_AUTO_RECOVERY_EPOCHS, math.ceil(AUTO_RECOVERY_STEPS / steps_per_epoch))
    if seconds_per_epoch and time_budget_s:
        epochs = min(epochs, int(time_budget_s / 4 / seconds_per_epoch))
    return max(base_epochs, epochs)
