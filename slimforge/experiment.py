"""A training run described by one config: data + model + train, as the CLI and recipes use it.

``run_training(RunConfig(...), out)`` is what ``slimforge train`` calls; Python users can call
it too, or compose ``load_dataset``, ``create_model`` and ``train`` themselves.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from slimforge import artifacts, loading
from slimforge.config import Frozen, read_yaml
from slimforge.data import DataSplits, load_dataset
from slimforge.errors import ArtifactError, ConfigError, DataError
from slimforge.models import create_model
from slimforge.train import TrainConfig, TrainResult, evaluate, seed_everything, train


class DataConfig(Frozen):
    name: str = Field("digits", description="dataset registry name (slimforge datasets)")
    root: str | None = Field(None, description="where the dataset's files are, when not the default place")
    val_fraction: float = Field(0.1, ge=0, lt=1)
    split_seed: int = 0
    augment: bool | None = Field(None, description="None = the dataset's default")
    options: dict[str, Any] = Field(default_factory=dict, description="dataset-specific options (text: tokenizer, max_length, text_column, ...)")

    @model_validator(mode="before")
    @classmethod
    def _absolute_root(cls, data: Any) -> Any:
        """``name: arrays:FILE`` becomes name ``arrays`` and root ``FILE``; a relative root that exists
        is stored absolute, so the run's record loads the same files from any folder."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        name = data.get("name")
        if isinstance(name, str) and ":" in name:
            from slimforge.data import split_data_name

            name, options = split_data_name(name, {"root": data["root"]} if data.get("root") is not None else {})
            data.update(name=name, **options)
        root = data.get("root")
        if isinstance(root, str) and root and not Path(root).is_absolute() and Path(root).exists():
            data["root"] = str(Path(root).resolve())
        return data

    def load(self, run: str | Path | None = None) -> DataSplits:
        """The splits; with ``run``, data assets saved in that run folder (a text tokenizer) are used."""
        options: dict[str, Any] = {"val_fraction": self.val_fraction, "split_seed": self.split_seed, **self.options}
        if self.root is not None:
            options["root"] = self.root
        if self.augment is not None:
            options["augment"] = self.augment
        if run is not None and (Path(run) / "tokenizer").is_dir() and _takes_option(self.name, "tokenizer"):
            options["tokenizer"] = str(Path(run) / "tokenizer")
        return load_dataset(self.name, **options)


def _takes_option(dataset: str, key: str) -> bool:
    """Whether dataset ``dataset``'s loader accepts option ``key`` (by name or through ``**options``)."""
    import inspect

    from slimforge.data import DATASETS

    if dataset not in DATASETS:
        return True  # load_dataset names the unknown dataset
    parameters = inspect.signature(DATASETS.get(dataset)).parameters
    return key in parameters or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())


class ModelConfig(Frozen):
    name: str = Field("cnn", description="registry name, torchvision:<name> or module:function")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="architecture keywords (width=, depth=, ...)")


class RunConfig(Frozen):
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()


def run_training(cfg: RunConfig, out: str | Path, resume: bool = False) -> TrainResult:
    """Load the data, build the model (seeded), train, and write the run folder ``out``."""
    data = cfg.data.load()
    check_model_fits_data(cfg.model.kwargs, data)
    cfg = cfg.model_copy(update={"train": cfg.train.with_defaults(data.train_defaults)})  # recorded as resolved
    seed_everything(cfg.train.seed)
    model = create_model(cfg.model.name, **{**data.info.model_kwargs(), **cfg.model.kwargs})
    return train(model, data, cfg.train, out, resume=resume, record=cfg.model_dump(mode="json"))


# model.kwargs a run may set itself, and how each must relate to the value the data gives.
_DATA_KWARGS = {"num_classes": "==", "in_channels": "==", "input_size": "==", "pad_id": "==", "vocab_size": ">=", "max_length": ">="}


def check_model_fits_data(kwargs: dict[str, Any], data: DataSplits) -> None:
    """Refuse ``model.kwargs`` that contradict the data (a ``num_classes`` other than the
    dataset's, a vocabulary smaller than its tokenizer's, ...): the model would fail deep inside
    training or, worse, train with outputs no label reaches."""
    for key, value in data.info.model_kwargs().items():
        if key not in kwargs:
            continue
        given, rule = kwargs[key], _DATA_KWARGS.get(key, "==")
        same_kind = isinstance(given, type(value)) and not isinstance(given, bool)
        fits = same_kind and (given == value if rule == "==" else given >= value)
        if not fits:
            wanted = f"{value!r}" if rule == "==" else f"at least {value!r}"
            raise ConfigError(
                f"model.kwargs.{key}={given!r}, but dataset {data.info.name!r} needs {wanted}; drop the key "
                "(slimforge sets it from the data) or make it match."
            )


def run_data_config(run: str | Path) -> DataConfig:
    """The data section a run folder was trained with (the default dataset, with a warning, when it records none)."""
    path = Path(run) / artifacts.CONFIG_FILE
    section = (read_yaml(path).get("data") or {}) if path.is_file() else {}
    if not section:
        section = _data_from_metrics(Path(run), path)
    if not section and artifacts.artifact_kind(run) in ("model", "quantized"):  # not a run at all: loading it will say so
        warnings.warn(
            f"{run} does not record its data ({path.name} has no 'data:' section); using the default dataset "
            f"{DataConfig().name!r}. Add the section to {path}, or pass the dataset where the command takes one.",
            stacklevel=2,
        )
    return DataConfig.model_validate(section)


def run_train_section(run: str | Path) -> dict[str, Any]:
    """The ``train`` section a run folder records in its config.yaml ({} when it records none)."""
    path = Path(run) / artifacts.CONFIG_FILE
    return dict((read_yaml(path).get("train") or {}) if path.is_file() else {})


def _data_from_metrics(run: Path, config: Path) -> dict[str, Any]:
    """The data section rebuilt from what training recorded in metrics.json (name, split), when
    config.yaml lost it; {} when metrics.json says nothing usable."""
    from slimforge.data import DATASETS

    recorded = artifacts.read_json_quiet(run / artifacts.METRICS_FILE).get("data")
    name = recorded.get("name") if isinstance(recorded, dict) else None
    if not isinstance(name, str) or name not in DATASETS:
        return {}
    section = {"name": name, **{k: recorded[k] for k in ("val_fraction", "split_seed") if isinstance(recorded.get(k), (int, float))}}
    warnings.warn(f"{run}: {config.name} does not record its data; using the data its metrics.json records "
                  f"({name!r}, val_fraction {section.get('val_fraction', 'default')}).", stacklevel=3)
    return section


SPLITS = ("test", "val", "train")


def _check_modality(run: str | Path, splits: DataSplits) -> None:
    """A text model is scored on text and an image model on images; say so plainly otherwise."""
    folder = Path(run)
    spec = artifacts.read_spec(folder).kwargs if (folder / artifacts.STRUCTURE_FILE).is_file() else {}
    int8 = artifacts.read_json_quiet(folder / "quantized.json")
    if (folder / "tokenizer").is_dir() or "vocab_size" in spec or int8.get("inputs") == "token_ids":
        model_kind = "text"
    elif "in_channels" in spec or "input_size" in spec or (int8.get("inputs") == "tensor" and len(int8.get("input_shape") or []) == 3):
        model_kind = "image"
    else:
        return  # nothing recorded says which: the shape checks below still apply
    data_kind = "text" if hasattr(splits, "tokenizer") else "image"
    if model_kind != data_kind:
        raise DataError(
            f"{run} holds {'a text' if model_kind == 'text' else 'an image'} model, but dataset {splits.info.name!r} gives "
            f"{'texts' if data_kind == 'text' else 'images'}; evaluate it on {'a text' if model_kind == 'text' else 'an image'} "
            "dataset (--data)."
        )


def _recorded_input_shape(path: Path) -> list[int] | None:
    """``data.input_shape`` of a run's metrics.json (None when absent); wrong types are an :class:`ArtifactError`."""
    metrics = artifacts.read_json(path) if path.exists() else {}
    section = metrics.get("data") if isinstance(metrics, dict) else None
    if not isinstance(metrics, dict) or not isinstance(section or {}, dict):
        raise ArtifactError(f"{path}: expected an object whose 'data' is an object; the file is corrupt.")
    shape = (section or {}).get("input_shape")
    if shape is not None and not (isinstance(shape, list) and all(isinstance(n, int) and not isinstance(n, bool) for n in shape)):
        raise ArtifactError(f"{path}: 'data.input_shape' must be a list of sizes, not {shape!r}; the file is corrupt.")
    return shape


def _check_int8_inputs(run: str | Path, splits: DataSplits) -> None:
    """An int8 artifact takes the inputs it was calibrated on (quantized.json): token ids or images of one shape."""
    info = artifacts.read_json_quiet(Path(run) / "quantized.json")
    inputs, shape, text = info.get("inputs"), info.get("input_shape"), hasattr(splits, "tokenizer")
    if inputs not in ("token_ids", "tensor"):
        return  # "any": a backend that takes whatever the model does
    if (inputs == "token_ids") != text or (shape and not text and list(shape) != list(splits.info.input_shape)):
        wanted = "token ids" if inputs == "token_ids" else f"inputs of shape {shape}"
        given = "token ids" if text else f"inputs of shape {list(splits.info.input_shape)}"
        raise DataError(f"{run} is an int8 model for {wanted}, but dataset {splits.info.name!r} gives {given}; pass its dataset (--data).")


def evaluate_run(run: str | Path, data: DataConfig | None = None, split: str = "test") -> dict[str, Any]:
    """Accuracy and loss of the model in run folder ``run`` on a split of its (or other) data."""
    if split not in SPLITS:
        raise ConfigError(f"Unknown split {split!r}; use one of {', '.join(SPLITS)}.")
    model = loading.load(run)
    splits = (data or run_data_config(run)).load(run=run)
    dataset = getattr(splits, split)
    _check_modality(run, splits)
    if artifacts.artifact_kind(run) == "quantized":  # what its int8 graph was calibrated on must be what it is scored on
        _check_int8_inputs(run, splits)
    if hasattr(splits, "tokenizer"):
        from slimforge.text.predict import check_tokenizer_fits

        check_tokenizer_fits(run, model, splits.info.vocab_size, splits.info.pad_id)
    trained_on = _recorded_input_shape(Path(run) / artifacts.METRICS_FILE)
    if trained_on and list(trained_on) != list(splits.info.input_shape):
        raise DataError(
            f"{run} was trained on inputs of shape {list(trained_on)}, but {splits.info.name!r} has {list(splits.info.input_shape)}; "
            "scoring it there would mean nothing."
        )
    has_spec = (Path(run) / artifacts.STRUCTURE_FILE).is_file()  # an ONNX Runtime int8 artifact has none
    expected = artifacts.read_spec(run).kwargs.get("num_classes") if has_spec else None
    if expected is not None and expected != splits.info.num_classes:
        raise ArtifactError(f"{run} predicts {expected} classes but dataset {splits.info.name!r} has {splits.info.num_classes}.")
    return {"split": split, "dataset": splits.info.name, **evaluate(model, dataset)}
