from __future__ import annotations

import pytest

from slimforge.config import load_config
from slimforge.errors import ConfigError
from slimforge.experiment import RunConfig


def test_yaml_then_overrides(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("model: {name: resnet20, kwargs: {width: 2}}\ntrain: {epochs: 3, lr: 0.2}\n")
    cfg = load_config(RunConfig, recipe, ["train.lr=0.05", "model.kwargs.width=0.5", "data.name=fashion-mnist"])
    assert (cfg.train.epochs, cfg.train.lr, cfg.model.kwargs["width"], cfg.data.name) == (3, 0.05, 0.5, "fashion-mnist")


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.epochz=3", r"Unknown config key 'epochz' in section 'train'. Did you mean 'epochs'"),
        ("optim.lr=1", r"Unknown config key 'optim'.*Valid keys: data, model, train"),
        ("train.epochs=-1", r"train.epochs: Input should be greater than or equal to 1"),
        ("train.optimizer=adam", r"train.optimizer"),
        ("noequals", r"not of the form key=value"),
    ],
)
def test_bad_overrides_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(RunConfig, None, [override])


def test_unknown_key_in_yaml_lists_valid_keys(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("train: {epochs: 3, learning_rate: 0.1}\n")
    with pytest.raises(ConfigError, match=r"unknown key 'train.learning_rate'.*Valid keys: epochs"):
        load_config(RunConfig, recipe)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(RunConfig, tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(RunConfig, bad)
