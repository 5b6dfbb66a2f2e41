"""Your own data: numpy arrays, a torch Dataset, an ``.npz`` file or a CSV table as train / val / test splits.

    splits = slimforge.data.from_arrays(x, y, input_shape=(1, 28, 28))   # x (N, 784) uint8, y (N,) ints
    splits = slimforge.data.from_dataset(my_torch_dataset)
    slimforge train --data arrays:digits.npz --model cnn                 # keys x, y or x_train, y_train[, x_test, y_test]
    slimforge train --data table:iris.csv --model mlp                    # numeric columns + a "label" column

Every route ends in the same :class:`DataSplits` the built-in datasets give (validation carved
from train with a fixed seed, normalisation fitted on the train part) and records how raw inputs
become the model's inputs (``splits.preprocess``), so the trained model takes the arrays as they are.
Data that does not fit is one :class:`DataError` naming the array, its shape and what was expected.
"""

from __future__ import annotations

import math
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from slimforge.data import register_dataset
from slimforge.data.core import Augment, DataSplits, NamedClassSplits, carve_validation, check_option
from slimforge.errors import DataError

TEST_SPLIT_SEED = 12345  # the seed of a test set carved from the only arrays given (as `digits` does)
MAX_DIMS = 4  # (N, C, H, W)


def from_arrays(
    x: Any,
    y: Any,
    *,
    input_shape: Sequence[int] | str | None = None,
    classes: Sequence[str] | None = None,
    test: tuple[Any, Any] | None = None,
    val_fraction: float = 0.1,
    split_seed: int = 0,
    test_fraction: float = 0.2,
    augment: bool = False,
    name: str = "arrays",
    source: str = "",
) -> DataSplits:
    """Train / val / test splits from arrays held in memory.

    x: (N, *sample) numbers, numpy or torch: images (N, H, W) grey, (N, C, H, W), (N, H, W, C),
    or flat rows (N, F) with ``input_shape`` (C, H, W) saying how F values form an image
    (a square F is taken as one grey square image without it; other flat rows are F features,
    shape (F, 1, 1), for an ``mlp``). uint8 pixels are scaled by 1/255 before normalisation.
    y: (N,) class labels: whole numbers 0..K-1 (K = the largest + 1, or ``len(classes)``) or
    strings (classes in sorted order unless ``classes`` gives it).
    test: (x_test, y_test) in the same layout; without it ``test_fraction`` of x is held out
    (a fixed seed). ``val_fraction`` of the rest is validation (``split_seed``).
    augment: random shifts (padding and crop) of image inputs during training; no flips.
    name, source: how the data is named in its records and in errors.
    """
    source = source or name
    tx, raw_shape, layout = _images(source, "x", x, input_shape)
    if test is not None:
        if not isinstance(test, (tuple, list)) or len(test) != 2:
            raise DataError(f"{source}: test must be a pair (x_test, y_test), not {type(test).__name__}.")
        vx, _, _ = _images(source, "x_test", test[0], layout)
        # one set of classes for both: train's labels and test's are read together
        y_all, _ = _label_array(source, "y", y, len(tx))
        y_test, _ = _label_array(source, "y_test", test[1], len(vx))
        if y_all.dtype.kind in "US" and y_test.dtype.kind not in "US" or y_test.dtype.kind in "US" and y_all.dtype.kind not in "US":
            raise DataError(f"{source}: y holds {y_all.dtype} labels but y_test {y_test.dtype}; give both as class indices or both as names.")
        both, names = _labels(source, "y and y_test", np.concatenate([y_all, y_test]), len(y_all) + len(y_test), classes)
        labels, vy = both[: len(y_all)], both[len(y_all):]
    else:
        labels, names = _labels(source, "y", y, len(tx), classes)
        check_option("test_fraction", test_fraction, float, low=0.0, high=1.0, low_open=True, high_open=True, dataset=name)
        keep, test_idx, _ = carve_validation(len(labels), test_fraction, seed=TEST_SPLIT_SEED)
        if not len(test_idx) or not len(keep):
            raise DataError(f"{source}: {len(labels)} samples are too few to hold out test_fraction={test_fraction}; pass more data or test=(x_test, y_test).")
        tx, vx, labels, vy = tx[keep], tx[test_idx], labels[keep], labels[test_idx]
    scale = 255.0 if tx.dtype == torch.uint8 else 1.0
    height, width = tx.shape[2], tx.shape[3]
    aug = Augment(pad=max(1, min(height, width) // 8)) if augment and min(height, width) > 1 else None
    from slimforge.data.vision import _splits

    splits = _splits(name, tx, labels, vx, vy, names, aug, val_fraction, split_seed, scale=scale, source=source,
                     raw=(raw_shape, _dtype_name(x)))
    if test is None:
        splits.split["test_fraction"] = test_fraction
    return NamedClassSplits.of(splits)  # the model folder keeps the class names (labels.json)


def from_dataset(dataset: Any, *, test: Any = None, **options: Any) -> DataSplits:
    """:func:`from_arrays` over a map-style torch Dataset (or any sequence) of ``(input, label)``
    items; ``test``: a second one. Inputs may be tensors, numpy arrays or PIL images; every item
    is read once and held in memory. ``options``: those of :func:`from_arrays`."""
    x, y = _stack(dataset, "dataset")
    pair = _stack(test, "test") if test is not None else None
    return from_arrays(x, y, test=pair, **{"name": "dataset", **options})


@register_dataset("arrays", help="your numpy arrays: root=FILE.npz with x, y (or x_train, y_train[, x_test, y_test]); input_shape=1,28,28 for flat rows")
def arrays(
    root: str | None = None,
    input_shape: str | None = None,
    classes: str | None = None,
    val_fraction: float = 0.1,
    split_seed: int = 0,
    augment: bool = False,
    test_fraction: float = 0.2,
) -> DataSplits:
    """``root``: an ``.npz`` (``np.savez``) holding ``x`` and ``y``, or ``x_train``, ``y_train`` and
    optionally ``x_test``, ``y_test``. input_shape: "C,H,W" for flat rows; classes: "name,name,..."."""
    if not root:
        raise DataError("The arrays dataset needs the .npz file: --data arrays:FILE.npz (or --data-root FILE.npz, data.root=FILE.npz).")
    path = Path(root)
    if not path.is_file():
        raise DataError(f"{path}: no such file; the arrays dataset reads an .npz written by numpy.savez(path, x=..., y=...).")
    try:
        with np.load(path, allow_pickle=False) as z:
            found = {k: z[k] for k in z.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: not a readable .npz of numeric arrays ({type(exc).__name__}: {exc}); object arrays are refused (they need pickle).") from None
    keys = ("x_train", "y_train") if "x_train" in found else ("x", "y")
    missing = [k for k in keys if k not in found]
    if missing:
        raise DataError(f"{path}: has keys {sorted(found)}; the arrays dataset needs 'x' and 'y', or 'x_train' and 'y_train' (with optional 'x_test', 'y_test').")
    test = None
    if "x_test" in found or "y_test" in found:
        if not ("x_test" in found and "y_test" in found):
            raise DataError(f"{path}: has {'x_test' if 'x_test' in found else 'y_test'} without {'y_test' if 'x_test' in found else 'x_test'}; give both or neither.")
        test = (found["x_test"], found["y_test"])
    names = [c.strip() for c in classes.split(",")] if isinstance(classes, str) else classes
    return from_arrays(found[keys[0]], found[keys[1]], input_shape=input_shape, classes=names, test=test, val_fraction=val_fraction,
                       split_seed=split_seed, augment=augment, test_fraction=test_fraction, name="arrays", source=str(path))


@register_dataset("table", help="a CSV table: numeric feature columns and a label column (root=FILE.csv; label=COLUMN, default 'label'); for mlp models")
def table(
    root: str | None = None,
    label: str = "label",
    test: str | None = None,
    classes: str | None = None,
    val_fraction: float = 0.1,
    split_seed: int = 0,
    test_fraction: float = 0.2,
    augment: bool = False,
) -> DataSplits:
    """``root``: a CSV file with a header row; every column but ``label`` is a numeric feature.
    Features are standardised per column (training mean and std); the model sees (F, 1, 1) inputs,
    takes raw rows (N, F). ``test``: a second CSV with the same columns (else ``test_fraction`` held out)."""
    if augment:
        raise DataError("The table dataset has no augmentation (rows of features cannot be shifted like images); drop augment=true.")
    if not root:
        raise DataError("The table dataset needs the CSV file: --data table:FILE.csv (or data.root=FILE.csv).")
    x, y, columns = _read_csv(Path(root), label)
    pair = None
    if test:
        tx, ty, test_columns = _read_csv(Path(test), label)
        if test_columns != columns:
            raise DataError(f"{test}: its feature columns {test_columns} are not {root}'s {columns}.")
        pair = (tx, ty)
    names = [c.strip() for c in classes.split(",")] if isinstance(classes, str) else None
    splits = from_arrays(x, y, input_shape=(x.shape[1], 1, 1), classes=names, test=pair, val_fraction=val_fraction,
                         split_seed=split_seed, test_fraction=test_fraction, name="table", source=str(root))
    splits.split["columns"] = columns
    return splits


# ---------------------------------------------------------------- helpers


def _images(source: str, key: str, x: Any, input_shape: Sequence[int] | str | None) -> tuple[torch.Tensor, tuple[int, ...], tuple[int, ...]]:
    """``x`` as (N, C, H, W) (uint8 kept, other numbers float32), its per-sample shape as given, and the (C, H, W) used."""
    array = _numeric(source, key, x)
    if array.ndim < 2 or array.ndim > MAX_DIMS:
        raise DataError(f"{source}: {key} has shape {list(array.shape)}; expected (N, features), (N, H, W), (N, C, H, W) or (N, H, W, C).")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        bad = int(np.flatnonzero(~np.isfinite(array.reshape(len(array), -1)).all(axis=1))[0])
        raise DataError(f"{source}: {key} holds NaN or infinite values (first in sample {bad}); clean or drop those samples.")
    sample = tuple(array.shape[1:])
    shape = _shape(source, input_shape) if input_shape is not None else _guess_shape(source, key, sample)
    if math.prod(sample) != math.prod(shape):
        raise DataError(f"{source}: {key} samples have shape {list(sample)} ({math.prod(sample)} values), which does not fit "
                        f"input_shape {list(shape)} ({math.prod(shape)} values).")
    c, h, w = shape
    if len(sample) == 3 and sample == (h, w, c) and sample != shape:
        array = np.moveaxis(array, -1, 1)  # channel-last images, as PIL and most image arrays are
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    tensor = tensor if tensor.dtype == torch.uint8 else tensor.float()
    return tensor.reshape(len(tensor), c, h, w), sample, shape


def _guess_shape(source: str, key: str, sample: tuple[int, ...]) -> tuple[int, int, int]:
    """(C, H, W) for samples of shape ``sample`` when no input_shape is given."""
    if len(sample) == 1:
        side = math.isqrt(sample[0])
        return (1, side, side) if side * side == sample[0] and side > 1 else (sample[0], 1, 1)  # a square image, or features
    if len(sample) == 2:
        return (1, *sample)
    if sample[0] in (1, 2, 3, 4):
        return sample
    if sample[-1] in (1, 2, 3, 4):
        return (sample[-1], sample[0], sample[1])
    raise DataError(f"{source}: {key} samples have shape {list(sample)}: neither (C, H, W) nor (H, W, C) with 1-4 channels; "
                    "pass input_shape=C,H,W.")


def _shape(source: str, value: Sequence[int] | str) -> tuple[int, int, int]:
    """input_shape as (C, H, W): "1,28,28", "28x28", [1, 28, 28], (28, 28) or (784,)."""
    parts = value.replace("x", ",").split(",") if isinstance(value, str) else list(value)
    try:
        sizes = [int(p) for p in parts]
    except (TypeError, ValueError):
        sizes = []
    if not 1 <= len(sizes) <= 3 or any(n < 1 for n in sizes) or any(isinstance(p, (bool, float)) for p in parts):
        raise DataError(f"{source}: input_shape {value!r} is not C,H,W (e.g. 1,28,28), H,W or F positive whole numbers.")
    if len(sizes) == 1:
        return (sizes[0], 1, 1)  # F features
    return (1, *sizes) if len(sizes) == 2 else tuple(sizes)  # (H, W) is one grey channel


def _label_array(source: str, key: str, y: Any, n: int) -> tuple[np.ndarray, int]:
    """``y`` as a 1-D numpy array of ``n`` labels, or a :class:`DataError` naming its shape."""
    if isinstance(y, torch.Tensor):
        y = y.detach().cpu().numpy()
    labels = np.asarray(y)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1 or len(labels) != n:
        raise DataError(f"{source}: {key} has shape {list(labels.shape)} but there are {n} samples; expected one label per sample ({n},).")
    return labels, n


def _labels(source: str, key: str, y: Any, n: int, classes: Sequence[str] | None) -> tuple[torch.Tensor, tuple[str, ...]]:
    """``y`` as int64 class indices and the class names."""
    labels, _ = _label_array(source, key, y, n)
    if classes is not None and (isinstance(classes, str) or not all(isinstance(c, str) for c in classes)):
        raise DataError(f"{source}: classes must be a list of names, not {classes!r}.")
    if labels.dtype.kind in "US":  # text labels: indices in the order of the class names
        names = tuple(classes) if classes is not None else tuple(sorted({str(v) for v in labels}))
        lookup = {c: i for i, c in enumerate(names)}
        unknown = sorted({str(v) for v in labels} - set(lookup))
        if unknown:
            raise DataError(f"{source}: {key} holds labels {unknown[:5]} that are not among classes {list(names)}.")
        return torch.tensor([lookup[str(v)] for v in labels], dtype=torch.long), names
    if labels.dtype.kind not in "iuf":
        raise DataError(f"{source}: {key} is {labels.dtype}; labels must be whole numbers 0..K-1 or strings.")
    if labels.dtype.kind == "f" and not (np.isfinite(labels) & (labels == np.round(labels))).all():
        bad = labels[~(np.isfinite(labels) & (labels == np.round(labels)))][0]
        raise DataError(f"{source}: {key} must hold class indices (whole numbers); found {float(bad)!r}. Regression targets are not supported.")
    if len(labels) and labels.min() < 0:
        raise DataError(f"{source}: {key} holds the label {labels.min()!r}; class indices start at 0.")
    indices = torch.from_numpy(labels.astype(np.int64))
    largest = int(indices.max()) + 1 if len(indices) else 0
    names = tuple(classes) if classes is not None else tuple(str(i) for i in range(max(largest, 2)))
    if largest > len(names):
        raise DataError(f"{source}: {key} holds the label {largest - 1}, but classes names only {len(names)} classes.")
    return indices, names


def _numeric(source: str, key: str, x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    try:
        array = np.asarray(x)
    except (ValueError, TypeError) as exc:
        raise DataError(f"{source}: {key} is not an array of numbers ({exc}); samples of different shapes?") from None
    if array.dtype.kind not in "iuf":
        raise DataError(f"{source}: {key} is {array.dtype}; expected numbers (uint8 pixels or floats).")
    if not len(array):
        raise DataError(f"{source}: {key} holds no samples.")
    return array


def _dtype_name(x: Any) -> str:
    return str(x.dtype).removeprefix("torch.") if hasattr(x, "dtype") else str(np.asarray(x).dtype)


def _stack(dataset: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Every ``(input, label)`` item of ``dataset`` stacked into two arrays."""
    try:
        n = len(dataset)
    except TypeError:
        raise DataError(f"from_dataset: the {what} has no len(); pass a map-style Dataset or a list of (input, label) pairs.") from None
    inputs, labels = [], []
    for i in range(n):
        item = dataset[i]
        if not isinstance(item, (tuple, list)) or len(item) < 2:
            raise DataError(f"from_dataset: {what} item {i} is {type(item).__name__}; expected (input, label).")
        x, y = item[0], item[1]
        inputs.append(x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x))
        labels.append(y.item() if isinstance(y, torch.Tensor) else y)
    if not inputs:
        raise DataError(f"from_dataset: the {what} is empty.")
    shapes = {a.shape for a in inputs}
    if len(shapes) != 1:
        raise DataError(f"from_dataset: {what} inputs have different shapes {sorted(shapes)[:3]}; resize them to one size first.")
    return np.stack(inputs), np.asarray(labels)


def _read_csv(path: Path, label: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(features (N, F) float32, labels (N,), feature column names) of a CSV with a header row."""
    import csv

    if not path.is_file():
        raise DataError(f"{path}: no such file; the table dataset reads a CSV with a header row.")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: not a readable UTF-8 CSV file ({exc}).") from None
    if len(rows) < 2:
        raise DataError(f"{path}: needs a header row and at least one data row.")
    header = [h.strip() for h in rows[0]]
    if label not in header:
        raise DataError(f"{path}: no label column {label!r} (columns: {header}); name it with label=COLUMN.")
    at = header.index(label)
    columns = [h for i, h in enumerate(header) if i != at]
    features, labels = [], []
    for number, row in enumerate(rows[1:], 2):
        if not row:
            continue
        if len(row) != len(header):
            raise DataError(f"{path}, line {number}: {len(row)} fields, the header has {len(header)}.")
        try:
            features.append([float(v) for i, v in enumerate(row) if i != at])
        except ValueError:
            bad = next(h for i, (h, v) in enumerate(zip(header, row)) if i != at and not _is_number(v))
            raise DataError(f"{path}, line {number}: column {bad!r} is {row[header.index(bad)]!r}, not a number; features must be numeric.") from None
        labels.append(row[at].strip())
    y = np.asarray(labels)
    if all(_is_whole(v) for v in labels):
        y = y.astype(np.float64).astype(np.int64)
    return np.asarray(features, dtype=np.float32), y, columns


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _is_whole(text: str) -> bool:
    return _is_number(text) and float(text).is_integer()
