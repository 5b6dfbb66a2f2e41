"""Dataset registry: ``load_dataset(name, **options) -> DataSplits`` and ``list_datasets()``.

Every dataset comes as train / validation / test splits. The validation split is carved
from train with a fixed seed (``val_fraction``, ``split_seed``) and the carve is recorded in
``DataSplits.split`` so a run folder says exactly which samples it validated on.

Image datasets that fit in memory are held as one tensor and batched by indexing
(``TensorImageDataset``); augmentation runs on whole batches. That is several times faster
than per-sample PIL transforms on a 2-core machine and is deterministic given the seed.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path, PurePath
from typing import Any

from slimforge._registry import Registry
from slimforge.data.core import DataSplits, DatasetInfo, TensorImageDataset, carve_validation

DatasetFactory = Callable[..., DataSplits]
# Datasets of domain packages that register themselves when first used.
BUILTIN_DATASETS = {name: "slimforge.recsys.data" for name in ("movielens", "ratings", "synthetic-ratings")}
DATASETS: Registry[DatasetFactory] = Registry("dataset", builtins=BUILTIN_DATASETS)
register_dataset = DATASETS.register


def list_datasets() -> list[str]:
    return DATASETS.names()


def load_dataset(name: str, **options: Any) -> DataSplits:
    """Load dataset ``name``. Common options: ``root`` (where the files are),
    ``val_fraction`` (default 0.1), ``split_seed`` (default 0), ``augment`` (default True
    where it makes sense)."""
    factory = DATASETS.get(name)
    splits = factory(**options)
    splits.source = {"name": name, **_effective_options(factory, options)}  # the outermost call, when one dataset wraps another
    return splits


def _effective_options(factory: DatasetFactory, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` with the factory's defaults filled in (its val_fraction, split_seed, ... may not
    be the common ones) and paths made absolute, so that a run's record reloads the same data."""
    try:
        signature = inspect.signature(factory)
        bound = signature.bind(**options)
    except (TypeError, ValueError):  # no inspectable signature: what the caller passed
        effective = dict(options)
    else:
        bound.apply_defaults()
        effective = {}
        for key, value in bound.arguments.items():
            if signature.parameters[key].kind is inspect.Parameter.VAR_KEYWORD:
                effective.update(value)
            else:
                effective[key] = value
    return {k: _absolute(k, v) for k, v in effective.items()}


_PATH_OPTIONS = ("root", "path", "train", "val", "test")  # the common options that name files or folders


def _absolute(key: str, value: Any) -> Any:
    """A Path, or an existing relative file or folder under one of _PATH_OPTIONS, as an absolute string."""
    if isinstance(value, PurePath) or (key in _PATH_OPTIONS and isinstance(value, str) and value and Path(value).exists()):
        return str(Path(value).resolve())
    return value


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
