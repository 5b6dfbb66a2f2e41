"""fp32 vs int8 latency for each quantization backend, interleaved A/B medians.

    nice python benchmarks/quantize_speed.py --reps 200 --threads 1 --batch 32

For each model (resnet20 on 1x28x28, mlp-800; minilm on token ids, MINILM_PATH or the packaged
MiniLM-L6, onnxruntime and torch-dynamic) and backend it builds the fp32 runner and the
int8 runner(s) once, then times them in turns (one call of each per round, order rotated every
round) so that load from other processes hits all variants alike; it prints the median per
variant and the int8 speed-up over the same backend's fp32. Weights are random: latency does
not depend on their values. Rows marked "wrong mode" show the mode the backend does not pick.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
import warnings
from collections.abc import Callable
from datetime import datetime, timezone

import torch

from slimforge.export import OnnxSession, export_onnx_file
from slimforge.models import create_model
from slimforge.quantize import QuantizeConfig, choose_mode, quantize
from slimforge.quantize.backend_onnxruntime import fuse_transformer

MODELS = {
    "resnet20": lambda: create_model("resnet20", num_classes=10, in_channels=1),
    "resnet20x2": lambda: create_model("resnet20", num_classes=10, in_channels=1, width=2),  # the Fashion-MNIST reference
    "mlp-800": lambda: create_model("mlp-800", num_classes=10, in_channels=1),
    # MiniLM-L6 (issue 6's linear-heavy text model): token ids in, onnxruntime and torch-dynamic only.
    "minilm": lambda: create_model("hf-text-classifier", num_classes=2, pretrained=os.environ.get("MINILM_PATH")),
}
TEXT_MODELS = ("minilm",)


def main() -> None:
    args = _parse()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    rows = []
    for name in args.models:
        model = MODELS[name]().eval()
        if name in TEXT_MODELS:  # a batch of token ids (no padding); PT2E exports float inputs only
            x = torch.randint(1000, 20000, (args.batch, args.seq_len))
            calib, backends = [x], [b for b in args.backends if b in ("torch-dynamic", "onnxruntime")]
        else:
            x = torch.randn(args.batch, 1, 28, 28)
            calib, backends = [torch.randn(args.batch, 1, 28, 28) for _ in range(args.calib_batches)], args.backends
        model_args = argparse.Namespace(**{**vars(args), "backends": backends})
        variants = _variants(model, x, calib, model_args)
        medians = interleaved_medians(variants, x, args.reps, args.warmup)
        for label, seconds in medians.items():
            backend, kind = label.split(" ", 1)
            base = medians.get(BASELINE.get(backend, f"{backend} fp32"), seconds)  # eager fp32 alone: its own baseline
            rows.append({"model": name, "backend": backend, "variant": kind, "ms": round(1000 * seconds, 3), "speedup_vs_fp32": round(base / seconds, 2)})
            if backend.startswith("torch"):
                rows[-1]["speedup_vs_eager"] = round(medians["torch fp32-eager"] / seconds, 2)
        _print(rows, args)  # after each model, so a run stopped early keeps what it measured


# Each backend's fp32: compiled for PT2E (inductor runs its int8), eager for the eager int8 backend.
BASELINE = {"torch": "torch fp32-compiled", "torch-dynamic": "torch fp32-eager"}


def _variants(model: torch.nn.Module, x: torch.Tensor, calib: list[torch.Tensor], args: argparse.Namespace) -> dict[str, Callable]:
    import tempfile
    from pathlib import Path

    right = choose_mode(model)
    wrong = "dynamic" if right == "static" else "static"
    variants: dict[str, Callable] = {}

    # ONNX Runtime: the fp32 export, int8 in the chosen mode, and the other mode for contrast.
    if "onnxruntime" in args.backends:
        folder = Path(tempfile.mkdtemp())
        plain = export_onnx_file(model, x, folder / "fp32.onnx")
        text = not x.is_floating_point()  # token ids: dynamic int8 only, of the fused graph
        if text:  # the backend's fp32 is the fused graph its int8 starts from; the plain export for contrast
            variants["onnxruntime fp32 (unfused export)"] = OnnxSession(plain, threads=args.threads)
            plain = fuse_transformer(plain, folder / "fp32.fused.onnx", x)
        variants["onnxruntime fp32"] = OnnxSession(plain, threads=args.threads)
        for mode, tag in ((right, "int8"),) + (() if text else ((wrong, "int8 wrong mode"),)):
            config = QuantizeConfig(backend="onnxruntime", mode=mode, calib_batches=len(calib), threads=args.threads)
            variants[f"onnxruntime {tag} ({mode})"] = quantize(model, calib, config).quantized

    # torch: eager fp32, compiled fp32 (the fair baseline), PT2E int8 compiled, both modes.
    if "torch" in args.backends:
        variants["torch fp32-eager"] = torch.no_grad()(model)
        try:
            compiled = _frozen(torch.compile(model))
            compiled(x)  # compiles now: a machine without a C++ compiler fails here, not mid-timing
        except Exception as exc:  # noqa: BLE001
            print(f"# torch backend skipped: torch.compile failed: {type(exc).__name__}: {exc}")
            return {k: v for k, v in variants.items() if not k.startswith("torch ")}
        variants["torch fp32-compiled"] = compiled
        for mode in (right, wrong):
            tag = "int8" if mode == right else "int8 wrong mode"
            try:
                q = quantize(model, calib, QuantizeConfig(backend="torch", mode=mode, calib_batches=len(calib))).quantized
            except Exception as exc:  # noqa: BLE001 - a machine without torchao still times the other rows
                print(f"# torch {tag} ({mode}) skipped: {type(exc).__name__}: {exc}")
                continue
            variants[f"torch {tag} ({mode})"] = q

    # torch-dynamic: eager dynamic int8 of the Linear layers (what text models use), against eager fp32.
    if "torch-dynamic" in args.backends and right == "dynamic":  # linear-only models; a CNN would keep its convs fp32
        variants.setdefault("torch fp32-eager", torch.no_grad()(model))
        q = quantize(model, calib, QuantizeConfig(backend="torch-dynamic", mode="dynamic", calib_batches=1)).quantized
        variants["torch-dynamic int8 (dynamic)"] = torch.no_grad()(q)
        if args.smooth_alpha is not None:  # the cost of SmoothQuant's input multiplies
            config = QuantizeConfig(backend="torch-dynamic", mode="dynamic", calib_batches=len(calib), smooth_alpha=args.smooth_alpha)
            variants["torch-dynamic int8 + SmoothQuant (dynamic)"] = torch.no_grad()(quantize(model, calib, config).quantized)
    return variants


def _frozen(compiled: Callable) -> Callable:
    @torch.no_grad()
    def run(x: torch.Tensor) -> torch.Tensor:
        with torch._inductor.config.patch(freezing=True):
            return compiled(x)

    return run


def interleaved_medians(variants: dict[str, Callable], x: torch.Tensor, reps: int, warmup: int) -> dict[str, float]:
    """Median seconds per call of each variant, timed in rotating order one call at a time."""
    names = list(variants)
    for name in names:  # first calls compile; warm-up calls settle caches
        for _ in range(warmup):
            variants[name](x)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(reps):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            start = time.perf_counter()
            variants[name](x)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def _print(rows: list[dict], args: argparse.Namespace) -> None:
    print(f"# quantize_speed: batch {args.batch}, {args.threads} thread(s), {args.reps} interleaved reps, "
          f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {_cpu_name()}, torch {torch.__version__}", flush=True)
    print("| model | backend | variant | median ms | speed-up vs same backend fp32 | vs torch eager fp32 |")
    print("| --- | --- | --- | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['model']} | {r['backend']} | {r['variant']} | {r['ms']:.3f} | {r['speedup_vs_fp32']:.2f}x | {r.get('speedup_vs_eager', '')} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--backends", nargs="+", default=["onnxruntime", "torch", "torch-dynamic"], choices=["onnxruntime", "torch", "torch-dynamic"])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seq-len", type=int, default=48, help="tokens per text (minilm); SST-2 dev batches of 32 pad to about 40-60")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--reps", type=int, default=200)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--calib-batches", type=int, default=8)
    p.add_argument("--smooth-alpha", type=float, default=None, help="also time torch-dynamic with SmoothQuant (linear models)")
    p.add_argument("--json", default="")
    return p.parse_args()


if __name__ == "__main__":
    main()
