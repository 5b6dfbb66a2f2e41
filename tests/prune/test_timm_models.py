"""timm modules that keep a width in an attribute of their own."""

from __future__ import annotations

import pytest
import torch

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
