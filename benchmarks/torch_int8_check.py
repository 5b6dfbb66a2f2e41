"""Does the torch backend really run int8 on this machine's torch/torchao? A quick check.

    python benchmarks/torch_int8_check.py --reps 30

Quantizes ResNet-20 x2 (the Fashion-MNIST reference, random weights) through slimforge's torch
backend, prints the torch/torchao versions and how many quantize/dequantize ops the converted
graph holds (0 means the quantizer annotated nothing, which the backend refuses), the largest
logit difference from fp32, and the median latency of compiled fp32 and compiled int8 at
batch 32 and 1 thread, timed in alternation.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from slimforge.models import create_model
from slimforge.quantize import QuantizeConfig, quantize
from slimforge.quantize.backend_torch import quantize_ops


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=30)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    import torchao

    print(f"torch {torch.__version__}, torchao {torchao.__version__}")
    model = create_model("resnet20", num_classes=10, in_channels=1, width=2).eval()
    x = torch.randn(32, 1, 28, 28)
    calibration = [torch.randn(32, 1, 28, 28) for _ in range(4)]
    int8 = quantize(model, calibration, QuantizeConfig(backend="torch", mode="static", calib_batches=4)).quantized
    print(f"quantize/dequantize ops in the converted graph: {quantize_ops(int8.graph)}")
    fp32 = torch.compile(model, dynamic=False)

    @torch.no_grad()
    def run_fp32(x: torch.Tensor) -> torch.Tensor:
        with torch._inductor.config.patch(freezing=True):
            return fp32(x)

    with torch.no_grad():
        print(f"max |int8 - fp32| logit: {(int8(x) - model(x)).abs().max().item():.4f}")
    times: dict[str, list[float]] = {"fp32 compiled": [], "int8 compiled": []}
    runners = {"fp32 compiled": run_fp32, "int8 compiled": int8}
    for fn in runners.values():  # compile and warm up
        for _ in range(3):
            fn(x)
    for r in range(args.reps):
        for name in (list(runners) if r % 2 == 0 else list(reversed(runners))):
            start = time.perf_counter()
            runners[name](x)
            times[name].append(time.perf_counter() - start)
    medians = {name: 1000 * statistics.median(t) for name, t in times.items()}
    print(", ".join(f"{name} {ms:.2f} ms" for name, ms in medians.items()),
          f"-> int8 {medians['fp32 compiled'] / medians['int8 compiled']:.2f}x")


if __name__ == "__main__":
    main()
