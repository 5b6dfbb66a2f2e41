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
    """EVA's attention (rotary embeddings, optional fused or separate q/k/v) matches no attention form:
    its heads stay, its MLPs shrink. (BEiT's, which has Swin's bias table but reshapes its output to the
    input's width, has a form of its own now: tests/prune/test_timm_attention.py.)"""
    timm = pytest.importorskip("timm")
    from slimforge.prune.attention import find_attention_form

    torch.manual_seed(0)
    model = timm.create_model("eva02_tiny_patch14_224", pretrained=False, img_size=28, depth=1, num_classes=5).eval()
    attn = model.blocks[0].attn
    assert find_attention_form(attn) is None
    heads, width = attn.num_heads, attn.qkv.out_features if attn.qkv is not None else attn.q_proj.out_features
    x = torch.randn(2, 3, 28, 28)
    sp.prune(model, x, ratio=0.5)
    assert attn.num_heads == heads
    assert (attn.qkv.out_features if attn.qkv is not None else attn.q_proj.out_features) == width
    assert model(x).shape == (2, 5)
