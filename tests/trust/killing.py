"""Kill a command writing an existing ``--out`` with SIGKILL, then check the folder.

Used by ``tests/trust/test_kill.py`` (one kill per command, in CI) and by
``benchmarks/kill_check.py`` (many kills at random moments). A folder passes when it is
byte for byte the previous result, or a complete new one: it loads and evaluates, and the
accuracy it gives is the one its own ``metrics.json`` records (a mixture of two results
fails one of these).
"""

from __future__ import annotations

import hashlib
import json
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch


def command_args(command: str, run: Path, out: Path, variant: int) -> list[str]:
    """The CLI arguments of ``command`` reading ``run`` and writing ``out``; each ``variant`` gives another result."""
    common = ["--out", str(out)]
    return {
        "quantize": ["quantize", str(run), "--calib-batches", str(1 + variant % 3), "--backend", "onnxruntime", *common],
        "export": ["export", str(run), "--format", "onnx", "--opset", str(18 + variant % 2), *common],
        "prune": ["prune", str(run), "--ratio", str(0.25 + 0.25 * (variant % 2)), "--finetune-epochs", "1", "--threads", "1", *common],
        "factorize": ["factorize", str(run), "--energy", str(0.8 + 0.1 * (variant % 2)), "--epochs", "1", "--threads", "1", *common],
        "distill": ["distill", "--teacher", str(run), "--student", "cnn", "student.kwargs.width=4", "--epochs", "2", "--seed", str(variant),
                    "--quiet", "--overwrite", "train.num_threads=1", *common],
        "train": ["train", "--data", "digits", "--model", "cnn", "model.kwargs.width=4", "--epochs", "2", "--seed", str(variant),
                  "--quiet", "--overwrite", "--threads", "1", *common],
    }[command]


COMMANDS = ("quantize", "export", "prune", "distill", "factorize", "train")


def snapshot(folder: Path) -> dict[str, str]:
    """{relative path: sha256} of every file in ``folder`` ({} when it does not exist)."""
    if not folder.is_dir():
        return {}
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def verify_complete(folder: Path) -> str | None:
    """None when ``folder`` is a complete, self-consistent result; else what is wrong."""
    from slimforge import artifacts
    from slimforge.experiment import evaluate_run

    try:
        kind = artifacts.artifact_kind(folder)
        if kind == "export":
            from slimforge.export import LOADERS

            info = json.loads((folder / "export.json").read_text())
            runner = LOADERS[info["format"]](folder / Path(info["path"]).name)
            out = runner(torch.zeros(*info["input_shape"]))
            return None if torch.as_tensor(out).shape[0] == info["input_shape"][0] else "export runs with a wrong shape"
        if kind not in ("model", "quantized"):
            return f"no result in {folder} ({sorted(p.name for p in folder.iterdir()) if folder.is_dir() else 'missing'})"
        recorded = json.loads((folder / "metrics.json").read_text())["test_accuracy"]
        measured = evaluate_run(folder)["accuracy"]
        return None if abs(measured - recorded) < 1e-6 else f"evaluates to {measured} but records {recorded}"
    except Exception as exc:  # noqa: BLE001 - any failure to load is what this check looks for
        return f"{type(exc).__name__}: {str(exc)[:300]}"


@dataclass
class KillResult:
    outcome: str  # "old", "new" or "broken: ..."
    killed_after_s: float
    finished: bool  # the command had already finished when the kill came


def run_and_kill(args: list[str], out: Path, env: dict[str, str], delay_s: float, wait_for_partial: bool) -> tuple[bool, float]:
    """Start ``slimforge args``; SIGKILL it ``delay_s`` after it starts (after its partial folder
    appears, with ``wait_for_partial``). Returns (it had finished by itself, seconds)."""
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "slimforge", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    partial = out.with_name(f".{out.name}.partial")
    if wait_for_partial:
        while proc.poll() is None and not partial.exists() and time.monotonic() - started < 300:
            time.sleep(0.01)
    t0 = time.monotonic()
    while proc.poll() is None and time.monotonic() - t0 < delay_s:
        time.sleep(0.005)
    finished = proc.poll() is not None
    if not finished:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    if finished and proc.returncode != 0:
        raise RuntimeError(f"slimforge {' '.join(args)} failed by itself: {proc.stderr.read().decode()[-1500:]}")
    return finished, time.monotonic() - started


def kill_once(command: str, run: Path, out: Path, env: dict[str, str], variant: int, delay_s: float, wait_for_partial: bool,
              old: dict[str, str]) -> KillResult:
    """Kill ``command`` writing ``out`` (which holds the result ``old``) once and classify the folder."""
    finished, seconds = run_and_kill(command_args(command, run, out, variant), out, env, delay_s, wait_for_partial)
    if snapshot(out) == old:
        return KillResult("old", seconds, finished)
    problem = verify_complete(out)
    return KillResult("new" if problem is None else f"broken: {problem}", seconds, finished)


def kill_many(command: str, run: Path, out: Path, env: dict[str, str], times: int, seed: int = 0,
              log: Callable[[str], None] = lambda _: None) -> list[KillResult]:
    """``times`` kills at random moments between the start and a little past a full run."""
    rng = random.Random(seed)
    subprocess.run([sys.executable, "-m", "slimforge", *command_args(command, run, out, 0)], check=True, env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-m", "slimforge", *command_args(command, run, out, 1)], check=True, env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    full = time.monotonic() - t0
    results = []
    for i in range(times):
        old = snapshot(out)
        result = kill_once(command, run, out, env, variant=i + 2, delay_s=rng.uniform(0, 1.1 * full), wait_for_partial=False, old=old)
        log(f"{command} #{i + 1}: killed after {result.killed_after_s:.2f} s -> {result.outcome}")
        results.append(result)
    return results
