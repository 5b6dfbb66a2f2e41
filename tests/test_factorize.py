"""SVD factorisation: exact at full rank, ranks from energy or target size, save/load rebuilds it."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import slimforge.factorize  # noqa: F401  (registers the "factorize" edit for load)
from slimforge.loading import load, save
from slimforge.errors import ConfigError
from slimforge.factorize import FactorizeConfig, FactorizeError, factorize, low_rank
from slimforge.models import create_model


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    "layer, x",
    [
        (nn.Linear(20, 12), torch.randn(5, 20)),
        (nn.Conv2d(6, 8, 3, stride=2, padding=1), torch.randn(2, 6, 9, 9)),
    ],
)
def test_full_rank_factorisation_reproduces_the_layer(layer, x):
    rank = min(layer.weight.reshape(layer.weight.shape[0], -1).shape)
    with torch.no_grad():
        torch.testing.assert_close(low_rank(layer, rank)(x), layer(x), atol=1e-5, rtol=1e-5)


def test_truncation_error_matches_dropped_singular_values():
    torch.manual_seed(0)
    layer = nn.Linear(30, 20, bias=False)
    s = torch.linalg.svdvals(layer.weight.detach())
    approx = low_rank(layer, 5)
    w = approx[1].weight @ approx[0].weight
    # Eckart-Young: the Frobenius error of the best rank-5 approximation.
    assert torch.linalg.norm(w - layer.weight).item() == pytest.approx(s[5:].pow(2).sum().sqrt().item(), rel=1e-4)


def test_energy_threshold_keeps_that_energy_per_layer():
    torch.manual_seed(0)
    model = create_model("mlp", hidden=[64, 64])
    result = factorize(model, FactorizeConfig(energy=0.5))
    assert result.ranks, "some layer should be factorised at energy 0.5"
    for name, kept in result.layer_energy.items():
        assert kept >= 0.5 - 1e-6
    assert result.params_after < result.params_before == _params(create_model("mlp", hidden=[64, 64]))
    assert result.params_after == _params(model)


def test_target_ratio_halves_mlp_1200():
    torch.manual_seed(0)
    model = create_model("mlp-1200")
    before = _params(model)
    result = factorize(model, FactorizeConfig(target_ratio=0.5, include_conv=False))
    assert result.params_after <= 0.5 * before
    assert result.params_after > 0.4 * before, "bisection should use most of the budget, not overshoot"
    assert set(result.ranks) <= {"net.1", "net.4"}, "the classifier net.7 is kept whole by default"
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_factorised_model_saves_and_loads_identically(tmp_path):
    torch.manual_seed(0)
    model = create_model("resnet8", num_classes=10, in_channels=1).eval()
    result = factorize(model, FactorizeConfig(energy=0.8))
    assert any(name.startswith("layer") for name in result.ranks), "convolutions should be factorised too"
    save(model, tmp_path)
    edits = json.loads((tmp_path / "model.json").read_text())["edits"]
    assert edits == [{"kind": "factorize", "layers": {n: {"rank": r} for n, r in result.ranks.items()}}]
    loaded = load(tmp_path)
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), atol=0, rtol=0)


def test_no_factorisable_layer_is_a_clear_error():
    with pytest.raises(FactorizeError, match="no Linear or Conv2d"):
        factorize(nn.Sequential(nn.ReLU(), nn.Flatten()))


def test_bad_config_and_unknown_layer_names_are_clear_errors():
    with pytest.raises(ConfigError, match="energy"):
        FactorizeConfig(energy=1.5)
    with pytest.raises(ConfigError, match="net.99"):
        factorize(create_model("mlp", hidden=[8]), FactorizeConfig(layers=("net.99",)))


def test_unreachable_target_is_a_clear_error():
    # Only the small classifier may be factorised; halving the model is impossible.
    with pytest.raises(FactorizeError, match="out of reach"):
        factorize(create_model("mlp", hidden=[64]), FactorizeConfig(target_ratio=0.1, layers=("net.3",)))
