"""Which recovery recipe after latency-aware pruning (issue 22's third bar): the reference pruned once to
``--target`` of its measured latency (uniform allocation), then each variant fine-tuned ``--epochs`` from the same
pruned weights with the same optimizer, schedule and seed; test accuracy per variant. A cheap proxy for
``benchmarks/equal_latency.py``, whose arms fix the structure and vary only the recovery.

    PYTHONPATH=benchmarks:. nice .venv/bin/python benchmarks/kd_recovery_proxy.py \
        --reference benchmarks/reference/fashion-mnist-resnet20w2 --threads 2 --epochs 1 --json /tmp/kd_proxy.json

Variants: ``ft`` (labels only), ``kd`` (slimforge's default: Hinton KD, T 4), ``kd-soft`` (KD alone, no labels),
``kd-t1`` (T 1), ``dkd`` (decoupled KD, its defaults), ``kd-hints`` (KD plus FitNets hints on the three stages'
outputs through learned adapters).
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import time

import torch

import slimforge
from slimforge.cli.compress import _finetune_config
from slimforge.distill.api import DistillSection
from slimforge.distill.api import run as distill_run
from slimforge.experiment import run_data_config
from slimforge.measure import choose_layout
from slimforge.prune.latency import LatencySettings
from slimforge.train import evaluate, seed_everything, train

VARIANTS = {
    "ft": None,
    "kd": DistillSection(),
    "kd-soft": DistillSection(soft_weight=1.0),
    "kd-t1": DistillSection(temperature=1.0),
    "dkd": DistillSection(loss="dkd"),
    "kd-hints": DistillSection(hints=["layer1:layer1", "layer2:layer2", "layer3:layer3"]),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reference", required=True)
    p.add_argument("--target", type=float, default=0.3)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--json", default=None)
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    reference = slimforge.load(args.reference).eval()
    data = run_data_config(args.reference).load()
    example = data.train.__getitems__(list(range(32)))[0].float()
    torch.set_num_threads(1)
    layout = choose_layout(reference, example, threads=1)
    settings = LatencySettings(batch_size=32, threads=1, channels_last=layout == "channels_last", allocation="uniform")
    pruned = slimforge.prune(copy.deepcopy(reference).train(), example[:2], target_latency=args.target, latency=settings)
    rows = []
    for name in args.variants:
        cfg = _finetune_config(args.reference, args.epochs, args.lr, None, args.threads).model_copy(update={"seed": args.seed, "quiet": True})
        seed_everything(args.seed)
        started = time.perf_counter()
        model = copy.deepcopy(pruned).train()
        section = VARIANTS[name]
        result = train(model, data, cfg) if section is None else distill_run(model, [args.reference], data, section.to_config(), cfg)
        test = evaluate(result.model.eval().cpu(), data.test)["accuracy"]
        rows.append({"variant": name, "test_accuracy": test, "seconds": round(time.perf_counter() - started, 1)})
        logging.info("%s: test %.4f (%.0f s)", name, test, rows[-1]["seconds"])
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"reference": args.reference, "target": args.target, "epochs": args.epochs, "lr": args.lr, "seed": args.seed,
                           "threads": args.threads, "rows": rows}, f, indent=1)
    for r in rows:
        print(f"| {r['variant']} | {r['test_accuracy']:.4f} | {r['seconds']:.0f} s |")


if __name__ == "__main__":
    main()
