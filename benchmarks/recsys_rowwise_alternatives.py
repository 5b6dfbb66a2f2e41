"""Ways tried to make full-width int8 / int4 row scoring no slower than fp32, each against the kernels in use.

    PYTHONPATH=. OMP_NUM_THREADS=1 nice python benchmarks/recsys_rowwise_alternatives.py --reps 300

Synthetic tables of ml-latest-small's size (9,724 rows), 256 users x 100 random candidates
(25,600 rows) a call, 1 thread. Two operations of the grouped scoring path
(``slimforge.recsys._rowwise``): MF's per-user dot product of 32-wide rows (``dot``) and NeuMF's
projection of 16-wide rows by the first tower layer's item part, 32 x 16 (``project``). Each
variant: the median of the calls that ran unpreempted (as in recsys_embedding_quant.py), timed in
turns, and its largest difference from the fp32 result of the same (unquantized) table.

* ``fp32``: ``F.embedding`` + ``bmm`` / matmul (the fp32 model's path);
* ``int8`` / ``int4``: the kernels in use (packed rows gathered, codes converted, scales applied
  to the results);
* ``int8 bf16``: codes and vector converted to bf16 and multiplied in bf16 (half the bytes written);
* ``int8 int32 bmm``: the user vector quantized to int8 per user, integer products in int32;
* ``int8 _int_mm``: ``torch._int_mm`` of the codes (shifted to int8) with an int8 per-channel weight;
* ``int8 onednn``: ``torch.ops.onednn.qlinear_pointwise`` (uint8 codes as activations, int8 weight, fp32 out);
* ``int8 f32 gather``: the fused rows gathered by ``F.embedding`` as float32 words, then split.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import time
from datetime import datetime, timezone

import torch
from torch.nn import functional as F

from slimforge.recsys import _rowwise
from slimforge.recsys.quantize import QuantizedEmbedding

ROWS, USERS, CANDIDATES = 9724, 256, 100


def dot_variants(g: torch.Generator) -> tuple[dict, torch.Tensor]:
    """MF's grouped dot product: ids (R, L), vectors (R, 32) -> (R, L)."""
    table = torch.randn(ROWS, 32, generator=g) * 0.3
    ids, vec = torch.randint(0, ROWS, (USERS, CANDIDATES), generator=g), torch.randn(USERS, 32, generator=g)
    q8, q4 = QuantizedEmbedding.from_float(table, 8), QuantizedEmbedding.from_float(table, 4)

    def bf16() -> torch.Tensor:
        codes, scale, shift = _rowwise.gather_fused(q8.fused, ids.reshape(-1))
        dots = torch.bmm(vec.bfloat16().unsqueeze(1), codes.bfloat16().view(USERS, CANDIDATES, -1).transpose(1, 2)).view(USERS, -1).float()
        return torch.addcmul(shift.view(USERS, -1) * vec.sum(-1, keepdim=True), dots, scale.view(USERS, -1))

    def int32_bmm() -> torch.Tensor:
        codes, scale, shift = _rowwise.gather_fused(q8.fused, ids.reshape(-1))
        step = vec.abs().amax(1, keepdim=True) / 127
        vq = torch.round(vec / step).int()
        dots = torch.bmm(codes.int().view(USERS, CANDIDATES, -1), vq.unsqueeze(2)).view(USERS, -1).float() * step
        return torch.addcmul(shift.view(USERS, -1) * vec.sum(-1, keepdim=True), dots, scale.view(USERS, -1))

    variants = {
        "fp32": lambda: torch.bmm(vec.unsqueeze(1), F.embedding(ids, table).transpose(1, 2)).squeeze(1),
        "int8": lambda: q8.grouped_dot(ids, vec),
        "int4": lambda: q4.grouped_dot(ids, vec),
        "int8 bf16": bf16,
        "int8 int32 bmm": int32_bmm,
    }
    return variants, variants["fp32"]()


def project_variants(g: torch.Generator) -> tuple[dict, torch.Tensor]:
    """NeuMF's item projection: ids (n,), weight (32, 16) -> (n, 32)."""
    table, weight = torch.randn(ROWS, 16, generator=g) * 0.3, torch.randn(32, 16, generator=g)
    ids = torch.randint(0, ROWS, (USERS * CANDIDATES,), generator=g)
    q8, q4 = QuantizedEmbedding.from_float(table, 8), QuantizedEmbedding.from_float(table, 4)
    step = weight.abs().amax(1) / 127
    wq = torch.round(weight / step[:, None]).to(torch.int8)
    shifted = q8.fused.clone()
    shifted[:, :16] ^= 0x80  # codes - 128 as int8 (a derived copy of the same bytes)
    wsum, wq_sum = weight.sum(1), (wq.float() * step[:, None]).sum(1)
    packed = torch.ops.onednn.qlinear_prepack(wq, [ids.numel(), 16])

    def int_mm() -> torch.Tensor:
        codes, scale, shift = _rowwise.gather_fused(shifted, ids)
        out = torch._int_mm(codes.view(torch.int8), wq.T.contiguous()).float().mul_(step).add_(128 * wq_sum)
        return out.mul_(scale.unsqueeze(1)).addr_(shift, wsum)

    def onednn() -> torch.Tensor:
        codes, scale, shift = _rowwise.gather_fused(q8.fused, ids)
        out = torch.ops.onednn.qlinear_pointwise(codes, 1.0, 0, packed, step, torch.zeros(32, dtype=torch.long), None, 1.0, 0,
                                                 torch.float32, "none", [], "")
        return out.mul_(scale.unsqueeze(1)).addr_(shift, wsum)

    def f32_gather() -> torch.Tensor:
        rows = F.embedding(ids, q8.fused.view(torch.float32))  # 20-byte rows as 5 float32 words: bits copied, not converted
        codes, pairs = rows[:, :4].contiguous().view(torch.uint8), rows[:, 4:].contiguous().view(torch.float16).float()
        out = codes.float() @ weight.T
        return out.mul_(pairs[:, :1]).addr_(pairs[:, 1], wsum)

    variants = {
        "fp32": lambda: F.embedding(ids, table) @ weight.T,
        "int8": lambda: q8.project(ids, weight),
        "int4": lambda: q4.project(ids, weight),
        "int8 _int_mm": int_mm,
        "int8 onednn": onednn,
        "int8 f32 gather": f32_gather,
    }
    return variants, variants["fp32"]()


@torch.no_grad()
def measure(variants: dict, reference: torch.Tensor, reps: int) -> dict[str, dict]:
    out = {}
    for name, fn in list(variants.items()):
        try:
            out[name] = {"max_abs_diff_vs_fp32": round(float((fn() - reference).abs().max()), 4)}
        except (RuntimeError, NotImplementedError) as exc:  # an op this build lacks
            out[name] = {"error": str(exc).splitlines()[0][:200]}
            del variants[name]
    quiet: dict[str, list[float]] = {n: [] for n in variants}
    names = list(variants)
    for r in range(reps):
        for name in names[r % len(names):] + names[: r % len(names)]:
            switches = resource.getrusage(resource.RUSAGE_SELF).ru_nivcsw
            start = time.perf_counter()
            variants[name]()
            seconds = time.perf_counter() - start
            if resource.getrusage(resource.RUSAGE_SELF).ru_nivcsw == switches:
                quiet[name].append(seconds)
    for name, calls in quiet.items():
        out[name].update({"quiet_ms": round(statistics.median(calls) * 1e3, 3) if calls else None, "quiet_calls": len(calls)})
        out[name]["x_fp32"] = round(out[name]["quiet_ms"] / out["fp32"]["quiet_ms"], 2) if calls else None
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=300)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    report = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": platform.processor() or platform.machine(),
              "threads": 1, "torch": torch.__version__, "dot": measure(*dot_variants(g), args.reps),
              "project": measure(*project_variants(g), args.reps)}
    for op in ("dot", "project"):
        for name, row in report[op].items():
            print(f"{op:8s} {name:16s} {json.dumps(row)}")
    if args.json:
        with open(args.json, "w") as f:
            f.write(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
