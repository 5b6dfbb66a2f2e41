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
    """LeViT's downsampling attention (queries from a subsampled grid) matches no attention form: its
    heads and widths stay, the rest of the model (LeViT's own attention among it) shrinks."""
    timm = pytest.importorskip("timm")
    from slimforge.prune.attention import find_attention_form

    torch.manual_seed(0)
    model = timm.create_model("levit_128s", pretrained=False, img_size=64, num_classes=5).eval()
    down = next(m for m in model.modules() if type(m).__name__ == "AttentionDownsample")
    assert find_attention_form(down) is None
    heads, widths = down.num_heads, [p.shape for p in down.parameters()]
    x = torch.randn(2, 3, 64, 64)
    n = sum(p.numel() for p in model.parameters())
    sp.prune(model, x, ratio=0.5)
    assert down.num_heads == heads and [p.shape for p in down.parameters()] == widths
    assert sum(p.numel() for p in model.parameters()) < 0.9 * n
    assert model(x).shape == (2, 5)
