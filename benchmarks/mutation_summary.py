"""Kill rate per module of the last `make mutate` run, read from mutmut's mutants/*.meta files.

Kill rate = (killed + timed out) / all mutants of the module. A mutant no selected test reaches
("no tests") counts against the rate, as a survivor does; "not checked": not run this time.

    python benchmarks/mutation_summary.py            # table, then the survivors by name
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

from mutmut.stats import status_by_exit_code

CAUGHT = {"killed", "timeout", "caught by type check"}


def summarise(root: Path) -> tuple[dict[str, Counter], list[str]]:
    per_module: dict[str, Counter] = {}
    missed: list[str] = []
    for meta in sorted(root.rglob("*.py.meta")):
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        if not codes:
            continue
        module = str(meta.relative_to(root))[: -len(".meta")]
        counts = per_module[module] = Counter()
        for name, code in sorted(codes.items()):
            status = status_by_exit_code[code]
            counts[status] += 1
            if status not in CAUGHT:
                missed.append(f"{status:12s} {name}")
    return per_module, missed


def main() -> int:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "mutants")
    if not root.is_dir():
        print(f"{root}/ is absent: run `make mutate` first.", file=sys.stderr)
        return 2
    per_module, missed = summarise(root)
    total = Counter()
    print("| module | mutants | killed | timed out | survived | no tests | kill rate |\n|---|---:|---:|---:|---:|---:|---:|")
    for module, c in per_module.items():
        total += c
        _row(module, c)
    _row("**all**", total)
    if total["not checked"]:
        print(f"\n{total['not checked']} mutants not checked: outside MUTANTS=..., or the run was interrupted.")
    print("\nNot killed:")
    print("\n".join(missed) or "(none)")
    return 0


def _row(module: str, c: Counter) -> None:
    n = sum(c.values())
    caught = sum(c[s] for s in CAUGHT)
    killed = caught - c["timeout"]
    print(f"| {module} | {n} | {killed} | {c['timeout']} | {c['survived']} | {c['no tests']} | {100 * caught / n:.1f}% |")


if __name__ == "__main__":
    raise SystemExit(main())
