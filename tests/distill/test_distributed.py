"""Two gloo processes: one rank builds the teacher cache, and adapter gradients are averaged across ranks."""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from slimforge.distill import DistillConfig, build_distill_objective

from .conftest import TinyNet, Wrapper


def _worker(rank: int, world: int, init_file: str, cache_dir: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        torch.manual_seed(0)  # same teacher, student and data on every rank
        teacher, student = TinyNet(), TinyNet(width=2)
        images = torch.randn(24, 1, 8, 8)
        cached = build_distill_objective(student, teacher, DistillConfig(), train_inputs=images, cache_dir=cache_dir)
        hinted = build_distill_objective(student, teacher, DistillConfig(hints=["body.3:body.3"]), example_input=images[:2])
        batch = torch.arange(rank * 12, rank * 12 + 12)  # each rank sees its own half
        out = hinted(Wrapper(student), images[batch], torch.zeros(12, dtype=torch.long), batch)
        out.loss.backward()
        local = [p.grad.clone() for p in hinted.parameters()]
        hinted.sync_gradients()
        torch.save(
            {
                "mode": cached.mode,
                "reused": cached.caches[0].reused,
                "lookup": cached.caches[0].lookup(torch.arange(24)),
                "local": local,
                "synced": [p.grad.clone() for p in hinted.parameters()],
            },
            os.path.join(out_dir, f"rank{rank}.pt"),
        )
    finally:
        dist.destroy_process_group()


def test_two_processes_share_one_cache_and_average_adapter_gradients(tmp_path: Path) -> None:
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(tmp_path / "cache"), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in range(2))
    assert (r0["mode"], r1["mode"]) == ("cached", "cached")
    assert (r0["reused"], r1["reused"]) == (False, True)  # rank 0 computed it, rank 1 read it
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 1
    assert torch.equal(r0["lookup"], r1["lookup"])
    for a, b, s0, s1 in zip(r0["local"], r1["local"], r0["synced"], r1["synced"]):
        assert not torch.allclose(a, b)
        assert torch.allclose(s0, (a + b) / 2, atol=1e-6) and torch.allclose(s1, s0)
