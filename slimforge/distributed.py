"""Distribution-agnostic helpers over ``torch.distributed``.

slimforge never launches processes itself: ``torchrun`` (``torch.distributed.run``) does, and
this module reads its environment (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE). The process
group is initialised only when nothing else has (so jobs launched by Accelerate, Lightning or
Ray work too). With no such environment everything degrades to one process on one device.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistContext:
    """rank / world_size over all processes; local_rank / local_world_size on this machine."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.is_distributed:
            dist.barrier()

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum ``tensor`` over all processes (in place) and return it."""
        if self.is_distributed:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def wrap(self, model: nn.Module) -> nn.Module:
        """DDP around the trainable model when distributed; the model itself otherwise."""
        if not self.is_distributed:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)


def torchrun_env() -> dict[str, int] | None:
    """torchrun's variables, or None when this process was not launched by a distributed launcher."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return None
    return {
        "rank": int(os.environ["RANK"]),
        "world_size": int(os.environ["WORLD_SIZE"]),
        "local_rank": int(os.environ.get("LOCAL_RANK", 0)),
        "local_world_size": int(os.environ.get("LOCAL_WORLD_SIZE", 1)),
    }


def pick_device(requested: str, local_rank: int = 0) -> torch.device:
    """'auto' -> this local rank's CUDA device when there is one, else the CPU."""
    if requested == "auto":
        return torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        from slimforge.errors import SlimforgeError

        raise SlimforgeError(f"device={requested!r} asked for CUDA, but torch sees no CUDA device; use device=cpu or auto.")
    return device


def setup(device: str = "auto", timeout_s: float = 600.0) -> DistContext:
    """Initialise the process group when torchrun's environment asks for one; else one process."""
    env = torchrun_env()
    if env is None or env["world_size"] == 1:
        return DistContext(device=pick_device(device))
    dev = pick_device(device, env["local_rank"])
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=timeout_s))
    return DistContext(env["rank"], env["world_size"], env["local_rank"], env["local_world_size"], dev)


def teardown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
