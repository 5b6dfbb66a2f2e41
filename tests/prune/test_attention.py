"""Attention: whole heads are removed (Hugging Face, nn.MultiheadAttention); a module that sizes itself in a way
slimforge cannot see is caught by the verification."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import slimforge.prune as sp
from slimforge.artifacts import ModelSpec, attach_spec
from slimforge.loading import load, save

HERE = Path(__file__).parent


@pytest.fixture(autouse=True)
def helpers_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))


def test_bert_loses_half_its_heads_and_ffn_neurons_and_round_trips(tmp_path):
    pytest.importorskip("transformers")
    from prune_helpers import tiny_bert

    model = attach_spec(tiny_bert().eval(), ModelSpec("prune_helpers:tiny_bert", {}))
    ids = torch.randint(0, 50, (2, 8), generator=torch.Generator().manual_seed(0))
    n = sum(p.numel() for p in model.parameters())
    sp.prune(model, ids, ratio=0.5)

    for layer in model.bert.encoder.layer:
        attn = layer.attention.self
        assert attn.num_attention_heads == 2 and attn.attention_head_size == 8
        assert attn.query.out_features == attn.key.out_features == attn.value.out_features == 16
        assert layer.attention.output.dense.in_features == 16
        assert layer.intermediate.dense.out_features == 32 and layer.output.dense.in_features == 32
    assert model.config.num_attention_heads == 2 and model.config.intermediate_size == 32
    assert sum(p.numel() for p in model.parameters()) < n / 2
    logits = model(ids).logits
    assert logits.shape == (2, 3) and torch.isfinite(logits).all()

    save(model, tmp_path / "bert")
    reloaded = load(tmp_path / "bert", trust_code=True)  # its spec names this test's own factory
    assert torch.equal(reloaded(ids).logits, logits)


def test_bert_heads_removed_are_whole_heads():
    """Zeroing a head's value rows and the matching output columns makes it dead; L1 removes exactly it."""
    pytest.importorskip("transformers")
    from prune_helpers import tiny_bert

    model = tiny_bert().eval()
    ids = torch.randint(0, 50, (2, 8), generator=torch.Generator().manual_seed(0))
    attn = model.bert.encoder.layer[0].attention.self
    dead = slice(8, 16)  # head 1
    with torch.no_grad():
        for lin in (attn.query, attn.key, attn.value):
            lin.weight[dead] = 0
            lin.bias[dead] = 0
        model.bert.encoder.layer[0].attention.output.dense.weight[:, dead] = 0
    before = model(ids).logits
    sp.prune(model, ids, ratio={"bert.encoder.layer.0.attention.self*": 0.25}, importance="l1", round_to=1)
    assert attn.num_attention_heads == 3 and attn.query.out_features == 24
    torch.testing.assert_close(model(ids).logits, before, rtol=1e-5, atol=1e-6)


class MhaNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Linear(6, 16)
        self.attn = nn.MultiheadAttention(16, 4, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(16, 32), nn.GELU(), nn.Linear(32, 16))
        self.head = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.inp(x)
        x = x + self.attn(x, x, x, need_weights=False)[0]
        return self.head(x + self.mlp(x)).mean(1)


def test_multihead_attention_loses_a_dead_head_and_keeps_its_embed_dim():
    """A head whose value rows and out_proj columns are zero contributes nothing: l1 removes
    exactly it, the outputs stay, and the module (now PrunableMultiheadAttention) runs with 3 heads."""
    torch.manual_seed(0)
    model = MhaNet().eval()
    x = torch.randn(2, 5, 6)
    dead = slice(4, 8)  # head 1 of 4 (head_dim 4)
    with torch.no_grad():
        for part in range(3):
            model.attn.in_proj_weight[part * 16:(part + 1) * 16][dead] = 0
            model.attn.in_proj_bias[part * 16:(part + 1) * 16][dead] = 0
        model.attn.out_proj.weight[:, dead] = 0
    before = model(x)
    sp.prune(model, x, ratio={"attn*": 0.25}, importance="l1", round_to=1)
    attn = model.attn
    assert isinstance(attn, nn.MultiheadAttention) and type(attn) is not nn.MultiheadAttention
    assert attn.num_heads == 3 and attn.head_dim == 4 and attn.embed_dim == 16
    assert attn.in_proj_weight.shape == (36, 16) and attn.out_proj.weight.shape == (16, 12)
    torch.testing.assert_close(model(x), before, rtol=1e-5, atol=1e-6)


def test_multihead_attention_whose_heads_all_stay_keeps_its_own_class():
    torch.manual_seed(0)
    model = MhaNet().eval()
    x = torch.randn(2, 5, 6)
    sp.prune(model, x, ratio={"mlp*": 0.5}, round_to=1)
    assert type(model.attn) is nn.MultiheadAttention and model.attn.num_heads == 4
    assert model.mlp[0].out_features == 16 and model(x).shape == (2, 3)


def test_hf_vit_attention_q_proj_layout_loses_whole_heads():
    pytest.importorskip("transformers")
    from transformers import ViTConfig, ViTForImageClassification

    config = ViTConfig(image_size=16, patch_size=4, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                       intermediate_size=64, num_labels=5)
    torch.manual_seed(0)
    model = ViTForImageClassification(config).eval()
    x = torch.randn(2, 3, 16, 16)
    sp.prune(model, x, ratio=0.5)
    attn = next(m for m in model.modules() if hasattr(m, "num_attention_heads") and hasattr(m, "q_proj"))
    assert attn.num_attention_heads == 2 and attn.head_dim == 8 and attn.q_proj.out_features == 16
    assert model(x).logits.shape == (2, 5)


class SneakyAttention(nn.Module):
    """Splits heads with a size it keeps under a name slimforge does not know (``hd``)."""

    def __init__(self) -> None:
        super().__init__()
        self.hd = 16
        self.qkv = nn.ModuleList(nn.Linear(32, 32) for _ in range(3))
        self.out = nn.Linear(32, 32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        q, k, v = (lin(x).view(b, n, -1, self.hd).transpose(1, 2) for lin in self.qkv)
        y = torch.softmax(q @ k.transpose(-1, -2), -1) @ v
        return self.out(y.transpose(1, 2).reshape(b, n, -1))


class SneakierAttention(SneakyAttention):
    """Flattens its tokens to a width it keeps under a name slimforge does not know (``w``): no split to keep whole."""

    def __init__(self) -> None:
        super().__init__()
        self.w = 32

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        q, k, v = (lin(x) for lin in self.qkv)
        y = torch.softmax(q @ k.transpose(-1, -2), -1) @ v
        return self.out(y.reshape(b * n, self.w)).reshape(b, n, -1)


class SneakyNet(nn.Module):
    def __init__(self, attention: type = SneakyAttention) -> None:
        super().__init__()
        self.attn = attention()
        self.head = nn.Linear(32, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.attn(x)).mean(1)


def test_a_size_the_graph_did_not_predict_is_an_error_not_a_silent_model():
    torch.manual_seed(0)
    model = SneakyNet(SneakierAttention).eval()
    x = torch.randn(2, 5, 32)
    with pytest.raises(sp.PruningError, match=r"skip=\['attn'\]"):
        sp.prune(model, x, ratio=0.5, round_to=1)
    model = SneakyNet(SneakierAttention).eval()
    before = model(x)
    # Following the advice leaves nothing else to shrink in this model: one clear error, model untouched.
    with pytest.raises(sp.PruningError, match=r"Nothing to prune: the skip patterns \['attn'\]"):
        sp.prune(model, x, ratio=0.5, round_to=1, skip=["attn"])
    assert torch.equal(model(x), before)


def test_a_split_whose_size_the_code_fixes_is_kept_whole_when_guessed_wrong():
    """Its heads are split with ``view(b, n, -1, self.hd)``: the larger factor, the head size, was guessed to follow
    the tensor (as a channel shuffle's does), and the pruned model failed; the split is then kept whole and the rest
    pruned (before, the whole pruning failed)."""
    torch.manual_seed(0)
    model = SneakyNet().eval()
    x = torch.randn(2, 5, 32)
    sp.prune(model, x, ratio=0.5, round_to=1)
    assert all(lin.out_features == 32 for lin in model.attn.qkv) and model.attn.out.out_features < 32
    assert model(x).shape == (2, 3)


def test_transformer_encoder_heads_go_and_pytorchs_fused_inference_path_is_not_taken(tmp_path):
    """nn.TransformerEncoderLayer's fused kernel assumes num_heads * head_dim == embed_dim; a pruned
    layer must take the plain path under inference_mode (and with a padding mask) and round-trip."""
    from prune_helpers import encoder_net

    model = attach_spec(encoder_net().eval(), ModelSpec("prune_helpers:encoder_net", {}))
    x = torch.randn(2, 5, 6)
    pad = torch.tensor([[False] * 5, [False] * 3 + [True] * 2])
    sp.prune(model, x, ratio={"enc.layers.*.self_attn*": 0.5}, round_to=1)
    for layer in model.enc.layers:
        assert layer.self_attn.num_heads == 2 and layer.self_attn.in_proj_weight.shape == (48, 32)
    reference, unpadded = model(x, pad), model(x)
    with torch.inference_mode():
        torch.testing.assert_close(model(x, pad), reference, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(model(x), unpadded, rtol=1e-5, atol=1e-5)
    save(model, tmp_path / "enc")
    reloaded = load(tmp_path / "enc", trust_code=True).eval()
    with torch.inference_mode():
        torch.testing.assert_close(reloaded(x, pad), reference, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("need_weights,average", [(True, True), (True, False), (False, True)])
def test_prunable_multihead_attention_matches_pytorchs(batch_first, need_weights, average):
    """The stand-in forward gives PyTorch's outputs and attention weights, with padding and attention masks."""
    from slimforge.prune.attention import PrunableMultiheadAttention

    torch.manual_seed(0)
    mha = nn.MultiheadAttention(16, 4, batch_first=batch_first).eval()
    q = torch.randn(2, 5, 16) if batch_first else torch.randn(5, 2, 16)
    kv = torch.randn(*q.shape)
    pad = torch.tensor([[False] * 5, [False] * 3 + [True] * 2])
    causal = torch.triu(torch.ones(5, 5, dtype=torch.bool), 1)
    options = {"key_padding_mask": pad, "attn_mask": causal, "need_weights": need_weights, "average_attn_weights": average}
    want = mha(q, kv, kv, **options)
    mha.__class__ = PrunableMultiheadAttention
    got = mha(q, kv, kv, **options)
    torch.testing.assert_close(got[0], want[0], rtol=1e-5, atol=1e-6)
    if need_weights:
        torch.testing.assert_close(got[1], want[1], rtol=1e-5, atol=1e-6)
    else:
        assert got[1] is None and want[1] is None


def test_prunable_multihead_attention_matches_pytorchs_unbatched():
    from slimforge.prune.attention import PrunableMultiheadAttention

    torch.manual_seed(0)
    mha = nn.MultiheadAttention(16, 4).eval()
    x = torch.randn(5, 16)
    want = mha(x, x, x)
    mha.__class__ = PrunableMultiheadAttention
    got = mha(x, x, x)
    torch.testing.assert_close(got[0], want[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got[1], want[1], rtol=1e-5, atol=1e-6)
