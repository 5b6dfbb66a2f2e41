"""Scenarios the multi-process tests run, in one process (called from a test) or under torchrun:

    python -m torch.distributed.run --standalone --nproc-per-node 2 tests/distributed/worker.py SCENARIO OUT

Each writes the run folder OUT (rank 0) and, for checks of what every rank holds, one
``rank<R>.safetensors`` per rank (test output only; the trainer itself writes from rank 0).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

import slimforge
from slimforge.data.core import DataSplits
from slimforge.distributed import teardown
from slimforge.distributed.process import leave
from slimforge.train import Callback, TrainConfig, seed_everything, train

GLOBAL_BATCH = 32
EQUIVALENCE_STEPS = 20


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", 1))


def rank() -> int:
    return int(os.environ.get("RANK", 0))


def digits_subset(n_train: int) -> DataSplits:
    data = slimforge.load_dataset("digits")
    return DataSplits(data.train.subset(torch.arange(n_train)), data.val, data.test, data.info, data.split)


def mlp(data: DataSplits, hidden: int = 32) -> torch.nn.Module:
    seed_everything(0)
    return slimforge.create_model("mlp", hidden=[hidden], **data.info.model_kwargs())


def equivalence(out: Path) -> None:
    """EQUIVALENCE_STEPS optimizer steps of one global batch, split over however many processes run."""
    data = digits_subset(GLOBAL_BATCH * EQUIVALENCE_STEPS)
    cfg = TrainConfig(epochs=1, batch_size=GLOBAL_BATCH // world_size(), lr=0.05, keep_best=False, num_threads=1, quiet=True)
    train(mlp(data), data, cfg, out)


def fsdp(out: Path) -> None:
    """FSDP2 for two epochs; every rank then runs the sharded model on fixed inputs (a collective)."""
    data = digits_subset(320)
    cfg = TrainConfig(epochs=2, batch_size=16, lr=0.05, strategy="fsdp", keep_best=False, num_threads=1, quiet=True)
    result = train(mlp(data), data, cfg, out)
    inputs = data.test.__getitems__(list(range(16)))[0]
    with torch.no_grad():
        outputs = result.model(inputs)
    if rank() == 0:
        save_file({"inputs": inputs, "outputs": outputs}, str(out / "sharded_outputs.safetensors"))


class Narrow(Callback):
    """Replace the (unwrapped) model by one with half the hidden units after the first epoch:
    a stand-in for structured pruning, kept by hand so this test does not follow prune's API."""

    def on_epoch_end(self, state) -> None:
        if state.epoch != 0:
            return
        old = state.model
        spec = slimforge.artifacts.get_spec(old)
        keep = old.net[1].out_features // 2
        new = slimforge.create_model(spec.name, **{**spec.kwargs, "hidden": [keep]})
        with torch.no_grad():
            new.net[1].weight.copy_(old.net[1].weight[:keep])
            new.net[1].bias.copy_(old.net[1].bias[:keep])
            new.net[3].weight.copy_(old.net[3].weight[:, :keep])
            new.net[3].bias.copy_(old.net[3].bias)
        state.model = new
        state.rebuild_optimizer = True


def prune_then_finetune(out: Path) -> None:
    data = digits_subset(640)
    cfg = TrainConfig(epochs=3, batch_size=16, lr=0.05, num_threads=1, quiet=True)
    result = train(mlp(data), data, cfg, out, callbacks=[Narrow()])
    save_file({k: v.contiguous() for k, v in result.model.state_dict().items()}, str(out / f"rank{rank()}.safetensors"))


def distill(out: Path) -> None:
    """Distil with a FitNets hint: the adapter lives outside DDP and must stay identical on all ranks."""
    from slimforge.distill import DistillConfig, build_distill_objective

    data = digits_subset(640)
    teacher = mlp(data, hidden=64)
    student = mlp(data, hidden=16)
    config = DistillConfig(hints=("net.1:net.1",), cache=False)
    objective = build_distill_objective(student, teacher, config, example_input=data.train.__getitems__([0, 1])[0])
    cfg = TrainConfig(epochs=2, batch_size=16, lr=0.05, num_threads=1, quiet=True)
    result = train(student, data, cfg, out, objective=objective)
    tensors = {f"adapter.{k}": v for k, v in objective.adapters.state_dict().items()}
    tensors.update({f"student.{k}": v for k, v in result.model.state_dict().items()})
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(out / f"rank{rank()}.safetensors"))


def iterative_pruning(out: Path) -> None:
    """slimforge's own IterativePruning on every rank: each prunes its (identical) replica the same way."""
    from slimforge.prune.sparsity import IterativePruning

    data = digits_subset(640)
    steps = IterativePruning(data.train.__getitems__([0, 1])[0], epochs=[0, 1], ratio=0.5, round_to=1)
    cfg = TrainConfig(epochs=3, batch_size=16, lr=0.05, num_threads=1, quiet=True)
    result = train(mlp(data), data, cfg, out, callbacks=[steps])
    save_file({k: v.contiguous() for k, v in result.model.state_dict().items()}, str(out / f"rank{rank()}.safetensors"))


def recsys_sparse_setup() -> tuple[DataSplits, torch.nn.Module]:
    """Generated ratings cut to GLOBAL_BATCH x EQUIVALENCE_STEPS training interactions, and MF with sparse gradients."""
    from slimforge.recsys.protocol import ImplicitTrainDataset

    data = slimforge.load_dataset("synthetic-ratings", num_users=120, num_items=200, max_per_user=30, eval_negatives=49)
    n = GLOBAL_BATCH * EQUIVALENCE_STEPS
    data.train = ImplicitTrainDataset(data.train.users[:n], data.train.items[:n], data.info.num_users, data.catalogue.item_genres)
    seed_everything(0)
    return data, slimforge.create_model("mf", sparse=True, dim=16, **data.info.model_kwargs())


def recsys_sparse(out: Path) -> None:
    """EQUIVALENCE_STEPS steps of MF whose three tables have sparse gradients, each step GLOBAL_BATCH
    interactions with 4 negatives each, split over however many processes run."""
    data, model = recsys_sparse_setup()
    cfg = TrainConfig(epochs=1, batch_size=GLOBAL_BATCH // world_size(), optimizer="sgd", lr=0.5, weight_decay=0.0, keep_best=False,
                      num_threads=1, quiet=True)
    train(model, data, cfg, out)


def recsys_fsdp(out: Path) -> None:
    """EQUIVALENCE_STEPS steps of MF (dense tables, AdamW, BCE, a scalar global bias) with its tables sharded by FSDP2;
    each rank writes the rows of the item table it holds (``rank<R>.safetensors``)."""
    from torch.distributed.tensor import DTensor

    data, _ = recsys_sparse_setup()
    seed_everything(0)
    model = slimforge.create_model("mf", dim=16, **data.info.model_kwargs())
    # BCE, not MF's default softmax: under the softmax the global bias gets no gradient but rounding, which AdamW
    # would scale up to steps of its own on each side of the comparison
    cfg = TrainConfig(epochs=1, batch_size=GLOBAL_BATCH // world_size(), lr=0.01, loss="bce", strategy="fsdp", keep_best=False,
                      num_threads=1, quiet=True)
    result = train(model, data, cfg, out)
    table = result.model.item_embedding.weight
    held = table.to_local() if isinstance(table, DTensor) else table
    out.mkdir(parents=True, exist_ok=True)
    save_file({"item_rows": held.detach().contiguous()}, str(out / f"rank{rank()}.safetensors"))


SCENARIOS = {"equivalence": equivalence, "fsdp": fsdp, "prune": prune_then_finetune, "distill": distill,
             "iterative": iterative_pruning, "recsys_sparse": recsys_sparse, "recsys_fsdp": recsys_fsdp}

if __name__ == "__main__":
    scenario, out = sys.argv[1], Path(sys.argv[2])
    try:
        SCENARIOS[scenario](out)
    except BaseException:
        teardown(wait=False)
        raise
    teardown()
    sys.exit(leave(0))  # as the slimforge command ends a torchrun worker
