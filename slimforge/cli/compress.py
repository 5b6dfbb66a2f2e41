"""`slimforge prune`, `quantize`, `factorize`, `export`: one artifact in, one out."""

from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import Annotated, Optional

import typer

from slimforge.cli import app, loads_folders


def _stage(run: Path):
    """The recipe-stage context for a run folder's own data (calibration, test batches)."""
    from slimforge.experiment import run_data_config
    from slimforge.pipeline.stages import StageContext

    return StageContext(run_data_config(run).model_copy(update={"augment": False}))


def _config(cls, flags: dict[str, str] | None = None, **values):
    """``cls(**values)`` (a pydantic config); a rejected value becomes an error naming its
    command-line flag (a field ``calib_batches`` is ``--calib-batches`` unless ``flags`` says
    otherwise) instead of a validation traceback."""
    from pydantic import ValidationError

    from slimforge.errors import ConfigError

    try:
        return cls.model_validate(values)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = [str(part) for part in err["loc"]]
            flag = (flags or {}).get(".".join(loc)) or (flags or {}).get(loc[-1] if loc else "") or "--" + (loc[-1] if loc else "?").replace("_", "-")
            problems.append(f"{flag} {err.get('input')!r}: {err['msg']}")
        raise ConfigError("Invalid option: " + "; ".join(problems)) from None


def _finetune_config(run: Path, epochs: int, lr: float, batch_size: int | None, threads: int | None = None):
    """Fine-tuning settings: the run's own training section (optimizer, batch, regularisation),
    shortened to ``epochs`` at a lower peak ``lr``, without warm-up, on whatever device is here."""
    from slimforge.experiment import run_train_section
    from slimforge.train import TrainConfig

    section = run_train_section(run)
    section.update(epochs=epochs, lr=lr, warmup_epochs=0.0, device="auto", num_threads=threads, quiet=False, patience=None)
    if batch_size is not None:
        section["batch_size"] = batch_size
    return _config(TrainConfig, {"num_threads": "--threads"}, **section)


@app.command("prune")
@loads_folders
def prune_cmd(
    run: Annotated[Path, typer.Argument(help="run folder of the model to prune")],
    ratio: Annotated[Optional[float], typer.Option(help="fraction of channels/neurons/heads removed in every group")] = None,
    target_macs: Annotated[Optional[float], typer.Option(help="fraction of the MACs to keep (instead of --ratio)")] = None,
    target_params: Annotated[Optional[float], typer.Option(help="fraction of the parameters to keep (instead of --ratio)")] = None,
    target_latency: Annotated[Optional[float], typer.Option(help="fraction of the measured latency to keep, spread over layers as --latency-allocation says (instead of --ratio)")] = None,
    latency_batch_size: Annotated[int, typer.Option(min=1, help="batch size the latency of --target-latency is measured at")] = 32,
    latency_threads: Annotated[int, typer.Option(min=1, help="CPU threads the latency of --target-latency is measured with")] = 1,
    latency_allocation: Annotated[str, typer.Option(help="how --target-latency spreads the cut over layers: uniform (the same share of every group, read off the latency table; the default), importance (HALP's greedy: each group's scores per millisecond) or sensitivity (the greedy on each group's loss, measured on training batches)")] = "uniform",
    latency_blocks: Annotated[int, typer.Option(min=0, help="whole residual blocks --target-latency removes before narrowing the rest to the same target (those whose removal alone changes the outputs least on training batches; 0: none)")] = 0,
    importance: Annotated[str, typer.Option(help="l1, l2, bn_scale, taylor or random")] = "l2",
    skip: Annotated[Optional[list[str]], typer.Option(help="module name pattern to leave alone; repeat for more")] = None,
    round_to: Annotated[int, typer.Option(help="keep channel counts a multiple of this")] = 8,
    steps: Annotated[int, typer.Option(help="prune in this many steps spread over the fine-tuning epochs")] = 1,
    finetune_epochs: Annotated[int, typer.Option(min=0, help="fine-tuning epochs afterwards (0: none)")] = 5,
    lr: Annotated[float, typer.Option(help="fine-tuning peak learning rate")] = 0.01,
    batch_size: Annotated[Optional[int], typer.Option(help="fine-tuning batch size (default: the run's)")] = None,
    distill: Annotated[bool, typer.Option("--distill/--no-distill", help="fine-tune by distilling from the unpruned model")] = False,
    threads: Annotated[Optional[int], typer.Option(help="torch CPU threads for fine-tuning (default: cores / processes)")] = None,
    out: Annotated[Path, typer.Option(help="run folder to write")] = Path("runs/pruned"),
) -> None:
    """Structured pruning (channels, neurons, heads physically removed), then fine-tuning."""
    from slimforge.distill.api import DistillSection
    from slimforge.errors import ConfigError
    from slimforge.pipeline.stages import PruneStage, run_prune

    if distill and finetune_epochs < 1:
        raise ConfigError("--distill recovers accuracy by distillation during fine-tuning: it needs --finetune-epochs >= 1.")
    finetune = _finetune_config(run, finetune_epochs, lr, batch_size, threads) if finetune_epochs > 0 else None
    latency = {"batch_size": latency_batch_size, "threads": latency_threads, "allocation": latency_allocation,
               "blocks": latency_blocks}
    cfg = _config(PruneStage, None, kind="prune", name="prune", ratio=ratio, target_macs=target_macs, target_params=target_params,
                     target_latency=target_latency, latency=latency,
                     importance=importance, skip=skip or [], round_to=round_to, steps=steps, finetune=finetune,
                     distill=DistillSection() if distill else None)
    ctx = _stage(run)
    metrics = run_prune(ctx, cfg, run, out)
    _print_sizes(run, out, ctx.example(1))
    if target_latency is not None:
        _print_latency(run, out)
    print(f"pruned model {test_figures(metrics)}; saved in {out}")


def test_figures(metrics: dict) -> str:
    """``test accuracy 0.9123`` for a classifier, ``test hr@10 0.71, ndcg@10 0.47 ...`` for a recommender."""
    if metrics.get("test_accuracy") is not None:
        return f"test accuracy {metrics['test_accuracy']:.4f}"
    from slimforge.pipeline.stages import RANKING_FIGURES

    ranked = [k for k in RANKING_FIGURES if metrics.get(f"test_{k}") is not None]
    return "test " + ", ".join(f"{k} {metrics[f'test_{k}']:.4f}" for k in ranked) if ranked else "(no test figures)"


def _print_latency(before_run: Path, after_run: Path) -> None:
    """What latency-aware pruning measured, from the plans this command recorded in model.json: with ``--steps``
    each step measured against the model it was given, so the fractions multiply, and the last step aimed at its
    target times what the steps before it measured."""
    from slimforge.files import read_json

    edits = read_json(after_run / "model.json").get("edits", [])[len(read_json(before_run / "model.json").get("edits", [])):]
    steps = [e["latency"] for e in edits if e.get("kind") == "prune" and "latency" in e]
    if steps:
        lat, measured = steps[0], math.prod(s["measured"] for s in steps)
        target = steps[-1]["target"] * math.prod(s["measured"] for s in steps[:-1])
        print(f"latency {measured:.3f} of the original {lat['base_ms']:.2f} ms measured (target {target:.3g}"
              f"{f', {len(steps)} steps' if len(steps) > 1 else ''}, batch {lat['batch_size']}, {lat['threads']} thread(s), "
              f"{'channels-last' if lat['channels_last'] else 'contiguous'})")
        if "blocks" in lat:
            print(f"blocks removed: {', '.join(lat['blocks'])} (alone {lat['blocks_fraction']:.3f} of the latency), "
                  "the rest narrowed to the target")


def _print_sizes(before_run: Path, after_run: Path, example) -> None:
    """Parameters and MACs before and after a structural change."""
    before, after = _size(before_run, example), _size(after_run, example)
    print(f"parameters {before[0]:,} -> {after[0]:,} ({before[0] / max(after[0], 1):.2f}x fewer); "
          f"MACs {before[1]:,} -> {after[1]:,} ({before[1] / max(after[1], 1):.2f}x fewer)")


def _size(run: Path, example) -> tuple[int, int]:
    """(parameters, MACs per example) of a run folder's model."""
    from slimforge import loading
    from slimforge.measure import count_macs, count_parameters

    model = loading.load(run).eval()
    return count_parameters(model), count_macs(model, example)


@app.command("quantize")
@loads_folders
def quantize_cmd(
    run: Annotated[Path, typer.Argument(help="run folder of the fp32 model")],
    backend: Annotated[str, typer.Option(help="onnxruntime, torch (PT2E; float inputs), torch-dynamic (eager Linear int8), or fbgemm-int8/int4/int2 (embedding tables)")] = "onnxruntime",
    mode: Annotated[str, typer.Option(help="auto (static for CNNs, dynamic for linear models), static, dynamic or weight-only")] = "auto",
    calib_batches: Annotated[int, typer.Option(help="batches of the train split used for calibration")] = 32,
    fp32_first_last: Annotated[bool, typer.Option("--fp32-first-last", help="keep the first and last layers in fp32")] = False,
    max_drop: Annotated[Optional[float], typer.Option(help="accuracy points: return the most sensitive layers to fp32 until validation accuracy is within")] = None,
    smooth_alpha: Annotated[Optional[float], typer.Option(help="SmoothQuant for Linear layers: 0..1, how much of the activation range moves to the weights (transformers: 0.8)")] = None,
    smooth_every_layer: Annotated[bool, typer.Option("--smooth-every-layer", help="SmoothQuant every Linear, not only those whose simulated int8 error drops 10%")] = False,
    finetune_epochs: Annotated[int, typer.Option(min=0, help="fbgemm-int8/int4/int2: epochs of quantization-aware fine-tuning of the embedding tables on the run's data first (0: post-training only)")] = 0,
    finetune_lr: Annotated[float, typer.Option(help="peak learning rate of --finetune-epochs")] = 1e-3,
    threads: Annotated[Optional[int], typer.Option(help="CPU threads for calibration, evaluation and the int8 runtime (default: all)")] = None,
    out: Annotated[Path, typer.Option(help="folder for the quantized artifact")] = Path("runs/quantized"),
) -> None:
    """Post-training int8 quantization with calibration; accuracy before and after is printed."""
    from slimforge.errors import ConfigError
    from slimforge.pipeline.stages import QuantizeStage, run_quantize

    if smooth_every_layer and smooth_alpha is None:
        raise ConfigError("--smooth-every-layer needs --smooth-alpha (SmoothQuant is off without it).")
    every = {"smooth_min_gain": None} if smooth_every_layer else {}  # else the stage's default selection
    cfg = _config(QuantizeStage, {"max_accuracy_drop": "--max-drop"}, kind="quantize", name="quantize", backend=backend, mode=mode,
                  calib_batches=calib_batches, fp32_first_last=fp32_first_last, max_accuracy_drop=max_drop, smooth_alpha=smooth_alpha,
                  threads=threads, finetune_epochs=finetune_epochs, finetune_lr=finetune_lr, **every)
    with _threads(threads):
        stage = _stage(run)
        metrics = run_quantize(stage, cfg, run, out)
    metric = stage.data.info.metric  # accuracy, or a recommender's ndcg@10
    if "fallback" in metrics:
        f = metrics["fallback"]
        met = "within" if f["within_tolerance"] else "NOT within"
        print(f"fallback: {f['split']} {metric} {f['fp32_score']:.4f} fp32 -> {f['int8_score']:.4f} quantized, {met} --max-drop {max_drop:g} "
              f"after {f['trials']} trials; kept in fp32: {', '.join(f['fp32_layers']) or 'none'}")
    print(f"quantized ({backend}) test {metric} {metrics[f'test_{metric}']:.4f} (fp32 {metrics[f'fp32_test_{metric}']:.4f}); saved in {out}")
    from slimforge.files import read_json_quiet
    from slimforge.quantize.core import coverage_line

    info = read_json_quiet(out / "quantized.json")  # {} for an fbgemm table folder: no lines
    coverage = coverage_line(info)
    if coverage:
        print(coverage)
    if info.get("mode") == "dynamic":
        from slimforge.train.evaluate import EVAL_BATCH_SIZE

        print(f"note: dynamic int8 scales each batch's activations by that batch's range, so a sample's prediction can depend on "
              f"the batch it is in; slimforge scores in batches of {EVAL_BATCH_SIZE} (eval agrees), single-sample serving can differ slightly.")


@contextlib.contextmanager
def _threads(threads: int | None):
    """torch's CPU threads set to ``threads`` inside the block (unchanged when None)."""
    import torch

    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@app.command("factorize")
@loads_folders
def factorize_cmd(
    run: Annotated[Path, typer.Argument(help="run folder of the model")],
    energy: Annotated[float, typer.Option(help="fraction of each layer's squared singular values kept")] = 0.9,
    target_ratio: Annotated[Optional[float], typer.Option(help="fraction of the parameters to keep (instead of --energy)")] = None,
    epochs: Annotated[int, typer.Option(min=0, help="fine-tuning epochs afterwards (0: none)")] = 2,
    lr: Annotated[float, typer.Option(help="fine-tuning peak learning rate")] = 0.01,
    batch_size: Annotated[Optional[int], typer.Option(help="fine-tuning batch size (default: the run's)")] = None,
    threads: Annotated[Optional[int], typer.Option(help="torch CPU threads for fine-tuning (default: cores / processes)")] = None,
    out: Annotated[Path, typer.Option(help="run folder to write")] = Path("runs/factorized"),
) -> None:
    """Low-rank (SVD) factorisation of linear and convolution layers, then fine-tuning."""
    from slimforge.pipeline.stages import FactorizeStage, run_factorize

    finetune = _finetune_config(run, epochs, lr, batch_size, threads) if epochs > 0 else None
    cfg = _config(FactorizeStage, None, kind="factorize", name="factorize", energy=energy, target_ratio=target_ratio, finetune=finetune)
    ctx = _stage(run)
    with _threads(threads):
        metrics = run_factorize(ctx, cfg, run, out)
    _print_sizes(run, out, ctx.example(1))
    print(f"factorised model {test_figures(metrics)}; saved in {out}")


@app.command("mixed-dim")
@loads_folders
def mixed_dim_cmd(
    run: Annotated[Path, typer.Argument(help="run folder of a recommender")],
    shares: Annotated[str, typer.Option(help="fractions of the items per block, most interacted first, comma-separated; sum 1")] = "0.2,0.8",
    widths: Annotated[str, typer.Option(help="each block's width as a fraction of the table's, comma-separated")] = "1,0.25",
    epochs: Annotated[int, typer.Option(min=0, help="fine-tuning epochs afterwards (0: none; measured on MovieLens: no gain)")] = 0,
    lr: Annotated[float, typer.Option(help="fine-tuning peak learning rate")] = 1e-3,
    threads: Annotated[Optional[int], typer.Option(help="torch CPU threads for fine-tuning")] = None,
    out: Annotated[Path, typer.Option(help="run folder to write")] = Path("runs/mixed-dim"),
) -> None:
    """Item tables in blocks by popularity at mixed widths (recommenders): fewer values for rarely seen items."""
    from slimforge.pipeline.stages import MixedDimStage, run_mixed_dim

    finetune = _finetune_config(run, epochs, lr, None, threads) if epochs > 0 else None
    cfg = _config(MixedDimStage, None, kind="mixed_dim", name="mixed_dim", shares=_numbers(shares, "--shares"),
                  widths=_numbers(widths, "--widths"), finetune=finetune)
    with _threads(threads):
        metrics = run_mixed_dim(_stage(run), cfg, run, out)
    before, after = (_weight_bytes(folder) for folder in (run, out))
    print(f"weight file {before / 1024:.0f} KB -> {after / 1024:.0f} KB ({before / after:.2f}x smaller); {test_figures(metrics)}; saved in {out}")


def _numbers(text: str, flag: str) -> list[float]:
    from slimforge.errors import ConfigError

    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(f"{flag} {text!r} is not a comma-separated list of numbers like 0.2,0.8.") from None


def _weight_bytes(folder: Path) -> int:
    from slimforge.optimize.size import weight_file

    return weight_file(folder).stat().st_size


@app.command("export")
@loads_folders
def export_cmd(
    run: Annotated[Path, typer.Argument(help="run folder of the model")],
    format: Annotated[str, typer.Option("--format", help="onnx or pt2")] = "onnx",
    opset: Annotated[Optional[int], typer.Option(help="ONNX opset (onnx only; default 18)")] = None,
    atol: Annotated[float, typer.Option(help="largest allowed |export - PyTorch| on the sample inputs")] = 1e-4,
    out: Annotated[Path, typer.Option(help="folder for the exported file")] = Path("runs/export"),
    preprocess: Annotated[bool, typer.Option("--preprocess/--no-preprocess", help="bake the model's normalisation into the graph, so it takes raw inputs (default); --no-preprocess: the bare network on normalised inputs")] = True,
) -> None:
    """Export to ONNX (dynamo exporter) or torch.export .pt2, checked against PyTorch.

    The exported graph takes raw inputs (batch, *shape of the training arrays) float32, e.g.
    pixels 0..255, when the run recorded its preprocessing; export.json says which (docs/deploy.md)."""
    from slimforge.pipeline.stages import ExportStage, run_export

    from slimforge.errors import ConfigError
    from slimforge.export import DEFAULT_OPSET

    if opset is not None and format != "onnx":
        raise ConfigError(f"--opset applies to ONNX exports; a {format} export has no opset (drop --opset or use --format onnx).")
    cfg = _config(ExportStage, None, kind="export", name="export", format=format, opset=DEFAULT_OPSET if opset is None else opset, atol=atol,
                  preprocess=preprocess)
    metrics = run_export(_stage(run), cfg, run, out)
    takes = "raw inputs (normalisation in the graph)" if metrics.get("inputs") == "raw" else "the network's (normalised) inputs"
    print(f"exported {format} to {out}; it takes {takes}; max |export - PyTorch| = {metrics['max_abs_diff']:.3g}")
