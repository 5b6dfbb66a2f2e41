"""Helpers of the behaviour tests: small models and exact weight comparisons."""

from __future__ import annotations

import torch

import slimforge
from slimforge.train import seed_everything


def make_mlp(data, hidden=(32,), dropout=0.0, seed=0) -> torch.nn.Module:
    seed_everything(seed)
    return slimforge.create_model("mlp", hidden=list(hidden), dropout=dropout, **data.info.model_kwargs())


def state_copy(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"tensors differ: {different}"
