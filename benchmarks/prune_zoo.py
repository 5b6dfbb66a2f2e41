"""Structured pruning over every torchvision classification model, slimforge beside Torch-Pruning.

    nice .venv/bin/python benchmarks/prune_zoo.py [--models a,b] [--tools slimforge,torch-pruning]
        [--out benchmarks/results/prune_zoo.jsonl] [--table benchmarks/results/prune_zoo.md]

Each model runs in its own process per tool (random init, 30% channel ratio, L2 magnitude):
success = no error, same output shape, fewer parameters, finite outputs, save/load round trip
with identical outputs (slimforge: slimforge.save/load, safetensors + plan; Torch-Pruning:
tp.state_dict/tp.load_state_dict onto a fresh model), all within 60 s (pruning, checks and
round trip; model construction excluded) and 8 GB peak memory. Torch-Pruning is optional
(pip install torch-pruning==1.6.1 -c requirements/torch.txt); it is never a slimforge dependency.
Results append to a JSONL file (one line per model and tool), so subsets can be rerun; the
Markdown table is rebuilt from the latest line of each pair.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

RATIO = 0.3
TIME_LIMIT_S = 60.0
MEMORY_LIMIT_GB = 8.0
TRANSFORMERS = ("vit_", "swin", "maxvit")


def input_size(name: str) -> int:
    """Transformers need their trained resolution and Inception's training-only auxiliary head
    (captured too) needs 299; other CNNs take any size, and 128 keeps CPU time down."""
    if name.startswith("inception"):
        return 299
    return 224 if name.startswith(TRANSFORMERS) else 128


def run_one(name: str, tool: str) -> dict:
    import torch
    import torchvision

    warnings.filterwarnings("ignore")
    torch.manual_seed(0)
    size = input_size(name)
    x = torch.randn(2, 3, size, size)
    if tool == "slimforge":
        import slimforge
        import slimforge.prune  # registers the "prune" edit for slimforge.load

        model = slimforge.create_model(f"torchvision:{name}").eval()
    else:
        model = torchvision.models.get_model(name, weights=None).eval()
    params_before = sum(p.numel() for p in model.parameters())
    with torch.no_grad():
        shape_before = tuple(model(x).shape)
    start = time.perf_counter()
    if tool == "slimforge":
        slimforge.prune(model, x, ratio=RATIO, importance="l2")
    else:
        _torch_pruning(model, x)
    prune_s = time.perf_counter() - start
    model.eval()
    with torch.no_grad():
        out = model(x)
    params_after = sum(p.numel() for p in model.parameters())
    with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
        if tool == "slimforge":
            slimforge.save(model, Path(tmp) / "run")
            reloaded = slimforge.load(Path(tmp) / "run")
        else:
            import torch_pruning as tp

            torch.save(tp.state_dict(model), Path(tmp) / "tp.pth")
            reloaded = torchvision.models.get_model(name, weights=None).eval()
            tp.load_state_dict(reloaded, state_dict=torch.load(Path(tmp) / "tp.pth", weights_only=False))
            reloaded.eval()
        round_trip = bool(torch.equal(reloaded(x), out))
    total_s = time.perf_counter() - start
    return {
        "shape_kept": tuple(out.shape) == shape_before,
        "fewer_params": params_after < params_before,
        "finite": bool(torch.isfinite(out).all()),
        "round_trip": round_trip,
        "params_before": params_before,
        "params_after": params_after,
        "prune_s": round(prune_s, 2),
        "total_s": round(total_s, 2),
        "input": size,
    }


def _torch_pruning(model, x) -> None:
    import torch
    import torch_pruning as tp

    classifier = [m for m in model.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))][-1]
    pruner = tp.pruner.MetaPruner(
        model, x, importance=tp.importance.MagnitudeImportance(p=2), pruning_ratio=RATIO, ignored_layers=[classifier]
    )
    pruner.step()


def child(name: str, tool: str) -> None:
    try:
        result = run_one(name, tool)
        result["error"] = None
    except Exception as exc:  # the benchmark records every failure, whatever it is
        result = {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
    result["peak_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    print("RESULT " + json.dumps(result), flush=True)


def measure(name: str, tool: str, hard_timeout: float) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, __file__, "--child", name, "--tools", tool],
            capture_output=True, text=True, timeout=hard_timeout, env=env,
        )
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        result = json.loads(lines[-1][7:]) if lines else {"error": f"crashed: {proc.stderr.strip()[-300:]}"}
    except subprocess.TimeoutExpired:
        result = {"error": f"killed after {hard_timeout:.0f} s"}
    result.update(model=name, tool=tool, wall_s=round(time.perf_counter() - start, 1))
    checks = ("shape_kept", "fewer_params", "finite", "round_trip")
    result["success"] = (
        not result.get("error")
        and all(result.get(k) for k in checks)
        and result.get("total_s", 1e9) <= TIME_LIMIT_S
        and result.get("peak_gb", 1e9) <= MEMORY_LIMIT_GB
    )
    return result


def write_table(jsonl: Path, table: Path, note: str = "") -> None:
    latest: dict[tuple[str, str], dict] = {}
    for line in jsonl.read_text().splitlines():
        r = json.loads(line)
        latest[(r["model"], r["tool"])] = r
    models = sorted({m for m, _ in latest})
    tools = [t for t in ("slimforge", "torch-pruning") if any(k[1] == t for k in latest)]
    rows = [
        "# Structured pruning zoo: every torchvision classification model, 30% channels, random init",
        "",
        f"Command: `nice .venv/bin/python benchmarks/prune_zoo.py`; machine: {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '2')}; date: {time.strftime('%Y-%m-%d')}.",
        "Success = no error, same output shape, fewer parameters, finite outputs, save/load round trip with identical "
        f"outputs, pruning + checks + round trip within {TIME_LIMIT_S:.0f} s and {MEMORY_LIMIT_GB:.0f} GB peak (process RSS).",
        "",
        *([note, ""] if note else []),
    ]
    for tool in tools:
        ran = [m for m in models if (m, tool) in latest]
        ok = sum(1 for m in ran if latest[(m, tool)].get("success"))
        rows.append(f"- **{tool}**: {ok}/{len(ran)} run succeeded")
    rows += ["", "| model | input | " + " | ".join(f"{t} ok | params kept | prune s | total s | peak GB | note" for t in tools) + " |",
             "|---|---|" + "---|---|---|---|---|---|" * len(tools)]
    for m in models:
        cells = [m, str(next((latest[(m, t)].get("input") for t in tools if latest.get((m, t), {}).get("input")), ""))]
        for t in tools:
            r = latest.get((m, t))
            if r is None:
                cells += ["-"] * 6
                continue
            kept = f"{r['params_after'] / r['params_before']:.2f}" if r.get("params_before") else ""
            failed = [k for k in ("shape_kept", "fewer_params", "finite", "round_trip") if k in r and not r[k]]
            note = (r.get("error") or "").replace("|", "/")[:120] or (", ".join(f"not {k}" for k in failed))
            cells += ["yes" if r["success"] else "**no**", kept, str(r.get("prune_s", "")), str(r.get("total_s", "")),
                      str(r.get("peak_gb", "")), note]
        rows.append("| " + " | ".join(cells) + " |")
    table.write_text("\n".join(rows) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="", help="comma-separated names (default: all)")
    parser.add_argument("--tools", default="slimforge,torch-pruning")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/prune_zoo.jsonl"))
    parser.add_argument("--table", type=Path, default=Path("benchmarks/results/prune_zoo.md"))
    parser.add_argument("--hard-timeout", type=float, default=240.0, help="kill a model's process after this")
    parser.add_argument("--note", default="", help="a paragraph for the table's head (how the run went)")
    parser.add_argument("--table-only", action="store_true", help="rebuild the table from --out without running")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.tools)
        return
    if args.table_only:
        write_table(args.out, args.table, args.note)
        return
    import torchvision

    models = args.models.split(",") if args.models else torchvision.models.list_models(module=torchvision.models)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for name in models:
        for tool in args.tools.split(","):
            result = measure(name, tool, args.hard_timeout)
            with args.out.open("a") as f:
                f.write(json.dumps(result) + "\n")
            print(f"{name:24s} {tool:14s} {'ok' if result['success'] else 'FAIL'} {result.get('total_s', '')} "
                  f"{result.get('error') or ''}", flush=True)
    write_table(args.out, args.table, args.note)


if __name__ == "__main__":
    main()
