"""Measured CPU speed-up of structured pruning, and the channel multiple that suits the CPU.

    nice .venv/bin/python benchmarks/prune_speedup.py            # resnet18 at 50% channels
    nice .venv/bin/python benchmarks/prune_speedup.py --round-sweep
    nice .venv/bin/python benchmarks/prune_speedup.py --concat --batch 8   # DenseNet/GoogLeNet concat rounding

resnet18 (random init) is pruned to 50% of its channels by slimforge (and Torch-Pruning when
installed); each model runs batch 32 at 224x224 on 1 thread, interleaved round-robin, and the
median of the rounds is reported, once in PyTorch's default (contiguous) layout and once in
channels_last, the layout oneDNN's CPU convolutions are fastest in. Efficiency = measured speed-up / MAC reduction, MACs counted
over convolutions, linear layers and matmuls from the same captured graph for every model.
--round-sweep times a 3x3 convolution (C -> C, 28x28, batch 16, 1 thread) for C = 40..72 and
reports nanoseconds per MAC, to see which channel multiples run at full SIMD width.
--concat prunes densenet121 and googlenet (random init, 50% channels, round_to=8) twice: rounding
each concat group's kept channels as a whole (slimforge before 2026-11-28: single layers could
keep odd widths) and rounding each layer feeding the concat (now), and times both.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
import warnings

import torch
import torchvision

warnings.filterwarnings("ignore")


def macs_of(model: torch.nn.Module, x: torch.Tensor) -> int:
    from slimforge.prune import build_dependency_graph

    return build_dependency_graph(model.eval(), (x[:2],)).count_macs(set())


def interleaved_medians(models: dict[str, torch.nn.Module], x: torch.Tensor, rounds: int) -> dict[str, float]:
    times: dict[str, list[float]] = {k: [] for k in models}
    with torch.inference_mode():
        for m in models.values():
            m.eval()(x)  # warm-up
        for _ in range(rounds):
            for name, m in models.items():
                start = time.perf_counter()
                m(x)
                times[name].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()}


def speedup(args: argparse.Namespace) -> None:
    import slimforge.prune as sp

    torch.set_num_threads(1)
    torch.manual_seed(0)
    x = torch.randn(args.batch, 3, 224, 224)
    base = torchvision.models.resnet18().eval()
    models = {"original": base}
    ours = torchvision.models.resnet18().eval()
    ours.load_state_dict(base.state_dict())
    models["slimforge"] = sp.prune(ours, x[:2], ratio=args.ratio)
    try:
        import torch_pruning as tp

        theirs = torchvision.models.resnet18().eval()
        theirs.load_state_dict(base.state_dict())
        tp.pruner.MetaPruner(theirs, x[:2], importance=tp.importance.MagnitudeImportance(p=2),
                             pruning_ratio=args.ratio, ignored_layers=[theirs.fc]).step()
        models["torch-pruning"] = theirs
    except ImportError:
        pass
    macs = {k: macs_of(m, x) for k, m in models.items()}
    for fmt in ("contiguous", "channels_last") if args.memory_format == "both" else (args.memory_format,):
        mf = getattr(torch, fmt if fmt == "channels_last" else "contiguous_format")
        placed = {k: m.to(memory_format=mf) for k, m in models.items()}
        medians = interleaved_medians(placed, x.contiguous(memory_format=mf), args.rounds)
        print(f"\nresnet18, {args.ratio:.0%} channels, batch {args.batch}, 224x224, {fmt} (model and input), 1 thread, "
              f"{args.rounds} interleaved rounds; {platform.processor() or platform.machine()}, torch {torch.__version__}")
        print("| model | params (M) | MACs/image (G) | median s | MAC reduction | speed-up | speed-up / MAC reduction |")
        print("|---|---|---|---|---|---|---|")
        for name, m in models.items():
            red = macs["original"] / macs[name]
            sp_ = medians["original"] / medians[name]
            print(f"| {name} | {sum(p.numel() for p in m.parameters()) / 1e6:.2f} | {macs[name] / 2 / 1e9:.3f} | "
                  f"{medians[name]:.3f} | {red:.2f}x | {sp_:.2f}x | {sp_ / red:.2f} |")


def concat_rounding(args: argparse.Namespace) -> None:
    import slimforge.prune as sp
    import slimforge.prune.structured as structured

    torch.set_num_threads(1)
    per_layer = structured._prune_at

    def group_rounded(graph, scores, ratio_of, round_to):  # the rule before: one rounding per group
        for group in graph.groups:
            group.branches = []
        return per_layer(graph, scores, ratio_of, round_to)

    x = torch.randn(args.batch, 3, 224, 224).contiguous(memory_format=torch.channels_last)
    for name in ("densenet121", "googlenet"):
        torch.manual_seed(0)
        kw = {"aux_logits": False, "init_weights": True} if name == "googlenet" else {}
        base = getattr(torchvision.models, name)(**kw).eval()
        models = {"original": base}
        for label, rule in (("group-rounded (before)", group_rounded), ("per-layer rounded (now)", per_layer)):
            m = getattr(torchvision.models, name)(**kw).eval()
            m.load_state_dict(base.state_dict())
            structured._prune_at = rule
            try:
                models[label] = sp.prune(m, x[:2].contiguous(), ratio=args.ratio, round_to=8)
            finally:
                structured._prune_at = per_layer
        odd = {k: sum(isinstance(c, torch.nn.Conv2d) and c.out_channels % 8 != 0 for c in m.modules()) for k, m in models.items()}
        macs = {k: macs_of(m, x.contiguous()) for k, m in models.items()}
        placed = {k: m.to(memory_format=torch.channels_last) for k, m in models.items()}
        medians = interleaved_medians(placed, x, args.rounds)
        print(f"\n{name}, {args.ratio:.0%} channels, round_to=8, batch {args.batch}, 224x224, channels_last, 1 thread, "
              f"{args.rounds} interleaved rounds; {platform.processor() or platform.machine()}, torch {torch.__version__}")
        print("| model | convs with out_channels % 8 != 0 | params (M) | MACs/image (G) | median s | speed-up | speed-up / MAC reduction |")
        print("|---|---|---|---|---|---|---|")
        for k, m in models.items():
            red, sp_ = macs["original"] / macs[k], medians["original"] / medians[k]
            print(f"| {k} | {odd[k]} | {sum(p.numel() for p in m.parameters()) / 1e6:.2f} | {macs[k] / 2 / 1e9:.3f} | "
                  f"{medians[k]:.3f} | {sp_:.2f}x | {sp_ / red:.2f} |")


def round_sweep(args: argparse.Namespace) -> None:
    torch.set_num_threads(1)
    print(f"3x3 conv C->C, 28x28, batch 16, 1 thread; {platform.processor() or platform.machine()}")
    print("| C | ns per MAC (median of 7) |")
    print("|---|---|")
    channels = list(range(40, 73))
    convs = {c: torch.nn.Conv2d(c, c, 3, padding=1, bias=False).eval() for c in sorted(set(channels))}
    inputs = {c: torch.randn(16, c, 28, 28) for c in convs}
    times: dict[int, list[float]] = {c: [] for c in convs}
    with torch.inference_mode():
        for c in convs:
            convs[c](inputs[c])
        for _ in range(7):
            for c in convs:
                start = time.perf_counter()
                for _ in range(3):
                    convs[c](inputs[c])
                times[c].append((time.perf_counter() - start) / 3)
    for c in convs:
        macs = 16 * 28 * 28 * c * c * 9
        print(f"| {c} | {statistics.median(times[c]) / macs * 1e9:.4f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ratio", type=float, default=0.5)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--round-sweep", action="store_true")
    parser.add_argument("--concat", action="store_true", help="densenet121 and googlenet: concat groups rounded as a whole vs per layer")
    parser.add_argument("--memory-format", choices=("contiguous", "channels_last", "both"), default="both",
                        help="tensor layout of models and input (oneDNN's convolutions prefer channels_last on CPU)")
    args = parser.parse_args()
    round_sweep(args) if args.round_sweep else concat_rounding(args) if args.concat else speedup(args)


if __name__ == "__main__":
    main()
