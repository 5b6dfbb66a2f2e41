"""The training loop: plain PyTorch, one code path for one process or many.

``train`` reads top to bottom: set-up, resume, epochs (train, validate, log, checkpoint,
early-stop), then the final artifact. Stages hook in through an ``Objective`` (the loss) and
``Callback``s (schedules); see ``slimforge.train.callbacks``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DistributedSampler

from slimforge import artifacts
from slimforge.data.core import DataSplits
from slimforge.distributed import DistContext, fsdp, restart_count, setup
from slimforge.distributed.process import outside_parameters
from slimforge.distributed.wrap import wrap
from slimforge.errors import ArtifactError, ConfigError, DataError, SlimforgeError
from slimforge.files import final_folder, staged_output
from slimforge.model_io import save_model
from slimforge.models import build_model
from slimforge.train.callbacks import Callback, MaxNorm, Objective, TrainState
from slimforge.train.checkpoint import BEST_FILE, CHECKPOINT_FILE, HISTORY_FILE, rng_state, set_rng_state
from slimforge.train.resume import (
    _is_sharded, _load_best, _log, _read_checkpoint, _replay_later_edits, _restarted_with_checkpoint, _resume, _save_checkpoint,
)
from slimforge.train.config import TrainConfig
from slimforge.train.evaluate import evaluate, make_loader, move_to
from slimforge.train.objectives import CrossEntropyObjective, objective_for  # noqa: F401  (CrossEntropyObjective: re-exported)
from slimforge.train.optim import build_optimizer, build_scheduler
from slimforge.train.progress import Progress
from slimforge.train.seeding import deterministic_kernels, seed_everything

NAN_CHECK_EVERY = 10  # steps between finiteness checks (each check synchronises a GPU)


class TrainingDiverged(SlimforgeError):
    """The loss became NaN or infinite."""


@dataclass
class TrainResult:
    model: nn.Module  # the unwrapped model, best epoch when keep_best
    metrics: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    out: Path | None = None


def train(
    model: nn.Module,
    data: DataSplits,
    config: TrainConfig | None = None,
    out: str | Path | None = None,
    *,
    objective: Objective | None = None,
    callbacks: Sequence[Callback] = (),
    resume: bool = False,
    record: dict[str, Any] | None = None,
) -> TrainResult:
    """Train ``model`` on ``data``; with ``out``, checkpoint every epoch and write the artifact.

    ``record`` is the resolved config written to ``config.yaml`` (default: this TrainConfig).
    ``resume`` continues from the checkpoint exactly where it stopped.
    Settings the config leaves unset take the data's ``train_defaults`` (a ranking loss and metric).

    The run is built in ``.<out>.partial`` beside ``out`` (checkpoints included) and replaces
    ``out`` in one step when it is complete: a run killed at any moment leaves the previous
    ``out`` whole, and its partial folder for ``resume``. A data set with assets (a text
    tokenizer, a recommender's catalogue) writes them into the folder too, so the folder alone can predict.
    """
    cfg = (config or TrainConfig()).with_defaults(data.train_defaults)
    if getattr(data, "preprocess", None) is not None:  # the model folder says how raw inputs become the inputs it learns on
        artifacts.record_preprocess(model, data.preprocess)
    if out is None:
        with deterministic_kernels(cfg.deterministic):
            return _train(model, data, cfg, None, objective, callbacks, resume, record)
    out = Path(out)
    if artifacts.get_spec(model) is None:  # found now, not after the last epoch
        raise ArtifactError(
            f"Cannot train into {out}: the model's structure is unknown, so its run folder could not be saved. Build it with "
            "slimforge.create_model(...) or describe it with slimforge.artifacts.attach_spec(model, ModelSpec(...))."
        )
    with run_folder(out, resume) as work, deterministic_kernels(cfg.deterministic):
        result = _train(model, data, cfg, work, objective, callbacks, resume, record)
        if int(os.environ.get("RANK", "0")) == 0 and hasattr(data, "save_assets"):
            data.save_assets(work)
    result.out = out
    return result


def _wait_for_swap() -> None:
    """Other ranks wait until rank 0 has swapped the finished folder in: after ``train``
    returns, ``out`` exists on every rank."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()


@contextlib.contextmanager
def run_folder(out: str | Path, resume: bool = False):
    """The staging folder a training run writes instead of ``out`` (see :func:`train`): a
    context manager yielding it, swapped in for ``out`` when the block completes, after which
    every rank finds ``out`` in place. Callers that write into the run folder before training
    starts (a teacher cache) enter it themselves and pass the staging folder to ``train``."""
    main = int(os.environ.get("RANK", "0")) == 0
    restarted = restart_count() > 0  # torchrun restarted the workers: continue this job's own partial run
    with staged_output(out, reuse_partial=resume or restarted, copy_previous=resume, keep_on_error=True, main=main) as work:
        yield work
    _wait_for_swap()


def _train(model, data, cfg, out, objective, callbacks, resume, record) -> TrainResult:
    """The run itself, writing into ``out`` (the staging folder) when given."""
    run = _Run(model, data, cfg, out, objective, callbacks, record)
    run.start(resume)
    run.epochs()
    return run.finish()


class _Run:
    """One training run's parts, in the order :func:`_train` uses them: set-up, resume or a fresh
    start, epochs (train, validate, log, checkpoint, early-stop), then best weights, test metrics
    and the artifact."""

    def __init__(self, model, data, cfg, out, objective, callbacks, record) -> None:
        # Set-up: processes, threads, determinism, device, loaders.
        self.data, self.cfg, self.out = data, cfg, out
        self.ctx = ctx = setup(cfg.device, cfg.dist_timeout_s, cfg.num_threads)
        seed_everything(cfg.seed + ctx.rank)
        self.amp_dtype = _amp_dtype(cfg.amp, ctx.device)
        self.objective = objective or objective_for(cfg)
        if cfg.max_norm:
            if cfg.strategy == "fsdp" and ctx.is_distributed:
                raise ConfigError("train.max_norm rescales whole rows of each weight, which FSDP shards; use strategy=ddp with max_norm.")
            callbacks = [*callbacks, MaxNorm(cfg.max_norm)]  # last, so resume matches the caller's callbacks by position
        self.callbacks = callbacks
        model = model.to(ctx.device)
        _check_model_fits_data(model, data, ctx.device)
        self.extra = _objective_modules(self.objective, ctx.device)
        self.sampler, self.loader = _loader(data, cfg, ctx)
        self.state = TrainState(model=model, steps_per_epoch=len(self.loader), total_steps=len(self.loader) * cfg.epochs)
        self.rebuild()
        self.scaler = torch.amp.GradScaler(ctx.device.type, enabled=self.amp_dtype == torch.float16)
        self.progress = Progress(ctx.is_main, cfg.quiet, cfg.epochs)
        self.tb = _tensorboard(out, cfg) if ctx.is_main else None
        if ctx.is_main:
            _log(cfg, f"training on {ctx.device} x {ctx.world_size} process(es) ({_strategy(ctx, cfg)}), {ctx.threads} thread(s) each; "
                 f"batch {cfg.batch_size} per process = {cfg.batch_size * ctx.world_size} global; "
                 f"{len(data.train)} train / {len(data.val)} val / {len(data.test)} test samples")
        if ctx.is_main and cfg.batch_size * ctx.world_size > len(data.train):
            _log(cfg, f"note: the batch ({cfg.batch_size} per process) is larger than the training split ({len(data.train)} samples): "
                 "one optimizer step per epoch")
        self.has_val = len(data.val) > 0
        if not self.has_val and cfg.patience:
            raise ConfigError("Early stopping (patience) needs a validation split, and this data has none (data.val_fraction=0).")
        if not self.has_val and ctx.is_main and cfg.keep_best:
            _log(cfg, "no validation split: the saved model is the last epoch's (keep_best needs validation data)")
        self.book = {"epoch": 0, "best": None, "best_epoch": None, "since_best": 0, "history": []}
        self.best_weights: dict[str, torch.Tensor] | None = None  # keep_best without a run folder: the best epoch's, in memory
        self.record = record if record is not None else _default_record(cfg, data)  # config.yaml; also in each checkpoint

    def rebuild(self, at_step: int | None = None) -> None:
        """The wrapped model, optimizer and schedule for the model as it is now (again after a callback replaced it)."""
        kwargs = {} if at_step is None else {"at_step": at_step}
        self.wrapped, self.optimizer, self.scheduler = _build_optimization(self.state, self.extra, self.ctx, self.cfg, **kwargs)

    def start(self, resume: bool) -> None:
        """Resume: restore everything the next epoch depends on (also after an elastic restart); else start afresh."""
        out, ctx, state = self.out, self.ctx, self.state
        if resume or _restarted_with_checkpoint(out, ctx, self.cfg):
            saved = _read_checkpoint(out, state, ctx)
            if _replay_later_edits(saved, state):  # pruned during training: rebuild its smaller shape first
                self.rebuild()
            self.book = _resume(saved, out, state, self.optimizer, self.scheduler, self.scaler, self.objective, self.callbacks, ctx, self.cfg)
        elif out is not None:
            _check_output(final_folder(out), ctx)
            if ctx.is_main:
                out.mkdir(parents=True, exist_ok=True)
                # Starting over: an earlier run's training state goes (its best is never reloaded as this
                # run's, its checkpoint never resumed as this one). Its model and metrics stay until this
                # run writes its own: fine-tuning a run in its own folder never loses the only weights.
                for name in (HISTORY_FILE, BEST_FILE, CHECKPOINT_FILE):
                    (out / name).unlink(missing_ok=True)
        state.optimizer = self.optimizer
        for cb in self.callbacks:
            cb.on_train_start(state)

    def epochs(self) -> None:
        """Epochs: train, validate, log, checkpoint, early-stop."""
        cfg, book = self.cfg, self.book
        self.started = time.perf_counter()
        last = cfg.epochs
        if cfg.patience and book["epoch"] > 0 and book["since_best"] >= cfg.patience:  # resumed after it had stopped early
            book["stopped_early"], last = True, book["epoch"]
            if self.ctx.is_main:
                _log(cfg, f"the run had stopped early after epoch {book['epoch']} (patience {cfg.patience}); no epoch is added")
        for epoch in range(book["epoch"], last):
            if self.epoch(epoch):
                break
        self.progress.close()
        for cb in self.callbacks:
            cb.on_train_end(self.state)

    def epoch(self, epoch: int) -> bool:
        """One epoch; True when training stops after it (a callback, or early stopping)."""
        cfg, state, book, data = self.cfg, self.state, self.book, self.data
        state.epoch = epoch
        self.sampler.set_epoch(epoch)
        if hasattr(data.train, "set_epoch"):
            data.train.set_epoch(epoch)
        for cb in self.callbacks:
            cb.on_epoch_start(state)
        self.rebuild_if_replaced()
        self.progress.start_epoch(epoch, len(self.loader))
        train_metrics = _train_epoch(self.wrapped, self.loader, self.objective, self.optimizer, self.scheduler, self.scaler, self.amp_dtype,
                                     state, self.callbacks, self.progress, self.ctx, cfg, run_dir=self.out)
        val = evaluate(state.model, data.val, cfg.eval_batch_size, self.ctx, autocast_dtype=self.amp_dtype) if self.has_val else {}
        metrics = {"epoch": epoch + 1, **train_metrics, "val_loss": val.get("loss"), "val_accuracy": val.get("accuracy"),
                   **{f"val_{k}": v for k, v in val.items() if k not in ("loss", "accuracy", "count")}}
        if self.has_val and epoch == book["epoch"]:  # the first epoch of this process: a misspelt monitor fails now
            _check_monitor(metrics, cfg)
        state.metrics = metrics
        state.provisional = False
        for cb in self.callbacks:
            cb.on_epoch_end(state)
        self.rebuild_if_replaced()
        if self.has_val and not state.provisional:
            improved = _update_best(book, metrics, cfg)
        else:  # not comparable with the final model (or nothing to compare on): no best yet
            improved = False
            book.update(best=None, best_epoch=None, since_best=0)
        self.remember_best(improved)
        book["history"].append(metrics)
        book["epoch"] = epoch + 1
        self.write_epoch(epoch, metrics, best=improved and cfg.keep_best)
        if state.stop or (cfg.patience and book["since_best"] >= cfg.patience):
            if self.ctx.is_main:
                _log(cfg, f"early stopping after epoch {epoch + 1}: no improvement of {cfg.monitor} for {book['since_best']} epochs")
            book["stopped_early"] = True
            return True
        return False

    def rebuild_if_replaced(self) -> None:
        if self.state.rebuild_optimizer:  # a callback replaced the model (e.g. pruned it)
            self.rebuild(at_step=self.state.step)
            self.book.update(best=None, best_epoch=None, since_best=0)  # a smaller model starts a new race
            self.best_weights = None

    def remember_best(self, improved: bool) -> None:
        """keep_best without ``out`` (no best.safetensors to reload): a copy of the best epoch's
        weights, so the returned model and its test metrics are the best epoch's, as with a folder.
        A sharded (FSDP) model keeps its last epoch here: its shards are not copied."""
        if self.out is not None or not self.cfg.keep_best or _is_sharded(self.state.model):
            return
        if self.book["best"] is None:
            self.best_weights = None
        elif improved:
            self.best_weights = {k: v.detach().clone() for k, v in self.state.model.state_dict().items()}

    def write_epoch(self, epoch: int, metrics: dict[str, Any], best: bool) -> None:
        """The checkpoint (every rank takes part: FSDP gathers or writes shards), the history line and TensorBoard."""
        out, ctx = self.out, self.ctx
        if out is not None:
            _save_checkpoint(out, self.state, self.optimizer, self.scheduler, self.scaler, self.objective, self.callbacks, self.book,
                             self.cfg, ctx, best=best, record=self.record)
        if not ctx.is_main:
            return
        self.progress.end_epoch(metrics)
        if out is not None:
            with open(out / HISTORY_FILE, "a") as f:
                f.write(json.dumps(metrics) + "\n")
        if self.tb is not None:
            for key, value in metrics.items():
                if isinstance(value, (int, float)) and key != "epoch":
                    self.tb.add_scalar(key, value, epoch + 1)

    def finish(self) -> TrainResult:
        """Final: best weights, test metrics, artifact."""
        out, ctx, state, cfg, book = self.out, self.ctx, self.state, self.cfg, self.book
        best_saved = book.get("best_epoch") is not None and out is not None and (out / BEST_FILE).is_file()
        if cfg.keep_best and ctx.broadcast_object(best_saved) and not state.rebuild_optimizer:
            _load_best(state.model, out / BEST_FILE, ctx)
        elif self.best_weights is not None and not state.rebuild_optimizer:
            state.model.load_state_dict(self.best_weights)
        test = evaluate(state.model, self.data.test, cfg.eval_batch_size, ctx, autocast_dtype=self.amp_dtype)
        final = {**_final_metrics(book, test, ctx.threads, ctx, time.perf_counter() - self.started, cfg), **state.summary}
        if out is not None:
            _save_artifact(state.model, out, ctx, config=self.record, metrics={**final, "data": self.data.describe()})
        if self.tb is not None:
            self.tb.close()
        ctx.barrier()
        return TrainResult(state.model, final, book["history"], out)


def _loader(data, cfg, ctx):
    """The training sampler and loader: batches of similar lengths for text (``length_buckets``), else shuffled and sharded."""
    if cfg.length_buckets and hasattr(data.train, "make_sampler"):
        sampler = data.train.make_sampler(cfg.batch_size, ctx.rank, ctx.world_size, cfg.seed)
        return sampler, make_loader(data.train, cfg.batch_size, None, batch_sampler=sampler.as_batches())
    sampler = DistributedSampler(data.train, ctx.world_size, ctx.rank, shuffle=True, seed=cfg.seed, drop_last=False)
    return sampler, make_loader(data.train, cfg.batch_size, sampler)


# ---------------------------------------------------------------- helpers


def _train_epoch(wrapped, loader, objective, optimizer, scheduler, scaler, amp_dtype, state, callbacks, progress, ctx, cfg, run_dir=None) -> dict[str, Any]:
    """One pass over the training data; returns the epoch's training metrics, among them
    ``train_<part>``: the sample-weighted mean of each of the objective's named loss parts."""
    wrapped.train()
    device = ctx.device
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    part_sums: dict[str, torch.Tensor] = {}
    correct = torch.zeros((), dtype=torch.long, device=device)
    seen = 0
    since_check = 0
    started = time.perf_counter()
    lr = optimizer.param_groups[0]["lr"]  # the epoch's last step's: a warm-up epoch shows where it got to, not where it began
    sync_extra = getattr(objective, "sync_gradients", None) if ctx.is_distributed else None
    outside = outside_parameters(state.model, cfg.strategy) if ctx.is_distributed else []  # averaged outside DDP / FSDP2
    for inputs, targets, indices in loader:
        inputs, targets = move_to(inputs, device), targets.to(device, non_blocking=True)
        with _autocast(device, amp_dtype):
            out = objective(wrapped, inputs, targets, indices)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(out.loss).backward()
        if sync_extra is not None:  # e.g. distillation adapters, outside the DDP wrapper
            sync_extra()
        if outside:
            ctx.all_reduce_gradients(outside)
        if cfg.grad_clip:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], cfg.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        lr = optimizer.param_groups[0]["lr"]
        scheduler.step()
        state.step += 1
        for cb in callbacks:
            cb.on_step_end(state)
        n = targets.numel()
        loss_sum += out.loss.detach().double() * n
        for name, value in out.parts.items():
            part = torch.as_tensor(value, dtype=torch.float64).detach().to(device) * n
            part_sums[name] = part_sums[name] + part if name in part_sums else part
        correct += _count_correct(out.logits.detach(), targets)
        seen += n
        since_check += 1
        if since_check >= NAN_CHECK_EVERY:
            _check_finite(loss_sum, state, cfg, run_dir)
            progress.advance(since_check, loss_sum.item() / seen)
            since_check = 0
    _check_finite(loss_sum, state, cfg, run_dir)
    seconds = time.perf_counter() - started
    names = sorted(part_sums)  # every rank computes the same parts
    counts = [loss_sum, correct.double(), torch.tensor(float(seen), dtype=torch.float64, device=device)]
    sums = ctx.all_reduce_sum(torch.stack(counts + [part_sums[k] for k in names]))
    total = max(1.0, sums[2].item())
    return {
        "train_loss": sums[0].item() / total,
        "train_accuracy": sums[1].item() / total,
        **{f"train_{k}": sums[3 + i].item() / total for i, k in enumerate(names)},
        "lr": lr,
        "seconds": seconds,
        "samples_per_s": total / max(seconds, 1e-9),
    }


def _check_finite(loss_sum: torch.Tensor, state: TrainState, cfg: TrainConfig, run_dir: Path | None = None) -> None:
    if not math.isfinite(loss_sum.item()):
        if run_dir is None:
            kept = "Nothing was saved (no output folder)."
        elif state.epoch == 0:
            kept = "No checkpoint was saved: it diverged in the first epoch."
        else:
            kept = f"The checkpoint of epoch {state.epoch} in {run_dir} is kept (--resume continues from it)."
        raise TrainingDiverged(
            f"The training loss became {loss_sum.item()} in epoch {state.epoch + 1} (by step {state.step}); training stopped. {kept} "
            f"Lower the learning rate (train.lr={cfg.lr}), set train.grad_clip, or check the inputs for NaN."
        )


def _build_optimization(state: TrainState, extra: list[nn.Module], ctx: DistContext, cfg: TrainConfig, at_step: int = 0):
    """(Re)wrap the model and build optimizer + scheduler; resumes the schedule at ``at_step``."""
    _check_sparse_gradients(state.model, cfg)
    wrapped = wrap(state.model, ctx, cfg.strategy)
    params = [p for m in [state.model, *extra] for p in m.parameters()]
    optimizer = build_optimizer(params, cfg)
    scheduler = build_scheduler(optimizer, state.steps_per_epoch, cfg)
    if at_step:  # LambdaLR is stateless apart from its step count: jump straight there
        scheduler.last_epoch = at_step - 1
        with warnings.catch_warnings():  # "scheduler.step() before optimizer.step()": intended here
            warnings.simplefilter("ignore", UserWarning)
            scheduler.step()
    state.optimizer = optimizer
    state.rebuild_optimizer = False
    return wrapped, optimizer, scheduler


def _check_sparse_gradients(model: nn.Module, cfg: TrainConfig) -> None:
    """Embedding tables with sparse gradients train with plain SGD only (AdamW and weight decay
    need dense gradients); said before the first step instead of failing inside it."""
    sparse = [n for n, m in model.named_modules() if isinstance(m, (nn.Embedding, nn.EmbeddingBag)) and m.sparse]
    if sparse and (cfg.optimizer != "sgd" or cfg.weight_decay or cfg.strategy == "fsdp"):
        raise ConfigError(
            f"{', '.join(sparse[:3])} {'has' if len(sparse) == 1 else 'have'} sparse gradients, which train with train.optimizer=sgd, "
            f"train.weight_decay=0 and the ddp strategy (got optimizer={cfg.optimizer}, weight_decay={cfg.weight_decay}, "
            f"strategy={cfg.strategy}); or build the model with sparse=false."
        )


def _objective_modules(objective: Any, device: torch.device) -> list[nn.Module]:
    """Trainable modules an objective owns (e.g. distillation adapters), moved to ``device``."""
    if hasattr(objective, "to"):
        objective.to(device)
    modules = list(objective.trainable_modules()) if hasattr(objective, "trainable_modules") else []
    return [m.to(device) for m in modules]


def _count_correct(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Correct predictions: the top class of (batch, classes) logits, or the sign of one logit per
    sample (batch,) against 0/1 targets."""
    if logits.dim() == 1:
        return ((logits > 0) == (targets > 0.5)).sum()
    return (logits.argmax(1) == targets).sum()


def _check_monitor(metrics: dict[str, Any], cfg: TrainConfig) -> None:
    if metrics.get(cfg.monitor) is None:
        known = [k for k, v in metrics.items() if k.startswith("val_") and v is not None]
        raise ConfigError(f"train.monitor={cfg.monitor!r} is not a validation metric of this data; it reports {', '.join(known)}.")


def _update_best(book: dict[str, Any], metrics: dict[str, Any], cfg: TrainConfig) -> bool:
    value = metrics[cfg.monitor]
    better = book["best"] is None or (value < book["best"] if cfg.monitor_lower_is_better else value > book["best"])
    if better:
        book.update(best=value, best_epoch=metrics["epoch"], since_best=0)
    else:
        book["since_best"] += 1
    return better


def _check_model_fits_data(model: nn.Module, data: DataSplits, device: torch.device) -> None:
    """One forward pass on two training samples before any epoch: a model built for other inputs
    or fewer classes fails here with an error naming both, not with a kernel error mid-epoch."""
    if len(data.train) == 0:
        raise DataError("The training split is empty.")
    saved_rng = rng_state()  # augmentation may draw random numbers: training's stream stays as it was
    try:
        batch = next(iter(make_loader(data.train, min(2, len(data.train)), None)))  # as training will batch it
    finally:
        set_rng_state(saved_rng)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            logits = model(move_to(batch[0], device))
    except torch.cuda.OutOfMemoryError:
        raise
    except (RuntimeError, ValueError, IndexError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(
            f"{type(model).__name__} cannot run on {data.info.name!r} inputs of shape {list(data.info.input_shape)}: {first}. "
            "Build the model for this data (in_channels, input size, vocabulary)."
        ) from exc
    finally:
        model.train(was_training)
    targets = batch[1]
    if isinstance(logits, torch.Tensor) and targets.is_floating_point() and logits.shape == targets.shape:
        return  # one logit per sample against 0/1 targets (a recommender's pairs)
    classes = data.info.num_classes
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2 or logits.shape[1] < classes:
        shape = list(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise DataError(
            f"{type(model).__name__} returns {shape} for a batch of {len(batch[1])}, but {data.info.name!r} has {classes} classes: "
            f"the model must return logits (batch, {classes}) (num_classes={classes})."
        )


def _check_output(out: Path, ctx: DistContext) -> None:
    """Rank 0 checks ``out`` may take a run folder; every rank raises the same error (none waits for the others)."""
    problem = None
    if ctx.is_main:
        try:
            artifacts.check_output_folder(out, "model")
        except ConfigError as exc:
            problem = str(exc)
    problem = ctx.broadcast_object(problem)
    if problem:
        raise ConfigError(problem)


def _default_record(cfg: TrainConfig, data: DataSplits) -> dict[str, Any]:
    """config.yaml of a run trained through the Python API: the training settings, and the data
    when ``load_dataset`` made it (so the CLI's quantize, prune, evaluate find the same data)."""
    section = data.config_section()
    return {"train": cfg.model_dump(mode="json"), **({"data": section} if section is not None else {})}


def _save_artifact(model: nn.Module, out: Path, ctx: DistContext, config: Any, metrics: dict[str, Any]) -> None:
    """Rank 0 writes the run folder. An FSDP model is first gathered (every rank takes part)
    into an unsharded copy, so the artifact is the same as from one process."""
    if _is_sharded(model):
        weights, spec = fsdp.full_state_dict(model), artifacts.get_spec(model)
        if not ctx.is_main:
            return
        if spec is not None:  # without one, save() below says how to describe the model
            model = build_model(spec)
            model.load_state_dict(weights)
    if ctx.is_main:
        save_model(model, out, config=config, metrics=metrics)


def _strategy(ctx: DistContext, cfg: TrainConfig) -> str:
    return cfg.strategy if ctx.is_distributed else "single process"


def _final_metrics(book, test, threads, ctx, seconds, cfg) -> dict[str, Any]:
    history = book["history"]
    best = {} if cfg.monitor == "val_accuracy" else {f"best_{cfg.monitor}": _best_val(book, cfg.monitor)}
    return {
        **{f"test_{k}": v for k, v in test.items() if k != "count"},  # test_accuracy, test_loss; test_ndcg@10 ...
        "best_val_accuracy": _best_val(book, "val_accuracy"),
        **best,
        "best_epoch": book.get("best_epoch"),
        "epochs_run": len(history),
        "stopped_early": bool(book.get("stopped_early", False)),
        "train_seconds": sum(m["seconds"] for m in history),
        "wall_seconds": seconds,
        "samples_per_s": (sum(m["samples_per_s"] for m in history) / len(history)) if history else None,
        "num_threads": threads,
        "world_size": ctx.world_size,
        "device": str(ctx.device),
    }


def _best_val(book: dict[str, Any], key: str) -> float | None:
    """Validation metric ``key`` of ``best_epoch``, the epoch chosen by ``monitor`` (the saved model's
    with keep_best): with ``monitor=val_loss``, or after a gradual-sparsity step restarted the race,
    it need not be the highest accuracy of the run. No best epoch (no epoch reached the target
    sparsity, or no validation): the last epoch's, whose model is saved (None without validation)."""
    history, best = book["history"], book.get("best_epoch")
    if best is None:
        return history[-1].get(key) if history else None
    return next((m.get(key) for m in history if m["epoch"] == best), None)


def _autocast(device: torch.device, dtype: torch.dtype | None):
    """Autocast when AMP is on; a no-op context otherwise (cheaper than a disabled autocast)."""
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


def _amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    if device.type != "cuda" or amp == "off":
        return None
    if amp == "fp16":
        return torch.float16
    if amp == "bf16" or torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


def _tensorboard(out: Path | None, cfg: TrainConfig):
    if not cfg.tensorboard or out is None:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise SlimforgeError("tensorboard=true needs the tensorboard package: pip install 'slimforge[dev]'.") from None
    return SummaryWriter(str(out / "tensorboard"))
