"""``slimforge.distill``: train a student against one teacher or an ensemble, through the trainer.

    result = slimforge.distill.run(student, ["runs/teacher"], data, DistillConfig(loss="dkd"),
                                   TrainConfig(epochs=20), out="runs/student")

The student's run folder is an ordinary artifact (model.safetensors, model.json, metrics.json).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from pydantic import Field, model_validator
from torch import nn

from slimforge import artifacts, loading
from slimforge.config import Frozen
from slimforge.data.core import DataSplits
from slimforge.distill.cache import default_cache_dir
from slimforge.distill.objective import DistillConfig, build_distill_objective, first_inputs
from slimforge.distill.teachers import TeacherLike
from slimforge.errors import ConfigError
from slimforge.experiment import DataConfig, ModelConfig, run_data_config
from slimforge.train import Callback, TrainConfig, TrainingDiverged, TrainResult, TrainState, seed_everything, train

class DistillSection(Frozen):
    """The ``distill`` section of a distillation run (see ``DistillConfig``). None = the loss's default."""

    loss: str | dict[str, Any] = Field("kd", description="a loss name (slimforge.distill.list_losses()), or {name: ..., its settings}")
    temperature: float | None = Field(None, gt=0, description="softmax temperature (kd, dkd; default 4)")
    alpha: float | None = Field(None, ge=0, description="DKD only: weight of the target-class part (default 1)")
    beta: float | None = Field(None, ge=0, description="DKD only: weight of the non-target part (default 8)")
    loss_params: dict[str, Any] = Field(default_factory=dict, description="the loss's own other keywords (a plug-in loss's hyper-parameters)")
    soft_weight: float | None = Field(None, ge=0, le=1, description="weight of the distillation loss; 1 - hard_weight (default: the loss's)")
    hard_weight: float | None = Field(None, ge=0, le=1, description="weight of cross-entropy on the labels; 1 - soft_weight")
    hints: list[str] = Field(default_factory=list, description="feature hints 'student.path:teacher.path'")
    hint_loss: str = "mse"
    hint_weight: float = Field(1.0, ge=0)
    cache: bool = Field(True, description="cache teacher outputs when the training data is not augmented")
    cache_dir: str | None = Field(None, description="folder of teacher caches, keyed by content (default: $SLIMFORGE_CACHE/teacher-outputs)")
    cache_dtype: str = "float32"
    teacher_dtype: str | None = None
    warmup_epochs: float = Field(0.0, ge=0, description="ramp the distillation loss in linearly over this many epochs")
    augment_copies: int = Field(0, ge=0, description="text: add this many perturbed copies of each training text, labelled by the teacher (Tang et al. 2019)")
    init_embeddings: bool = Field(False, description="text students: initialise the word embeddings from the first teacher's table")

    def to_config(self) -> DistillConfig:
        return DistillConfig(**{**self.model_dump(), "hints": tuple(self.hints)})


RESOLVED_KEYS = ("loss", "temperature", "alpha", "beta", "loss_params", "soft_weight", "hard_weight")  # None in a section: the loss's default


# Distillation clips the gradient norm unless the train section says otherwise (grad_clip: null turns
# it off). At a high temperature the soft term is close to a squared error on the logits, whose
# curvature does not fall as the student learns, and a student that must reach a confident teacher's
# logits grows steep: on MNIST, the 784-800-800 student at T=20, soft weight 0.9, SGD lr 0.1 diverged
# within 30 steps, and within 450 with the lr warmed up over an epoch; at lr 0.05 too. With the norm
# clipped at 5 it trained (3 epochs: 290 test errors; 315 unclipped at lr 0.02). On Fashion-MNIST
# (resnet8 x0.5, T=4, weights 0.5/0.5) the norm stayed under 2.6 in the first 300 steps: the clip
# does not bind there. docs/distill.md has the measurements.
DISTILL_GRAD_CLIP = 5.0


def with_distill_train_defaults(raw: Any) -> Any:
    """A raw config (dict) whose ``train`` section gets distillation's defaults for the keys it lacks."""
    if isinstance(raw, dict) and isinstance(raw.get("train"), dict):
        return {**raw, "train": {"grad_clip": DISTILL_GRAD_CLIP, **raw["train"]}}
    return raw


def distill_train_config(**settings: Any) -> TrainConfig:
    """A TrainConfig with distillation's defaults (``grad_clip`` = DISTILL_GRAD_CLIP) under ``settings``."""
    return TrainConfig(**{"grad_clip": DISTILL_GRAD_CLIP, **settings})


class DistillRunConfig(Frozen):
    """A whole distillation run: data (None = the first teacher's), student, training, losses.
    ``train`` defaults as TrainConfig's, except ``grad_clip`` (DISTILL_GRAD_CLIP)."""

    data: DataConfig | None = None
    student: ModelConfig = ModelConfig(name="resnet8")
    train: TrainConfig = distill_train_config()
    distill: DistillSection = DistillSection()
    prune_teacher_ratio: float | None = Field(None, gt=0, lt=1, description="student = the first teacher with this fraction of channels pruned")

    @model_validator(mode="before")
    @classmethod
    def _train_defaults(cls, raw: Any) -> Any:
        return with_distill_train_defaults(raw)


def run(
    student: nn.Module,
    teachers: TeacherLike | Sequence[TeacherLike],
    data: DataSplits,
    config: DistillConfig | None = None,
    train_config: TrainConfig | None = None,
    out: str | Path | None = None,
    *,
    record: dict[str, Any] | None = None,
    resume: bool = False,
    callbacks: Sequence[Any] = (),
    cache_dir: str | Path | None = None,
) -> TrainResult:
    """Distil ``teachers`` into ``student`` on ``data`` and return the trainer's result.

    Teacher outputs are cached when the training split is not augmented, keyed by content
    (teacher weights, training inputs, dtype) in ``cache_dir``, else ``config.cache_dir``, else
    the folder every run shares (``cache.default_cache_dir()``): a later run of the same teacher
    on the same data reuses them. Otherwise the teachers run live each step (the log says which).
    ``metrics.json`` gets a ``distill`` section: the teachers, the settings, the teacher cache and
    each epoch's soft and hard loss (see :class:`DistillRecord`).
    """
    config = config or DistillConfig()
    train_config = train_config or distill_train_config()
    if out is None:
        return _run(student, teachers, data, config, train_config, None, record, resume, callbacks, cache_dir)
    from slimforge.train.loop import run_folder

    with run_folder(out, resume) as work:  # the teacher cache goes into the run's staging folder, with the rest
        result = _run(student, teachers, data, config, train_config, work, record, resume, callbacks, cache_dir)
    result.out = Path(out)
    return result


def _run(student, teachers, data, config, train_config, out, record, resume, callbacks, cache_dir) -> TrainResult:
    n_original = None
    if config.augment_copies:
        data, n_original = _with_transfer_set(data, config, train_config.seed)
    fixed_inputs = data.train if getattr(data.train, "deterministic", False) else None
    cache_dir = cache_dir or config.cache_dir or default_cache_dir()
    # Hints size their adapters on a probe: the first training inputs, read here when the data is augmented (only
    # then: a probe draws augmentation randomness, which a run without hints keeps as it was).
    probe = first_inputs(data.train) if config.hints and fixed_inputs is None else None
    objective = build_distill_objective(student, teachers, config, train_inputs=fixed_inputs, cache_dir=cache_dir, example_input=probe)
    objective.label_smoothing = train_config.label_smoothing  # the hard-label term smooths as plain training does
    objective.ranking_objective = _ranking_objective(data, train_config)
    if n_original is not None:
        from slimforge.text.augment import label_copies

        # The copies' labels (for the hard loss and the training accuracy) are the teachers' class.
        label_copies(data.train, n_original, objective.cached_targets())
    if config.init_embeddings:
        from slimforge.text.models import init_embeddings_from_teacher

        init_embeddings_from_teacher(student, objective.teachers[0])
    if not train_config.quiet:
        print(f"distillation: {describe_loss(config)}; teacher {objective.mode} ({objective.mode_reason})", flush=True)
        for cache in objective.caches or []:
            print(f"teacher cache: {cache.summary()}", flush=True)
    callbacks = list(callbacks)
    if config.warmup_epochs > 0:
        callbacks.append(DistillWarmup(objective, config.warmup_epochs))
    callbacks.append(DistillRecord(describe_run(teachers, objective, config)))
    try:
        return train(student, data, train_config, out, objective=objective, callbacks=callbacks, record=record, resume=resume)
    except TrainingDiverged as exc:
        if config.temperature is None:
            raise
        raise TrainingDiverged(
            f"{exc} At temperature {config.temperature:g} the soft term acts like a squared error on the logits, whose "
            f"curvature does not fall as the student learns: lower train.lr, or distill.soft_weight ({config.soft_weight:g})."
        ) from None


def _ranking_objective(data: DataSplits, train_config: TrainConfig) -> Any:
    """A recommender's label term: the objective its data trains with (``train.loss``: ranking, softmax, bce, bpr); None for classifiers."""
    from slimforge.train.objectives import objective_for

    resolved = train_config.with_defaults(getattr(data, "train_defaults", {}) or {})
    return objective_for(resolved) if resolved.loss != "cross_entropy" else None


def describe_loss(config: DistillConfig) -> str:
    """e.g. ``kd (T=20) x 0.9 + labels x 0.1``: the loss as it will run, every default resolved."""
    given = {k: getattr(config, k) for k in ("temperature", "alpha", "beta") if getattr(config, k) is not None}
    settings = ", ".join(f"{k}={v:g}" if isinstance(v, (int, float)) else f"{k}={v}" for k, v in {**given, **config.loss_params}.items())
    return f"{config.loss}{f' ({settings})' if settings else ''} x {config.soft_weight:g} + labels x {config.hard_weight:g}"


def describe_run(teachers: TeacherLike | Sequence[TeacherLike], objective: Any, config: DistillConfig) -> dict[str, Any]:
    """The static part of metrics.json's ``distill`` section: teachers, resolved loss settings, cache."""
    items = [teachers] if isinstance(teachers, (nn.Module, str, Path)) else list(teachers)
    loss = {k: getattr(config, k) for k in ("loss", "temperature", "alpha", "beta", "soft_weight", "hard_weight")}
    if config.loss_params:
        loss["loss_params"] = dict(config.loss_params)
    return {
        "teachers": [_describe_teacher(item, module) for item, module in zip(items, objective.teachers)],
        **loss,
        "teacher_outputs": objective.mode,
        "teacher_outputs_reason": objective.mode_reason,
        "teacher_caches": [c.describe() for c in objective.caches or []],
    }


def _describe_teacher(item: TeacherLike, module: nn.Module) -> dict[str, Any]:
    from slimforge.distill.teachers import weights_hash

    info: dict[str, Any] = {"weights_sha256": weights_hash(module)}
    if isinstance(item, (str, Path)):
        folder = Path(item)
        metrics = artifacts.read_json_quiet(folder / artifacts.METRICS_FILE)
        info = {"path": str(folder.resolve()), **info}
        if (folder / artifacts.STRUCTURE_FILE).is_file():
            info["model"] = artifacts.read_spec(folder).name
        info.update({k: metrics[k] for k in ("test_accuracy", "test_errors") if metrics.get(k) is not None})
    else:
        spec = artifacts.get_spec(module)
        info["model"] = spec.name if spec is not None else type(module).__name__
    return info


class DistillRecord(Callback):
    """Writes the ``distill`` section of the final metrics (metrics.json): ``static`` (teachers,
    settings, cache) and, per epoch, the mean unweighted soft and hard loss (and hint loss)."""

    def __init__(self, static: dict[str, Any]) -> None:
        self.static = static
        self.epochs: list[dict[str, Any]] = []

    def on_epoch_end(self, state: TrainState) -> None:
        parts = {k.removeprefix("train_"): v for k, v in state.metrics.items() if k in ("train_soft_loss", "train_hard_loss", "train_hint_loss")}
        self.epochs.append({"epoch": state.metrics["epoch"], **parts})

    def on_train_end(self, state: TrainState) -> None:
        state.summary["distill"] = {**self.static, "epochs": self.epochs}

    def state_dict(self) -> dict[str, Any]:
        return {"epochs": self.epochs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epochs = list(state.get("epochs", []))


def _with_transfer_set(data: DataSplits, config: DistillConfig, seed: int) -> tuple[DataSplits, int]:
    """``data`` whose training split is followed by ``config.augment_copies`` perturbed copies of each text."""
    from slimforge.text.augment import AugmentConfig, transfer_split

    if "train" not in getattr(data, "raw", {}):
        raise ConfigError("distill.augment_copies makes copies of training *texts*; this dataset is not a text dataset.")
    if not config.cache:
        raise ConfigError("distill.augment_copies needs distill.cache: the teacher labels the copies once, through its cache.")
    dataset, n_original = transfer_split(data, AugmentConfig(copies=config.augment_copies, seed=seed))
    return dataclasses.replace(data, train=dataset), n_original


class DistillWarmup(Callback):
    """Ramps ``objective.scale`` from 0 to 1 over the first ``epochs`` epochs, step by step."""

    def __init__(self, objective: Any, epochs: float) -> None:
        self.objective, self.epochs = objective, epochs

    def _update(self, state: TrainState) -> None:
        warm = max(1, int(self.epochs * state.steps_per_epoch))
        self.objective.scale = min(1.0, state.step / warm)

    def on_train_start(self, state: TrainState) -> None:
        self._update(state)

    def on_step_end(self, state: TrainState) -> None:
        self._update(state)


def slim_copy(teacher: nn.Module, ratio: float, example_input: torch.Tensor, importance: str = "l2") -> nn.Module:
    """A copy of ``teacher`` with ``ratio`` of its channels pruned: a student that starts from
    the teacher's own weights (prune, then distil)."""
    from slimforge.prune import prune

    return prune(copy.deepcopy(teacher).train(), example_input, ratio=ratio, importance=importance)


def run_from_config(cfg: DistillRunConfig, teachers: Sequence[str | Path], out: str | Path, resume: bool = False) -> TrainResult:
    """What ``slimforge distill`` does: data from the config or the first teacher's run folder,
    student from the registry (or a pruned copy of the first teacher), then :func:`run`."""
    config = cfg.distill.to_config()  # settings the loss does not take are refused before any data loads
    data_cfg = cfg.data or run_data_config(teachers[0])
    data = data_cfg.load()
    seed_everything(cfg.train.seed)
    if cfg.prune_teacher_ratio:
        example = data.train.__getitems__([0, 1])[0] if hasattr(data.train, "__getitems__") else torch.stack([data.train[0][0], data.train[1][0]])
        student = slim_copy(loading.load_module(teachers[0], "--prune-teacher"), cfg.prune_teacher_ratio, example)
    else:
        from slimforge.models import create_model

        student = create_model(cfg.student.name, **{**data.info.model_kwargs(), **cfg.student.kwargs})
    resolved = {k: getattr(config, k) for k in RESOLVED_KEYS}  # config.yaml says what ran, not "null = default"
    record = {**cfg.model_dump(mode="json"), "distill": {**cfg.distill.model_dump(mode="json"), **resolved},
              "data": data_cfg.model_dump(mode="json"), "teachers": [str(t) for t in teachers]}
    # train() writes text assets (tokenizer/, labels.json) into the folder, so the student's folder alone predicts
    return run(student, list(teachers), data, config, cfg.train, out, record=record, resume=resume)
