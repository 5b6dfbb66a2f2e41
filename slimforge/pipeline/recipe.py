"""Recipes: a YAML list of stages, validated before anything runs.

    name: digits
    data: {name: digits}
    stages:
      - {kind: train, model: {name: cnn}, train: {epochs: 12}}
      - {kind: prune, ratio: 0.5, finetune: {epochs: 4}}
      - {kind: quantize, backend: onnxruntime}
      - {kind: report}

Each stage has a ``kind`` (a registered stage), an optional unique ``name`` (default: the
kind, numbered when repeated) and an ``input``: the stage whose artifact it reads (default:
the previous model-producing stage) or a path to an existing run folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, Field, ValidationError

from slimforge._registry import Registry
from slimforge.config import Frozen, apply_overrides, config_section, parse_override, read_yaml
from slimforge.errors import ConfigError, did_you_mean
from slimforge.experiment import DataConfig
from slimforge.files import check_name


class StageConfig(Frozen):
    """Fields every stage has."""

    # Keys that change how a stage runs, not what it writes: a rerun that changes only these is
    # still done (they stay out of the stage's fingerprint).
    runtime_only: ClassVar[frozenset[str]] = frozenset()

    kind: str
    name: str | None = None
    input: str | None = Field(None, description="stage name or run folder to read; default: the previous model stage")
    trust_code: bool = Field(False, description="the run folders this stage reads (input, teachers, variants) may name "
                                                "'package.module:function' factories, which are imported and run")


STAGE_CONFIGS: Registry[type[StageConfig]] = Registry("stage kind")


class Recipe(BaseModel):
    """A validated recipe: data shared by all stages, then stages in order (names unique)."""

    name: str = "recipe"
    data: DataConfig = DataConfig()
    stages: list[StageConfig]


def parse_recipe(raw: dict[str, Any], source: str = "recipe", overrides: list[str] | None = None) -> Recipe:
    """Validate ``raw`` (with ``key=value`` overrides: ``data.name=...`` or ``<stage>.<key>=...``)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: a recipe is a mapping with 'stages'.")
    unknown = set(raw) - {"name", "data", "stages"}
    if unknown:
        raise ConfigError(f"{source}: unknown top-level key(s) {sorted(unknown)}; a recipe has name, data and stages.")
    stages_raw = raw.get("stages")
    if not isinstance(stages_raw, list) or not stages_raw:
        raise ConfigError(f"{source}: 'stages' must be a non-empty list of stages.")
    stages_raw = [dict(s) if isinstance(s, dict) else s for s in stages_raw]
    names = _stage_names(stages_raw, source)
    if not isinstance(raw.get("data") or {}, dict):
        raise ConfigError(f"{source}: 'data' must be a mapping (name: ..., options: ...), not {raw.get('data')!r}.")
    data_raw = dict(raw.get("data") or {})
    for text in overrides or []:
        path, value = parse_override(text)
        if len(path) < 2:
            raise ConfigError(f"Override {text!r}: give a key inside 'data' or a stage ({', '.join(names)}), e.g. data.name=digits or {names[0]}.<key>=...")
        if path[0] == "data":
            data_raw = apply_overrides(DataConfig, data_raw, [text.split(".", 1)[1]]) if len(path) > 1 else data_raw
        elif path[0] in names:
            i = names.index(path[0])
            cls = STAGE_CONFIGS.get(stages_raw[i]["kind"])
            stages_raw[i] = apply_overrides(cls, stages_raw[i], [text.split(".", 1)[1]])
        else:
            raise ConfigError(f"Override {text!r}: {path[0]!r} is neither 'data' nor a stage of this recipe ({', '.join(names)}).{did_you_mean(path[0], names)}")
    stages = [_validate_stage(s, name, i, source) for i, (s, name) in enumerate(zip(stages_raw, names))]
    try:
        data = DataConfig.model_validate(data_raw)
    except ValidationError as exc:
        raise ConfigError(f"{source}: data: {_first_problem(exc, DataConfig)}") from None
    from slimforge.data import DATASETS

    DATASETS.get(data.name)  # an unknown dataset is found now, before the first stage runs
    _check_inputs(stages, source)
    return Recipe(name=raw.get("name", Path(source).stem), data=data, stages=stages)


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> Recipe:
    """The recipe in file ``path``. A file that names a ``package.module:function`` model or sets
    ``trust_code: true`` is refused unless the caller trusts it (``--trust-code``, ``trusting_code()``)."""
    from slimforge.models import refuse_code_in

    raw = read_yaml(path)
    refuse_code_in(raw, str(path))
    return parse_recipe(raw, str(path), overrides)


def _stage_names(stages: list[Any], source: str) -> list[str]:
    names, counts = [], {}
    for i, s in enumerate(stages):
        if not isinstance(s, dict) or "kind" not in s:
            raise ConfigError(f"{source}: stage #{i + 1} has no 'kind' (one of {', '.join(STAGE_CONFIGS.names())}).")
        if s["kind"] not in STAGE_CONFIGS:
            raise ConfigError(
                f"{source}: stage #{i + 1} has unknown kind {s['kind']!r}.{did_you_mean(str(s['kind']), STAGE_CONFIGS.names())} "
                f"Known kinds: {', '.join(STAGE_CONFIGS.names())}."
            )
        counts[s["kind"]] = counts.get(s["kind"], 0) + 1
        name = s.get("name") or (s["kind"] if counts[s["kind"]] == 1 else f"{s['kind']}{counts[s['kind']]}")
        names.append(check_name(name, f"{source}: stage #{i + 1}'s name"))  # it becomes the folder out/<name>/
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise ConfigError(f"{source}: stage names must be unique; repeated: {sorted(dupes)}.")
    return names


def _validate_stage(raw: dict[str, Any], name: str, index: int, source: str) -> StageConfig:
    cls = STAGE_CONFIGS.get(raw["kind"])
    try:
        return cls.model_validate({**raw, "name": name})
    except ValidationError as exc:
        raise ConfigError(f"{source}: stage {name!r} (#{index + 1}, kind {raw['kind']}): {_first_problem(exc, cls)}") from None


def _first_problem(exc: ValidationError, cls: type[BaseModel]) -> str:
    problems = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            section = config_section(cls, err["loc"][:-1])  # the nested section the key sits in
            valid = list(section.model_fields) if section else []
            problems.append(f"unknown key {key!r}.{did_you_mean(str(err['loc'][-1]), valid)} Valid keys: {', '.join(valid)}")
        elif err["type"] == "missing":
            problems.append(f"missing key {key!r}")
        else:
            problems.append(f"{key}: {err['msg']} (got {err.get('input')!r})")
    return "; ".join(problems)


def _check_inputs(stages: list[StageConfig], source: str) -> None:
    seen: list[str] = []
    for stage in stages:
        for key, ref in stage_references(stage).items():
            if ref in seen:
                continue
            if ref in [s.name for s in stages]:
                raise ConfigError(f"{source}: stage {stage.name!r} key {key!r} reads stage {ref!r}, which comes later; stages run in order.")
            if not Path(ref).exists():
                raise ConfigError(
                    f"{source}: stage {stage.name!r} key {key!r} = {ref!r} is neither an earlier stage "
                    f"({', '.join(seen) or 'none'}) nor an existing run folder.{did_you_mean(ref, seen)}"
                )
        seen.append(stage.name)


def stage_references(stage: StageConfig) -> dict[str, str]:
    """Explicit references a stage makes to other stages or folders: {key: stage name or path}."""
    refs = {}
    if stage.input:
        refs["input"] = stage.input
    for i, teacher in enumerate(getattr(stage, "teachers", None) or []):
        refs[f"teachers[{i}]"] = teacher
    for i, variant in enumerate(getattr(stage, "variants", None) or []):
        refs[f"variants[{i}]"] = variant
    return refs
