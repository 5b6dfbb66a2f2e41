"""The model as a training step calls it in several processes: DDP around it, or FSDP2 shards of it."""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from slimforge.distributed.fsdp import shard
from slimforge.distributed.process import DistContext, sparse_parameters


def wrap(model: nn.Module, ctx: DistContext, strategy: str = "ddp") -> nn.Module:
    """DDP around ``model``, FSDP2 shards of it (in place), or the model itself in one process.
    Teachers and other frozen modules are never wrapped."""
    if not ctx.is_distributed:
        return model
    if strategy == "fsdp":
        return shard(model, ctx)
    from torch.nn.parallel import DistributedDataParallel

    sparse = sparse_parameters(model)
    if sparse:  # left to ctx.all_reduce_gradients: DDP mixes up several sparse tables' all-reduces
        DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(model, [name for name, _ in sparse])
        with torch.no_grad():
            for _, p in sparse:  # what DDP does for the parameters it owns: every rank starts from rank 0's
                dist.broadcast(p, 0)
    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)
