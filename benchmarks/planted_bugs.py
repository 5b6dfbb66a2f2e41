"""Planted bugs: would the tests notice a plausible mistake? (issue 24)

Each bug below is the kind of slip a tired developer makes (a comparison off by one, a line
forgotten, two names swapped), written as exact ``old -> new`` text replacements in one file of
``slimforge/``. For each bug the script checks every ``old`` occurs exactly once, applies the
bug, runs the test files of that area::

    OMP_NUM_THREADS=1 python -m pytest -q -x -p no:cacheprovider <files>

records *caught* (the tests fail) or *missed* (they pass), and writes the original file back (in
a ``finally``), then checks ``git diff --quiet`` on it. Usage::

    python benchmarks/planted_bugs.py                 # every bug
    python benchmarks/planted_bugs.py T1 P3           # some
    python benchmarks/planted_bugs.py --check         # only check that every bug applies
    python benchmarks/planted_bugs.py --json out.json # also write the results
    python benchmarks/planted_bugs.py P3 --only tests/prune/test_kept_counts.py  # other tests

Run from the repository root. Results and what caught each bug: docs/testing.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 900


@dataclass(frozen=True)
class Bug:
    key: str
    area: str
    what: str
    file: str
    edits: tuple[tuple[str, str], ...]  # (old, new), applied in order; each old must occur exactly once
    tests: tuple[str, ...]


TRAIN_TESTS = ("tests/behaviour/test_training_settings.py", "tests/behaviour/test_training_dynamics.py", "tests/test_train.py")
RESUME_TESTS = ("tests/behaviour/test_resume_rng.py", "tests/behaviour/test_keep_best.py", "tests/test_train.py")
PRUNE_TESTS = ("tests/behaviour/test_importance_ranking.py", "tests/prune/test_kept_counts.py", "tests/prune/test_structured.py")
DISTILL_TESTS = ("tests/distill/test_losses.py", "tests/distill/test_objective.py", "tests/distill/test_teachers.py",
                 "tests/behaviour/test_distillation_helps.py")
QUANT_TESTS = ("tests/quantize/test_calibration_batches.py", "tests/quantize/test_backends.py")
EXPORT_TESTS = ("tests/test_export.py",)
OPTIMIZE_TESTS = ("tests/test_optimize_budget.py", "tests/behaviour/test_optimize_choice.py")
REPORT_TESTS = ("tests/test_report_rows.py", "tests/test_report_render.py", "tests/test_measure.py")

BUGS = (
    # ------------------------------------------------------------------ trainer
    Bug("T1", "trainer", "early stopping waits one epoch more than `patience` (> for >=)", "slimforge/train/loop.py",
        (('if state.stop or (cfg.patience and book["since_best"] >= cfg.patience):',
          'if state.stop or (cfg.patience and book["since_best"] > cfg.patience):'),), TRAIN_TESTS),
    Bug("T2", "trainer", "the LR schedule steps once per epoch instead of once per optimizer step", "slimforge/train/loop.py",
        (("        scheduler.step()\n        state.step += 1\n", "        state.step += 1\n"),
         ("    _check_finite(loss_sum, state, cfg, run_dir)\n    seconds =", "    _check_finite(loss_sum, state, cfg, run_dir)\n    scheduler.step()\n    seconds =")),
        TRAIN_TESTS),
    Bug("T3", "trainer", "gradients are never zeroed: they accumulate across steps", "slimforge/train/loop.py",
        (("        optimizer.zero_grad(set_to_none=True)\n        scaler.scale(out.loss)", "        scaler.scale(out.loss)"),), TRAIN_TESTS),
    Bug("T4", "trainer", "evaluation forgets model.eval(): dropout stays on while validating and testing", "slimforge/train/evaluate.py",
        (("    if module:\n        model.eval()\n", "    if module:\n        pass\n"),), TRAIN_TESTS),
    Bug("T5", "trainer", "weight decay applied to biases and norm weights too", "slimforge/train/optim.py",
        (('{"params": no_decay, "weight_decay": 0.0}', '{"params": no_decay, "weight_decay": cfg.weight_decay}'),), TRAIN_TESTS),
    Bug("T6", "trainer", "keep_best with a lower-is-better monitor keeps the worst epoch (comparison reversed)", "slimforge/train/loop.py",
        (('(value < book["best"] if cfg.monitor_lower_is_better else value > book["best"])',
          '(value > book["best"] if cfg.monitor_lower_is_better else value > book["best"])'),),
        ("tests/behaviour/test_keep_best.py", *TRAIN_TESTS)),
    # ------------------------------------------------------------------ resume
    Bug("R1", "resume", "the optimizer state (momentum) is not restored", "slimforge/train/resume.py",
        (('            optimizer.load_state_dict(saved["optimizer"])\n', '            pass\n'),), RESUME_TESTS),
    Bug("R2", "resume", "the epoch counter restarts at 0 on resume", "slimforge/train/loop.py",
        (('for epoch in range(book["epoch"], last):', 'for epoch in range(last):'),), RESUME_TESTS),
    Bug("R3", "resume", "the RNG state is re-seeded instead of restored", "slimforge/train/resume.py",
        (("        set_rng_state(rngs[ctx.rank])\n", "        seed_everything(cfg.seed + ctx.rank)\n"),), RESUME_TESTS),
    Bug("R4", "resume", "the LR schedule is not restored (cosine restarts at the peak)", "slimforge/train/resume.py",
        (('    scheduler.load_state_dict(saved["scheduler"])\n', ''),), RESUME_TESTS),
    # ------------------------------------------------------------------ pruning
    Bug("P1", "pruning", "BatchNorm running mean/var not sliced with the channels", "slimforge/prune/_rules_math.py",
        (("    for p in node.args[1:5]:\n", "    for p in node.args[1:3]:\n"),), PRUNE_TESTS),
    Bug("P2", "pruning", "a Linear's bias not sliced with its output neurons", "slimforge/prune/_rules_math.py",
        (("    if lb is not None:\n        tr.uf.tie(lb[0], lw[0])\n", ""),), PRUNE_TESTS),
    Bug("P3", "pruning", "round_to ignored for single-branch groups", "slimforge/prune/structured.py",
        (("step = 1 if branched else round_to", "step = 1"),), PRUNE_TESTS),
    Bug("P4", "pruning", "importance ranking reversed: the most important channels are removed", "slimforge/prune/structured.py",
        (('ranked = pool[np.argsort(s[pool], kind="stable")]', 'ranked = pool[np.argsort(-s[pool], kind="stable")]'),), PRUNE_TESTS),
    Bug("P5", "pruning", "kept count truncated instead of rounded (prunes more than the ratio asks)", "slimforge/prune/structured.py",
        (("keep = max(step, int(round(want / step)) * step)", "keep = max(step, int(want / step) * step)"),), PRUNE_TESTS),
    # ------------------------------------------------------------------ distillation
    Bug("D1", "distillation", "KD loss scaled by T instead of T^2", "slimforge/distill/losses.py",
        ((".sum(-1).mean() * t * t", ".sum(-1).mean() * t"),), DISTILL_TESTS),
    Bug("D2", "distillation", "the teacher is frozen but left in train mode (dropout/BN batch stats)", "slimforge/distill/teachers.py",
        (("teacher.eval().requires_grad_(False)", "teacher.requires_grad_(False)"),), DISTILL_TESTS),
    Bug("D3", "distillation", "soft and hard weights swapped in the total", "slimforge/distill/objective.py",
        (("total = self.config.hard_weight * hard + self.scale * self.config.soft_weight * soft",
          "total = self.config.soft_weight * hard + self.scale * self.config.hard_weight * soft"),), DISTILL_TESTS),
    # ------------------------------------------------------------------ quantization
    Bug("Q1", "quantization", "torch backend calibrates on the first batch only when more are asked", "slimforge/quantize/backend_torch.py",
        (("            for x in self.calibration:\n", "            for x in self.calibration[:1]:\n"),), QUANT_TESTS),
    Bug("Q2", "quantization", "QuantizeConfig.fp32_layers ignored (only fp32_first_last kept)", "slimforge/quantize/core.py",
        (("    fp32 = list(config.fp32_layers)\n", "    fp32: list[str] = []\n"),), QUANT_TESTS),
    # ------------------------------------------------------------------ export
    Bug("E1", "export", "the ONNX opset asked for is ignored (always the default)", "slimforge/export.py",
        (("                opset_version=opset,\n", "                opset_version=DEFAULT_OPSET,\n"),), EXPORT_TESTS),
    Bug("E2", "export", "dynamic_batch condition inverted: the batch dimension is fixed by default", "slimforge/export.py",
        (('dynamic_shapes = {"x": dims} if dynamic_batch else None', 'dynamic_shapes = None if dynamic_batch else {"x": dims}'),),
        EXPORT_TESTS),
    # ------------------------------------------------------------------ optimize
    Bug("O1", "optimize", "budget comparison strict and without the float tolerance (< instead of <=)", "slimforge/optimize/budget.py",
        (("return 100 * (baseline - candidate) + margin_points <= max_drop_points + BUDGET_TOLERANCE_POINTS",
          "return 100 * (baseline - candidate) + margin_points < max_drop_points"),), OPTIMIZE_TESTS),
    Bug("O2", "optimize", "picks the slowest candidate within the budget", "slimforge/optimize/search.py",
        (("    if cand.speedup > best.speedup * SAME_SPEED:\n", "    if cand.speedup * SAME_SPEED < best.speedup:\n"),), OPTIMIZE_TESTS),
    # ------------------------------------------------------------------ report
    Bug("RP1", "report", "speed-up ratio inverted (variant / baseline)", "slimforge/report.py",
        (('"speedup": base_ms / ms,', '"speedup": ms / base_ms,'),), REPORT_TESTS),
    Bug("RP2", "report", "p90 column shows the p50 latency (copy-paste)", "slimforge/report.py",
        (('"p90_ms": v["latency"][bs]["p90_ms"],', '"p90_ms": v["latency"][bs]["p50_ms"],'),), REPORT_TESTS),
    Bug("RP3", "report", "accuracy delta sign flipped (baseline - variant)", "slimforge/report.py",
        (('return 100.0 * (value - baseline)', 'return 100.0 * (baseline - value)'),), REPORT_TESTS),
)


def planted_text(bug: Bug, original: str) -> str:
    """``original`` with the bug's edits applied; ValueError if an ``old`` does not occur exactly once."""
    text = original
    for old, new in bug.edits:
        count = text.count(old)
        if count != 1:
            raise ValueError(f"{bug.key}: {old!r} occurs {count} times in {bug.file}, not once")
        text = text.replace(old, new)
    return text


def run_bug(bug: Bug, extra_tests: tuple[str, ...] = (), only: tuple[str, ...] = ()) -> dict:
    """Plant ``bug``, run its tests (``only`` instead, when given), restore the file; the verdict and the pytest summary line."""
    path = ROOT / bug.file
    original = path.read_text()
    planted = planted_text(bug, original)
    tests = only or bug.tests + extra_tests
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests]
    start = time.monotonic()
    try:
        path.write_text(planted)
        try:
            proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
            code, out = proc.returncode, proc.stdout + proc.stderr
        except subprocess.TimeoutExpired as exc:
            code, out = -1, f"timed out after {TIMEOUT_S} s\n{exc.stdout or ''}"
    finally:
        path.write_text(original)
    clean = subprocess.run(["git", "diff", "--quiet", "--", bug.file], cwd=ROOT).returncode == 0
    if not clean:
        raise RuntimeError(f"{bug.file} differs from git after restoring it")
    lines = [ln for ln in out.strip().splitlines() if ln.strip()]
    failed = [ln.split(" ", 1)[1].split(" - ")[0] for ln in lines if ln.startswith(("FAILED ", "ERROR "))]
    return {"bug": bug.key, "area": bug.area, "what": bug.what, "caught": code != 0, "exit": code,
            "by": failed[:1], "summary": lines[-1] if lines else "", "seconds": round(time.monotonic() - start, 1), "tests": list(tests)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("keys", nargs="*", help="bug keys (default: all)")
    parser.add_argument("--check", action="store_true", help="only check every bug applies")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--also", action="append", default=[], help="extra test files to run for every bug")
    parser.add_argument("--only", action="append", default=[], help="run these test files instead of each bug's own")
    args = parser.parse_args(argv)
    chosen = [b for b in BUGS if not args.keys or b.key in args.keys]
    for bug in chosen:
        planted_text(bug, (ROOT / bug.file).read_text())
    if args.check:
        print(f"{len(chosen)} bugs apply cleanly")
        return 0
    results = []
    for bug in chosen:
        r = run_bug(bug, tuple(args.also), tuple(args.only))
        results.append(r)
        print(f"{r['bug']:4} {'CAUGHT' if r['caught'] else 'MISSED'} {r['seconds']:7.1f} s  {r['what']}  [{r['by'][0] if r['by'] else r['summary']}]",
              flush=True)
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
    caught = sum(r["caught"] for r in results)
    print(f"caught {caught} of {len(results)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
