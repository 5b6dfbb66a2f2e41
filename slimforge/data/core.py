"""Split containers and the in-memory image dataset with batch-level augmentation."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from slimforge.errors import ConfigError, DataError


@dataclass(frozen=True)
class DatasetInfo:
    """name; num_classes; input_shape: (channels, height, width); classes: label names;
    metric: the headline figure of its evaluation (higher is better), which stages compare."""

    name: str
    num_classes: int
    input_shape: tuple[int, ...]
    classes: tuple[str, ...] = ()
    task: str = "image-classification"
    metric: str = "accuracy"

    def __post_init__(self) -> None:
        if isinstance(self.num_classes, bool) or not isinstance(self.num_classes, int) or self.num_classes < 2:
            raise DataError(f"Dataset {self.name!r} has only {self.num_classes!r} class(es); classification needs at least 2.")
        if self.classes and len(self.classes) != self.num_classes:
            raise DataError(f"Dataset {self.name!r}: {len(self.classes)} class names for {self.num_classes} classes.")

    def model_kwargs(self) -> dict[str, Any]:
        """The data-derived keywords every model factory may take."""
        return {"num_classes": self.num_classes, "in_channels": self.input_shape[0], "input_size": list(self.input_shape[1:])}


@dataclass
class DataSplits:
    """train / val / test datasets; each item is ``(input, target, index)``.

    source: the :func:`slimforge.data.load_dataset` call that made them (``name`` and its
    options), which a trained run records so that ``slimforge quantize RUN`` & co. load the same data.
    train_defaults: training settings this data calls for (``TrainConfig`` fields: a ranking
    loss and metric to monitor, ...), used where a config does not set them.

    A val or test split with an ``evaluate(model, batch_size, ctx, device, autocast_dtype)``
    method is scored by it (ranking metrics) instead of by accuracy and cross-entropy.

    preprocess: how raw inputs become the inputs the splits yield (a
    :class:`slimforge.preprocess.PreprocessSpec`: normalisation, shapes); training records it in
    the model folder so the model takes raw data. None when the data has no such step (text ids).
    """

    train: Dataset
    val: Dataset
    test: Dataset
    info: DatasetInfo
    split: dict[str, Any] = field(default_factory=dict)
    source: dict[str, Any] | None = None
    train_defaults: dict[str, Any] = field(default_factory=dict)
    preprocess: Any = None

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.info.name,
            "num_classes": self.info.num_classes,
            "input_shape": list(self.info.input_shape),
            "sizes": {"train": len(self.train), "val": len(self.val), "test": len(self.test)},
            **self.split,
        }

    def config_section(self) -> dict[str, Any] | None:
        """``source`` in the layout of a run's ``data:`` section (``slimforge.experiment.DataConfig``);
        None when unknown or not plain data (an options value that is an object, not a name or number)."""
        if self.source is None or not _plain(self.source):
            return None
        options = dict(self.source)
        section = {"name": options.pop("name")}
        for key in ("root", "val_fraction", "split_seed", "augment"):
            if key in options and options[key] is None:  # unset (a recommender's leave-one-out has no val_fraction): DataConfig's default
                options.pop(key)
            elif key in options:
                section[key] = options.pop(key)
        return {**section, "options": options}


@dataclass
class NamedClassSplits(DataSplits):
    """Splits of the user's own data (arrays, image folders, tables), whose class names a model
    folder must keep: ``save_assets`` writes them to ``labels.json``, which ``slimforge predict`` prints."""

    @classmethod
    def of(cls, splits: DataSplits) -> NamedClassSplits:
        return cls(**{f.name: getattr(splits, f.name) for f in fields(DataSplits)})

    def save_assets(self, folder: str | Path) -> Path:
        from slimforge.files import write_json

        write_json(Path(folder) / "labels.json", {"classes": list(self.info.classes)})
        return Path(folder)


def _plain(value: Any) -> bool:
    """JSON-like: str, number, bool, None, and lists and str-keyed dicts of them."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return True
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    return False


@dataclass(frozen=True)
class Augment:
    """Random crop after zero padding by ``pad`` pixels, and optional horizontal flip."""

    pad: int = 0
    hflip: bool = False


class TensorImageDataset(Dataset):
    """Images held in memory as one tensor, normalised on the fly.

    images: (N, C, H, W) uint8 or float; labels: (N,) int64. ``__getitems__`` returns a whole
    batch ``(inputs (B, C, H, W) float32, targets (B,), indices (B,))`` with one indexing
    operation; the DataLoader uses it directly with ``collate_fn=identity_collate``.
    Augmentation draws from a generator reseeded by ``set_epoch`` so a resumed run sees the
    same crops and flips.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        augment: Augment | None = None,
        scale: float = 255.0,
        seed: int = 0,
    ) -> None:
        if images.ndim != 4 or labels.ndim != 1 or len(images) != len(labels):
            raise ValueError(f"images must be (N, C, H, W) and labels (N,); got {tuple(images.shape)} and {tuple(labels.shape)}")
        self.images = images
        self.labels = labels.long()
        self.scale = scale
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1) * scale
        self.inv_std = 1.0 / (torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1) * scale)
        self.augment = augment if augment and (augment.pad or augment.hflip) else None
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.labels)

    def set_epoch(self, epoch: int) -> None:
        self.generator.manual_seed(self.seed * 100_003 + epoch)

    def subset(self, indices: torch.Tensor, augment: Augment | None = None) -> TensorImageDataset:
        """A new dataset over ``indices`` (copies the rows; shares nothing mutable)."""
        ds = TensorImageDataset.__new__(TensorImageDataset)
        ds.__dict__.update(self.__dict__)
        ds.images, ds.labels = self.images[indices], self.labels[indices]
        ds.augment = augment
        ds.generator = torch.Generator().manual_seed(self.seed)
        return ds

    @property
    def deterministic(self) -> bool:
        """True when a sample's input never changes between epochs (teacher outputs may be cached)."""
        return self.augment is None

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x, y, i = self.__getitems__([index])
        return x[0], y[0], i[0]

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        idx = torch.as_tensor(indices, dtype=torch.long)
        x = self.images[idx].float()
        if self.augment is not None:
            x = self._augment(x)
        x = (x - self.mean) * self.inv_std
        return x, self.labels[idx], idx

    def _augment(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        if self.augment.pad:
            p = self.augment.pad
            padded = torch.nn.functional.pad(x, (p, p, p, p))
            # One crop offset per sample, taken with a single gather over the flattened padded images
            # (9x faster than 4-tensor advanced indexing on MNIST batches; the same pixels).
            dy = torch.randint(0, 2 * p + 1, (b,), generator=self.generator)
            dx = torch.randint(0, 2 * p + 1, (b,), generator=self.generator)
            rows = dy.view(b, 1, 1) + torch.arange(h).view(1, h, 1)
            cols = dx.view(b, 1, 1) + torch.arange(w).view(1, 1, w)
            flat = (rows * (w + 2 * p) + cols).view(b, 1, h * w).expand(b, x.shape[1], h * w)
            x = padded.flatten(2).gather(2, flat).view(b, x.shape[1], h, w)
        if self.augment.hflip:
            flip = torch.rand(b, generator=self.generator) < 0.5
            x = torch.where(flip.view(b, 1, 1, 1), x.flip(3), x)
        return x


def identity_collate(batch: Any) -> Any:
    return batch


def carve_validation(n: int, val_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    """Split ``range(n)`` into (train_idx, val_idx) with a fixed seed; the record says how."""
    check_option("val_fraction", val_fraction, float, low=0.0, high=1.0, high_open=True)
    check_option("split_seed", seed, int)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val = int(round(n * val_fraction))
    val_idx, train_idx = perm[:n_val].sort().values, perm[n_val:].sort().values
    digest = hashlib.sha256(val_idx.numpy().tobytes()).hexdigest()[:16]
    record = {"val_fraction": val_fraction, "split_seed": seed, "val_indices_sha256": digest}
    return train_idx, val_idx, record


def check_option(key: str, value: Any, kind: type, *, low: float | None = None, high: float | None = None,
                 low_open: bool = False, high_open: bool = False, optional: bool = False, dataset: str = "") -> Any:
    """``value`` when it is a ``kind`` (int, float or bool; an int passes as a float) within
    [low, high] (an end excluded when ``low_open``/``high_open``); a :class:`ConfigError` naming
    the dataset option ``key`` otherwise. ``optional``: None passes."""
    where = f"dataset {dataset!r} option {key!r}" if dataset else f"option {key!r}"
    if value is None and optional:
        return value
    numeric = (int, float) if kind is float else (kind,)
    if isinstance(value, bool) != (kind is bool) or not isinstance(value, numeric):
        raise ConfigError(f"The {where} must be {_KIND_NAMES[kind]}, not {value!r}.")
    if kind is float and not math.isfinite(value):
        raise ConfigError(f"The {where} must be a finite number, not {value!r}.")
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        if high is None:
            bounds = f"{'>' if low_open else '>='} {low}"
        else:
            bounds = f"in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        raise ConfigError(f"The {where} must be {bounds}, not {value!r}.")
    return value


_KIND_NAMES = {int: "an integer", float: "a number", bool: "true or false"}
