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


class _OwnAttention(nn.Module):
    """Attention of a class no form knows, sizing its heads from its input (C // num_heads)."""

    def __init__(self, dim: int = 32, num_heads: int = 4) -> None:
        super().__init__()
        self.num_heads, self.qkv, self.proj = num_heads, nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        q, k, v = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        return self.proj(torch.softmax(q @ k.transpose(-2, -1), dim=-1).matmul(v).transpose(1, 2).reshape(B, N, C))


def test_attention_of_no_registered_form_sizing_heads_from_its_input_loses_heads_with_that_width():
    """An attention module of no registered form (an integer num_heads and linear layers) that sizes its heads from
    its input (C // num_heads) loses whole heads together with the residual width it reads, head size kept."""
    from slimforge.prune.attention import find_attention_form

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 32), _OwnAttention(), nn.Linear(32, 64), nn.GELU(), nn.Linear(64, 3)).eval()
    attn = model[1]
    assert find_attention_form(attn) is None
    x = torch.randn(2, 5, 8)
    sp.prune(model, x, ratio=0.5, round_to=1)
    assert attn.num_heads < 4 and attn.qkv.in_features == attn.proj.in_features == 8 * attn.num_heads == model[0].out_features
    assert attn.qkv.out_features == 3 * 8 * attn.num_heads and model[2].out_features == 32
    assert model(x).shape == (2, 5, 3)


def test_efficientvit_msra_cascaded_attention_keeps_its_heads_and_loses_channels_per_head(tmp_path):
    """EfficientViT (MSRA): the heads of its cascaded group attention are modules in a cascade (each head's
    input adds the previous head's output), so they stay; each head's query/key and value channels go,
    run by a stand-in forward that reads each head's sizes from its layers, also after slimforge.load."""
    pytest.importorskip("timm")
    import slimforge
    from slimforge.prune._timm_attention import own_class
    from slimforge.prune.attention import find_attention_form, swap_for

    torch.manual_seed(0)
    model = slimforge.create_model("timm:efficientvit_m0", num_classes=5, img_size=64, embed_dim=(32, 64, 96),
                                   depth=(1, 1, 1), window_size=(4, 4, 4)).eval()
    x = torch.randn(2, 3, 64, 64)
    cascaded = [m for m in model.modules() if own_class(m).__name__ == "CascadedGroupAttention"]
    assert cascaded and all(find_attention_form(m) is not None for m in cascaded)
    reference = model(x)
    swap = swap_for(type(cascaded[0]))
    for m in cascaded:  # the stand-in computes what timm's forward computes
        swap.use(m)
    torch.testing.assert_close(model(x), reference, rtol=1e-5, atol=1e-5)
    for m in cascaded:
        swap.undo(m, own_class(m))
    before = [[p.shape[0] for p in m.qkvs.parameters() if p.dim() > 1] for m in cascaded]

    sp.prune(model, x, ratio=0.5)

    after = [[p.shape[0] for p in m.qkvs.parameters() if p.dim() > 1] for m in cascaded]
    assert [len(m.qkvs) for m in cascaded] == [m.num_heads for m in cascaded]  # heads stay
    assert sum(map(sum, after)) < sum(map(sum, before))
    assert any(type(m) is not own_class(m) for m in cascaded)
    out = model(x)
    assert out.shape == (2, 5)
    slimforge.save(model, tmp_path / "m")
    assert torch.equal(slimforge.load(tmp_path / "m").eval()(x), out)


class _AutocastOff(torch.nn.Module):
    """A block with context managers inside forward: ``torch.autocast(enabled=False)`` (as timm's EfficientViT
    (MIT) attention has; it runs as a plain block during capture), a bf16 autocast region and ``torch.no_grad()``
    (torch.export wraps each of these two in a sub-graph, which prune copies into the main graph)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2, self.fc3, self.head = nn.Linear(8, 32), nn.Linear(32, 32), nn.Linear(32, 32), nn.Linear(32, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc1(x).relu()
        with torch.autocast(device_type=x.device.type, enabled=False):
            h = self.fc2(h.float()).relu()
        with torch.no_grad():
            scale = h.detach().abs().mean()
        with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16):
            h = self.fc3(h).relu()
        return self.head(h.float() * scale)


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


def test_halonet_halo_windows_are_traced_and_its_heads_go():
    """HaloNet cuts halo windows with Tensor.unfold (a rule of its own: windows and positions are spatial);
    its HaloAttn (form timm-halo-attention) loses whole heads: query and key/value channels per head together."""
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    model = timm.create_model("halonet26t", pretrained=False, num_classes=5).eval()
    halo = [m for m in model.modules() if type(m).__name__ == "HaloAttn"]
    heads = [m.num_heads for m in halo]
    x = torch.randn(1, 3, 256, 256)  # its last stage needs 8 x 8, the halo block size
    n = sum(p.numel() for p in model.parameters())
    sp.prune(model, x, ratio=0.5)
    assert halo and all(m.num_heads < h for m, h in zip(halo, heads))
    for m in halo:
        assert m.q.out_channels == m.num_heads * m.dim_head_qk == m.dim_out_qk
        assert m.kv.out_channels == m.num_heads * (m.dim_head_qk + m.dim_head_v) and m.dim_out_v == m.num_heads * m.dim_head_v
    assert sum(p.numel() for p in model.parameters()) < 0.7 * n
    assert model(x).shape == (1, 5)
