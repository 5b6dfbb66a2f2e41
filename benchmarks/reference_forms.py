"""The original model in every fp32 form (eager, channels_last, torch.compile, ONNX Runtime): which is fastest.

    nice .venv/bin/python benchmarks/reference_forms.py --model resnet20x2 --batch 32
    nice .venv/bin/python benchmarks/reference_forms.py --model resnet18 --size 224 --batch 32

Random init (speed does not depend on the weights), 1 thread, the forms built by
``slimforge.deploy_forms.build_reference_forms`` (compile and export outside the timed region),
then timed interleaved round-robin by ``slimforge.measure.measure_latency``; medians. These are
the baselines ``slimforge measure --reference eager,channels_last,compile,onnxruntime`` reports
speed-ups against.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import datetime, timezone

import torch

import slimforge
from slimforge.deploy_forms import build_reference_forms
from slimforge.measure import measure_latency

MODELS = {
    "resnet20x2": (lambda: slimforge.create_model("resnet20", num_classes=10, in_channels=1, width=2), (1, 28, 28)),
    "resnet18": (lambda: slimforge.create_model("torchvision:resnet18"), (3, None, None)),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="resnet20x2", choices=sorted(MODELS))
    p.add_argument("--size", type=int, default=224, help="input height and width for resnet18")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--forms", default="eager,channels_last,compile,onnxruntime")
    args = p.parse_args()
    torch.manual_seed(0)
    factory, shape = MODELS[args.model]
    shape = tuple(args.size if d is None else d for d in shape)
    model = factory().eval()
    x = torch.randn(args.batch, *shape)
    started = time.perf_counter()
    forms, unavailable = build_reference_forms(model, x, args.forms.split(","), threads=1)
    built = time.perf_counter() - started
    lat = measure_latency(forms, x, threads=1, warmup=3, repeats=args.repeats)
    ms = {name: lat[name][args.batch].p50_ms for name in forms}
    best = min(ms, key=ms.get)
    print(json.dumps({"date": datetime.now(timezone.utc).isoformat(timespec="minutes"), "model": args.model, "input": list(x.shape),
                      "threads": 1, "p50_ms": ms, "speedup_over_eager": {k: ms["eager"] / v for k, v in ms.items()} if "eager" in ms else None,
                      "fastest": best, "unavailable": unavailable, "build_seconds": round(built, 1), "repeats": args.repeats,
                      "machine": platform.machine(), "torch": torch.__version__}, indent=1))


if __name__ == "__main__":
    main()
