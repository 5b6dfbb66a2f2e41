"""How many channels pruning keeps: the nearest count to (1 - ratio), as a multiple of round_to.
Docstrings name the planted bugs (benchmarks/planted_bugs.py) each test was checked against."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import slimforge
import slimforge.prune as sp


def _hidden_widths(ratio: float, round_to: int) -> list[int]:
    torch.manual_seed(0)
    model = slimforge.create_model("mlp", hidden=[40, 24], input_size=[4, 4], num_classes=3)
    sp.prune(model, torch.randn(4, 16), ratio=ratio, round_to=round_to)
    return [m.out_features for m in model.modules() if isinstance(m, nn.Linear)][:-1]


def test_kept_widths_are_multiples_of_round_to():
    """Planted bug P3 (round_to ignored): 40 and 24 units at ratio 0.35 want 26 and 15.6;
    with round_to=8 that is 24 and 16, with round_to=1 26 and 16."""
    assert _hidden_widths(0.35, 8) == [24, 16]
    assert _hidden_widths(0.35, 1) == [26, 16]


@pytest.mark.parametrize(("ratio", "kept"), [(0.33, [27, 16]), (0.5, [20, 12])])
def test_the_kept_count_is_the_nearest_to_what_the_ratio_asks(ratio, kept):
    """Planted bug P5 (the kept count truncated, not rounded): ratio 0.33 of 40 wants 26.8, kept 27."""
    assert _hidden_widths(ratio, 1) == kept
