"""Models built by the library's own call (``timm.create_model``, ``torchvision.models.resnet18``) save
and load like ``slimforge.create_model``'s, pruned or not, with no code trusted; a model that only looks
like one (a layer replaced, a keyword the guess cannot see) is refused with what differed."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import slimforge
from slimforge.errors import ArtifactError
from slimforge.models.recognised import fingerprint, recognise

timm = pytest.importorskip("timm")
torchvision = pytest.importorskip("torchvision")


def _saved_spec(folder) -> dict:
    return json.loads((folder / "model.json").read_text())


def _structure(model: nn.Module) -> dict:
    """The fingerprint, less the ``preprocess`` attribute every loaded model carries."""
    model.__dict__.pop("preprocess", None)
    return fingerprint(model)


def _round_trip(model: nn.Module, x: torch.Tensor, folder) -> dict:
    slimforge.save(model, folder)
    loaded = slimforge.load(folder)  # trust_code=False: timm:/torchvision: sources run no user code
    with torch.no_grad():
        assert torch.equal(loaded(x), model.eval()(x))
    return _saved_spec(folder)


def test_a_timm_vit_built_by_timm_is_pruned_saved_and_loaded(tmp_path):
    torch.manual_seed(0)
    model = timm.create_model("deit_tiny_patch16_224", pretrained=False, num_classes=10, img_size=32).eval()
    x = torch.randn(2, 3, 32, 32)
    slimforge.prune(model, x, ratio=0.3)
    assert model.blocks[0].attn.num_heads < 3  # heads went
    spec = _round_trip(model, x, tmp_path / "run")
    assert spec["name"] == "timm:deit_tiny_patch16_224"
    assert spec["kwargs"]["num_classes"] == 10 and spec["kwargs"]["img_size"] == 32
    assert spec["edits"] and spec["edits"][0]["kind"] == "prune"


def _maps_round_trip(model: nn.Module, x: torch.Tensor, folder) -> dict:
    slimforge.save(model, folder)
    loaded = slimforge.load(folder)
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(loaded(x), model.eval()(x), strict=True))
    return _saved_spec(folder)


def test_a_timm_features_only_cnn_is_pruned_saved_and_loaded(tmp_path):
    """timm's FeatureListNet (features_only=True) is recognised with its map indices; it runs its children in turn,
    so its maps keep their widths (no layer can be added to it), and asking to project them is refused by name."""
    torch.manual_seed(0)
    build = lambda: timm.create_model("resnet18", features_only=True, out_indices=(2, 3, 4)).eval()  # noqa: E731
    model, x = build(), torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        before = [t.shape for t in model(x)]
    slimforge.prune(model, x, ratio=0.3)
    with torch.no_grad():
        assert [t.shape for t in model(x)] == before
    spec = _maps_round_trip(model, x, tmp_path / "run")
    assert spec["name"] == "timm:resnet18" and spec["kwargs"]["features_only"] is True
    assert spec["kwargs"]["out_indices"] == [2, 3, 4] and spec["edits"][0]["kind"] == "prune"
    with pytest.raises(slimforge.prune.PruneConfigError, match="FeatureListNet"):
        slimforge.prune(build(), x, ratio=0.3, keep_outputs="project")


def test_a_timm_features_only_vit_projects_its_maps_and_reloads(tmp_path):
    """A ViT's features_only wrapper (FeatureGetterNet) returns its residual at several blocks: a bare backbone, whose
    residual narrows and whose maps come back to their width."""
    torch.manual_seed(0)
    build = lambda: timm.create_model("deit_tiny_patch16_224", features_only=True, out_indices=(5, 11), img_size=32).eval()  # noqa: E731
    model, kept, x = build(), build(), torch.randn(2, 3, 32, 32)
    n0 = sum(p.numel() for p in model.parameters())
    with torch.no_grad():
        before = [t.shape for t in model(x)]
    slimforge.prune(model, x, ratio=0.3)
    slimforge.prune(kept, x, ratio=0.3, keep_outputs=True)
    assert hasattr(model, "slimforge_outputs")
    removed = lambda m: 1 - sum(p.numel() for p in m.parameters()) / n0  # noqa: E731
    assert removed(model) > removed(kept) + 0.1
    with torch.no_grad():
        assert [t.shape for t in model(x)] == before
    spec = _maps_round_trip(model, x, tmp_path / "run")
    assert spec["kwargs"]["out_indices"] == [5, 11] and spec["kwargs"]["img_size"] == 32


def test_timm_settings_that_change_no_shape_are_recorded(tmp_path):
    """drop_path_rate and in_chans change training or the first layer only: both must come back."""
    model = timm.create_model("convnext_atto", num_classes=7, in_chans=1, drop_path_rate=0.1, drop_rate=0.2)
    spec, why = recognise(model)
    assert why is None
    assert spec.name == "timm:convnext_atto"
    assert spec.kwargs["drop_path_rate"] == 0.1 and spec.kwargs["drop_rate"] == 0.2
    assert spec.kwargs["in_channels"] == 1 and spec.kwargs["num_classes"] == 7
    saved = _round_trip(model, torch.randn(2, 1, 32, 32), tmp_path / "run")
    assert _structure(slimforge.load(tmp_path / "run")) == fingerprint(model)
    assert saved["kwargs"]["pretrained"] is False


@pytest.mark.parametrize("build, name", [
    (lambda: torchvision.models.resnet18(num_classes=10), "torchvision:resnet18"),
    (lambda: torchvision.models.mobilenet_v3_small(num_classes=5), "torchvision:mobilenet_v3_small"),
])
def test_a_torchvision_model_built_by_torchvision_is_pruned_saved_and_loaded(build, name, tmp_path):
    torch.manual_seed(0)
    model = build().eval()
    x = torch.randn(2, 3, 32, 32)
    slimforge.prune(model, x, ratio=0.3)
    spec = _round_trip(model, x, tmp_path / "run")
    assert spec["name"] == name


def test_the_architecture_is_told_apart_from_its_siblings():
    """ResNet is one class for resnet18 ... resnet152: only the matching builder is taken."""
    spec, _ = recognise(torchvision.models.resnet34(num_classes=3))
    assert spec.name == "torchvision:resnet34"


def test_a_layer_replaced_by_hand_is_not_recognised_and_the_error_says_where(tmp_path):
    model = timm.create_model("resnet18", num_classes=10)
    model.fc = nn.Sequential(nn.Dropout(0.2), nn.Linear(512, 10))
    with pytest.raises(ArtifactError, match=r"timm:resnet18 .* differs .*fc\.0.*factory='timm:resnet18'"):
        slimforge.save(model, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_keyword_the_guess_cannot_see_is_not_recognised(tmp_path):
    """Dilation changes no shape, only the forward: the fingerprint still tells it apart."""
    model = torchvision.models.resnet50(num_classes=10, replace_stride_with_dilation=[False, True, True])
    spec, why = recognise(model)
    assert spec is None and "dilation" in why
    slimforge.save(model, tmp_path / "run", factory="torchvision:resnet50",
                   kwargs={"num_classes": 10, "replace_stride_with_dilation": [False, True, True]})
    assert _structure(slimforge.load(tmp_path / "run")) == fingerprint(model)


def test_a_subclass_in_user_code_is_not_taken_for_the_library_model(tmp_path):
    class MyNet(torchvision.models.ResNet):
        pass

    model = MyNet(torchvision.models.resnet.BasicBlock, [2, 2, 2, 2], num_classes=10)
    assert recognise(model) == (None, None)
    with pytest.raises(ArtifactError, match="does not know how to rebuild this MyNet"):
        slimforge.save(model, tmp_path / "run")


def test_a_vit_with_dropout_is_recognised_from_its_head_dropout():
    """timm's ViT keeps no drop_rate attribute: its head dropout's p tells it."""
    spec, why = recognise(timm.create_model("deit_tiny_patch16_224", num_classes=10, img_size=32, drop_rate=0.1, drop_path_rate=0.1))
    assert why is None and spec.kwargs["drop_rate"] == 0.1 and spec.kwargs["drop_path_rate"] == 0.1


@pytest.mark.parametrize("build, name", [
    (lambda: _with(torchvision.models.resnet18(), "fc", nn.Linear(512, 10)), "torchvision:resnet18"),
    (lambda: _with(torchvision.models.vit_b_16(image_size=32), "heads.head", nn.Linear(768, 10)), "torchvision:vit_b_16"),
    (lambda: _with(timm.create_model("resnet18"), "fc", nn.Linear(512, 10)), "timm:resnet18"),
])
def test_a_head_replaced_for_fine_tuning_is_still_recognised(build, name):
    """The fine-tuning idiom (pretrained model, new head of the same kind) is the library model with num_classes=10,
    although its num_classes attribute still says 1000."""
    spec, why = recognise(build())
    assert why is None and spec.name == name and spec.kwargs["num_classes"] == 10


def _with(model: nn.Module, path: str, module: nn.Module) -> nn.Module:
    parent, _, attr = path.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, attr, module)
    return model
