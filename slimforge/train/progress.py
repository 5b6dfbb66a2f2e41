"""Progress display: a rich bar on a terminal, one plain line per epoch otherwise."""

from __future__ import annotations

import sys
from typing import Any


class Progress:
    """Shows training progress on the main process; silent elsewhere or with ``quiet``."""

    def __init__(self, enabled: bool, quiet: bool, total_epochs: int) -> None:
        self.enabled = enabled and not quiet
        self.total_epochs = total_epochs
        self._bar: Any = None
        self._task: Any = None
        if self.enabled and sys.stdout.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                TextColumn("[bold]epoch {task.fields[epoch]}/{task.fields[epochs]}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]:.4f}"),
                TimeRemainingColumn(),
                transient=True,
            )
            self._bar.start()

    def start_epoch(self, epoch: int, steps: int) -> None:
        if self._bar is not None:
            if self._task is not None:
                self._bar.remove_task(self._task)
            self._task = self._bar.add_task("train", total=steps, epoch=epoch + 1, epochs=self.total_epochs, loss=float("nan"))

    def advance(self, steps: int, loss: float) -> None:
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, advance=steps, loss=loss)

    def end_epoch(self, metrics: dict[str, Any]) -> None:
        if not self.enabled:
            return
        parts = [f"epoch {metrics['epoch']}/{self.total_epochs}"]
        loss_parts = [k for k in metrics if k.startswith("train_") and k.endswith("_loss") and k != "train_loss"]  # the objective's
        for key in ("train_loss", *loss_parts, "train_accuracy", *(k for k in metrics if k.startswith("val_")), "lr"):
            if metrics.get(key) is not None:
                parts.append(f"{key} {metrics[key]:.4g}")
        parts.append(f"{metrics['seconds']:.1f}s ({metrics['samples_per_s']:.0f} samples/s)")
        line = "  ".join(parts)
        if self._bar is not None:
            self._bar.console.print(line)
        else:
            print(line, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
