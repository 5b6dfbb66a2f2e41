"""The distillation objective the trainer calls for each batch, and its config."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from slimforge.distill.cache import CACHE_DTYPES, TeacherCache
from slimforge.distill.hints import HINT_LOSSES, HintSpec, build_adapter, capture_outputs, hint_loss, resolve_module
from slimforge.distill.losses import LOSS_SETTINGS, LOSSES, LogitLoss, build_loss, default_soft_weight, loss_settings, split_loss
from slimforge.distill.losses import loss_params as resolve_loss_params
from slimforge.distill.teachers import TEACHER_DTYPES, TeacherLike, combine_teachers, prepare_teachers, run_teacher, unwrap
from slimforge.errors import ConfigError, DataError, SlimforgeError
from slimforge.train.callbacks import LossOutput

log = logging.getLogger("slimforge.distill")

IGNORE_INDEX = -100  # targets equal to this (padding tokens) count in no loss, as in F.cross_entropy


@dataclass(frozen=True)
class DistillConfig:
    """How to distil. ``loss`` names a registry entry (``list_losses()``).

    total = soft_weight * loss(student, teacher) + hard_weight * CE(student, labels)
            + hint_weight * mean over hints of distance(adapter(student feature), teacher feature)

    ``soft_weight + hard_weight = 1``: give one and the other is its complement; give neither and
    the loss's default applies (``losses.default_soft_weight``). ``temperature``, ``alpha`` and
    ``beta`` left at None take the loss's defaults; setting one the loss does not use is an error.
    Any other keyword the loss's constructor takes goes in ``loss_params`` (or inline:
    ``loss={"name": "dkd", "beta": 8}``). The resolved values replace the Nones, so a config reads
    as what ran.
    """

    loss: str = "kd"
    temperature: float | None = None  # kd, dkd: 4
    alpha: float | None = None  # dkd: weight of the target-class part (TCKD), 1
    beta: float | None = None  # dkd: weight of the non-target part (NCKD), 8
    loss_params: Mapping[str, Any] = field(default_factory=dict)  # the loss's other keywords (a plug-in loss's own)
    soft_weight: float | None = None
    hard_weight: float | None = None
    hints: tuple[HintSpec, ...] = field(default_factory=tuple)
    hint_loss: str = "mse"
    hint_weight: float = 1.0
    cache: bool = True  # cache teacher outputs when the training inputs are deterministic
    cache_dir: str | None = None  # folder of content-keyed caches; None: cache.default_cache_dir(), shared by all runs
    cache_dtype: str = "float32"
    teacher_dtype: str | None = None  # run teachers in float32/bfloat16/float16; None keeps theirs
    cache_batch_size: int = 256
    warmup_epochs: float = 0.0  # ramp the distillation terms linearly from 0 (DKD's paper warms up 20 epochs)
    augment_copies: int = 0  # text: also distil on this many perturbed copies of each training text (a transfer set)
    init_embeddings: bool = False  # text students: start from the first teacher's word-embedding table

    def __post_init__(self) -> None:
        object.__setattr__(self, "hints", tuple(HintSpec.parse(h) for h in self.hints))
        self._resolve_loss()
        soft, hard = mix_weights(self.soft_weight, self.hard_weight, default_soft_weight(self.loss))
        if soft == 0 and not self.hints:
            raise ConfigError("distill.soft_weight is 0 (hard_weight 1) and there are no hints: that trains on the labels alone, with no teacher. "
                              "Give soft_weight > 0 (e.g. 0.9 with hard_weight 0.1), or use `slimforge train`.")
        object.__setattr__(self, "soft_weight", soft)
        object.__setattr__(self, "hard_weight", hard)
        if self.augment_copies < 0:
            raise ConfigError(f"distill.augment_copies must be >= 0, got {self.augment_copies}.")
        for key in ("temperature", "cache_batch_size"):
            if getattr(self, key) is not None and not getattr(self, key) > 0:
                raise ConfigError(f"distill.{key} must be positive, got {getattr(self, key)!r}.")
        for key in ("alpha", "beta", "hint_weight"):
            if getattr(self, key) is not None and getattr(self, key) < 0:
                raise ConfigError(f"distill.{key} must be >= 0, got {getattr(self, key)!r}.")
        for key, choices in (("hint_loss", HINT_LOSSES), ("cache_dtype", CACHE_DTYPES), ("teacher_dtype", (None, *TEACHER_DTYPES))):
            if getattr(self, key) not in choices:
                raise ConfigError(f"distill.{key}={getattr(self, key)!r} is not one of {list(choices)}.")


    def _resolve_loss(self) -> None:
        """Name, temperature/alpha/beta and the other keywords of the loss, each default filled in."""
        name, inline = split_loss(self.loss)
        LOSSES.get(name)  # unknown names fail here, with a suggestion
        given = {**inline, **self.loss_params}
        for key in LOSS_SETTINGS:
            if key in given and getattr(self, key) is not None and getattr(self, key) != given[key]:
                raise ConfigError(f"distill.{key} is given twice, {getattr(self, key)} and {given[key]} (in distill.loss): give it once.")
            if key in given:
                object.__setattr__(self, key, given.pop(key))
        object.__setattr__(self, "loss", name)
        for key, value in loss_settings(name, temperature=self.temperature, alpha=self.alpha, beta=self.beta).items():
            object.__setattr__(self, key, value)
        object.__setattr__(self, "loss_params", resolve_loss_params(name, given))


def mix_weights(soft: float | None, hard: float | None, default_soft: float) -> tuple[float, float]:
    """(soft_weight, hard_weight) summing to 1, from either one, both, or neither (``default_soft``)."""
    if soft is None and hard is None:
        soft = default_soft
    for key, value in (("soft_weight", soft), ("hard_weight", hard)):
        if value is not None and not 0 <= value <= 1:
            raise ConfigError(f"distill.{key} must be between 0 and 1 (the loss is a convex combination of the soft and hard terms), got {value!r}.")
    if soft is None:
        soft = round(1.0 - hard, 12)  # 0.1, not 0.09999999999999998, in config.yaml
    if hard is None:
        hard = round(1.0 - soft, 12)
    if abs(soft + hard - 1.0) > 1e-6:
        raise ConfigError(
            f"distill.soft_weight + distill.hard_weight must be 1 (a convex combination), got {soft:g} + {hard:g}. "
            f"Give only one of them (the other is 1 minus it), e.g. soft_weight={soft / (soft + hard):.3g}."
        )
    return float(soft), float(hard)


class DistillObjective:
    """``objective(model, inputs, targets, indices) -> LossOutput``: the trainer's Objective for distillation.

    model may be DDP-wrapped (hooks go on ``model.module``); inputs: (batch, ...); targets:
    (batch,) or (batch, seq) class indices; indices: (batch,) positions in the training split.
    ``mode`` is "cached" (teacher outputs read from a ``TeacherCache``) or "live".
    Hint adapters are trainable: see ``trainable_modules`` and ``sync_gradients``.
    """

    def __init__(
        self,
        loss: LogitLoss,
        teachers: list[nn.Module],
        config: DistillConfig,
        adapters: nn.ModuleDict,
        caches: list[TeacherCache] | None = None,
        mode_reason: str = "",
    ) -> None:
        self.loss, self.teachers, self.config, self.adapters = loss, teachers, config, adapters
        self.caches = caches
        self.label_smoothing = 0.0  # the run's train.label_smoothing, for the hard-label term (set by distill.run)
        self.ranking_objective: Any = None  # a recommender's label term: the run's objective (bce, bpr), set by distill.run
        self.mode = "cached" if caches else "live"
        self.mode_reason = mode_reason
        self._cache_checked = False
        self.scale = 1.0  # multiplies the distillation and hint terms; DistillWarmup ramps it
        log.info("distill: teacher outputs %s (%s)", self.mode, mode_reason)

    # ------------------------------------------------------------------ the objective

    def __call__(self, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, indices: torch.Tensor) -> LossOutput:
        student = unwrap(model)
        self._follow_device(input_device(inputs))
        hints = self.config.hints
        with capture_outputs(student, [h.student for h in hints], "student") as student_features:
            student_logits = model(inputs)
        outputs, teacher_features = self._teacher_outputs(inputs, indices)
        if student_logits.dim() == 1:  # a recommender: one score per (user, item) pair
            rows_s, rows_t, rows_y, hard = self._candidate_rows(student_logits, outputs, inputs, targets, indices, student)
        else:
            rows_s, rows_t, rows_y, hard = self._class_rows(student_logits, outputs, targets)
        soft = self.loss(rows_s, rows_t, rows_y) if self.config.soft_weight else rows_s.new_zeros(())
        total = self.config.hard_weight * hard + self.scale * self.config.soft_weight * soft
        # Unweighted parts, as tensors: the trainer averages them per epoch (train_soft_loss, ...) without a sync per step.
        parts = {"soft_loss": soft.detach(), "hard_loss": hard.detach()}
        if hints:
            feature_loss = torch.stack(
                [
                    hint_loss(self.adapters[_key(i)], student_features[h.student], teacher_features[h.teacher], self.config.hint_loss)
                    for i, h in enumerate(hints)
                ]
            ).mean()
            total = total + self.scale * self.config.hint_weight * feature_loss
            parts["hint_loss"] = feature_loss.detach()
        return LossOutput(total, student_logits, parts)

    def _class_rows(self, student_logits: torch.Tensor, outputs: list[torch.Tensor], targets: torch.Tensor) -> tuple:
        """Classifier outputs: (rows, classes) of student and (merged) teacher logits, class targets, and
        cross-entropy on them. Sequence outputs (batch, seq, classes) become rows; padded positions drop out."""
        for output in outputs:
            check_class_counts(student_logits.shape[-1], output.shape[-1])
        teacher_logits = combine_teachers(torch.stack(outputs), self.loss.ensemble, self.loss.temperature)
        rows_s, rows_t, rows_y = _rows(student_logits), _rows(teacher_logits), targets.reshape(-1)
        keep = rows_y != IGNORE_INDEX
        if not bool(keep.all()):
            rows_s, rows_t, rows_y = rows_s[keep], rows_t[keep], rows_y[keep]
        hard = F.cross_entropy(rows_s, rows_y, label_smoothing=self.label_smoothing) if self.config.hard_weight else rows_s.new_zeros(())
        return rows_s, rows_t, rows_y, hard

    def _candidate_rows(self, scores: torch.Tensor, outputs: list[torch.Tensor], inputs: Any, targets: torch.Tensor,
                        indices: torch.Tensor, student: nn.Module) -> tuple:
        """A recommender's batch (B positives, then each positive's k sampled negatives, scores (B * (1 + k),)):
        each positive and its negatives form a row of 1 + k candidates whose "class" 0 is the positive, so
        every logit loss distils the teacher's ranking of the sampled candidates (``kd``: the softmax over them
        at temperature T). The hard term is the run's own training objective (``train.loss``: ranking, softmax, bce,
        bpr): on these scores, or, for a softmax over the catalogue, on the student's scores of its sample of the
        catalogue (the unwrapped student: one more forward, whose gradients DDP reduces with the rest)."""
        rows_s = candidate_rows(scores, len(indices))
        rows_t = combine_teachers(torch.stack([candidate_rows(o.reshape(-1), len(indices)) for o in outputs]),
                                  self.loss.ensemble, self.loss.temperature)
        rows_y = torch.zeros(len(rows_s), dtype=torch.long, device=rows_s.device)
        if not self.config.hard_weight:
            return rows_s, rows_t, rows_y, rows_s.new_zeros(())
        if self.ranking_objective is None:
            raise ConfigError("Distilling a recommender needs its training objective (bce or bpr) for the label term: "
                              "set objective.ranking_objective, as slimforge.distill does from the data's train.loss.")
        uses_catalogue = getattr(self.ranking_objective, "uses_catalogue", None)
        scorer = student if uses_catalogue is not None and uses_catalogue(student) else (lambda _inputs: scores)
        hard = self.ranking_objective(scorer, inputs, targets, indices).loss
        return rows_s, rows_t, rows_y, hard

    def cached_targets(self) -> torch.Tensor:
        """The (merged, for an ensemble) teacher logits of every cached training sample: (N, classes)."""
        if not self.caches:
            raise ConfigError(f"The teacher outputs are not cached ({self.mode_reason}).")
        every = torch.arange(len(self.caches[0]))
        return combine_teachers(torch.stack([c.lookup(every) for c in self.caches]), self.loss.ensemble, self.loss.temperature)

    def _teacher_outputs(self, inputs: torch.Tensor, indices: torch.Tensor) -> tuple[list[torch.Tensor], dict[str, torch.Tensor]]:
        """Each teacher's float32 logits (batch, ...), and the teacher's hinted features (live mode only)."""
        if self.caches:
            cached = [cache.lookup(indices, input_device(inputs)) for cache in self.caches]
            if not self._cache_checked:
                self._check_cache(inputs, cached)
            if self.caches:
                return cached, {}
        with capture_outputs(self.teachers[0], [h.teacher for h in self.config.hints], "teacher") as features:
            logits = [run_teacher(t, inputs) for t in self.teachers]
        return logits, features

    def _check_cache(self, inputs: torch.Tensor, cached: list[torch.Tensor]) -> None:
        """Once: the cache is only valid if this batch's inputs are those it was built from."""
        self._cache_checked = True
        with torch.autocast(input_device(inputs).type, enabled=False):  # the cache was computed in full precision
            live = [run_teacher(t, inputs) for t in self.teachers]
        scale = 1 + max(float(x.abs().max()) for x in live)
        tolerance = (1e-2 if self.config.cache_dtype == "float16" else 1e-3) * scale
        if any(a.shape != b.shape or float((a - b).abs().max()) > tolerance for a, b in zip(live, cached)):
            self.caches, self.mode = None, "live"
            self.mode_reason = (
                "the first batch's teacher outputs differ from the cached ones, so the training inputs are not "
                "the cached ones (random augmentation?); using the live teacher"
            )
            log.warning("distill: %s", self.mode_reason)

    # ------------------------------------------------------------------ what the trainer manages

    def trainable_modules(self) -> list[nn.Module]:
        """Modules to optimise with the student (the hint adapters; none without hints).
        Their weights are in ``state_dict()``, for checkpoints and resume."""
        return [self.adapters] if len(self.adapters) else []

    def parameters(self) -> Iterator[nn.Parameter]:
        return self.adapters.parameters()

    def state_dict(self) -> dict[str, Any]:
        return self.adapters.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.adapters.load_state_dict(state)

    def train(self, mode: bool = True) -> DistillObjective:
        """Adapters follow the student's mode; teachers stay in eval mode."""
        self.adapters.train(mode)
        return self

    def to(self, device: torch.device | str) -> DistillObjective:
        """Move teachers and adapters; call before building the optimizer."""
        for teacher in self.teachers:
            teacher.to(device)
        self.adapters.to(device)
        return self

    def sync_gradients(self) -> None:
        """Average adapter gradients over processes (they live outside the student's DDP wrapper).

        Call after ``backward`` and before ``optimizer.step``; a no-op in one process or without hints.
        """
        dist = torch.distributed
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return
        for param in self.adapters.parameters():
            if param.grad is not None:
                dist.all_reduce(param.grad, op=dist.ReduceOp.SUM)
                param.grad /= dist.get_world_size()

    def _follow_device(self, device: torch.device) -> None:
        param = next(self.teachers[0].parameters(), None)
        if param is not None and param.device != device:
            self.to(device)


def build_distill_objective(
    student: nn.Module,
    teachers: TeacherLike | Sequence[TeacherLike],
    config: DistillConfig,
    train_inputs: Sequence[Any] | torch.Tensor | None = None,
    cache_dir: str | Path | None = None,
    *,
    example_input: torch.Tensor | None = None,
    device: torch.device | str | None = None,
) -> DistillObjective:
    """Build the distillation objective for ``student``.

    teachers: a model, a run folder, or a list of them (an ensemble).
    train_inputs: the training split's inputs in index order, *only* when training batches are
        exactly these inputs (no random augmentation); with ``cache_dir`` and ``config.cache``
        teacher outputs are cached there. Otherwise the teacher runs live each step.
    example_input: (batch, ...) probe for class counts and hint adapter shapes; defaults to the
        first two ``train_inputs``. Required for hints when ``train_inputs`` is None.
    """
    # Teachers: frozen, eval mode, on the training device, never wrapped.
    prepared = prepare_teachers(teachers, config.teacher_dtype)
    if device is not None:
        for teacher in prepared:
            teacher.to(device)
    if config.hints and len(prepared) > 1:
        raise ConfigError("distill.hints need a single teacher; an ensemble has no one set of features to match.")
    loss = build_loss(config.loss, temperature=config.temperature, alpha=config.alpha, beta=config.beta, **config.loss_params)
    probe = example_input if example_input is not None else first_inputs(train_inputs)

    # Probe: check class counts, and size the hint adapters from real feature shapes.
    adapters = nn.ModuleDict()
    student_raw = unwrap(student)
    for hint in config.hints:
        resolve_module(student_raw, hint.student, "student")
        resolve_module(prepared[0], hint.teacher, "teacher")
    if probe is not None:
        student_logits, student_features = _probe(student_raw, probe, [h.student for h in config.hints], "student")
        for name, teacher in zip(_teacher_names(teachers), prepared):
            teacher_logits, teacher_features = _probe_teacher(name, teacher, probe, [h.teacher for h in config.hints])
            check_class_counts(student_logits.shape[-1], teacher_logits.shape[-1])
        for i, hint in enumerate(config.hints):
            adapters[_key(i)] = build_adapter(student_features[hint.student].shape, teacher_features[hint.teacher].shape)
    elif config.hints:
        raise ConfigError("distill.hints need example_input (or train_inputs) to size the adapters.")
    param = next(student_raw.parameters(), None)
    adapters.to(device if device is not None else (param.device if param is not None else "cpu"))

    # Teacher outputs: cached when the inputs are fixed, live otherwise.
    caches, reason = None, _live_reason(config, train_inputs, cache_dir)
    if not reason:
        caches = [
            TeacherCache.build(t, train_inputs, cache_dir, dtype=config.cache_dtype, batch_size=config.cache_batch_size)
            for t in prepared
        ]
        reused = sum(c.reused for c in caches)
        reason = f"{len(caches)} teacher cache(s) in {cache_dir}, {reused} reused, {len(caches) - reused} computed"
    return DistillObjective(loss, prepared, config, adapters, caches, reason)


def check_class_counts(student_classes: int, teacher_classes: int) -> None:
    if student_classes != teacher_classes:
        raise SlimforgeError(
            f"The teacher predicts {teacher_classes} classes but the student predicts {student_classes}. "
            "Distillation compares them class by class: build the student with "
            f"num_classes={teacher_classes}, or use a teacher trained on the student's label set."
        )


def _live_reason(config: DistillConfig, train_inputs: Any, cache_dir: str | Path | None) -> str:
    """Why the teacher must run live, or '' when its outputs can be cached."""
    if not config.cache:
        return "distill.cache is off"
    if config.hints:
        return "feature hints need the teacher's intermediate features each step"
    if train_inputs is None:
        return "no fixed training inputs were given (augmented or streamed data)"
    if getattr(train_inputs, "deterministic", True) is False:
        return "the training data is augmented, so a sample's input changes between epochs"
    if cache_dir is None:
        return "no cache folder was given"
    return ""


def _teacher_names(teachers: TeacherLike | Sequence[TeacherLike]) -> list[str]:
    items = [teachers] if isinstance(teachers, (nn.Module, str, Path)) else list(teachers)
    return [str(t) if isinstance(t, (str, Path)) else type(t).__name__ for t in items]


def _probe_teacher(name: str, teacher: nn.Module, inputs: Any, paths: list[str]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``_probe`` on a teacher; a teacher that cannot take these inputs is a DataError naming it."""
    try:
        return _probe(teacher, inputs, paths, "teacher")
    except (RuntimeError, ValueError, IndexError, TypeError) as exc:
        if isinstance(exc, SlimforgeError):
            raise
        shape = list(inputs.shape[1:]) if isinstance(inputs, torch.Tensor) else "text"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(
            f"The teacher {name} cannot run on this data's inputs (shape {shape} per sample): {first}. Distil on the data "
            "the teacher was trained on: without --data, `slimforge distill` uses the teacher's own data section."
        ) from exc


@torch.no_grad()
def _probe(model: nn.Module, inputs: torch.Tensor, paths: list[str], role: str) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One forward pass in eval mode (BatchNorm statistics untouched), mode restored after."""
    was_training = model.training
    model.eval()
    try:
        with capture_outputs(model, paths, role) as features:
            logits = run_teacher(model, inputs)
    finally:
        model.train(was_training)
    return logits, dict(features)


def input_device(inputs: Any) -> torch.device:
    """The device of a batch's inputs: a tensor, or the first tensor of a dict (text batches)."""
    return next(iter(inputs.values())).device if isinstance(inputs, dict) else inputs.device


def first_inputs(train_inputs: Sequence[Any] | torch.Tensor | None) -> torch.Tensor | None:
    """The first two inputs of a data set (or a tensor of inputs) as one batch: the probe that sizes hint adapters."""
    if train_inputs is None or len(train_inputs) == 0:
        return None
    if isinstance(train_inputs, torch.Tensor):
        return train_inputs[:2]
    if hasattr(train_inputs, "__getitems__"):
        batch = train_inputs.__getitems__(list(range(min(2, len(train_inputs)))))
        if isinstance(batch, (tuple, list)) and isinstance(batch[0], dict):  # text: padded together
            return batch[0]
    items = [train_inputs[i] for i in range(min(2, len(train_inputs)))]
    return torch.stack([torch.as_tensor(x[0] if isinstance(x, (tuple, list)) else x) for x in items])


def candidate_rows(scores: torch.Tensor, positives: int) -> torch.Tensor:
    """(B * (1 + k),) scores laid out as B positives then each positive's k negatives -> (B, 1 + k),
    the positive first in each row."""
    if positives == 0 or len(scores) % positives or len(scores) == positives:
        raise DataError(f"Distilling a recommender needs batches of positives followed by their sampled negatives; got "
                        f"{len(scores)} scores for {positives} positives.")
    return torch.cat([scores[:positives, None], scores[positives:].view(positives, -1)], dim=1)


def _rows(logits: torch.Tensor) -> torch.Tensor:
    return logits.reshape(-1, logits.shape[-1])


def _key(i: int) -> str:
    return f"hint{i}"
