"""The latency curve's steps in the output width, and what pruning on them keeps (issue 22, session 31).

    PYTHONPATH=benchmarks:. OMP_NUM_THREADS=1 .venv/bin/python benchmarks/latency_width_steps.py \
        --reference benchmarks/reference/fashion-mnist-resnet20w2

1. One convolution of the reference (``--layer``, default the 14x14 stage's ``layer2.1.conv1``) timed alone at its
   real input shape, batch 32, 1 thread, channels_last, its input width whole, at every multiple of 8 output
   channels (``slimforge.prune.latency.time_layer``, interleaved medians): where the kernels compute output channels
   in blocks (16 fp32 lanes with AVX-512), odd multiples of 8 cost what the next even one does.
2. The reference pruned to ``--target`` of its measured latency with ``LatencySettings(steps=True)`` (widths on
   those steps) and to ``--macs`` of its MACs at ``round_to`` 8, then both timed against the reference, interleaved,
   ``--rounds`` rounds: measured latency fraction, MACs and parameters kept, convolution widths.
"""

from __future__ import annotations

import argparse
import copy
import tempfile

import torch

import slimforge
from latency_prune import interleaved_medians, macs
from slimforge.experiment import run_data_config
from slimforge.prune import build_dependency_graph
from slimforge.prune.latency import LatencySettings, find_layers, time_layer


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reference", required=True)
    p.add_argument("--layer", default="layer2.1.conv1")
    p.add_argument("--target", type=float, default=0.3)
    p.add_argument("--macs", type=float, default=0.204)
    p.add_argument("--rounds", type=int, default=31)
    args = p.parse_args()
    torch.set_num_threads(1)
    reference = slimforge.load(args.reference).eval()
    x = run_data_config(args.reference).load().train.__getitems__(list(range(32)))[0].float()
    settings = LatencySettings(batch_size=32, threads=1, channels_last=True, repeats=15)

    layers = {s.name: s for s in find_layers(reference, build_dependency_graph(reference, (x[:2],)), x, grid=64, round_to=8)}
    spec = layers[args.layer]
    widths = list(range(8, spec.cout + 1, 8))
    ms = time_layer(spec, [(spec.cin, w) for w in widths], settings)
    print(f"{args.layer}: {spec.cin} input channels, {spec.inner} input; ms by output width")
    print("| " + " | ".join(str(w) for w in widths) + " |\n|" + "---|" * len(widths) + "\n| " + " | ".join(f"{m:.2f}" for m in ms) + " |")

    with tempfile.TemporaryDirectory() as cache:
        stepped = slimforge.prune(copy.deepcopy(reference).train(), x[:2], target_latency=args.target,
                                  latency=LatencySettings(channels_last=True, steps=True, cache_dir=cache)).eval()
    by_macs = slimforge.prune(copy.deepcopy(reference).train(), x[:2], target_macs=args.macs).eval()
    models = {"latency-aware, steps": stepped, f"MAC-targeted {args.macs}, round_to 8": by_macs}
    lat = interleaved_medians({"reference": reference, **models}, x, args.rounds, True)
    n_macs, n_params = macs(reference, x), sum(q.numel() for q in reference.parameters())
    print("\n| model | latency (x reference) | MACs kept | params kept | convolution widths |\n|---|---|---|---|---|")
    for name, model in models.items():
        convs = [m.out_channels for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
        print(f"| {name} | {lat[name] / lat['reference']:.3f} | {macs(model, x) / n_macs:.3f} | "
              f"{sum(q.numel() for q in model.parameters()) / n_params:.3f} | {convs} |")


if __name__ == "__main__":
    main()
