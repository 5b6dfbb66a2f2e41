"""Recovery at equal measured latency (issue 22): latency-aware pruning against MAC-targeted pruning
and Torch-Pruning's group-norm pruner, each pruned to the same measured latency and fine-tuned alike.

    PYTHONPATH=. OMP_NUM_THREADS=1 nice .venv/bin/python benchmarks/equal_latency.py \
        --reference runs/reference/resnet20w2 --epochs 5 --seeds 0 1 2 --out /tmp/equal-latency

1. The trained reference (a run folder) is pruned once per arm, in the layout
   ``slimforge.measure.choose_layout`` picks, timed at ``--latency-batch`` on one thread:
   - ``latency``: ``slimforge.prune(target_latency=--target)`` (L2 importance, round_to 8); its
     measured fraction f of the reference's latency (interleaved medians) is the level the others match;
   - ``macs``: ``slimforge.prune(target_macs=m)``, m bisected (6 steps) until its measured fraction is f;
   - ``torch-pruning``: Torch-Pruning's ``GroupNormPruner`` with ``GroupMagnitudeImportance(p=2)``
     (one shot, round_to 8, the classifier left whole), ``pruning_ratio`` bisected likewise.
   - ``latency-steps+kd``: the same latency target reached in ``--steps`` steps during the distillation
     (``IterativePruning``: each step at the start of an epoch keeps target^(1/steps) of the latency of the
     model it is given; what ``slimforge prune --steps N --target-latency T --distill`` does), so its
     structure is made per seed and its latency is measured after the fine-tuning.
   - ``latency-depth``: ``--blocks`` whole residual blocks removed first (those whose removal alone moves the
     outputs least on ``--calibration`` training images), the rest narrowed to the same target
     (``LatencySettings(blocks=N)``; ``slimforge prune --target-latency T --latency-blocks N``).
   Pruning structures of the other arms do not depend on the seed: each is pruned once.
2. Every arm is fine-tuned for each seed with the reference run's training section (optimizer, batch,
   weight decay, augmentation), ``--epochs`` at peak ``--lr``, cosine, no warm-up, the best validation
   epoch kept (what ``slimforge prune --finetune-epochs`` does): ``latency+kd`` by distillation from
   the reference (slimforge's default KD, what ``slimforge prune --distill`` does), the others by plain
   cross-entropy (``latency+ft`` isolates the pruning from the distillation).
3. Test accuracy of every fine-tuned model; then every arm and the reference timed again together,
   interleaved, ``--rounds`` rounds, medians.

Writes ``equal_latency.json`` (everything) and ``equal_latency.md`` (the table) into ``--out``.
``--device cuda`` fine-tunes on a GPU; latency is always measured on the CPU.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import platform
import statistics
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import torch

import slimforge
from latency_prune import interleaved_medians, macs
from slimforge.cli.compress import _finetune_config
from slimforge.experiment import run_data_config
from slimforge.measure import choose_layout
from slimforge.prune import PruningError
from slimforge.prune.latency import LatencySettings

ARMS = ("latency+kd", "latency+ft", "macs+ft", "torch-pruning+ft", "latency-steps+kd", "latency-depth+kd", "latency-depth+ft")


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.manual_seed(0)
    reference = slimforge.load(args.reference).eval()
    data = run_data_config(args.reference).load()
    example = data.train.__getitems__(list(range(args.latency_batch)))[0].float()
    started = time.perf_counter()
    pruned, layout = prune_arms(reference, example, data, args)
    prune_seconds = time.perf_counter() - started
    results: dict[str, list[dict]] = {name: [] for name in pruned}
    args.example, args.layout, args.reference_model = example, layout, reference
    for seed in args.seeds:  # seed outermost: every finished seed is a complete comparison of the arms
        for name, model in list(pruned.items()):
            result, tuned = finetune(name, copy.deepcopy(model), data, args, seed)
            results[name].append(result)
            if name == "latency-steps+kd":  # pruned during its fine-tuning: the last seed's model is the one timed
                pruned[name] = tuned
            write_partial(results, args.out)
    torch.set_num_threads(1)
    timed = interleaved_medians({"reference": reference, **pruned}, example, args.rounds, layout == "channels_last")
    record = summarise(reference, pruned, results, timed, example, data, args)
    record.update(layout=layout, prune_seconds=round(prune_seconds, 1))
    write(record, args.out)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reference", type=Path, required=True, help="run folder of the trained model")
    p.add_argument("--target", type=float, default=0.3, help="fraction of the reference's measured latency to keep")
    p.add_argument("--epochs", type=int, default=5, help="fine-tuning epochs, every arm")
    p.add_argument("--lr", type=float, default=0.01, help="fine-tuning peak learning rate (cosine, no warm-up)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    p.add_argument("--latency-batch", type=int, default=32)
    p.add_argument("--rounds", type=int, default=15, help="interleaved timing rounds (each bisection step and the final timing)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for fine-tuning (latency is always 1 thread)")
    p.add_argument("--allocation", default="uniform", choices=["uniform", "importance", "sensitivity"],
                   help="latency-aware pruning's allocation (sensitivity: each group's loss on --calibration training images)")
    p.add_argument("--calibration", type=int, default=1024, help="training images the sensitivity allocation and --blocks measure on")
    p.add_argument("--blocks", type=int, default=1, help="blocks the latency-depth arms remove before narrowing")
    p.add_argument("--width-steps", action="store_true", help="latency-aware widths on the latency curve's steps (LatencySettings(steps=True))")
    p.add_argument("--steps", type=int, default=3, help="pruning steps of the latency-steps+kd arm (at epochs spread as slimforge prune --steps)")
    p.add_argument("--device", default="auto", help="fine-tuning device (auto, cpu, cuda)")
    p.add_argument("--out", type=Path, default=Path("/tmp/equal-latency"))
    return p.parse_args()


# ---------------------------------------------------------------- 1. pruning to one measured latency


def prune_arms(reference: torch.nn.Module, example: torch.Tensor, data, args: argparse.Namespace) -> tuple[dict[str, torch.nn.Module], str]:
    """The pruned model of every arm asked for, all at the latency-aware model's measured fraction."""
    torch.set_num_threads(1)
    layout = choose_layout(reference, example, threads=1)
    settings = LatencySettings(batch_size=len(example), threads=1, channels_last=layout == "channels_last", allocation=args.allocation,
                               steps=args.width_steps)
    calibration = None
    if args.allocation == "sensitivity" or any(a.startswith("latency-depth") for a in args.arms):
        images, labels = data.train.__getitems__(list(range(args.calibration)))[:2]
        calibration = [(images[i:i + 256].float(), labels[i:i + 256]) for i in range(0, args.calibration, 256)]
    latency_aware = slimforge.prune(copy.deepcopy(reference).train(), example[:2], target_latency=args.target, latency=settings,
                                    calibration=calibration).eval()
    level = measured_fraction(reference, latency_aware, example, 3 * args.rounds, layout)  # the level every arm matches: timed longer
    logging.info("latency-aware: %.3f of the reference's latency (target %.2f)", level, args.target)
    arms = {"latency+kd": latency_aware, "latency+ft": latency_aware, "latency-steps+kd": copy.deepcopy(reference)}
    if any(a.startswith("latency-depth") for a in args.arms):
        in_depth = slimforge.prune(copy.deepcopy(reference).train(), example[:2], target_latency=args.target,
                                   latency=replace(settings, blocks=args.blocks), calibration=calibration).eval()
        depth_level = measured_fraction(reference, in_depth, example, 3 * args.rounds, layout)
        logging.info("latency-aware in depth: %.3f of the reference's latency", depth_level)
        arms.update({"latency-depth+kd": in_depth, "latency-depth+ft": in_depth})
        if not any(a.startswith("latency+") for a in args.arms):  # the depth arms are the subject: the others match them
            level = depth_level
    args.latency_settings = settings
    if "macs+ft" in args.arms:
        arms["macs+ft"] = bisect_to_latency(lambda m: slimforge.prune(copy.deepcopy(reference).train(), example[:2], target_macs=m).eval(),
                                            reference, example, level, (0.02, 1.0), args.rounds, layout)
    if "torch-pruning+ft" in args.arms:
        arms["torch-pruning+ft"] = bisect_to_latency(lambda r: torch_pruning_group_norm(reference, example[:2], r), reference, example,
                                                     level, (0.0, 0.95), args.rounds, layout, knob_lowers_latency=True)
    return {k: v for k, v in arms.items() if k in args.arms}, layout


def measured_fraction(reference: torch.nn.Module, model: torch.nn.Module, example: torch.Tensor, rounds: int, layout: str) -> float:
    lat = interleaved_medians({"reference": reference, "model": model}, example, rounds, layout == "channels_last")
    return lat["model"] / lat["reference"]


def bisect_to_latency(build: Callable[[float], torch.nn.Module], reference: torch.nn.Module, example: torch.Tensor, level: float,
                      bounds: tuple[float, float], rounds: int, layout: str, knob_lowers_latency: bool = False, steps: int = 6) -> torch.nn.Module:
    """``build(knob)`` with the knob bisected over ``bounds`` until its measured latency fraction is
    closest to ``level``; the noise makes the curve not quite monotone (a model that measured 0.288 of the reference
    while bisecting measured 0.325 in the final timing, session 31), so the three closest models seen are timed
    again together, interleaved with the reference for 3x the rounds, and the closest of that timing is returned."""
    lo, hi = bounds
    seen: list[tuple[float, torch.nn.Module]] = []
    failure = ""
    for _ in range(steps):
        knob = (lo + hi) / 2
        try:
            model = build(knob)
        except PruningError as exc:  # the knob asks more than the model can give: step back
            failure = f"knob {knob:.3f}: {exc}"
            logging.info(failure)
            lo, hi = (lo, knob) if knob_lowers_latency else (knob, hi)
            continue
        got = measured_fraction(reference, model, example, rounds, layout)
        logging.info("knob %.3f: measured latency fraction %.3f (aiming at %.3f)", knob, got, level)
        seen.append((abs(got - level), model))
        too_slow = got > level
        if knob_lowers_latency:
            lo, hi = (knob, hi) if too_slow else (lo, knob)
        else:
            lo, hi = (lo, knob) if too_slow else (knob, hi)
    if not seen:
        raise SystemExit(f"no knob in {bounds} gave a model; the last: {failure}")
    closest = [m for _, m in sorted(seen, key=lambda t: t[0])[:3]]
    lat = interleaved_medians({"reference": reference, **{f"c{i}": m for i, m in enumerate(closest)}}, example, 3 * rounds,
                              layout == "channels_last")
    fractions = [lat[f"c{i}"] / lat["reference"] for i in range(len(closest))]
    logging.info("closest tries timed again: %s (aiming at %.3f)", ", ".join(f"{f:.3f}" for f in fractions), level)
    return closest[min(range(len(closest)), key=lambda i: abs(fractions[i] - level))]


def torch_pruning_group_norm(reference: torch.nn.Module, example: torch.Tensor, ratio: float) -> torch.nn.Module:
    """Torch-Pruning's group-norm pruner, one shot at ``ratio`` of every group's channels, classifier whole."""
    import torch_pruning as tp

    model = copy.deepcopy(reference).eval()
    classifier = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1:]
    pruner = tp.pruner.GroupNormPruner(model, example, importance=tp.importance.GroupMagnitudeImportance(p=2),
                                       pruning_ratio=ratio, ignored_layers=classifier, round_to=8)
    pruner.step()
    return model


# ---------------------------------------------------------------- 2. the same fine-tuning for every arm


def finetune(arm: str, model: torch.nn.Module, data, args: argparse.Namespace, seed: int) -> tuple[dict, torch.nn.Module]:
    from slimforge.distill.api import DistillSection
    from slimforge.distill.api import run as distill_run
    from slimforge.pipeline.stages import pruning_epochs
    from slimforge.prune.sparsity import IterativePruning
    from slimforge.train import evaluate, seed_everything, train

    cfg = _finetune_config(args.reference, args.epochs, args.lr, None, args.threads).model_copy(update={"seed": seed, "device": args.device, "quiet": True})
    seed_everything(seed)
    started = time.perf_counter()
    callbacks = []
    if arm == "latency-steps+kd":
        callbacks = [IterativePruning(args.example[:2], target_latency=args.target, epochs=pruning_epochs(args.steps, args.epochs),
                                      latency=args.latency_settings)]
    if arm.endswith("+kd"):
        result = distill_run(model.train(), [args.reference], data, DistillSection().to_config(), cfg, callbacks=callbacks)
    else:
        result = train(model.train(), data, cfg)
    tuned = result.model.eval().cpu()
    test = evaluate(tuned, data.test)
    seconds = round(time.perf_counter() - started, 1)
    record = {"seed": seed, "test_accuracy": test["accuracy"], "seconds": seconds}
    if callbacks:  # its structure is this seed's: time it against the reference now
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        record["latency_fraction"] = measured_fraction(args.reference_model, tuned, args.example, args.rounds, args.layout)
        record["macs_fraction"] = macs(tuned, args.example) / macs(args.reference_model, args.example)
        torch.set_num_threads(threads)
    logging.info("%s seed %d: test accuracy %.4f (%.0f s) %s", arm, seed, test["accuracy"], seconds, record)
    return record, tuned


# ---------------------------------------------------------------- 3. the record


def summarise(reference, pruned, results, timed, example, data, args) -> dict:
    from slimforge.train import evaluate

    base_macs, base_params = macs(reference, example), sum(p.numel() for p in reference.parameters())
    arms = {}
    for name, model in pruned.items():
        accs = [r["test_accuracy"] for r in results[name]]
        arms[name] = {"latency_fraction": timed[name] / timed["reference"], "ms": timed[name],
                      "macs_fraction": macs(model, example) / base_macs,
                      "params_fraction": sum(p.numel() for p in model.parameters()) / base_params,
                      "test_mean": statistics.mean(accs), "test_sd": statistics.stdev(accs) if len(accs) > 1 else 0.0, "runs": results[name]}
    return {"date": datetime.now(timezone.utc).isoformat(timespec="minutes"), "reference": str(args.reference),
            "reference_test": evaluate(reference, data.test)["accuracy"], "reference_ms": timed["reference"],
            "target": args.target, "allocation": args.allocation, "epochs": args.epochs, "lr": args.lr, "seeds": args.seeds, "device": args.device,
            "latency_batch": args.latency_batch, "latency_threads": 1, "rounds": args.rounds,
            "machine": platform.processor() or platform.machine(), "torch": torch.__version__, "arms": arms}


def write_partial(results: dict[str, list[dict]], out: Path) -> None:
    """The fine-tuning results so far, so a stopped run keeps what it measured."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "equal_latency.partial.json").write_text(json.dumps(results, indent=1))


def write(record: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "equal_latency.json").write_text(json.dumps(record, indent=1))
    rows = [f"reference test accuracy {record['reference_test']:.4f}, {record['reference_ms']:.2f} ms per batch of "
            f"{record['latency_batch']} (1 thread, {record['layout']}); fine-tuning {record['epochs']} epochs at lr {record['lr']}, seeds {record['seeds']}",
            "", "| arm | latency (x reference) | MACs kept | params kept | test accuracy (mean ± sd) | vs reference (points) | per seed |",
            "|---|---|---|---|---|---|---|"]
    for name, a in record["arms"].items():
        per_seed = ", ".join(f"{r['test_accuracy']:.4f}" for r in a["runs"])
        rows.append(f"| {name} | {a['latency_fraction']:.3f} | {a['macs_fraction']:.3f} | {a['params_fraction']:.3f} | "
                    f"{a['test_mean']:.4f} ± {a['test_sd']:.4f} | {100 * (a['test_mean'] - record['reference_test']):+.2f} | {per_seed} |")
    (out / "equal_latency.md").write_text("\n".join(rows) + "\n")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
