"""Shared pieces of the behaviour tests: tests that fail when the product chooses worse, not only
when it crashes. Each test's docstring names the planted bug it was checked against."""

from __future__ import annotations

import pytest
import torch

import slimforge
from slimforge.train import seed_everything


@pytest.fixture(scope="session")
def digits():
    return slimforge.load_dataset("digits")


def make_mlp(data, hidden=(32,), dropout=0.0, seed=0) -> torch.nn.Module:
    seed_everything(seed)
    return slimforge.create_model("mlp", hidden=list(hidden), dropout=dropout, **data.info.model_kwargs())


def state_copy(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"tensors differ: {different}"
