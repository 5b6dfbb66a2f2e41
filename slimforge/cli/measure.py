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
    channels_last: Annotated[bool, typer.Option("--channels-last", help="run PyTorch CNNs in channels-last memory format (faster on CPUs)")] = False,
    out: Annotated[Optional[Path], typer.Option(help="write report.md / report.html / measurements.json here")] = None,
) -> None:
    """Measure variants side by side (interleaved, fixed threads) on the first run's data."""
    from slimforge.experiment import run_data_config
    from slimforge.measure import load_variant, measure_variants
    from slimforge.pipeline.stages import StageContext
    from slimforge.report import build_rows, write_report
    from slimforge.train.evaluate import EVAL_BATCH_SIZE

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
    dataset = getattr(ctx.data, split)
    step = EVAL_BATCH_SIZE
    batches = [tuple(dataset.__getitems__(list(range(i, min(i + step, len(dataset)))))[:2]) for i in range(0, len(dataset), step)]
    variants = [load_variant(r, r.name, threads=threads, channels_last=channels_last) for r in runs]
    measurement = measure_variants(variants, ctx.example(), sizes, eval_batches=batches, num_classes=ctx.data.info.num_classes,
                                   threads=threads, repeats=repeats)
    for row in build_rows(measurement):
        print(f"{row['variant']:32s} {split} acc {100 * row['accuracy']:.2f}%  Δ {row['delta_points']:+.2f} pts  "
              f"p50 {row['latency_ms']:.2f} ms (batch {row['batch_size']}, {threads} thread(s))  speed-up {row['speedup']:.2f}x")
    if out is not None:
        from slimforge.files import check_not_input

        check_not_input(out, runs)
        paths = write_report(out, measurement, title="slimforge measure")
        print(f"HTML report: {paths['html'].resolve()}")
