"""Hinton, Vinyals & Dean (2015) on MNIST through slimforge's command line, beside a plain-PyTorch script.

    python benchmarks/hinton_mnist.py --data-root ../shared/data/mnist --seeds 0,1,2 --work runs/hinton \
        [--device cuda] [--jobs 9] [--epochs-scale 1] [--reference] [--results R.jsonl] [--table R.md]

Per seed S, each a separate process running the public CLI with the recipes in recipes/hinton-mnist/:

* ``slimforge train --config recipes/hinton-mnist/teacher.yaml --seed S`` (then, from that teacher)
  ``slimforge distill --teacher T --config recipes/hinton-mnist/distill.yaml --seed S``, and the same
  with each ``--variant``'s overrides (rows of their own, beside the recipe's);
* ``slimforge train --config recipes/hinton-mnist/student.yaml --seed S`` (the student alone);
* with ``--reference``, ``benchmarks/hinton_mnist_reference.py --seeds S`` (the same three models in
  plain PyTorch, same settings).

Up to ``--jobs`` processes run at once, ``--threads`` torch threads each. Test errors (out of 10,000)
come from each run's metrics.json (``test_errors``); one JSON line per model is appended to
``--results`` and the table of medians (Markdown) is written to ``--table``. ``--epochs-scale``
multiplies every recipe's epochs (0.05 for a smoke test of the whole chain).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes" / "hinton-mnist"
PAPER = {"teacher": 67, "student-alone": 146, "student-distilled": 74}
ROLES = ("teacher", "student-alone", "student-distilled")
BARS = {"teacher": "<= 70", "student-alone": "130-150", "student-distilled": "<= 80"}
_print_lock = threading.Lock()


def recipe_epochs(name: str) -> int:
    import yaml

    return int(yaml.safe_load((RECIPES / f"{name}.yaml").read_text())["train"]["epochs"])


def scaled(name: str, scale: float) -> int:
    return max(1, round(recipe_epochs(name) * scale))


def log(message: str) -> None:
    with _print_lock:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def run(cmd: list[str], log_file: Path, env: dict[str, str]) -> None:
    """Run one command, its output to ``log_file``; a failure raises with the log's tail."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("w") as f:
        code = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=ROOT).returncode
    if code != 0:
        tail = "\n".join(log_file.read_text().splitlines()[-15:])
        raise RuntimeError(f"exit {code}: {' '.join(cmd)}\n{tail}")


def slimforge_cli(args: argparse.Namespace, kind: str, recipe: str, out: Path, seed: int, extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "slimforge", kind, "--config", str(RECIPES / f"{recipe}.yaml"), *extra,
            "--seed", str(seed), "--epochs", str(scaled(recipe, args.epochs_scale)), "--device", args.device,
            "--threads", str(args.threads), "--out", str(out), "--overwrite", "--quiet"]


def record(args: argparse.Namespace, row: dict) -> None:
    row = {**row, "date": time.strftime("%Y-%m-%d"), "device": args.device, "threads": args.threads}
    with _print_lock:
        with args.results.open("a") as f:
            f.write(json.dumps(row) + "\n")
    log(f"{row['impl']:14s} {row['role']:18s} seed {row['seed']}: {row['test_errors']} test errors ({row['seconds']:.0f} s)")


def slimforge_row(role: str, seed: int, out: Path, seconds: float, epochs: int) -> dict:
    metrics = json.loads((out / "metrics.json").read_text())
    return {"impl": "slimforge-cli", "role": role, "seed": seed, "epochs": epochs, "test_errors": metrics["test_errors"],
            "seconds": round(seconds, 1), "run": str(out)}


def teacher_then_distilled(args: argparse.Namespace, seed: int, env: dict[str, str]) -> None:
    """The teacher, then from it the recipe's distilled student and each ``--variant``, side by side."""
    teacher = args.work / f"teacher-s{seed}"
    started = time.perf_counter()
    run(slimforge_cli(args, "train", "teacher", teacher, seed, ["--data-root", str(args.data_root)]), args.work / "logs" / f"teacher-s{seed}.log", env)
    record(args, slimforge_row("teacher", seed, teacher, time.perf_counter() - started, scaled("teacher", args.epochs_scale)))
    with ThreadPoolExecutor(1 + len(args.variant)) as pool:
        done = [pool.submit(distilled, args, seed, env, teacher, name, overrides) for name, overrides in [("", []), *args.variant]]
        for future in done:
            future.result()


def distilled(args: argparse.Namespace, seed: int, env: dict[str, str], teacher: Path, variant: str, overrides: list[str]) -> None:
    out = args.work / f"distilled{'-' + variant if variant else ''}-s{seed}"
    started = time.perf_counter()
    cmd = slimforge_cli(args, "distill", "distill", out, seed, ["--teacher", str(teacher)]) + overrides
    if args.teacher_cache:
        cmd += ["--teacher-cache", str(args.teacher_cache)]
    run(cmd, args.work / "logs" / f"{out.name}.log", env)
    role = f"student-distilled ({variant})" if variant else "student-distilled"
    record(args, slimforge_row(role, seed, out, time.perf_counter() - started, scaled("distill", args.epochs_scale)))


def student_alone(args: argparse.Namespace, seed: int, env: dict[str, str]) -> None:
    out = args.work / f"alone-s{seed}"
    started = time.perf_counter()
    run(slimforge_cli(args, "train", "student", out, seed, ["--data-root", str(args.data_root)]), args.work / "logs" / f"alone-s{seed}.log", env)
    record(args, slimforge_row("student-alone", seed, out, time.perf_counter() - started, scaled("student", args.epochs_scale)))


def reference(args: argparse.Namespace, seed: int, env: dict[str, str]) -> None:
    rows = args.work / f"reference-s{seed}.jsonl"
    rows.unlink(missing_ok=True)
    cmd = [sys.executable, str(ROOT / "benchmarks" / "hinton_mnist_reference.py"), "--data", str(args.data_root / "mnist.npz"),
           "--seeds", str(seed), "--device", args.device, "--threads", str(args.threads), "--json", str(rows),
           "--teacher-epochs", str(scaled("teacher", args.epochs_scale)), "--student-epochs", str(scaled("distill", args.epochs_scale))]
    run(cmd, args.work / "logs" / f"reference-s{seed}.log", env)
    for line in rows.read_text().splitlines():
        r = json.loads(line)
        record(args, {"impl": "plain-pytorch", "role": r["role"], "seed": seed, "epochs": r["epochs"], "test_errors": r["test_errors"],
                      "seconds": r["seconds"]})


def write_table(args: argparse.Namespace) -> str:
    rows = [json.loads(line) for line in args.results.read_text().splitlines() if line.strip()] if args.results.is_file() else []
    seeds = sorted({r["seed"] for r in rows})
    lines = [
        f"Test errors out of 10,000 (MNIST test set); {platform.node() or 'this machine'}, device {args.device}, "
        f"{args.threads} thread(s) per run, date {time.strftime('%Y-%m-%d')}.",
        "",
        "| model | paper | implementation | epochs | " + " | ".join(f"seed {s}" for s in seeds) + " | median | bar |",
        "|---|---|---|---|" + "---|" * len(seeds) + "---|---|",
    ]
    roles = [*ROLES, *sorted({r["role"] for r in rows} - set(ROLES))]  # variants last
    for role in roles:
        for impl in ("slimforge-cli", "plain-pytorch"):
            mine = {r["seed"]: r for r in rows if r["role"] == role and r["impl"] == impl}
            if not mine:
                continue
            cells = [str(mine[s]["test_errors"]) if s in mine else "-" for s in seeds]
            median = statistics.median(r["test_errors"] for r in mine.values())
            epochs = ",".join(sorted({str(r["epochs"]) for r in mine.values()}))
            bar = BARS.get(role, "") if impl == "slimforge-cli" else ""
            lines.append(f"| {role} | {PAPER.get(role, PAPER['student-distilled'])} | {impl} | {epochs} | " + " | ".join(cells) + f" | **{median:g}** | {bar} |")
    table = "\n".join(lines) + "\n"
    args.table.parent.mkdir(parents=True, exist_ok=True)
    args.table.write_text(table)
    return table


def parse_variant(text: str) -> tuple[str, list[str]]:
    name, _, overrides = text.partition(":")
    if not name or not overrides:
        raise argparse.ArgumentTypeError(f"--variant {text!r}: expected NAME:KEY=VALUE[,KEY=VALUE]")
    return name, overrides.split(",")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", type=Path, required=True, help="folder holding mnist.npz")
    parser.add_argument("--seeds", default="0,1,2", type=lambda s: [int(x) for x in s.split(",")])
    parser.add_argument("--work", type=Path, default=Path("runs/hinton"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=2, help="processes at a time")
    parser.add_argument("--epochs-scale", type=float, default=1.0)
    parser.add_argument("--reference", action="store_true", help="also run benchmarks/hinton_mnist_reference.py per seed")
    parser.add_argument("--teacher-cache", type=Path, default=None, help="shared teacher-cache folder (default: slimforge's)")
    parser.add_argument("--variant", action="append", default=[], type=parse_variant, metavar="NAME:KEY=VALUE[,KEY=VALUE]",
                        help="also distil with these overrides of distill.yaml, e.g. lr0.03:train.lr=0.03 (a sensitivity row, not the recipe)")
    parser.add_argument("--results", type=Path, default=None, help="JSON lines, appended (default: WORK/results.jsonl)")
    parser.add_argument("--table", type=Path, default=None, help="Markdown table (default: WORK/results.md)")
    args = parser.parse_args()
    args.data_root = args.data_root.resolve()
    args.work = args.work.resolve()
    args.results = (args.results or args.work / "results.jsonl").resolve()
    args.table = (args.table or args.work / "results.md").resolve()
    args.work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}

    # The longest chains first: teacher then its distilled student; then students alone; then the reference.
    tasks = [(teacher_then_distilled, s) for s in args.seeds] + [(student_alone, s) for s in args.seeds]
    tasks += [(reference, s) for s in args.seeds] if args.reference else []
    failures = []
    with ThreadPoolExecutor(args.jobs) as pool:
        futures = {pool.submit(fn, args, seed, env): f"{fn.__name__} seed {seed}" for fn, seed in tasks}
        try:
            for future, name in futures.items():
                try:
                    future.result()
                except Exception as exc:  # one failed run must not hide the others' results
                    failures.append(name)
                    log(f"FAILED {name}: {exc}")
        except KeyboardInterrupt:  # out of time (the device script's timeout): the table shows what finished
            failures.append("interrupted")
            for future in futures:
                future.cancel()
    print(write_table(args))
    if failures:
        sys.exit(f"{len(failures)} run(s) failed: {', '.join(failures)}")


if __name__ == "__main__":
    main()
