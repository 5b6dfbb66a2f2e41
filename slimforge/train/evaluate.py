"""Evaluation: loss and accuracy over a dataset (or the dataset's own metrics), exact across processes."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset, Sampler

from slimforge.data.core import identity_collate
from slimforge.distributed import DistContext


class ShardSampler(Sampler[int]):
    """Indices rank, rank + world, ...: every sample exactly once over all ranks (no padding)."""

    def __init__(self, size: int, rank: int = 0, world_size: int = 1) -> None:
        self.size, self.rank, self.world_size = size, rank, world_size

    def __iter__(self):
        return iter(range(self.rank, self.size, self.world_size))

    def __len__(self) -> int:
        return len(range(self.rank, self.size, self.world_size))


def move_to(inputs: Any, device: torch.device) -> Any:
    """Move a batch's inputs to ``device``: a tensor, or a dict/tuple/list of tensors (text batches)."""
    if isinstance(inputs, torch.Tensor):
        return inputs.to(device, non_blocking=True)
    if isinstance(inputs, dict):
        return {k: move_to(v, device) for k, v in inputs.items()}
    if isinstance(inputs, (tuple, list)):
        return type(inputs)(move_to(v, device) for v in inputs)
    return inputs


# Every score slimforge prints (train, eval, quantize, measure, optimize) batches a split this way: a
# dynamic int8 model scales each batch's activations by that batch's range, so its predictions depend
# on how the split is batched, and two commands scoring the same folder must batch it alike.
EVAL_BATCH_SIZE = 256


def make_loader(dataset: Dataset, batch_size: int, sampler: Sampler[int] | None, num_workers: int = 0, batch_sampler: Any = None) -> DataLoader:
    """In-memory datasets build whole batches themselves (``__getitems__``), so no workers or
    collation are needed; other datasets get the default collation. ``batch_sampler`` (lists
    of indices, e.g. length buckets) replaces ``sampler`` and ``batch_size``."""
    batched = hasattr(dataset, "__getitems__")
    sizes = {"batch_sampler": batch_sampler} if batch_sampler is not None else {"batch_size": batch_size, "sampler": sampler}
    return DataLoader(dataset, num_workers=0 if batched else num_workers, collate_fn=identity_collate if batched else None, **sizes)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    dataset: Dataset,
    batch_size: int = EVAL_BATCH_SIZE,
    ctx: DistContext | None = None,
    device: torch.device | str | None = None,
    autocast_dtype: torch.dtype | None = None,
) -> dict[str, Any]:
    """Top-1 accuracy (fraction), mean cross-entropy, sample count and errors (misclassified samples) of ``model`` on ``dataset``.

    ``model`` may also be a quantized model (``slimforge.load`` of an int8 artifact): it runs on the CPU.

    With several processes each rank evaluates its shard and the sums are all-reduced, so
    every sample counts exactly once.

    A dataset with its own ``evaluate(model, batch_size, ctx, device, autocast_dtype)`` method is
    scored by it instead (a recommender's validation users: ranking metrics and a loss).
    """
    ctx = ctx or DistContext()
    if hasattr(dataset, "evaluate"):
        return dataset.evaluate(model, batch_size=batch_size, ctx=ctx, device=device, autocast_dtype=autocast_dtype)
    module = isinstance(model, nn.Module)  # else a runtime-bound int8 model: a callable on CPU batches
    device = torch.device(device) if device is not None else (ctx.device if module else torch.device("cpu"))
    was_training = model.training if module else False
    if module:
        model.eval()
    loader = make_loader(dataset, batch_size, ShardSampler(len(dataset), ctx.rank, ctx.world_size))
    sums = torch.zeros(3, dtype=torch.float64, device=device)  # loss sum, correct, count
    for batch in loader:
        inputs, targets = move_to(batch[0], device), batch[1].to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            logits = model(inputs)
        logits = logits.float()
        sums[0] += F.cross_entropy(logits, targets, reduction="sum").double()
        sums[1] += (logits.argmax(1) == targets).sum()
        sums[2] += targets.numel()
    if module:
        _match_forward_count(model, dataset, batch_size, ctx, len(loader), device)
    ctx.all_reduce_sum(sums)
    if module:
        model.train(was_training)
    count = int(sums[2].item())
    if count == 0:
        return {"loss": float("nan"), "accuracy": float("nan"), "count": 0}
    correct = int(sums[1].item())
    return {"loss": (sums[0] / count).item(), "accuracy": correct / count, "count": count, "errors": count - correct}


def _match_forward_count(model: nn.Module, dataset: Dataset, batch_size: int, ctx: DistContext, done: int, device: torch.device) -> None:
    """An FSDP-sharded model gathers its parameters in every forward, a collective: a rank with
    one batch fewer than rank 0 (whose shard is the largest) runs an empty batch to match."""
    from slimforge.distributed.fsdp import is_sharded

    most = -(-len(ShardSampler(len(dataset), 0, ctx.world_size)) // batch_size)
    if done >= most or not is_sharded(model):
        return
    empty = move_to(dataset[0][0], device).unsqueeze(0)[:0]  # (0, ...): no sample counts twice
    for _ in range(most - done):
        model(empty)
