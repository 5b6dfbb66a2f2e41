"""GPU check: one-GPU training in fp32 and with AMP, and an NCCL all-reduce.

Run where a CUDA GPU is present:  python benchmarks/gpu_check.py [--epochs 2]
Prints the card, samples/s through slimforge's trainer for fp32 and AMP (bf16), and whether
NCCL works; exits 1 on any failure. Record its output in BENCHMARKS.md with the card's name.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from slimforge.data.core import DataSplits, DatasetInfo, TensorImageDataset
from slimforge.models import create_model
from slimforge.train import TrainConfig, seed_everything, train


def synthetic_splits(n: int = 20_000) -> DataSplits:
    """Fashion-MNIST-shaped random data: the check measures speed, not accuracy."""
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, 1, 28, 28), generator=g, dtype=torch.uint8)
    y = torch.randint(0, 10, (n,), generator=g)
    ds = TensorImageDataset(x, y, (0.5,), (0.25,))
    info = DatasetInfo("synthetic", 10, (1, 28, 28))
    return DataSplits(ds, ds.subset(torch.arange(2000)), ds.subset(torch.arange(2000)), info)


def samples_per_s(amp: str, epochs: int, model_name: str, batch: int) -> float:
    seed_everything(0)
    data = synthetic_splits()
    model = create_model(model_name, **data.info.model_kwargs())
    cfg = TrainConfig(epochs=epochs, batch_size=batch, amp=amp, device="cuda", quiet=True)
    history = train(model, data, cfg).history
    return max(h["samples_per_s"] for h in history[1:] or history)  # skip the warm-up epoch


def _nccl_worker(rank: int, world: int, port: int, result: "mp.Queue") -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.cuda.set_device(rank)
    dist.init_process_group("nccl", rank=rank, world_size=world)
    t = torch.full((4,), float(rank + 1), device="cuda")
    dist.all_reduce(t)
    result.put((rank, t.tolist()))
    dist.destroy_process_group()


def nccl_all_reduce_ok() -> tuple[bool, str]:
    world = torch.cuda.device_count()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    queue = ctx.SimpleQueue()
    mp.start_processes(_nccl_worker, args=(world, port, queue), nprocs=world, start_method="spawn")
    results = [queue.get() for _ in range(world)]
    expected = float(world * (world + 1) / 2)
    ok = all(v == [expected] * 4 for _, v in results)
    return ok, f"{world} rank(s), all-reduce sum {results[0][1][0]} (expected {expected})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to check")
        return 0
    report = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "model": args.model, "batch_size": args.batch_size}
    report["fp32_samples_per_s"] = round(samples_per_s("off", args.epochs, args.model, args.batch_size))
    report["amp_bf16_samples_per_s"] = round(samples_per_s("bf16", args.epochs, args.model, args.batch_size))
    ok, detail = nccl_all_reduce_ok()
    report["nccl"] = detail if ok else f"FAILED: {detail}"
    print(json.dumps(report, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
