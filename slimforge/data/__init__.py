"""Dataset registry: ``load_dataset(name, **options) -> DataSplits`` and ``list_datasets()``.

Every dataset comes as train / validation / test splits. The validation split is carved
from train with a fixed seed (``val_fraction``, ``split_seed``) and the carve is recorded in
``DataSplits.split`` so a run folder says exactly which samples it validated on.

Your own data: :func:`from_arrays` (numpy or torch arrays), :func:`from_dataset` (a torch
Dataset), and the ``arrays`` (an .npz), ``table`` (a CSV) and ``image-folder`` datasets, named
with their files as ``"arrays:FILE.npz"`` (docs/own-data.md). ``DataSplits.preprocess`` says how
raw inputs become the inputs the splits yield; training records it in the model folder.

Image datasets that fit in memory are held as one tensor and batched by indexing
(``TensorImageDataset``); augmentation runs on whole batches. That is several times faster
than per-sample PIL transforms on a 2-core machine and is deterministic given the seed.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable
from pathlib import Path, PurePath
from typing import Any

from slimforge._registry import Registry
from slimforge.data.core import DataSplits, DatasetInfo, TensorImageDataset, carve_validation
from slimforge.errors import ConfigError, did_you_mean

DatasetFactory = Callable[..., DataSplits]
# Datasets of domain packages that register themselves when first used.
BUILTIN_DATASETS = {
    **{name: "slimforge.recsys.data" for name in ("movielens", "ratings", "synthetic-ratings")},
    **{name: "slimforge.text.data" for name in ("sst2", "sms-spam", "text-csv", "text-tsv", "text-lines", "jsonl", "hf-disk")},
}
DATASETS: Registry[DatasetFactory] = Registry("dataset", builtins=BUILTIN_DATASETS)
register_dataset = DATASETS.register


def list_datasets() -> list[str]:
    return DATASETS.names()


def load_dataset(name: str, **options: Any) -> DataSplits:
    """Load dataset ``name``. Common options: ``root`` (where the files are),
    ``val_fraction`` (default 0.1), ``split_seed`` (default 0), ``augment`` (default True
    where it makes sense). ``name`` may carry its root: ``"arrays:digits.npz"``,
    ``"table:iris.csv"``, ``"image-folder:photos/"``."""
    name, options = split_data_name(name, options)
    factory = DATASETS.get(name)
    _check_options(name, factory, options)
    splits = factory(**options)
    splits.source = {"name": name, **_effective_options(factory, options)}  # the outermost call, when one dataset wraps another
    return splits


def split_data_name(name: str, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """``"arrays:FILE"`` -> ``("arrays", {**options, "root": FILE})``: a dataset name with its files
    after a colon, as ``--data arrays:FILE.npz`` gives it. Other names are returned as they are."""
    prefix, colon, root = name.partition(":")
    if not colon or not root or prefix not in DATASETS:
        return name, options
    if options.get("root") not in (None, root):
        raise ConfigError(f"--data {name} names the files ({root}) and so does root={options['root']!r}; give them once.")
    return prefix, {**options, "root": root}


def _check_options(name: str, factory: DatasetFactory, options: dict[str, Any]) -> None:
    """Refuse an option ``factory`` does not take, or a value whose type its annotation rules out
    (int, float, bool, str, or None where optional): a :class:`ConfigError` naming the option,
    rather than a TypeError from inside the loader or a silently wrong value."""
    try:
        parameters = inspect.signature(factory).parameters
        hints = typing.get_type_hints(factory)
    except (TypeError, ValueError, NameError):  # no inspectable signature: the factory checks for itself
        return
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        takes = [k for k, p in parameters.items() if p.kind is not inspect.Parameter.VAR_POSITIONAL]
        for key in options:
            if key not in parameters:
                raise ConfigError(f"Unknown option {key!r} for dataset {name!r}.{did_you_mean(key, takes)} It takes: {', '.join(takes)}.")
    for key, value in options.items():
        accepted = _plain_types(hints.get(key))
        if accepted is not None and not any(_is_instance(value, kind) for kind in accepted):
            wanted = " or ".join(_TYPE_NAMES[k] for k in accepted)
            raise ConfigError(f"The dataset {name!r} option {key!r} must be {wanted}, not {value!r}.")


_TYPE_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string", type(None): "null"}


def _plain_types(annotation: Any) -> tuple[type, ...] | None:
    """The plain types an annotation allows (``int``, ``str | None``, ...), or None for anything richer."""
    kinds = typing.get_args(annotation) if typing.get_origin(annotation) in (typing.Union, types.UnionType) else (annotation,)
    return tuple(kinds) if kinds and all(k in _TYPE_NAMES for k in kinds) else None


def _is_instance(value: Any, kind: type) -> bool:
    if kind is bool or isinstance(value, bool):
        return kind is bool and isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float))
    if kind is str:
        return isinstance(value, (str, PurePath))  # a path option may be given as a Path
    return isinstance(value, kind)


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
from slimforge.data.arrays import from_arrays, from_dataset  # noqa: E402  (registers arrays and table)

__all__ = [
    "DATASETS",
    "DataSplits",
    "DatasetInfo",
    "TensorImageDataset",
    "carve_validation",
    "from_arrays",
    "from_dataset",
    "list_datasets",
    "load_dataset",
    "register_dataset",
]
