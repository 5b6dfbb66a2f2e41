"""Predict with a run folder on image files and arrays: ``slimforge predict RUN digit.png batch.npy``.

    for p in slimforge.predict.predict_files("runs/mnist", ["seven.png", "more.npz"]):
        print(p.source, p.label, p.probability)

The model (fp32 or int8) takes the raw inputs as stored: the preprocessing its folder records
(``model.json``'s ``preprocess``) turns them into what the network was trained on.
"""

from __future__ import annotations

import logging
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from slimforge import artifacts, loading
from slimforge.errors import ArtifactError, DataError
from slimforge.preprocess import PreprocessSpec

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
ARRAY_SUFFIXES = (".npy", ".npz")
ARRAY_KEYS = ("x", "x_test", "images", "inputs")  # the array an .npz's inputs are looked up under, in order


@dataclass(frozen=True)
class Prediction:
    """source: the file (and row); label: the class name (or index); probability: its softmax;
    top: the most probable classes, best first."""

    source: str
    label: str
    probability: float
    top: tuple[tuple[str, float], ...]


def predict_files(run: str | Path, files: Sequence[str | Path], top: int = 3) -> list[Prediction]:
    """Classify every image file and every row of every ``.npy``/``.npz`` file in ``files``."""
    model, spec, classes = load_predictor(run)
    predictions: list[Prediction] = []
    for file in files:
        batch, names = read_inputs(Path(file), spec)
        with torch.no_grad():
            probs = torch.softmax(model(batch).float(), dim=1)
        for name, row in zip(names, probs):
            best = row.topk(min(top, len(row)))
            ranked = tuple((_name(classes, int(i)), round(float(p), 6)) for p, i in zip(best.values, best.indices))
            predictions.append(Prediction(name, ranked[0][0], ranked[0][1], ranked))
    return predictions


def load_predictor(run: str | Path) -> tuple[Any, PreprocessSpec | None, list[str] | None]:
    """(model taking raw numpy inputs, its preprocessing, class names or None) of a run folder."""
    from slimforge.text.predict import read_labels

    folder = Path(run)
    kind = artifacts.artifact_kind(folder)
    if kind not in ("model", "quantized"):
        raise ArtifactError(f"{folder} is not a model folder (no model.json or quantized.json).")
    model = loading.load(folder)
    pre = getattr(model, "preprocess", None)
    return model, pre.spec if pre is not None else None, read_labels(folder)


def read_inputs(path: Path, spec: PreprocessSpec | None) -> tuple[np.ndarray, list[str]]:
    """The inputs in ``path`` as one numpy batch and a name per row: an image file, or an array file
    (``.npy``; ``.npz`` with ``x``, ``x_test``, ... or one array) holding one sample or a batch."""
    if not path.is_file():
        raise DataError(f"{path}: no such file.")
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return read_image(path, spec)[None], [str(path)]
    if suffix in ARRAY_SUFFIXES:
        array = _read_array(path)
        single = spec is not None and tuple(array.shape) in _sample_shapes(spec)
        batch = array[None] if single else array
        return batch, [str(path)] if single else [f"{path}[{i}]" for i in range(len(batch))]
    raise DataError(f"{path}: predict reads images ({', '.join(IMAGE_SUFFIXES)}) and arrays (.npy, .npz); not {suffix or 'a file without a suffix'}.")


def read_image(path: Path, spec: PreprocessSpec | None) -> np.ndarray:
    """``path`` as (H, W) grey or (H, W, 3) RGB uint8, resized to the model's input size."""
    try:
        from PIL import Image
    except ImportError:
        raise DataError(f"{path}: reading images needs Pillow (pip install pillow); or pass the pixels as a .npy array.") from None
    if spec is None:
        raise ArtifactError(f"{path}: the model records no input preprocessing (model.json has no 'preprocess'), so the image size and scale are unknown; "
                            "retrain it with this slimforge or pass arrays (.npy) of its inputs.")
    from slimforge.data.vision import _read_image

    if len(spec.input_shape) != 3:
        raise DataError(f"{path}: the model takes inputs of shape {list(spec.input_shape)}, not images (C, H, W).")
    channels, height, width = spec.input_shape
    if spec.input_dtype != "uint8":
        log.warning("%s: the model was trained on %s arrays, not 8-bit pixels; an image's 0..255 values may not be on its scale.", path, spec.input_dtype)
    rgb = _read_image(path, None)  # checked: not a decompression bomb, a readable image
    image = Image.fromarray(rgb)
    if image.size != (width, height):
        image = image.resize((width, height))
    if channels == 1:
        return np.asarray(image.convert("L"), dtype=np.uint8)
    if channels != 3:
        raise DataError(f"{path}: the model takes {channels}-channel inputs; images give 1 (grey) or 3 (RGB).")
    return np.asarray(image, dtype=np.uint8)


def _read_array(path: Path) -> np.ndarray:
    try:
        if path.suffix.lower() == ".npy":
            return np.load(path, allow_pickle=False)
        with np.load(path, allow_pickle=False) as z:
            key = next((k for k in ARRAY_KEYS if k in z.files), z.files[0] if len(z.files) == 1 else None)
            if key is None:
                raise DataError(f"{path}: holds {z.files}; predict reads the array named {' or '.join(ARRAY_KEYS)}, or the only one.")
            return z[key]
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: not a readable numeric array file ({type(exc).__name__}: {exc}); object arrays are refused (they need pickle).") from None


def _sample_shapes(spec: PreprocessSpec) -> set[tuple[int, ...]]:
    shape, raw = tuple(spec.input_shape), tuple(spec.raw_shape or spec.input_shape)
    shapes = {shape, raw}
    if len(shape) == 3:
        shapes |= {(shape[1], shape[2], shape[0])} | ({shape[1:]} if shape[0] == 1 else set())
    return shapes


def _name(classes: list[str] | None, index: int) -> str:
    return classes[index] if classes and index < len(classes) else str(index)
