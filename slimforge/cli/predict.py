"""`slimforge predict RUN ...`: the label and class probabilities of texts, image files or arrays."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from slimforge.cli import app, loads_folders


@app.command("predict")
@loads_folders
def predict_cmd(
    run: Annotated[Path, typer.Argument(help="run folder of the model (fp32 or int8)")],
    inputs: Annotated[list[str], typer.Argument(help="texts (a text model), or image files (.png, .jpg ...) and arrays (.npy, .npz)")],
) -> None:
    """Classify texts with a text model, or image files and arrays (one sample or a batch) with an
    image model; prints the label and the most probable classes. Inputs are raw, as stored: the
    model's recorded preprocessing normalises them."""
    from slimforge.predict import ARRAY_SUFFIXES, IMAGE_SUFFIXES, predict_files

    files = [i for i in inputs if Path(i).suffix.lower() in (*IMAGE_SUFFIXES, *ARRAY_SUFFIXES)]
    if not files and not (run / "tokenizer").is_dir() and _records_preprocess(run):
        from slimforge.errors import DataError

        raise DataError(f"{run} holds an image/array model: pass image files ({', '.join(IMAGE_SUFFIXES)}) or arrays (.npy, .npz), not {inputs[0]!r}.")
    if (run / "tokenizer").is_dir() or not files:  # a text model, or texts: the text route says what it needs
        _predict_texts(run, inputs)
        return

    for p in predict_files(run, inputs):
        probs = "  ".join(f"{name}={prob:.4f}" for name, prob in p.top)
        print(f"{p.label}\t{probs}\t{p.source}")


def _predict_texts(run: Path, texts: list[str]) -> None:
    from slimforge.text.predict import predict

    for p in predict(run, texts):
        probs = "  ".join(f"{name}={prob:.4f}" for name, prob in p.probabilities.items())
        note = "  (truncated)" if p.truncated else ""
        print(f"{p.label}\t{probs}\t{p.text}{note}")


def _records_preprocess(run: Path) -> bool:
    """Whether ``run`` (fp32 or int8) records input preprocessing, as models of images and arrays do."""
    from slimforge.artifacts import read_json_quiet

    source = read_json_quiet(run / "model.json") or read_json_quiet(run / "quantized.json").get("source_model") or {}
    return isinstance(source, dict) and source.get("preprocess") is not None
