"""Typed configs: YAML in, ``key=value`` overrides, the resolved config saved with every output.

Configs are frozen pydantic models that forbid unknown keys, so a typo is an error that lists
the valid keys instead of a silently ignored setting.
"""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from slimforge.errors import ConfigError, did_you_mean

C = TypeVar("C", bound=BaseModel)


class Frozen(BaseModel):
    """Base for all slimforge configs: immutable, unknown keys rejected, no NaN or infinite numbers
    (``lr=.inf`` passed ``gt=0`` and only failed as a NaN loss an epoch later)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Config file {path} is a folder, not a file." if path.is_dir() else f"Config file {path} does not exist.")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(f"{path} is not UTF-8 text: line {line}, byte offset {exc.start} ({exc.reason}).") from None
    try:
        size = _expanded_size(yaml.compose(text, Loader=yaml.SafeLoader))
        if size > MAX_YAML_VALUES:
            raise ConfigError(f"{path} expands to {size} values (through YAML aliases), more than {MAX_YAML_VALUES}; refused.")
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{path} is nested too deeply to be a config.") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of keys to values, not {type(data).__name__}.")
    return data


MAX_YAML_VALUES = 1_000_000  # a config holds hundreds; aliases nested 9 deep ("billion laughs") expand to 9**9


def _expanded_size(root: yaml.Node | None) -> int:
    """How many values ``root`` holds once every alias is expanded (shared nodes counted each time used)."""
    sizes: dict[int, int] = {}

    def size(node: yaml.Node) -> int:
        if id(node) not in sizes:
            sizes[id(node)] = 0  # a node that contains itself counts once
            children = [v for pair in node.value for v in pair] if isinstance(node, yaml.MappingNode) else (
                node.value if isinstance(node, yaml.SequenceNode) else [])
            sizes[id(node)] = 1 + sum(size(child) for child in children)
        return sizes[id(node)]

    return size(root) if root is not None else 0


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"train.lr=0.1"`` -> (["train", "lr"], 0.1); the value is read as YAML."""
    if "=" not in text:
        raise ConfigError(f"Override {text!r} is not of the form key=value (for example train.epochs=5).")
    key, _, raw = text.partition("=")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    except RecursionError:
        raise ConfigError(f"Override {key.strip()!r}: the value is nested too deeply.") from None
    return key.strip().split("."), value


def apply_overrides(cls: type[BaseModel], data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key=value`` overrides to a raw config dict, checking each key against ``cls``."""
    data = _deep_copy(data)
    for text in overrides:
        path, value = parse_override(text)
        model: type[BaseModel] | None = cls
        node = data
        for depth, key in enumerate(path):
            if model is not None:
                _check_key(model, key, ".".join(path[:depth]))
            if depth == len(path) - 1:
                node[key] = value
                break
            field = model.model_fields[key] if model is not None else None
            annotation = field.annotation if field is not None else None
            model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise ConfigError(f"Override {text!r}: {'.'.join(path[: depth + 1])} is not a section.")
    return data


def _check_key(model: type[BaseModel], key: str, where: str) -> None:
    valid = list(model.model_fields)
    if key not in valid:
        section = f" in section {where!r}" if where else ""
        raise ConfigError(f"Unknown config key {key!r}{section}.{did_you_mean(key, valid)} Valid keys: {', '.join(valid)}.")


def build_config(cls: type[C], data: dict[str, Any], source: str = "config") -> C:
    """Validate a raw dict into ``cls`` with an error that names each bad key and why."""
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"])
            if err["type"] == "extra_forbidden":
                parent = config_section(cls, err["loc"][:-1])
                valid = list(parent.model_fields) if parent else []
                problems.append(f"unknown key {key!r}.{did_you_mean(str(err['loc'][-1]), valid)} Valid keys: {', '.join(valid)}")
            else:
                problems.append(f"{key}: {err['msg']} (got {err.get('input')!r})")
        raise ConfigError(f"Invalid {source}: " + "; ".join(problems)) from None


def config_section(cls: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model of the section at ``loc`` inside ``cls`` (None when it is not a section)."""
    model: Any = cls
    for key in loc:
        field = model.model_fields.get(key) if _is_section(model) else None
        model = field.annotation if field else None
        if not _is_section(model):  # an optional section (TrainConfig | None): its model part
            model = next((arg for arg in typing.get_args(model) if _is_section(arg)), None)
    return model if _is_section(model) else None


def _is_section(model: Any) -> bool:
    return isinstance(model, type) and issubclass(model, BaseModel)


def load_config(cls: type[C], path: str | Path | None = None, overrides: list[str] | None = None, base: dict[str, Any] | None = None) -> C:
    """``base`` dict, then the YAML file at ``path``, then ``overrides``; validated into ``cls``."""
    data = _deep_merge(base or {}, read_yaml(path) if path else {})
    data = apply_overrides(cls, data, overrides or [])
    return build_config(cls, data, str(path) if path else "config")


def _deep_copy(data: dict[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, dict) else v for k, v in data.items()}


def _deep_merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = _deep_copy(a)
    for k, v in b.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out
