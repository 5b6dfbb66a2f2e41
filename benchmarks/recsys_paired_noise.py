"""The size search's candidates scored again: validation's paired noise with the sampled NDCG@10 on
its one fixed draw of 99 negatives against its exact expectation over the draw, and the test figures.

    OMP_NUM_THREADS=1 nice python benchmarks/recsys_paired_noise.py runs/neumf runs/neumf-opt \
        --json benchmarks/results/recsys_paired_noise.json

For the baseline run folder and every candidate folder of a finished ``slimforge optimize --objective
size`` (``OPT/candidates/*``, sizes and verdicts from ``OPT/optimize.json``), on the same split and
the same candidates:

* validation NDCG@10 on the fixed draw and as its expectation (``RankingSplit.evaluate(expected=True)``),
  each with its relative change against the baseline and one standard error of the per-user paired
  difference (:func:`slimforge.optimize.budget.paired_standard_error`), in % of the baseline's value;
* test NDCG@10 (its fixed draw, and for comparison its expectation over the draw), Recall@20 and NDCG@20
  over the unseen catalogue, and their changes.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
from datetime import datetime, timezone
from pathlib import Path

import torch

import slimforge
from slimforge.experiment import run_data_config
from slimforge.optimize.budget import paired_standard_error


def score(folder: Path, data) -> dict:
    """Validation per user (fixed draw and expected) and test metrics of one folder."""
    model = slimforge.load(folder).eval()
    with torch.no_grad():
        fixed = data.val.evaluate(model, per_user=True)
        expected = data.val.evaluate(model, per_user=True, expected=True)
        test = data.test.evaluate(model, expected=True)  # the catalogue's figures and the expected NDCG@10: one pass
        test["ndcg@10_expected"] = test["ndcg@10"]
        test["ndcg@10"] = sampled_only(data.test).evaluate(model)["ndcg@10"]  # the fixed draw's
    return {"fixed": fixed, "expected": expected, "test": {k: v for k, v in test.items() if isinstance(v, float)}}


def sampled_only(split):
    """The split without its catalogue pass (its fixed draw's sampled metrics only)."""
    light = copy.copy(split)
    light.full_catalogue = False
    return light


def compare(base: dict, cand: dict) -> dict:
    """Relative changes (%) and paired standard errors (% of the baseline) of one candidate."""
    out = {}
    for kind in ("fixed", "expected"):
        b, c = base[kind], cand[kind]
        out[f"val_{kind}_change"] = 100 * (c["ndcg@10"] - b["ndcg@10"]) / b["ndcg@10"]
        se = paired_standard_error(b["per_sample"]["ndcg@10"].tolist(), c["per_sample"]["ndcg@10"].tolist())
        out[f"val_{kind}_se"] = 100 * se / b["ndcg@10"]
    for name in ("ndcg@10", "ndcg@10_expected", "recall@20", "ndcg@20"):
        out[f"test_{name}"] = cand["test"][name]
        out[f"test_{name}_change"] = 100 * (cand["test"][name] - base["test"][name]) / base["test"][name]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("baseline", type=Path)
    parser.add_argument("search", type=Path, help="the optimize --objective size output folder")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", nargs="*", help="score only these candidates (default: all)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = run_data_config(args.baseline).load()
    summary = json.loads((args.search / "optimize.json").read_text())
    base = score(args.baseline, data)
    rows = []
    for cand in [c for c in summary["candidates"] if not args.only or c["name"] in args.only]:
        row = {"name": cand["name"], "size_x": cand["size_x"], "verdict": cand["verdict"], "margin": cand["margin"],
               **compare(base, score(args.search / "candidates" / cand["name"], data))}
        rows.append(row)
        print(f"| {row['name']} | {row['size_x']:.2f} | {row['val_fixed_change']:+.2f}% ± {row['val_fixed_se']:.2f} | "
              f"{row['val_expected_change']:+.2f}% ± {row['val_expected_se']:.2f} | {row['test_ndcg@10_change']:+.2f}% ({row['test_ndcg@10_expected_change']:+.2f}%) | "
              f"{row['test_ndcg@20_change']:+.2f}% | {row['test_recall@20_change']:+.2f}% |", flush=True)
    ratios = [r["val_expected_se"] / r["val_fixed_se"] for r in rows if r["val_fixed_se"] > 0]
    print(f"paired standard error, expected / fixed draw: median {statistics.median(ratios):.3f} "
          f"(range {min(ratios):.3f}-{max(ratios):.3f}) over {len(ratios)} candidates")
    if args.json:
        record = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "threads": args.threads,
                  "baseline": {"val_fixed": base["fixed"]["ndcg@10"], "val_expected": base["expected"]["ndcg@10"], "test": base["test"]},
                  "candidates": rows, "se_ratio_median": statistics.median(ratios)}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
