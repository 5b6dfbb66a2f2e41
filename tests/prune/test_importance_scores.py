"""Where the importance criteria disagree, each prunes the unit its own definition ranks last
(a planted dead channel, as in tests/behaviour/test_importance_ranking.py, every criterion agrees on)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import slimforge.prune as sp
from slimforge.prune import build_dependency_graph
from slimforge.prune.errors import PruneConfigError
from slimforge.prune.importance import ImportanceContext, score_units


def _mlp(outgoing: float = 0.5) -> nn.Sequential:
    """4 -> 3 -> 2, every hidden unit with the same outgoing weights (``outgoing``). Incoming rows:
    unit 0 [1, 1, 1, 1] (L1 4, L2 2), unit 1 [3, 0, 0, 0] (L1 3, L2 3), unit 2 [2, 2, 2, 2] (L1 8, L2 4)."""
    model = nn.Sequential(nn.Linear(4, 3, bias=False), nn.ReLU(), nn.Linear(3, 2, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, 1, 1, 1], [3, 0, 0, 0], [2, 2, 2, 2]]))
        model[2].weight.fill_(outgoing)
    return model.eval()


@pytest.mark.parametrize(("criterion", "pruned"), [("l1", 1), ("l2", 0)])
def test_l1_and_l2_each_prune_their_own_smallest_unit(criterion, pruned):
    model = _mlp()
    before = model[0].weight.detach().clone()
    sp.prune(model, torch.ones(2, 4), ratio={"0": 1 / 3}, importance=criterion, round_to=1)
    kept = [i for i in range(3) if i != pruned]
    assert torch.equal(model[0].weight, before[kept])


def _conv_bn() -> nn.Module:
    """Channel 2 has the largest conv weights but a tiny BatchNorm scale; channel 6 the smallest
    weights (both convolutions) and a healthy scale."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 4, 3, padding=1))
    with torch.no_grad():
        model[1].weight.fill_(1.0)
        model[1].weight[2] = 1e-3
        model[0].weight[2].mul_(10)
        model[0].weight[6].mul_(1e-2)
        model[3].weight[:, 6].mul_(1e-2)
    return model.eval()


@pytest.mark.parametrize(("criterion", "pruned"), [("bn_scale", 2), ("l2", 6)])
def test_bn_scale_ranks_by_the_normalisation_scale_not_the_weights(criterion, pruned):
    model = _conv_bn()
    before = model[0].weight.detach().clone()
    sp.prune(model, torch.randn(2, 3, 6, 6), ratio={"0": 1 / 8}, importance=criterion, round_to=1)
    kept = [i for i in range(8) if i != pruned]
    assert torch.equal(model[0].weight, before[kept])


def _scores(model: nn.Module, example: torch.Tensor, criterion: str, **kwargs) -> list[np.ndarray]:
    graph = build_dependency_graph(model, (example,))
    ctx = ImportanceContext(dict(model.state_dict(keep_vars=True)), frozenset(), torch.Generator().manual_seed(0))
    return score_units(graph, ctx, criterion, **kwargs)


def test_unit_scores_are_normalised_per_layer_and_averaged_by_default():
    model = _mlp()
    default = _scores(model, torch.ones(2, 4), "l2")
    assert len(default) == 1
    # L2 of the rows 2, 3, 4 over their mean 3; the outgoing columns are equal (norm 1 each, over
    # their mean 1: a layer whose norms are all below 1 is scaled up like any other); mean of both.
    assert np.allclose(default[0], ([2 / 3, 1, 4 / 3] + np.ones(3)) / 2)
    assert np.allclose(_scores(model, torch.ones(2, 4), "l2", reduction="mean")[0], default[0])
    assert np.allclose(_scores(model, torch.ones(2, 4), "l2", reduction="sum")[0], [5 / 3, 2, 7 / 3])
    assert np.allclose(_scores(model, torch.ones(2, 4), "l2", reduction="max")[0], [1, 1, 4 / 3])


def test_a_layer_of_zeros_scores_every_unit_zero_rather_than_dropping_out():
    # Outgoing weights all 0: that layer's scores are 0 (not 0 / 0), and still count in the mean.
    scores = _scores(_mlp(outgoing=0.0), torch.ones(2, 4), "l2")[0]
    assert np.allclose(scores, [1 / 3, 1 / 2, 2 / 3])


def test_an_unknown_reduction_is_refused_with_the_known_ones():
    with pytest.raises(PruneConfigError, match="group reduction 'median' is unknown; use one of mean, sum, max."):
        sp.prune(_mlp(), torch.ones(2, 4), ratio=0.3, reduction="median")
