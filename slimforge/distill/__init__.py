"""Knowledge distillation: train a small student to match a teacher (or an ensemble).

    config = DistillConfig(loss="dkd", temperature=4.0)
    objective = build_distill_objective(student, "runs/teacher", config, train_inputs=x, cache_dir="runs/s/cache")
    # the trainer calls objective(model, inputs, targets, indices) -> LossOutput each step

Losses are a registry (``list_losses()``, ``register_loss``): ``kd`` (Hinton), ``dkd``
(decoupled KD) and ``mse`` (logit matching); feature hints (FitNets) add to any of them and the
hard-label cross-entropy is always part of the total (``hard_weight``).

``slimforge.distill(student, teachers, data, config, train_config, out=...)`` (the package is
callable) runs a whole distillation through the trainer; see :func:`slimforge.distill.api.run`.
"""

from __future__ import annotations

from slimforge._callable import make_callable
from slimforge.distill.api import DistillRunConfig, DistillSection, run, run_from_config, slim_copy
from slimforge.distill.cache import TeacherCache
from slimforge.distill.hints import HintSpec, list_module_paths
from slimforge.distill.losses import LOSSES, DKDLoss, KDLoss, LogitLoss, LogitMSELoss, build_loss, list_losses, register_loss
from slimforge.distill.objective import DistillConfig, DistillObjective, build_distill_objective, check_class_counts
from slimforge.distill.students import build_student
from slimforge.distill.teachers import combine_teachers, prepare_teachers

__all__ = [
    "DistillRunConfig",
    "DistillSection",
    "run",
    "run_from_config",
    "slim_copy",
    "LOSSES",
    "DKDLoss",
    "DistillConfig",
    "DistillObjective",
    "HintSpec",
    "KDLoss",
    "LogitLoss",
    "LogitMSELoss",
    "TeacherCache",
    "build_distill_objective",
    "build_loss",
    "build_student",
    "check_class_counts",
    "combine_teachers",
    "list_losses",
    "list_module_paths",
    "prepare_teachers",
    "register_loss",
]

make_callable(__name__, run)  # slimforge.distill(student, teachers, data, config)
