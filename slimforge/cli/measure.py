"""`slimforge measure RUN [RUN ...]`: accuracy, interleaved latency and size, with a report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from slimforge.cli import app, loads_folders


@app.command("measure")
@loads_folders
def measure_cmd(
    runs: Annotated[list[Path], typer.Argument(help="run folders or quantized artifacts; the first is the baseline")],
    batch_sizes: Annotated[str, typer.Option(help="comma-separated batch sizes")] = "1,32",
    threads: Annotated[int, typer.Option(min=1, help="CPU threads for every variant")] = 1,
    repeats: Annotated[int, typer.Option(min=3, help="timed calls per variant and batch size")] = 30,
    split: Annotated[str, typer.Option(help="accuracy on: test or val")] = "test",
    channels_last: Annotated[Optional[bool], typer.Option("--channels-last/--contiguous", show_default="auto: channels-last when it runs the first run's model faster (4-D inputs, timed here)",
                                                          help="memory format of PyTorch variants")] = None,
    reference: Annotated[str, typer.Option(help="fp32 forms of the first run's model to time alongside (eager, channels_last, compile, onnxruntime), comma-separated, or none; compile and onnxruntime take seconds to minutes to build")] = "eager,channels_last",
    out: Annotated[Optional[Path], typer.Option(help="write report.md / report.html / measurements.json here")] = None,
) -> None:
    """Measure variants side by side (interleaved, fixed threads) on the first run's data."""
    from slimforge.experiment import run_data_config
    from slimforge.deploy_forms import parse_reference
    from slimforge.measure import choose_layout
    from slimforge.measure import load_variant
    from slimforge.pipeline.stages import StageContext
    from slimforge.report import build_rows, reference_notes, write_report

    from slimforge.errors import ConfigError

    if split not in ("test", "val"):
        raise ConfigError(f"--split {split!r}: use test or val.")
    try:
        sizes = tuple(int(b) for b in batch_sizes.split(","))
    except ValueError:
        raise ConfigError(f"--batch-sizes {batch_sizes!r}: give whole numbers separated by commas, e.g. 1,32.") from None
    if not sizes or min(sizes) < 1:
        raise ConfigError(f"--batch-sizes {batch_sizes!r}: every batch size must be at least 1.")
    ctx = StageContext(run_data_config(runs[0]).model_copy(update={"augment": False}))
    forms = parse_reference(reference)
    variants = [load_variant(r, r.name, threads=threads) for r in runs]
    if channels_last is None:  # auto: the faster layout for the first run's model, at the largest batch size
        base = variants[0].module
        channels_last = base is not None and choose_layout(base, _batch(ctx.example(), max(sizes)), threads) == "channels_last"
    if channels_last:
        variants = [load_variant(r, r.name, threads=threads, channels_last=True) for r in runs]
    print(f"PyTorch variants run {'channels-last' if channels_last else 'contiguous'}")
    measurement, extra = ctx.measure(variants, sizes, split=split, threads=threads, repeats=repeats, reference=forms)
    for row in [r for bs in sizes for r in build_rows(measurement, batch_size=bs)]:  # every batch size asked
        versus = (f"  vs eager {row['speedup_vs_eager']:.2f}x" if "speedup_vs_eager" in row else "") + (
            f"  vs best fp32 ({row['best_fp32_form']}) {row['speedup_vs_best_fp32']:.2f}x" if "best_fp32_form" in row else "")
        print(f"{row['variant']:32s} {split} {_quality(row)}  "
              f"p50 {row['latency_ms']:.2f} ms (batch {row['batch_size']}, {threads} thread(s))  speed-up {row['speedup']:.2f}x{versus}")
    for line in reference_notes(measurement):
        print(line)
    if out is not None:
        from slimforge.files import check_not_input

        check_not_input(out, runs)
        paths = write_report(out, measurement, title="slimforge measure", split=split, extra=extra)
        print(f"HTML report: {paths['html'].resolve()}")


def _quality(row: dict) -> str:
    if row["metric"] == "accuracy":
        return f"acc {100 * row['quality']:.2f}%  Δ {row['delta_points']:+.2f} pts"
    return f"{row['metric']} {row['quality']:.4f}  Δ {row['delta_points']:+.2f}%"


def _batch(example, batch_size: int):
    from slimforge.measure import _batch_of

    return _batch_of(example, batch_size)
