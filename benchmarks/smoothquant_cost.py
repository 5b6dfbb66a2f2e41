"""What SmoothQuant's input multiplies cost a dynamic-int8 MiniLM: their share of inference time.

    python benchmarks/smoothquant_cost.py RUN [--alpha 0.8] [--threads 1]

RUN: a fine-tuned hf-text-classifier on SST-2 (``benchmarks/nlp_sst2.py``). Three torch-dynamic
int8 variants of it are profiled on the first 10 dev batches of 32 (torch.profiler, CPU): the
layers slimforge smooths by default (those whose simulated int8 error drops by 10%, siblings
sharing one multiply), every Linear with siblings sharing, and every Linear with a multiply of its
own (slimforge before the grouping). A share of time within one profile is steadier on a shared
machine than a difference of two wall-clock times; quantize_speed.py gives the end-to-end ratios.
"""

from __future__ import annotations

import argparse
import os
import warnings

warnings.filterwarnings("ignore")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

import slimforge  # noqa: E402
from slimforge.data import load_dataset  # noqa: E402
from slimforge.quantize.smooth import apply_smoothing, smoothing_scales  # noqa: E402
from slimforge.text.data import default_teacher_path  # noqa: E402
from slimforge.text.quantize import dynamic_int8  # noqa: E402


def op_share(model: torch.nn.Module, batches: list, op: str) -> tuple[float, int]:
    """(fraction of profiled CPU time in ``op``, its calls per forward)."""
    with torch.no_grad():
        for batch in batches[:2]:
            model(batch)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for batch in batches:
                model(batch)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    mine = [e for e in events if e.key == op]
    return (mine[0].self_cpu_time_total / total if mine else 0.0), (mine[0].count // len(batches) if mine else 0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", help="a trained hf-text-classifier run folder (SST-2)")
    p.add_argument("--alpha", type=float, default=0.8)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    model = slimforge.load(args.run).eval()
    data = load_dataset("sst2", tokenizer=str(default_teacher_path()), max_length=64, val_fraction=0.02)
    calibration = [data.train.__getitems__(list(range(i * 64, (i + 1) * 64)))[0] for i in range(8)]
    selected = smoothing_scales(model, calibration, args.alpha, weight_bits=7)
    every = smoothing_scales(model, calibration, args.alpha, min_gain=None, weight_bits=7)
    # A tensor per layer: apply_smoothing shares a multiply only between layers given one tensor.
    apart = {name: s.clone() for name, s in every.items()}
    variants = {"no smoothing": {}, "default (selected, shared)": selected, "every Linear, shared": every, "every Linear, one multiply each": apart}
    torch.set_num_threads(args.threads)
    batches = [data.test.__getitems__(list(range(i * 32, (i + 1) * 32)))[0] for i in range(10)]
    print(f"| variant ({args.threads} thread(s)) | smoothed Linears | aten::mul calls per forward | aten::mul share of time |")
    print("| --- | ---: | ---: | ---: |")
    for name, scales in variants.items():
        quantized = dynamic_int8(apply_smoothing(model, scales) if scales else model, reduce_range=True)
        share, calls = op_share(quantized, batches, "aten::mul")
        print(f"| {name} | {len(scales)} | {calls} | {100 * share:.1f}% |")


if __name__ == "__main__":
    main()
