"""Checkpoints and resume: what a training run writes every epoch, and how a run continues from
it exactly (model, optimizer, schedule, callbacks, RNG streams, the book), on the same or
another number of processes; settings that would silently change a resumed run are refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from slimforge import artifacts
from slimforge.distributed import DistContext, fsdp, restart_count
from slimforge.errors import ArtifactError, ConfigError, SlimforgeError
from slimforge.files import final_folder, inside
from slimforge.train.callbacks import TrainState
from slimforge.train.checkpoint import BEST_FILE, CHECKPOINT_FILE, HISTORY_FILE, load_state, rng_state, save_state, set_rng_state
from slimforge.train.config import TrainConfig
from slimforge.train.seeding import seed_everything

def _save_checkpoint(out, state, optimizer, scheduler, scaler, objective, callbacks, book, cfg, ctx, best=False, record=None) -> None:
    """Called on every rank. DDP: rank 0 writes one file. FSDP: every rank writes its shards of
    model and optimizer to ``checkpoint.dcp/``, and rank 0 the rest; ``best`` also saves the
    unsharded weights as best.safetensors."""
    sharded = _is_sharded(state.model)
    weights = fsdp.full_state_dict(state.model) if best or not sharded else None  # a collective when sharded
    if sharded:
        fsdp.save_sharded(out / fsdp.SHARDED_DIR, state.model, optimizer)
    rngs = _gather(rng_state(), ctx)
    if not ctx.is_main:
        return
    if best:
        artifacts.atomic_write_bytes(out / BEST_FILE, artifacts.state_dict_bytes(weights))
    spec = artifacts.get_spec(state.model)
    save_state(out / CHECKPOINT_FILE, {
        "model": {} if sharded else weights,
        "optimizer": {} if sharded else optimizer.state_dict(),
        "sharded": fsdp.SHARDED_DIR if sharded else None,
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "objective": objective.state_dict() if hasattr(objective, "state_dict") else {},
        "callbacks": [cb.state_dict() for cb in callbacks],
        "record": record,  # the run's whole config (config.yaml), so a bare --resume can continue with it
        "rng": rngs[0],
        "rng_ranks": rngs,
        "step": state.step,
        "steps_per_epoch": state.steps_per_epoch,
        "world_size": ctx.world_size,
        "book": {k: v for k, v in book.items()},
        "spec": spec.to_json() if spec else None,
        "config": cfg.model_dump(mode="json"),
    })


def _restarted_with_checkpoint(out, ctx, cfg) -> bool:
    """After torchrun's elastic agent restarted the workers (--max-restarts), continue from the
    last checkpoint in ``out`` instead of starting over. Rank 0 decides for all."""
    found = restart_count() > 0 and out is not None and (out / CHECKPOINT_FILE).is_file()
    found = ctx.broadcast_object(found)
    if found and ctx.is_main:
        _log(cfg, f"restart {restart_count()} of this job: resuming from {out / CHECKPOINT_FILE}")
    return found


def _read_checkpoint(out: Path | None, state: TrainState, ctx: DistContext) -> dict[str, Any]:
    """The checkpoint to resume from, after checking it exists and is of this run's model."""
    if out is None or not (out / CHECKPOINT_FILE).is_file():
        shared = " Every rank reads it, so on several machines --out must be on a shared filesystem." if ctx.is_distributed else ""
        raise ArtifactError(f"Cannot resume: no {CHECKPOINT_FILE} in {final_folder(out) if out else out} (rank {ctx.rank}). Start without --resume, or point --out at the run to continue.{shared}")
    saved = load_state(out / CHECKPOINT_FILE)
    spec = artifacts.get_spec(state.model)
    if saved.get("spec") and spec and saved["spec"]["name"] != spec.name:
        raise ArtifactError(
            f"Cannot resume {final_folder(out)}: its checkpoint is of model {saved['spec']['name']!r}, but this run builds {spec.name!r}. "
            "Resume with the same model, or use a new --out folder."
        )
    return saved


def _replay_later_edits(saved: dict[str, Any], state: TrainState) -> bool:
    """If the checkpoint's model carries structural edits made during training (iterative
    pruning) beyond this model's, replay them so the saved weights fit; True when it did."""
    spec = artifacts.get_spec(state.model)
    if spec is None or not saved.get("spec"):
        return False
    done, later = spec.edits, list(saved["spec"].get("edits") or [])
    if len(later) <= len(done) or later[: len(done)] != [json.loads(json.dumps(e)) for e in done]:
        return False
    for edit in later[len(done):]:
        state.model = artifacts.edit_replay(edit.get("kind", "?"))(state.model, edit)
        artifacts.record_edit(state.model, edit)
    return True


# Settings a resumed run may change; any other difference from the checkpoint's is refused,
# since restoring the optimizer and schedule would silently keep the old values.
RESUMABLE_CHANGES = frozenset({"epochs", "patience", "eval_batch_size", "num_threads", "device", "quiet", "tensorboard",
                               "dist_timeout_s", "amp", "deterministic", "keep_best", "strategy"})


def check_resume_config(saved: dict[str, Any] | None, cfg: TrainConfig, source: Path, saved_world: int = 1, world: int = 1) -> None:
    """Refuse to resume with training settings other than the checkpoint's (bar RESUMABLE_CHANGES).

    ``batch_size`` is per process: on another number of processes the *global* batch must match.
    """
    if not saved:
        return  # a checkpoint from before the config was recorded
    now = cfg.model_dump(mode="json")
    changed = {k: (saved[k], now[k]) for k in now if k in saved and k not in RESUMABLE_CHANGES and saved[k] != now[k]}
    changed.pop("batch_size", None)
    old, new = saved.get("batch_size", now["batch_size"]), now["batch_size"]
    if old * saved_world != new * world:  # 1 x 32 may resume as 2 x 16
        if saved_world == world:
            changed["batch_size"] = (old, new)
        else:
            changed["global batch"] = (f"{saved_world} x {old}", f"{world} x {new}")
    if changed:
        listed = ", ".join(f"{k} {old!r} -> {new!r}" for k, (old, new) in changed.items())
        raise ConfigError(
            f"Cannot resume {source} with other training settings ({listed}): the restored optimizer and schedule "
            f"would keep the old ones. Resume with the checkpoint's settings (only {', '.join(sorted(RESUMABLE_CHANGES))} "
            "may change), or start a new run from its model."
        )


def _resume(saved, out, state, optimizer, scheduler, scaler, objective, callbacks, ctx, cfg) -> dict[str, Any]:
    """Restore optimizer, schedule, callbacks, RNG and the book from ``saved`` (see _read_checkpoint)."""
    check_resume_config(saved.get("config"), cfg, out / CHECKPOINT_FILE, saved.get("world_size", 1), ctx.world_size)
    if saved.get("sharded"):
        shards = inside(out, saved["sharded"], f"{out / CHECKPOINT_FILE}'s 'sharded' entry")
        try:
            fsdp.load_sharded(shards, state.model, optimizer)
        except Exception as exc:  # noqa: BLE001 - DCP wraps every failure (a refused pickle too) in its own CheckpointException
            if isinstance(exc, SlimforgeError):
                raise
            exc = str(exc).strip().splitlines()[-1][:300] if str(exc).strip() else type(exc).__name__
            raise ArtifactError(f"Cannot resume from the distributed checkpoint {shards}: {exc}") from None
    else:
        _load_model_state(state.model, saved["model"], out / CHECKPOINT_FILE, ctx)
        try:
            optimizer.load_state_dict(saved["optimizer"])
        except (ValueError, KeyError) as exc:
            raise ArtifactError(f"Cannot resume {out}: the optimizer state does not match this model ({exc}).") from None
    scheduler.load_state_dict(saved["scheduler"])
    scaler.load_state_dict(saved["scaler"])
    if hasattr(objective, "load_state_dict") and saved.get("objective"):
        objective.load_state_dict(saved["objective"])
    for cb, cb_state in zip(callbacks, saved.get("callbacks", [])):
        cb.load_state_dict(cb_state)
    book = saved["book"]
    state.step = saved["step"]
    rngs = saved.get("rng_ranks") or [saved["rng"]]
    if len(rngs) == ctx.world_size:
        set_rng_state(rngs[ctx.rank])
    else:  # another number of processes: fresh, distinct streams per rank
        seed_everything(cfg.seed + 1000 * book["epoch"] + ctx.rank)
    if saved.get("steps_per_epoch", state.steps_per_epoch) != state.steps_per_epoch:
        # Another number of processes makes epochs longer or shorter; checkpoints fall on epoch
        # boundaries, so the schedule continues at the same fraction of training.
        state.step = book["epoch"] * state.steps_per_epoch
        scheduler.last_epoch = state.step - 1
        scheduler.step()
    if ctx.is_main:
        if saved.get("world_size", 1) != ctx.world_size:
            _log(cfg, f"resuming a checkpoint written by {saved.get('world_size', 1)} process(es) on {ctx.world_size}")
        with open(out / HISTORY_FILE, "w") as f:  # drop lines of the epoch that was cut short
            f.writelines(json.dumps(m) + "\n" for m in book["history"])
    return book


def _load_model_state(model: nn.Module, tensors: dict[str, torch.Tensor], source: Path, ctx: DistContext) -> None:
    if _is_sharded(model):  # an unsharded checkpoint into an FSDP model
        fsdp.load_full_state_dict(model, tensors if ctx.is_main else {})
        return
    expected = model.state_dict()
    wrong = [k for k in expected if k not in tensors or tensors[k].shape != expected[k].shape]
    if wrong or len(tensors) != len(expected):
        raise ArtifactError(
            f"Cannot resume from {source}: its model weights do not match this architecture "
            f"(first mismatches: {', '.join(wrong[:3]) or 'extra tensors'}). It was written by another model."
        )
    model.load_state_dict(tensors)


def _load_best(model: nn.Module, path: Path, ctx: DistContext) -> None:
    if _is_sharded(model):  # rank 0 reads, the shards come by broadcast
        fsdp.load_full_state_dict(model, artifacts.read_tensors(path) if ctx.is_main else {})
    else:
        artifacts.load_weights(model, path, map_location=ctx.device)


def _is_sharded(model: nn.Module) -> bool:
    return fsdp.is_sharded(model)


def _gather(value: Any, ctx: DistContext) -> list[Any]:
    """Every rank's ``value`` (picklable), in rank order, on every rank."""
    if not ctx.is_distributed:
        return [value]
    values: list[Any] = [None] * ctx.world_size
    torch.distributed.all_gather_object(values, value)
    return values


def _log(cfg: TrainConfig, message: str) -> None:
    if not cfg.quiet:
        print(message, flush=True)
