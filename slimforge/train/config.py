"""The training configuration."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from slimforge.config import Frozen


class TrainConfig(Frozen):
    """How to train. ``batch_size`` is per process; the global batch is batch_size x processes."""

    epochs: int = Field(10, ge=1, description="maximum number of epochs")
    batch_size: int = Field(128, ge=1, description="samples per optimizer step, per process")
    eval_batch_size: int = Field(512, ge=1)
    optimizer: Literal["sgd", "adamw"] = "sgd"
    lr: float = Field(0.1, gt=0, description="peak learning rate")
    momentum: float = Field(0.9, ge=0, lt=1)
    nesterov: bool = True
    weight_decay: float = Field(5e-4, ge=0)
    schedule: Literal["cosine", "step", "constant"] = "cosine"
    warmup_epochs: float = Field(0.0, ge=0, description="linear warm-up from lr/10, in epochs")
    milestones: tuple[int, ...] = Field((), description="epochs at which the step schedule multiplies lr by gamma")
    gamma: float = Field(0.1, gt=0)
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    length_buckets: bool = Field(False, description="text datasets: train on batches of similar lengths (less padding, faster)")
    grad_clip: float | None = Field(None, gt=0, description="clip the gradient norm to this value")
    max_norm: float | None = Field(None, gt=0, description="after each step, cap the L2 norm of each unit's incoming weights (max-norm, as with dropout)")
    amp: Literal["auto", "off", "bf16", "fp16"] = Field("auto", description="autocast on CUDA: auto = bf16 where supported")
    loss: str = Field("cross_entropy", description="training objective (slimforge.train.list_objectives): cross_entropy, bce, bpr ...")
    patience: int | None = Field(None, ge=1, description="early stopping: epochs without improvement of `monitor`")
    monitor: str = Field("val_accuracy", pattern=r"^val_\S+$",
                         description="validation metric that picks the best epoch: val_accuracy, val_loss, val_ndcg@10 ... (lower is better for *loss)")
    keep_best: bool = Field(True, description="the saved model is the best epoch by `monitor`, not the last")
    seed: int = Field(0, ge=0, description="seed of weights, shuffling, augmentation and dropout")
    deterministic: bool = Field(False, description="deterministic algorithms (bitwise-reproducible on the CPU)")
    device: str = "auto"
    num_threads: int | None = Field(None, ge=1, description="torch CPU threads; default: cores / local processes")
    strategy: Literal["ddp", "fsdp"] = Field("ddp", description="several processes: ddp replicates the model, fsdp shards it (FSDP2)")
    dist_timeout_s: float = Field(600.0, gt=0, description="seconds to wait for the other ranks to join, and for each collective")
    tensorboard: bool = False
    quiet: bool = False

    def with_defaults(self, defaults: dict[str, Any]) -> TrainConfig:
        """This config with ``defaults`` (e.g. a dataset's ``train_defaults``) for the fields it does
        not set itself; settings given explicitly (``model_fields_set``) always win."""
        unset = {k: v for k, v in defaults.items() if k not in self.model_fields_set}
        if not unset:
            return self
        return type(self).model_validate({**unset, **self.model_dump(exclude_unset=True)})

    @property
    def monitor_lower_is_better(self) -> bool:
        return self.monitor.endswith("loss")
