"""Trainer overhead: slimforge's training loop against a minimal hand-written PyTorch loop.

Same model, data, batch size and thread count; the two alternate epoch by epoch (A B A B ...)
in one process so machine noise hits both alike. Both draw batches from the same in-memory
dataset, so the comparison isolates what the trainer adds per step (scheduler, metrics,
callbacks, checks). Reports the median samples/s of each and their ratio.

    python benchmarks/trainer_overhead.py [--rounds 7] [--threads 1] [--samples 12000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from torch.nn import functional as F

import slimforge
from slimforge.data.core import DataSplits
from slimforge.train import TrainConfig, seed_everything, train


def hand_loop_epoch(model: torch.nn.Module, dataset, batch_size: int, optimizer: torch.optim.Optimizer, epoch: int) -> float:
    """The minimal loop: shuffle, forward, cross-entropy, backward, step. Returns samples/s."""
    model.train()
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(epoch))
    started = time.perf_counter()
    for start in range(0, len(order), batch_size):
        inputs, targets, _ = dataset.__getitems__(order[start : start + batch_size].tolist())
        loss = F.cross_entropy(model(inputs), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return len(order) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--samples", type=int, default=12_000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--model", default="cnn")
    parser.add_argument("--data", default="fashion-mnist")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    full = slimforge.load_dataset(args.data, augment=False)
    subset = full.train.subset(torch.arange(min(args.samples, len(full.train))))
    data = DataSplits(subset, full.val.subset(torch.arange(256)), full.test.subset(torch.arange(256)), full.info)
    seed_everything(0)
    hand_model = slimforge.create_model(args.model, **data.info.model_kwargs())
    ours_model = slimforge.create_model(args.model, **data.info.model_kwargs())
    ours_model.load_state_dict(hand_model.state_dict())
    hand_opt = torch.optim.SGD(hand_model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
    cfg = TrainConfig(epochs=1, batch_size=args.batch_size, lr=0.01, num_threads=args.threads, quiet=True, keep_best=False)

    hand, ours = [], []
    hand_loop_epoch(hand_model, subset, args.batch_size, hand_opt, -1)  # warm-up both
    train(ours_model, data, cfg)
    for r in range(args.rounds):
        hand.append(hand_loop_epoch(hand_model, subset, args.batch_size, hand_opt, r))
        ours.append(train(ours_model, data, cfg).history[0]["samples_per_s"])
    result = {
        "model": args.model, "data": args.data, "samples": len(subset), "batch_size": args.batch_size,
        "threads": args.threads, "rounds": args.rounds,
        "hand_samples_per_s_median": round(statistics.median(hand), 1),
        "slimforge_samples_per_s_median": round(statistics.median(ours), 1),
        "ratio": round(statistics.median(ours) / statistics.median(hand), 4),
        "ratio_per_round_median": round(statistics.median(o / h for o, h in zip(ours, hand)), 4),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
