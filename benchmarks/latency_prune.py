"""Latency-aware pruning to a fraction of the measured latency: measured result against the target.

    nice .venv/bin/python benchmarks/latency_prune.py                       # resnet18, 30%, batch 32, 64x64
    nice .venv/bin/python benchmarks/latency_prune.py --size 224
    nice .venv/bin/python benchmarks/latency_prune.py --model resnet20x2    # + MAC-targeted at equal latency

resnet18 (torchvision, random init, 1000 classes) or the Fashion-MNIST ResNet-20 x2 (slimforge's
resnet20, width 2, 1x28x28, random init) is pruned with ``slimforge.prune(target_latency=...)``
(L2 importance, round_to 8) at the given batch size on 1 thread, in the layout
``slimforge.measure.choose_layout`` picks. The pruning's own verification is reported, then
the original and the pruned model are timed again, independently: interleaved round-robin, medians
of ``--rounds`` rounds. With ``--compare-macs``, the same model is also pruned MAC-targeted, with
target_macs bisected until its measured latency matches the latency-aware result, and the kept
MACs and parameters of both are reported (accuracy needs trained weights and fine-tuning: not here).
A line of JSON per run is appended to benchmarks/results/latency_prune.jsonl.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import platform
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

import slimforge
from slimforge.measure import _channels_last_inputs, choose_layout
from slimforge.prune.latency import LatencySettings


def build(name: str) -> tuple[torch.nn.Module, tuple[int, ...]]:
    if name == "resnet18":
        return slimforge.create_model("torchvision:resnet18"), (3,)
    if name == "resnet20x2":
        return slimforge.create_model("resnet20", num_classes=10, in_channels=1, width=2), (1,)
    raise SystemExit(f"unknown model {name!r}: resnet18 or resnet20x2")


def interleaved_medians(models: dict[str, torch.nn.Module], x: torch.Tensor, rounds: int, channels_last: bool) -> dict[str, float]:
    calls = {k: _channels_last_inputs(copy.deepcopy(m).eval().to(memory_format=torch.channels_last)) if channels_last else m.eval()
             for k, m in models.items()}
    times: dict[str, list[float]] = {k: [] for k in calls}
    with torch.inference_mode():
        for f in calls.values():
            f(x)
        for _ in range(rounds):
            for k, f in calls.items():
                t0 = time.perf_counter()
                f(x)
                times[k].append((time.perf_counter() - t0) * 1000)
    return {k: statistics.median(v) for k, v in times.items()}


def macs(model: torch.nn.Module, x: torch.Tensor) -> int:
    from slimforge.prune import build_dependency_graph

    return build_dependency_graph(copy.deepcopy(model).eval(), (x[:2],)).count_macs(set())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="resnet18")
    p.add_argument("--size", type=int, default=64, help="input height and width (resnet18; resnet20x2 is 28)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--target", type=float, default=0.3)
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--tolerance", type=float, default=0.05, help="the pruning's own re-aim threshold (the bar is 10%%; the margin is for re-measurement noise)")
    p.add_argument("--compare-macs", action="store_true")
    p.add_argument("--results", type=Path, default=Path("benchmarks/results/latency_prune.jsonl"))
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(1)
    torch.manual_seed(0)
    original, channels = build(args.model)
    size = 28 if args.model == "resnet20x2" else args.size
    x = torch.randn(args.batch, *channels, size, size)
    layout = choose_layout(original.eval(), x, threads=1)
    settings = LatencySettings(batch_size=args.batch, threads=1, channels_last=layout == "channels_last", tolerance=args.tolerance)

    pruned = copy.deepcopy(original).eval()
    started = time.perf_counter()
    slimforge.prune(pruned, x[:2], target_latency=args.target, latency=settings)
    seconds = time.perf_counter() - started
    own = slimforge.artifacts.get_spec(pruned).edits[-1]["latency"]  # what the pruning's own check measured
    lat = interleaved_medians({"original": original, "latency": pruned}, x, args.rounds, settings.channels_last)
    base_macs = macs(original, x)
    record = {
        "date": datetime.now(timezone.utc).isoformat(timespec="minutes"), "model": args.model, "input": list(x.shape),
        "threads": 1, "layout": layout, "target": args.target, "tolerance": args.tolerance, "prune_seconds": round(seconds, 1), "pruning_check": own,
        "original_ms": lat["original"], "pruned_ms": lat["latency"], "measured_fraction": lat["latency"] / lat["original"],
        "macs_fraction": macs(pruned, x) / base_macs,
        "params_fraction": sum(q.numel() for q in pruned.parameters()) / sum(q.numel() for q in original.parameters()),
        "machine": platform.machine(), "torch": torch.__version__, "rounds": args.rounds,
    }
    if args.compare_macs:
        record["mac_targeted"] = equal_latency_mac_pruning(original, x, lat["latency"] / lat["original"], settings.channels_last, args.rounds)
    print(json.dumps(record, indent=1))
    args.results.parent.mkdir(parents=True, exist_ok=True)
    with args.results.open("a") as f:
        f.write(json.dumps(record) + "\n")


def equal_latency_mac_pruning(original: torch.nn.Module, x: torch.Tensor, fraction: float, channels_last: bool, rounds: int) -> dict:
    """target_macs bisected (6 steps) until the MAC-pruned model's measured latency fraction matches ``fraction``."""
    lo, hi, best = 0.02, 1.0, None
    base_macs = macs(original, x)
    for _ in range(6):
        mid = (lo + hi) / 2
        model = slimforge.prune(copy.deepcopy(original).eval(), x[:2], target_macs=mid)
        lat = interleaved_medians({"original": original, "macs": model}, x, rounds, channels_last)
        got = lat["macs"] / lat["original"]
        logging.info("target_macs %.3f: measured latency fraction %.3f", mid, got)
        if best is None or abs(got - fraction) < abs(best["measured_fraction"] - fraction):
            best = {"target_macs": mid, "measured_fraction": got, "macs_fraction": macs(model, x) / base_macs,
                    "params_fraction": sum(q.numel() for q in model.parameters()) / sum(q.numel() for q in original.parameters())}
        lo, hi = (lo, mid) if got > fraction else (mid, hi)
    return best


if __name__ == "__main__":
    main()
