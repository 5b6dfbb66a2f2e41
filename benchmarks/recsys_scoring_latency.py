"""Scoring latency of fp32 and row-wise quantized recommenders as the catalogue outgrows the caches.

    OMP_NUM_THREADS=1 python benchmarks/recsys_scoring_latency.py --items 9724 1000000 8000000 \
        --json benchmarks/results/recsys_scoring_latency.json

Untrained models (latency does not depend on the weights' values): ``--model`` with ``--users``
users and each ``--items`` catalogue size, its tables quantized by each ``fbgemm-int*`` backend.
One call scores ``--batch-users`` random users x ``--candidates`` random items each (uniform over
the catalogue, so a large table is read all over); ``--threads`` threads; median of ``--reps``
calls, the variants timed in turns, and the median of the calls that ran unpreempted. ``fp32`` is the model's own forward (each user's side once);
``fp32_pairwise`` scores every pair from scratch; ``<backend>`` reads the packed rows with torch
kernels and ``<backend>:fbgemm_kernel`` with FBGEMM's lookup kernel.
"""

from __future__ import annotations

import argparse
import json
import platform
from datetime import datetime, timezone
from pathlib import Path

import torch

import slimforge
from slimforge.quantize import QuantizeConfig, quantize
from slimforge.recsys.protocol import pair_inputs

from recsys_embedding_quant import interleaved_medians, ratio, record_timings, table_bytes, timing_only_variants


def main() -> None:
    args = _parse()
    torch.set_num_threads(args.threads)
    report = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": platform.processor() or platform.machine(),
              "threads": args.threads, "torch": torch.__version__, "model": args.model, "users": args.users,
              "pairs_per_call": args.batch_users * args.candidates, "catalogues": {}}
    for items in args.items:
        rows = measure_catalogue(args, items)
        report["catalogues"][str(items)] = rows
        print(items, json.dumps(rows), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    print(table(report))


def measure_catalogue(args: argparse.Namespace, items: int) -> dict[str, dict]:
    """Median latency (ms) and table bytes of fp32 and each quantized variant for one catalogue size."""
    torch.manual_seed(0)
    model = slimforge.create_model(args.model, num_users=args.users, num_items=items).eval()
    g = torch.Generator().manual_seed(1)
    users = torch.randint(0, args.users, (args.batch_users,), generator=g).repeat_interleave(args.candidates)
    batch = pair_inputs(users, torch.randint(0, items, (users.numel(),), generator=g), torch.zeros(items, 1, dtype=torch.long))
    variants = {"fp32": model}
    for backend in args.backends:
        variants[backend] = quantize(model, [batch], QuantizeConfig(backend=backend)).quantized
    timed = {**variants, **timing_only_variants(variants)}
    rows = {label: {"table_mb": round(table_bytes(m) / 2**20, 1)} for label, m in variants.items()}
    record_timings(rows, interleaved_medians(timed, batch, args.reps))
    for row in rows.values():
        row["latency_vs_fp32"] = round(row["latency_ms"] / rows["fp32"]["latency_ms"], 3)
        row["quiet_latency_vs_fp32"] = ratio(row["latency_quiet_ms"], rows["fp32"]["latency_quiet_ms"])
    return rows


def table(report: dict) -> str:
    lines = ["| items | variant | tables MB | latency ms (x fp32) | unpreempted ms (x fp32) | FBGEMM kernel / fp32 per-pair ms |", "|---|---|---|---|---|---|"]
    for items, rows in report["catalogues"].items():
        for label, r in rows.items():
            other = r.get("fbgemm_kernel_ms", r.get("fp32_pairwise_ms", ""))
            lines.append(f"| {items} | {label} | {r['table_mb']} | {r['latency_ms']} ({r['latency_vs_fp32']}) | "
                         f"{r['latency_quiet_ms']} ({r['quiet_latency_vs_fp32']}) | {other} |")
    return "\n".join(lines)


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="mf", choices=["mf", "neumf"])
    p.add_argument("--users", type=int, default=610)
    p.add_argument("--items", type=int, nargs="+", default=[9724, 1_000_000, 8_000_000])
    p.add_argument("--backends", nargs="+", default=["fbgemm-int8", "fbgemm-int4"])
    p.add_argument("--batch-users", type=int, default=256)
    p.add_argument("--candidates", type=int, default=100)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--reps", type=int, default=100)
    p.add_argument("--json", default=None)
    return p.parse_args()


if __name__ == "__main__":
    main()
