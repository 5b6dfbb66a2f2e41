"""timm modules that keep a width in an attribute of their own, attention of no registered form, and forwards with autocast regions."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import slimforge.prune as sp


def test_poolformer_scale_follows_its_pruned_parameter():
    """timm's MetaFormer ``Scale`` multiplies by ``scale.view(self.shape)``, a shape fixed at construction."""
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    model = timm.create_model("poolformer_s12", pretrained=False, num_classes=5).eval()
    x = torch.randn(2, 3, 64, 64)
    n = sum(p.numel() for p in model.parameters())
    sp.prune(model, x, ratio=0.5)
    scales = [m for m in model.modules() if type(m).__name__ == "Scale"]
    assert scales and all(m.shape[0] == m.scale.shape[0] for m in scales)
    assert any(m.scale.shape[0] < 64 for m in scales)
    assert sum(p.numel() for p in model.parameters()) < 0.5 * n
    assert model(x).shape == (2, 5)


def test_attention_of_no_registered_form_stays_whole_and_the_model_prunes():
    """EfficientViT (MSRA)'s cascaded group attention (one projection module per head, each head's input
    adding the previous head's output) matches no attention form: its heads and widths stay, the rest of
    the model shrinks."""
    timm = pytest.importorskip("timm")
    from slimforge.prune.attention import find_attention_form

    torch.manual_seed(0)
    model = timm.create_model("efficientvit_m0", pretrained=False, num_classes=5, img_size=64, embed_dim=(32, 64, 96),
                              depth=(1, 1, 1), window_size=(4, 4, 4)).eval()
    cascaded = [m for m in model.modules() if type(m).__name__ == "CascadedGroupAttention"]
    assert cascaded and all(find_attention_form(m) is None for m in cascaded)
    widths = [[p.shape for p in m.parameters()] for m in cascaded]
    x = torch.randn(2, 3, 64, 64)
    n = sum(p.numel() for p in model.parameters())
    sp.prune(model, x, ratio=0.5)
    assert [[p.shape for p in m.parameters()] for m in cascaded] == widths
    assert sum(p.numel() for p in model.parameters()) < 0.9 * n
    assert model(x).shape == (2, 5)


class _AutocastOff(torch.nn.Module):
    """A block whose middle runs under ``torch.autocast(enabled=False)`` (as timm's EfficientViT (MIT)
    attention does) and ``torch.no_grad()``: torch.export wraps each region in a sub-graph."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2, self.fc3, self.head = nn.Linear(8, 32), nn.Linear(32, 32), nn.Linear(32, 32), nn.Linear(32, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc1(x).relu()
        with torch.autocast(device_type=x.device.type, enabled=False):
            h = self.fc2(h.float()).relu()
        with torch.no_grad():
            scale = h.detach().abs().mean()
        return self.head(self.fc3(h).relu() * scale)


def test_autocast_and_no_grad_regions_are_traced_through():
    """A forward with autocast / grad-mode regions prunes (it was 'unexpected graph node get_attr' before);
    the layers inside a region lose units like the others."""
    torch.manual_seed(0)
    model, x = _AutocastOff().eval(), torch.randn(4, 8)
    sp.prune(model, x, ratio=0.5, round_to=1)
    assert model.fc1.out_features == model.fc2.in_features == 16 and model.fc2.out_features == model.fc3.in_features == 16
    assert model(x).shape == (4, 3)


def test_efficientvit_mit_prunes():
    """timm's EfficientViT (MIT): its linear attention runs under torch.autocast(enabled=False)."""
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    model = timm.create_model("efficientvit_b0", pretrained=False, num_classes=5, widths=(8, 16, 32, 64, 128),
                              depths=(1, 1, 1, 1, 1)).eval()
    x = torch.randn(2, 3, 64, 64)
    n = sum(p.numel() for p in model.parameters())
    sp.prune(model, x, ratio=0.5)
    assert sum(p.numel() for p in model.parameters()) < 0.7 * n
    assert model(x).shape == (2, 5)
