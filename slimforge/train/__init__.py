"""Training: ``train(model, data, TrainConfig(...), out=...)`` and ``evaluate``."""

from slimforge.train.callbacks import Callback, LossOutput, Objective, TimeLimit, TrainState
from slimforge.train.config import TrainConfig
from slimforge.train.evaluate import evaluate
from slimforge.train.loop import CrossEntropyObjective, TrainingDiverged, TrainResult, train
from slimforge.train.seeding import seed_everything
from slimforge.train.objectives import list_objectives, register_objective

__all__ = [
    "Callback",
    "CrossEntropyObjective",
    "LossOutput",
    "Objective",
    "TimeLimit",
    "TrainConfig",
    "TrainResult",
    "TrainState",
    "TrainingDiverged",
    "evaluate",
    "list_objectives",
    "register_objective",
    "seed_everything",
    "train",
]
