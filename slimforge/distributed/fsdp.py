"""FSDP2 (``torch.distributed.fsdp.fully_shard``) for models that do not fit one device.

Each rank holds 1/world of every parameter, gradient and optimizer state; a unit's full
parameters are gathered only for its forward and backward. Checkpoints are distributed
(``torch.distributed.checkpoint``): every rank writes its own shards into one folder, and a
later job with any number of processes (or one process) reads them back re-sharded.
:func:`slimforge.train.sharded.convert_checkpoint` turns such a folder into the normal artifact
(model.safetensors + model.json) in one process.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from slimforge.distributed.process import DistContext, scalar_parameters
from slimforge.errors import ArtifactError

UNITS = 8  # about this many FSDP units per model: fewer, larger all-gathers; more, less peak memory


def is_sharded(model: nn.Module) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def shard(model: nn.Module, ctx: DistContext) -> nn.Module:
    """Shard ``model`` in place over all ranks and return it.

    Units are chosen bottom-up: a submodule becomes its own unit once the parameters not yet in
    a unit below it reach 1/UNITS of the model (transformer blocks, ResNet stages); the root
    takes the rest. The choice depends only on the architecture, so every rank agrees.
    """
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    if is_sharded(model):
        return model
    mesh = init_device_mesh(ctx.device.type, (ctx.world_size,))
    scalars = {p for _, p in scalar_parameters(model)}  # not shardable: whole on every rank, gradients averaged by the step
    options = {"mesh": mesh, **({"ignored_params": scalars} if scalars else {})}
    with torch.no_grad():
        for p in scalars:  # every rank starts from rank 0's, as for the shards
            dist.broadcast(p, 0)
    total = sum(p.numel() for p in model.parameters())
    threshold = max(1, total // UNITS)
    uncovered: dict[nn.Module, int] = {}
    for module in _post_order(model):
        own = sum(p.numel() for p in module.parameters(recurse=False))
        size = own + sum(uncovered[c] for c in module.children())
        if module is not model and size >= threshold:
            fully_shard(module, **options)
            size = 0
        uncovered[module] = size
    fully_shard(model, **options)
    return model


def full_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The unsharded weights on the CPU of rank 0 ({} on the others); a collective when sharded."""
    if not is_sharded(model):
        return model.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def load_full_state_dict(model: nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    """Load unsharded weights that only rank 0 needs to hold (broadcast to the shards)."""
    if not is_sharded(model):
        model.load_state_dict(tensors)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    set_model_state_dict(model, tensors, options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=True))


def save_sharded(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Write model and optimizer shards to the folder ``path`` (every rank calls this).

    Written to ``path.tmp`` first and swapped in by rank 0 after all ranks finished, so a job
    killed while writing keeps the previous checkpoint.
    """
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    model_state, optim_state = get_state_dict(model, optimizer)
    if _rank() == 0 and tmp.exists():
        shutil.rmtree(tmp)
    _barrier()
    dcp.save({"model": model_state, "optimizer": optim_state}, checkpoint_id=str(tmp))
    _barrier()
    if _rank() == 0:
        old = path.with_name(path.name + ".old")
        if path.exists():
            path.rename(old)
        tmp.rename(path)
        shutil.rmtree(old, ignore_errors=True)
    _barrier()


def load_sharded(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Read shards written by :func:`save_sharded` into ``model`` and ``optimizer``, re-sharding
    to this job's number of processes (one process works too)."""
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    from slimforge.distributed import _safe_dcp

    path = Path(path)
    if not (path / ".metadata").is_file():
        raise ArtifactError(f"{path} is not a distributed checkpoint (no .metadata file); it may be from an interrupted save.")
    model_state, optim_state = get_state_dict(model, optimizer)
    state = {"model": model_state, "optimizer": optim_state}
    _safe_dcp.load(state, str(path))  # DCP's own reader unpickles; this one runs no code the folder names
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optimizer"])


SHARDED_DIR = "checkpoint.dcp"


def _post_order(module: nn.Module):
    for child in module.children():
        yield from _post_order(child)
    yield module


def _rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def _barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
