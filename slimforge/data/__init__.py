"""Dataset registry: ``load_dataset(name, **options) -> DataSplits`` and ``list_datasets()``.

Every dataset comes as train / validation / test splits. The validation split is carved
from train with a fixed seed (``val_fraction``, ``split_seed``) and the carve is recorded in
``DataSplits.split`` so a run folder says exactly which samples it validated on.

Image datasets that fit in memory are held as one tensor and batched by indexing
(``TensorImageDataset``); augmentation runs on whole batches. That is several times faster
than per-sample PIL transforms on a 2-core machine and is deterministic given the seed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from slimforge._registry import Registry
from slimforge.data.core import DataSplits, DatasetInfo, TensorImageDataset, carve_validation

DatasetFactory = Callable[..., DataSplits]
DATASETS: Registry[DatasetFactory] = Registry("dataset")
register_dataset = DATASETS.register


def list_datasets() -> list[str]:
    return DATASETS.names()


def load_dataset(name: str, **options: Any) -> DataSplits:
    """Load dataset ``name``. Common options: ``root`` (where the files are),
    ``val_fraction`` (default 0.1), ``split_seed`` (default 0), ``augment`` (default True
    where it makes sense)."""
    splits = DATASETS.get(name)(**options)
    if splits.source is None:
        splits.source = {"name": name, **options}
    return splits


from slimforge.data import vision  # noqa: E402,F401  (registers the image datasets)
from slimforge.text import data as _text_data  # noqa: E402,F401,I001  (registers the text datasets)

__all__ = [
    "DATASETS",
    "DataSplits",
    "DatasetInfo",
    "TensorImageDataset",
    "carve_validation",
    "list_datasets",
    "load_dataset",
    "register_dataset",
]
