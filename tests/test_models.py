"""Contract tests over every registered model: shape kept, finite outputs, save/load round trip."""

from __future__ import annotations

import pytest
import torch

import slimforge
from slimforge.errors import SlimforgeError, UnknownNameError
from slimforge.models import create_model, list_models, resolve_factory


# Image models; the text models' contract (token-id batches) is in tests/text/test_models.py, the
# recommenders' ((user, item) pairs) in tests/recsys/test_models.py.
IMAGE_MODELS = [n for n in list_models() if not resolve_factory(n).__module__.startswith(("slimforge.text", "slimforge.recsys"))]


@pytest.mark.parametrize("name", IMAGE_MODELS)
@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32)])
def test_registered_model_contract(name, shape, tmp_path):
    model = create_model(name, num_classes=7, in_channels=shape[0], input_size=list(shape[1:])).eval()
    x = torch.randn(3, *shape)
    y = model(x)
    assert y.shape == (3, 7)
    assert torch.isfinite(y).all()
    slimforge.save(model, tmp_path / name)
    again = slimforge.load(tmp_path / name)
    assert torch.equal(again(x), y)


def test_torchvision_model_adapts_classes_and_channels(tmp_path):
    model = create_model("torchvision:resnet18", num_classes=10, in_channels=1).eval()
    x = torch.randn(2, 1, 32, 32)
    assert model(x).shape == (2, 10)
    slimforge.save(model, tmp_path / "tv")
    assert torch.equal(slimforge.load(tmp_path / "tv")(x), model(x))


def test_user_factory_by_module_path(tmp_path):
    model = create_model("torch.nn:Identity")
    assert isinstance(model, torch.nn.Identity)


def test_unknown_model_names_are_clear():
    with pytest.raises(UnknownNameError, match="Unknown model 'resnet21'. Did you mean .*'resnet20'"):
        create_model("resnet21")
    with pytest.raises(UnknownNameError, match="torchvision model 'resnet19'"):
        create_model("torchvision:resnet19")
    with pytest.raises(UnknownNameError, match="cannot import module"):
        create_model("no_such_pkg.mod:factory")
    with pytest.raises(SlimforgeError):
        create_model("math:sqrt", x=1.0)


def test_resnet_width_multiplier_scales_parameters():
    small = sum(p.numel() for p in create_model("resnet20").parameters())
    wide = sum(p.numel() for p in create_model("resnet20", width=2).parameters())
    assert 3.5 < wide / small < 4.5  # conv parameters grow with width squared
