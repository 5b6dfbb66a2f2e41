"""kill -9 at random moments of commands writing an existing --out; count old / new / broken folders.

    python benchmarks/kill_check.py --commands quantize,export,prune,distill --times 20

Each command first writes a result into --out twice (to time a full run); then it is started
again ``--times`` times and SIGKILLed at a moment drawn uniformly from [0, 1.1 x a full run].
After each kill the folder must be byte for byte the previous result ("old") or a complete,
self-consistent new one ("new": it loads and evaluates to the accuracy its metrics.json
records). Anything else is "broken" and fails the check (exit 1). The teacher is a small CNN
trained on the bundled digits data.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.trust.killing import COMMANDS, kill_many  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", default="quantize,export,prune,distill")
    parser.add_argument("--times", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="write the per-kill results here")
    args = parser.parse_args()
    commands = args.commands.split(",")
    unknown = [c for c in commands if c not in COMMANDS]
    if unknown:
        parser.error(f"unknown command(s) {unknown}; choose from {', '.join(COMMANDS)}")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    started = time.time()
    report: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="kill-check-") as tmp:
        teacher = Path(tmp) / "teacher"
        subprocess.run([sys.executable, "-m", "slimforge", "train", "--data", "digits", "--model", "cnn", "model.kwargs.width=4",
                        "--epochs", "3", "--quiet", "--threads", "1", "--out", str(teacher)], check=True, env=env)
        for i, command in enumerate(commands):
            results = kill_many(command, teacher, Path(tmp) / command, env, args.times, seed=args.seed + i, log=print)
            report[command] = [r.__dict__ for r in results]
    print(f"\nkill -9 check, {args.times} kills per command, {time.time() - started:.0f} s, torch threads 1 per process")
    print("| command | kills | old | new | broken | killed before finishing |")
    print("| --- | --- | --- | --- | --- | --- |")
    broken = 0
    for command, rows in report.items():
        counts = collections.Counter("broken" if r["outcome"].startswith("broken") else r["outcome"] for r in rows)
        broken += counts["broken"]
        print(f"| {command} | {len(rows)} | {counts['old']} | {counts['new']} | {counts['broken']} | {sum(not r['finished'] for r in rows)} |")
    for command, rows in report.items():
        for r in rows:
            if r["outcome"].startswith("broken"):
                print(f"{command}: {r['outcome']}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
