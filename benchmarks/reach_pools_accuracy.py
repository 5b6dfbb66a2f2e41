"""Does ranking each reach class of a group apart (``structured._reach_pools``) cost accuracy where groups
have several? A small DenseNet (every concat group is heterogeneous: each layer's new channels are read by
the layers after it only) trained on Fashion-MNIST, pruned one-shot to ``--targets`` of its parameters (equal sizes, so the
allocations compare; at one ratio the two rules round DenseNet's 16-channel layers differently) with whatever slimforge is
on ``PYTHONPATH``, then test accuracy with no fine-tuning and after ``--steps`` steps of it.

    PYTHONPATH=. .venv/bin/python benchmarks/reach_pools_accuracy.py --train      # once: /tmp/reach_pools_densenet.safetensors
    PYTHONPATH=<old worktree> .venv/bin/python benchmarks/reach_pools_accuracy.py --label before
    PYTHONPATH=. .venv/bin/python benchmarks/reach_pools_accuracy.py --label after

Needs the Fashion-MNIST reference run's data (``$SLIMFORGE_DATA`` or the packaged set, as the run says).
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torchvision.models import DenseNet

import slimforge
from slimforge.experiment import run_data_config
from slimforge.train import evaluate

REFERENCE = "benchmarks/reference/fashion-mnist-resnet20w2"  # only its data section is used


def densenet() -> nn.Module:
    model = DenseNet(growth_rate=16, block_config=(4, 4, 4), num_init_features=32, bn_size=2, num_classes=10)
    model.features.conv0 = nn.Conv2d(1, 32, 3, padding=1, bias=False)
    model.features.pool0 = nn.Identity()
    return model


def batches(dataset, batch: int, steps: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    n = len(dataset)
    for _ in range(steps):
        x, y, *_ = dataset.__getitems__(torch.randint(n, (batch,), generator=g).tolist())
        yield x.float(), y


def fit(model: nn.Module, dataset, steps: int, lr: float, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4, nesterov=True)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps, pct_start=0.1)
    model.train()
    for x, y in batches(dataset, 128, steps, seed):
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return model.eval()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--train", action="store_true")
    p.add_argument("--label", default="run")
    p.add_argument("--weights", default="/tmp/reach_pools_densenet.safetensors")
    p.add_argument("--train-steps", type=int, default=1500)
    p.add_argument("--steps", type=int, default=300, help="fine-tuning steps after pruning (batch 128)")
    p.add_argument("--targets", type=float, nargs="+", default=[0.6, 0.45], help="fractions of the parameters to keep")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default="benchmarks/results/reach_pools_accuracy.jsonl")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    data = run_data_config(REFERENCE).load()
    if a.train:
        model = fit(densenet(), data.train, a.train_steps, 0.1, 0)
        save_file(model.state_dict(), a.weights)
        print(json.dumps({"trained": a.train_steps, "test": evaluate(model, data.test)["accuracy"]}))
        return
    base = densenet()
    base.load_state_dict(load_file(a.weights))
    base.eval()
    example = data.train.__getitems__(list(range(8)))[0].float()
    params = sum(p.numel() for p in base.parameters())
    record = {"label": a.label, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "reference": evaluate(base, data.test)["accuracy"], "rows": []}
    for target in a.targets:
        pruned = copy.deepcopy(base)
        slimforge.prune(pruned, example, target_params=target)
        kept = sum(p.numel() for p in pruned.parameters()) / params
        row = {"target_params": target, "params_kept": round(kept, 4), "one_shot": evaluate(pruned, data.test)["accuracy"], "tuned": []}
        for seed in a.seeds:
            row["tuned"].append(evaluate(fit(copy.deepcopy(pruned), data.train, a.steps, 0.02, seed), data.test)["accuracy"])
        record["rows"].append(row)
        print(json.dumps(row), flush=True)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    with open(a.out, "a") as f:
        f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
