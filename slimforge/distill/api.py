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
from pydantic import Field
from torch import nn

from slimforge import artifacts
from slimforge.config import Frozen
from slimforge.data.core import DataSplits
from slimforge.distill.objective import DistillConfig, build_distill_objective
from slimforge.distill.teachers import TeacherLike
from slimforge.errors import ConfigError
from slimforge.experiment import DataConfig, ModelConfig, run_data_config
from slimforge.train import Callback, TrainConfig, TrainResult, TrainState, seed_everything, train

TEACHER_CACHE_DIR = "teacher-cache"


class DistillSection(Frozen):
    """The ``distill`` section of a distillation run (see ``DistillConfig``)."""

    loss: str = Field("kd", description="kd, dkd or mse (slimforge.distill.list_losses())")
    temperature: float = Field(4.0, gt=0)
    alpha: float = Field(1.0, ge=0, description="DKD: weight of the target-class part")
    beta: float = Field(8.0, ge=0, description="DKD: weight of the non-target part")
    distill_weight: float = Field(1.0, ge=0)
    hard_weight: float = Field(1.0, ge=0, description="weight of cross-entropy on the labels")
    hints: list[str] = Field(default_factory=list, description="feature hints 'student.path:teacher.path'")
    hint_loss: str = "mse"
    hint_weight: float = Field(1.0, ge=0)
    cache: bool = Field(True, description="cache teacher outputs when the training data is not augmented")
    cache_dtype: str = "float32"
    teacher_dtype: str | None = None
    warmup_epochs: float = Field(0.0, ge=0, description="ramp the distillation loss in linearly over this many epochs")
    augment_copies: int = Field(0, ge=0, description="text: add this many perturbed copies of each training text, labelled by the teacher (Tang et al. 2019)")
    init_embeddings: bool = Field(False, description="text students: initialise the word embeddings from the first teacher's table")

    def to_config(self) -> DistillConfig:
        return DistillConfig(**{**self.model_dump(), "hints": tuple(self.hints)})


class DistillRunConfig(Frozen):
    """A whole distillation run: data (None = the first teacher's), student, training, losses."""

    data: DataConfig | None = None
    student: ModelConfig = ModelConfig(name="resnet8")
    train: TrainConfig = TrainConfig()
    distill: DistillSection = DistillSection()
    prune_teacher_ratio: float | None = Field(None, gt=0, lt=1, description="student = the first teacher with this fraction of channels pruned")


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

    Teacher outputs are cached under ``out/teacher-cache`` when the training split is not
    augmented (or under ``cache_dir``, which several students of one teacher may share);
    otherwise the teachers run live each step (the log says which).
    """
    config = config or DistillConfig()
    train_config = train_config or TrainConfig()
    if out is None:
        return _run(student, teachers, data, config, train_config, None, record, resume, callbacks, cache_dir)
    from slimforge.train.loop import _wait_for_swap, run_folder

    with run_folder(out, resume) as work:  # the teacher cache goes into the run's staging folder, with the rest
        result = _run(student, teachers, data, config, train_config, work, record, resume, callbacks, cache_dir)
    _wait_for_swap()
    result.out = Path(out)
    return result


def _run(student, teachers, data, config, train_config, out, record, resume, callbacks, cache_dir) -> TrainResult:
    n_original = None
    if config.augment_copies:
        data, n_original = _with_transfer_set(data, config, train_config.seed)
    fixed_inputs = data.train if getattr(data.train, "deterministic", False) else None
    if cache_dir is None and out is not None:
        cache_dir = Path(out) / TEACHER_CACHE_DIR
    objective = build_distill_objective(student, teachers, config, train_inputs=fixed_inputs, cache_dir=cache_dir)
    if n_original is not None:
        from slimforge.text.augment import label_copies

        # The copies' labels (for the hard loss and the training accuracy) are the teachers' class.
        label_copies(data.train, n_original, objective.cached_targets())
    if config.init_embeddings:
        from slimforge.text.models import init_embeddings_from_teacher

        init_embeddings_from_teacher(student, objective.teachers[0])
    if not train_config.quiet:
        print(f"distillation: {config.loss} loss, teacher {objective.mode} ({objective.mode_reason})", flush=True)
    if config.warmup_epochs > 0:
        callbacks = [*callbacks, DistillWarmup(objective, config.warmup_epochs)]
    return train(student, data, train_config, out, objective=objective, callbacks=callbacks, record=record, resume=resume)


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
    data_cfg = cfg.data or run_data_config(teachers[0])
    data = data_cfg.load()
    seed_everything(cfg.train.seed, cfg.train.deterministic)
    if cfg.prune_teacher_ratio:
        example = data.train.__getitems__([0, 1])[0] if hasattr(data.train, "__getitems__") else torch.stack([data.train[0][0], data.train[1][0]])
        student = slim_copy(artifacts.load_module(teachers[0], "--prune-teacher"), cfg.prune_teacher_ratio, example)
    else:
        from slimforge.models import create_model

        student = create_model(cfg.student.name, **{**data.info.model_kwargs(), **cfg.student.kwargs})
    record = {**cfg.model_dump(mode="json"), "data": data_cfg.model_dump(mode="json"), "teachers": [str(t) for t in teachers]}
    # train() writes text assets (tokenizer/, labels.json) into the folder, so the student's folder alone predicts
    return run(student, list(teachers), data, cfg.distill.to_config(), cfg.train, out, record=record, resume=resume)
