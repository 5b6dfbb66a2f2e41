"""DDP scaling on the CPU: training samples/s of 1 process against N processes (gloo).

Both run the same `slimforge train` command with the same global batch (N processes take
batch/N each) and the default thread count, cores / local processes, so one process uses
every core and N processes split them. The two alternate run by run (1, N, 1, N ...) so machine
noise hits both alike. samples/s is the trainer's own per-epoch figure (global samples over
the epoch's seconds, start-up excluded), median over the epochs after the first of every run.

    python benchmarks/ddp_scaling.py [--nproc 2] [--rounds 3] [--epochs 4] [--model mlp] \
        [--data digits] [--batch-size 128] [override=value ...]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(nproc: int, args: argparse.Namespace, out: Path) -> list[float]:
    """One training run; the samples/s of each epoch after the first."""
    cmd = [sys.executable, "-m", "slimforge", "train", "--data", args.data, "--model", args.model, "--epochs", str(args.epochs),
           "--batch-size", str(args.batch_size // nproc), "--lr", "0.05", "--quiet", "--out", str(out), *args.overrides]
    if nproc > 1:
        cmd += ["--nproc-per-node", str(nproc)]
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    epochs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    threads = json.loads((out / "metrics.json").read_text())["num_threads"]
    print(f"  {nproc} process(es), {threads} thread(s) each: " + ", ".join(f"{e['samples_per_s']:.0f}" for e in epochs) + " samples/s per epoch", flush=True)
    return [e["samples_per_s"] for e in epochs[1:]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--model", default="mlp")
    parser.add_argument("--data", default="digits")
    parser.add_argument("--batch-size", type=int, default=128, help="global batch (per process: batch / processes)")
    parser.add_argument("overrides", nargs="*", default=["model.kwargs.hidden=[1024,1024]"])
    args = parser.parse_args()

    speeds: dict[int, list[float]] = {1: [], args.nproc: []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for nproc in (1, args.nproc):
                speeds[nproc] += run(nproc, args, Path(tmp) / f"r{r}-n{nproc}")
    one, many = statistics.median(speeds[1]), statistics.median(speeds[args.nproc])
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(json.dumps({"cores": cores, "model": args.model, "overrides": args.overrides, "data": args.data,
                      "global_batch": args.batch_size, "samples_per_s": {"1": one, str(args.nproc): many},
                      "speedup": many / one}, indent=1))
    print(f"| {args.model} {' '.join(args.overrides)} on {args.data}, global batch {args.batch_size} "
          f"| {one:,.0f} | {many:,.0f} | {many / one:.2f}x |")


if __name__ == "__main__":
    main()
