"""Distillation on Fashion-MNIST: a small student trained on labels, with KD, DKD and an ensemble.

    nice .venv/bin/python benchmarks/distill_fashion_mnist.py \
        --teachers runs/reference/resnet20w2,runs/reference/resnet20w2-s1,runs/reference/resnet20w2-s2 \
        [--variants labels,kd,dkd,kd-best,ensemble] [--seeds 0,1,2] [--epochs 8] [--jobs 2] [--threads 1]
    nice .venv/bin/python benchmarks/distill_fashion_mnist.py --speed --teachers ... [--epochs 1]

Every run is its own process (``--jobs`` at a time, ``--threads`` torch threads each), on the
teachers' data without augmentation, so the teachers' outputs are computed once into a shared
cache (built first, one teacher at a time) and every student sees the same inputs each epoch.
Variants: ``labels`` (cross-entropy only), ``kd``/``dkd`` from the first teacher, ``kd-best``
from the teacher with the best validation accuracy, ``ensemble`` (KD from the mean of all
teachers' probabilities). Results append to a JSONL file (one line per run); the Markdown
table (means over seeds) is rebuilt from it.

``--speed`` trains the student for ``--epochs`` with the cached teacher and with the live
teacher, interleaved over ``--rounds`` rounds in this one process, and reports the median
seconds per epoch of each (cache build time separately).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

STUDENT = {"name": "resnet8", "kwargs": {"width": 0.5}}
LOSS_OF = {"kd-best": "kd", "ensemble": "kd"}  # variants named after their teachers; others after their loss


def parse_variant(name: str) -> tuple[str, dict]:
    """``dkd`` or ``dkd:beta=2,alpha=1`` -> ("dkd", {"loss": "dkd", "beta": 2.0, ...})."""
    base, _, extra = name.partition(":")
    section = {"loss": LOSS_OF.get(base, base), "temperature": 4.0}
    for item in filter(None, extra.split(",")):
        key, _, value = item.partition("=")
        section[key] = float(value)
    return base, section


def teachers_for(variant: str, teachers: list[str]) -> list[str]:
    base = variant.partition(":")[0]
    if base == "labels":
        return []
    if base == "ensemble":
        return teachers
    if base == "kd-best":
        return [max(teachers, key=lambda t: json.loads((Path(t) / "metrics.json").read_text())["best_val_accuracy"])]
    return teachers[:1]


def data_config(teacher: str):
    from slimforge.experiment import run_data_config

    return run_data_config(teacher).model_copy(update={"augment": False})


def train_config(args, seed: int):
    from slimforge.train import TrainConfig

    return TrainConfig(epochs=args.epochs, batch_size=128, lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4,
                       schedule="cosine", seed=seed, num_threads=args.threads, device="cpu", quiet=True)


def run_one(args, variant: str, seed: int) -> dict:
    import torch

    from slimforge.distill.api import DistillSection, run as distill_run
    from slimforge.models import create_model
    from slimforge.train import seed_everything, train

    teachers = teachers_for(variant, args.teachers)
    data = data_config(args.teachers[0]).load()
    cfg = train_config(args, seed)
    seed_everything(seed)
    student = create_model(STUDENT["name"], **{**data.info.model_kwargs(), **STUDENT["kwargs"]})
    out = args.runs / f"{variant.replace(':', '_').replace(',', '_').replace('=', '')}-s{seed}"
    started = time.perf_counter()
    if not teachers:
        result = train(student, data, cfg, out)
    else:
        section = DistillSection(**parse_variant(variant)[1])
        result = distill_run(student, teachers, data, section.to_config(), cfg, out, cache_dir=args.cache)
    m = result.metrics
    return {
        "variant": variant, "seed": seed, "teachers": teachers, "epochs": args.epochs, "threads": args.threads,
        "test_accuracy": m["test_accuracy"], "best_val_accuracy": m.get("best_val_accuracy"),
        "seconds": round(time.perf_counter() - started, 1), "torch": torch.__version__,
    }


def build_caches(args) -> None:
    """One teacher at a time, before any student, so parallel runs never build the same cache."""
    from slimforge.distill.api import DistillSection
    from slimforge.distill.objective import build_distill_objective
    from slimforge.models import create_model

    data = data_config(args.teachers[0]).load()
    student = create_model(STUDENT["name"], **{**data.info.model_kwargs(), **STUDENT["kwargs"]})
    for teacher in args.teachers:
        started = time.perf_counter()
        objective = build_distill_objective(student, [teacher], DistillSection().to_config(), train_inputs=data.train,
                                            cache_dir=args.cache)
        print(f"teacher {teacher}: {objective.mode} ({objective.mode_reason}), {time.perf_counter() - started:.0f} s", flush=True)


def child_command(args, variant: str, seed: int) -> list[str]:
    return [sys.executable, __file__, "--child", f"{variant}@{seed}", "--teachers", ",".join(args.teachers),
            "--epochs", str(args.epochs), "--threads", str(args.threads), "--runs", str(args.runs), "--cache", str(args.cache)]


def run_all(args) -> None:
    build_caches(args)
    todo = [(v, s) for s in args.seeds for v in args.variants]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}

    def go(item):
        variant, seed = item
        proc = subprocess.run(child_command(args, variant, seed), capture_output=True, text=True, env=env)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if not lines:
            print(f"{variant} seed {seed} failed:\n{proc.stderr[-2000:]}", flush=True)
            return
        with args.results.open("a") as f:
            f.write(lines[-1][7:] + "\n")
        r = json.loads(lines[-1][7:])
        print(f"{variant:24s} seed {seed}  test {r['test_accuracy']:.4f}  {r['seconds']:.0f} s", flush=True)

    with ThreadPoolExecutor(args.jobs) as pool:
        list(pool.map(go, todo))
    write_table(args.results, args.table)


def speed(args) -> None:
    """Seconds per epoch with the cached and the live teacher, interleaved, medians."""
    import torch

    from slimforge.distill.api import DistillSection, run as distill_run
    from slimforge.models import create_model

    torch.set_num_threads(args.threads)
    data = data_config(args.teachers[0]).load()
    cfg = train_config(args, 0)
    times: dict[str, list[float]] = {"cached": [], "live": []}
    build = None
    for r in range(args.rounds):
        for mode in ("cached", "live") if r % 2 == 0 else ("live", "cached"):
            student = create_model(STUDENT["name"], **{**data.info.model_kwargs(), **STUDENT["kwargs"]})
            section = DistillSection(cache=mode == "cached")
            started = time.perf_counter()
            result = distill_run(student, args.teachers[:1], data, section.to_config(), cfg, None, cache_dir=args.cache)
            total = time.perf_counter() - started
            times[mode].append(result.metrics["train_seconds"] / args.epochs)
            if mode == "cached" and build is None:
                build = total - result.metrics["train_seconds"]
            print(f"round {r} {mode}: {times[mode][-1]:.1f} s/epoch", flush=True)
    cached, live = statistics.median(times["cached"]), statistics.median(times["live"])
    line = {"kind": "speed", "cached_s_per_epoch": round(cached, 2), "live_s_per_epoch": round(live, 2),
            "speedup": round(live / cached, 2), "rounds": args.rounds, "epochs": args.epochs, "threads": args.threads,
            "first_cached_run_total_minus_train_s": round(build or 0.0, 1), "machine": platform.machine(),
            "date": time.strftime("%Y-%m-%d"), "torch": torch.__version__}
    print(json.dumps(line))
    with args.results.open("a") as f:
        f.write(json.dumps(line) + "\n")


def write_table(results: Path, table: Path) -> None:
    rows = [json.loads(ln) for ln in results.read_text().splitlines() if ln.strip()]
    runs = [r for r in rows if r.get("kind") != "speed"]
    by: dict[tuple[str, int], dict[int, float]] = {}
    for r in runs:
        by.setdefault((r["variant"], r["epochs"]), {})[r["seed"]] = r["test_accuracy"]
    seeds = sorted({r["seed"] for r in runs})
    lines = [
        "# Distillation on Fashion-MNIST: resnet8 x0.5 student (19,810 parameters), no augmentation",
        "",
        f"Command: `nice .venv/bin/python benchmarks/distill_fashion_mnist.py --teachers ...`; machine: {platform.machine()}, "
        f"{os.cpu_count()} cores; date: {time.strftime('%Y-%m-%d')}. Test accuracy (%) on the 10,000 test images.",
        "",
        "| variant | epochs | " + " | ".join(f"seed {s}" for s in seeds) + " | mean |",
        "|---|---|" + "---|" * (len(seeds) + 1),
    ]
    for (variant, epochs), accs in sorted(by.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        cells = [f"{100 * accs[s]:.2f}" if s in accs else "-" for s in seeds]
        mean = f"**{100 * statistics.mean(accs.values()):.2f}**" + ("" if len(accs) == len(seeds) else f" ({len(accs)} seeds)")
        lines.append(f"| {variant} | {epochs} | " + " | ".join(cells) + f" | {mean} |")
    for r in rows:
        if r.get("kind") == "speed":
            lines += ["", f"Cached vs live teacher ({r['threads']} thread(s), {r['epochs']} epoch(s) x {r['rounds']} rounds, "
                      f"interleaved medians): {r['cached_s_per_epoch']} vs {r['live_s_per_epoch']} s/epoch = "
                      f"**{r['speedup']}x** ({r['date']})."]
    table.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teachers", required=True, type=lambda s: s.split(","))
    parser.add_argument("--variants", default="labels,kd,dkd,kd-best,ensemble", type=lambda s: s.split(";") if ";" in s else s.split(","))
    parser.add_argument("--seeds", default="0,1,2", type=lambda s: [int(x) for x in s.split(",")])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=Path, default=Path("runs/distill-bench"))
    parser.add_argument("--cache", type=Path, default=Path("runs/distill-bench/teacher-cache"))
    parser.add_argument("--results", type=Path, default=Path("benchmarks/results/distill_fashion_mnist.jsonl"))
    parser.add_argument("--table", type=Path, default=Path("benchmarks/results/distill_fashion_mnist.md"))
    parser.add_argument("--speed", action="store_true")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        variant, _, seed = args.child.rpartition("@")
        print("RESULT " + json.dumps(run_one(args, variant, int(seed))), flush=True)
        return
    args.results.parent.mkdir(parents=True, exist_ok=True)
    if args.speed:
        speed(args)
        write_table(args.results, args.table)
    else:
        run_all(args)


if __name__ == "__main__":
    main()
