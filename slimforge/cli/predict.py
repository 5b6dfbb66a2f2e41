"""`slimforge predict RUN "some text" ...`: label and class probabilities for each text."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from slimforge.cli import app, loads_folders


@app.command("predict")
@loads_folders
def predict_cmd(
    run: Annotated[Path, typer.Argument(help="run folder of a text model (with tokenizer/)")],
    texts: Annotated[list[str], typer.Argument(help="texts to classify")],
) -> None:
    """Classify texts with a text model's run folder; prints the label and each class's probability."""
    from slimforge.text.predict import predict

    for p in predict(run, texts):
        probs = "  ".join(f"{name}={prob:.4f}" for name, prob in p.probabilities.items())
        note = "  (truncated)" if p.truncated else ""
        print(f"{p.label}\t{probs}\t{p.text}{note}")
