"""Scoring latency of saved recommenders (run folders, fp32 or quantized), timed side by side.

    OMP_NUM_THREADS=1 nice python benchmarks/recsys_folder_latency.py --root ../shared/data/movielens-small \
        runs/neumf runs/kd-mf32 runs/kd-mf32-int4 [--reps 300] [--json out.json]

Each folder is loaded as ``slimforge.load`` / ``slimforge.load_quantized`` would for serving; one
call scores the first ``--users`` test users x their 100 candidates (25,600 pairs for 256), the
folders timed in turns (:func:`recsys_embedding_quant.interleaved_medians`: median of every call and
of the unpreempted calls). Ratios are against the first folder. Quality is not re-measured here
(``slimforge eval FOLDER`` gives it).
"""

from __future__ import annotations

import argparse
import json
import platform
from datetime import datetime, timezone
from pathlib import Path

import torch

import slimforge
from recsys_embedding_quant import interleaved_medians, ratio, scoring_batch


def load(folder: Path):
    """The model a folder serves: a quantized artifact or a run folder, in eval mode."""
    from slimforge.quantize import load_quantized

    return (load_quantized(folder) if (folder / "quantized.json").is_file() else slimforge.load(folder)).eval()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folders", nargs="+", type=Path)
    p.add_argument("--data", default="movielens")
    p.add_argument("--root", default=None)
    p.add_argument("--users", type=int, default=256)
    p.add_argument("--reps", type=int, default=200)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    data = slimforge.load_dataset(args.data, **({"root": args.root} if args.root else {}))
    batch = scoring_batch(data, args.users)
    variants = {str(f): load(f) for f in args.folders}
    timings = interleaved_medians(variants, batch, args.reps)
    first = timings[str(args.folders[0])]
    rows = {name: {**t, "x_first": ratio(t["ms"], first["ms"]), "quiet_x_first": ratio(t["quiet_ms"], first["quiet_ms"])}
            for name, t in timings.items()}
    print(f"| folder | median ms (x first) | unpreempted ms (x first) | unpreempted calls of {args.reps} |\n|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['ms']} ({r['x_first']}) | {r['quiet_ms']} ({r['quiet_x_first']}) | {r['quiet_calls']} |")
    if args.json:
        record = {"date": datetime.now(timezone.utc).isoformat(timespec="minutes"), "threads": args.threads, "users": args.users,
                  "reps": args.reps, "machine": platform.processor() or platform.machine(), "torch": torch.__version__, "rows": rows}
        Path(args.json).write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
