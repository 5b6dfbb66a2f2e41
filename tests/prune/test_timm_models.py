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


def test_beit_attention_that_looks_like_swins_stays_whole_and_the_model_prunes():
    """BEiT's attention has Swin's relative position bias table but reshapes its output to the
    input's width: it matches no attention form, its heads stay, its MLPs shrink."""
    timm = pytest.importorskip("timm")
    from slimforge.prune.attention import find_attention_form

    torch.manual_seed(0)
    model = timm.create_model("beit_base_patch16_224", pretrained=False, img_size=32, depth=1, num_classes=5).eval()
    attn = model.blocks[0].attn
    assert attn.relative_position_bias_table.dim() == 2 and find_attention_form(attn) is None
    x = torch.randn(2, 3, 32, 32)
    sp.prune(model, x, ratio=0.5)
    assert attn.num_heads == 12 and attn.qkv.out_features == 3 * 768
    assert model.blocks[0].mlp.fc1.out_features < 3072
    assert model(x).shape == (2, 5)
