"""`slimforge optimize RUN`: the fastest model within an accuracy budget."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from slimforge.cli import app, loads_folders
from slimforge.optimize.budget import DEFAULT_MARGIN_Z


def parse_duration(text: str) -> float:
    """'90s', '45m', '1.5h' or plain seconds -> seconds."""
    units = {"s": 1, "m": 60, "h": 3600}
    text = text.strip().lower()
    try:
        return float(text[:-1]) * units[text[-1]] if text[-1] in units else float(text)
    except ValueError:
        from slimforge.errors import ConfigError

        raise ConfigError(f"--time-budget {text!r} is not a duration like 90s, 45m or 1.5h.") from None


@app.command("optimize")
@loads_folders
def optimize_cmd(
    run: Annotated[Path, typer.Argument(help="baseline run folder")],
    max_accuracy_drop: Annotated[float, typer.Option(help="validation accuracy points the result may lose (when --budget is not given)")] = 1.0,
    objective: Annotated[str, typer.Option(help="what to minimise: latency (the fastest model; classifiers) or size (the smallest weight file; recommenders)")] = "latency",
    metric: Annotated[Optional[str], typer.Option(help="the validation metric the budget is on, e.g. ndcg@10 or hr@10 (default: the data's headline metric: accuracy, or ndcg@10 for recommendations); --objective size")] = None,
    budget: Annotated[Optional[str], typer.Option(help="what the metric may lose on validation: '2%' is a RELATIVE loss (2% of the baseline's value), '0.5' is 0.5 POINTS (100 x the absolute change); default: --max-accuracy-drop points")] = None,
    noise_margin: Annotated[float, typer.Option(min=0, help="standard errors of the paired validation difference (candidate vs baseline, the same samples) added to a candidate's loss before the budget check; 0 checks the raw loss")] = DEFAULT_MARGIN_Z,
    joint_margin: Annotated[bool, typer.Option("--joint-margin/--per-candidate-margin", help="--objective size: the noise margin's confidence (95% at the default 1.645) holds for every candidate the search tried at once (it keeps the luckiest within the budget), or for each candidate alone")] = True,
    sampled_expectation: Annotated[bool, typer.Option("--sampled-expectation/--fixed-draw", help="--objective size, recommenders: validation's sampled HR@10/NDCG@10 as their exact expectation over the 99 negatives' draw (less noise), or on the split's one fixed draw; test always uses its fixed draw")] = True,
    batch_size: Annotated[int, typer.Option(help="batch size latency is measured at")] = 32,
    threads: Annotated[Optional[int], typer.Option(min=1, help="CPU threads for every stage: latency (default 1) and recovery training (default: all cores)")] = None,
    channels_last: Annotated[Optional[bool], typer.Option("--channels-last/--contiguous", help="memory format PyTorch CNN candidates run in (default: whichever runs the baseline faster)")] = None,
    reference: Annotated[str, typer.Option(help="fp32 forms of the baseline the report times, for speed-ups against the fastest: eager, channels_last, compile, onnxruntime (or none)")] = "eager,channels_last,onnxruntime",
    time_budget: Annotated[str, typer.Option(help="wall-clock budget: 90s, 45m, 1h")] = "60m",
    recovery_epochs: Annotated[Optional[int], typer.Option(min=1, help="distillation epochs after each pruning (default: enough for 500 optimizer steps, at least 4); --objective size: fine-tuning epochs after SVD (default 2)")] = None,
    prune_by: Annotated[str, typer.Option(help="pruning targets are fractions of the baseline's MACs ('macs') or of its latency measured here ('latency', latency-aware pruning)")] = "macs",
    refine: Annotated[bool, typer.Option("--refine/--no-refine", help="spend the time left at the budget's edge: in-between pruning levels, longer recovery")] = True,
    backends: Annotated[str, typer.Option(help="int8 backends to try, comma-separated")] = "onnxruntime,torch",
    data_root: Annotated[Optional[str], typer.Option(help="folder of the dataset's files (default: the run's)")] = None,
    out: Annotated[Path, typer.Option(help="folder for candidates, best/ and the report")] = Path("runs/optimize"),
) -> None:
    """The fastest (--objective latency) or smallest (--objective size) model within a validation budget, searched across stages."""
    from slimforge.deploy_forms import parse_reference
    from slimforge.experiment import run_data_config
    from slimforge.files import check_not_input
    from slimforge.optimize import Budget, OptimizeConfig, optimize
    from slimforge.train import TrainConfig

    data_cfg = run_data_config(run)
    data_cfg = type(data_cfg).model_validate({**data_cfg.model_dump(), "augment": False, **({"root": data_root} if data_root else {})})  # validated: a relative root is stored absolute
    cfg = OptimizeConfig(max_accuracy_drop=max_accuracy_drop, objective=objective, metric=metric, budget=Budget.parse(budget) if budget else None,
                         margin_z=noise_margin, joint_margin=joint_margin, sampled_expectation=sampled_expectation, batch_size=batch_size, threads=threads or 1,
                         train_threads=threads, channels_last=channels_last, refine=refine, prune_by=prune_by, reference=parse_reference(reference),
                         backends=tuple(b.strip() for b in backends.split(",") if b.strip()),
                         time_budget_s=parse_duration(time_budget), auto_recovery=recovery_epochs is None,
                         recovery=TrainConfig(epochs=recovery_epochs or 4, lr=0.02, batch_size=128, warmup_epochs=0.2))
    check_not_input(out, [run])
    summary = optimize(run.resolve(), data_cfg.load(), cfg, out.resolve(), data_config=data_cfg)  # optimize.json records absolute paths
    if "table" in summary:  # a search that sums itself up (objective size)
        print(summary["table"])
        print(summary["headline"])
        print(f"best model: {out / 'best'}" if summary["best"] else f"every try is recorded in {out / 'optimize.json'}")
        return
    _print_latency_result(summary, out, max_accuracy_drop)


def _print_latency_result(summary: dict, out: Path, max_accuracy_drop: float) -> None:
    best = summary["best"]
    if best:
        from slimforge.optimize.search import faster

        vs_fp32 = (f", {faster(best['speedup_vs_best_fp32'])} than the baseline's fastest fp32 form ({best['best_fp32_form']})"
                   if best.get("speedup_vs_best_fp32") else "")
        print(f"best: {best['name']} ({best['recipe']}): {faster(best['speedup'])}{vs_fp32}, test accuracy {best['test_accuracy']:.4f} "
              f"(baseline {summary['baseline']['test_accuracy']:.4f}); saved in {out / 'best'}")
    else:
        print(f"no candidate within {max_accuracy_drop} points; every try is recorded in {out / 'optimize.json'}")
    print(f"HTML report: {(out / 'report' / 'report.html').resolve()}")
