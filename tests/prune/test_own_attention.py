"""Attention written by hand (no registered form) loses whole heads: the head counts its attributes hold follow
the heads found where its forward splits channels into heads, and a forward that derives the head size from its
input's width gets its heads tied to that width. The function-preserving tests zero one head (and, where heads
are tied to the width, one block of residual channels) so that pruning exactly that unit must leave the outputs
unchanged: they fail if a head's query, key, value and output channels are grouped wrongly."""
from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

import own_attention_models as M
from slimforge.artifacts import ModelSpec, attach_spec
from slimforge.loading import load, save
from slimforge.prune import prune

X = torch.randn(2, 3, 16, 16)


ATTENTIONS = (M.InputWidthAttention, M.WideHeadsAttention, M.GroupedQueryAttention, M.ConvAttention, M.MultiQueryAttention,
              M.SdpaGroupedAttention, M.AnnotatedAttention, M.InnerWidthAttention, M.PiecesAttention, M.StackedHeadsAttention,
              M.RetentionLike)


def _count(attn: nn.Module) -> int:
    return next(getattr(attn, a) for a in ("num_heads", "heads", "n_heads", "h", "head_num") if hasattr(attn, a))


def _heads(model: nn.Module) -> list[int]:
    return [_count(m) for m in model.modules() if isinstance(m, ATTENTIONS)]


@pytest.mark.parametrize("attention", ["input_width", "wide", "grouped", "multi_query", "sdpa_grouped", "annotated", "inner_width",
                                       "pieces", "stacked", "retention"])
def test_hand_written_attention_loses_heads_and_reloads(tmp_path, attention):
    model = attach_spec(M.token_net(attention).eval(), ModelSpec("own_attention_models:token_net", {"attention": attention}))
    before = _heads(model)
    prune(model, X, ratio=0.3)
    after = _heads(model)
    assert all(a < b for a, b in zip(after, before)), (before, after)
    for m in model.modules():  # whole key/value groups go: query heads stay twice the key/value heads
        kv = getattr(m, "n_kv_heads", getattr(m, "num_kv_heads", None)) if isinstance(m, ATTENTIONS) else None
        assert kv is None or _count(m) == 2 * kv
    save(model, tmp_path / "m")
    with torch.no_grad():
        assert torch.equal(load(tmp_path / "m", trust_code=True).eval()(X), model(X))


def test_a_head_size_read_off_the_input_width_ties_heads_to_that_width(caplog):
    """Width 48, 4 heads of 12: at ratio 0.3 the residual alone would keep 32 or 40 channels, which 3 heads of 12
    do not fill, so the heads-only attempt fails its check and the heads are tied to the width."""
    model = M.token_net("input_width", dim=48).eval()
    with caplog.at_level(logging.INFO, logger="slimforge.prune.structured"):
        prune(model, X, ratio=0.3)
    assert "heads tied to its input's width" in caplog.text
    for m in model.modules():
        if isinstance(m, M.InputWidthAttention):
            assert m.qkv.in_features == m.num_heads * 12 and m.num_heads < 4  # head size 48 // 4 kept
    model(X)


def _zero_head(attn: nn.Module, head: int) -> None:
    """Zero the query, key and value channels of one head (with grouped key/values: one key/value head and its
    query heads) and the output projection's columns they feed: the head then adds nothing."""
    with torch.no_grad():
        if isinstance(attn, M.WideHeadsAttention):
            d = attn.to_qkv.out_features // 3 // attn.heads
            for part in range(3):
                attn.to_qkv.weight[part * attn.heads * d + head * d:part * attn.heads * d + (head + 1) * d] = 0
            attn.to_out.weight[:, head * d:(head + 1) * d] = 0
        elif isinstance(attn, M.GroupedQueryAttention):
            d, rep = attn.head_dim, attn.n_rep
            attn.wk.weight[head * d:(head + 1) * d] = 0
            attn.wv.weight[head * d:(head + 1) * d] = 0
            attn.wq.weight[head * rep * d:(head + 1) * rep * d] = 0
            attn.wo.weight[:, head * rep * d:(head + 1) * rep * d] = 0
        elif isinstance(attn, M.PiecesAttention):
            d = attn.dim_v // attn.num_heads
            for p in (attn.fc_q, attn.fc_k, attn.fc_v):
                p.weight[head * d:(head + 1) * d] = 0
                p.bias[head * d:(head + 1) * d] = 0
            attn.fc_o.weight[:, head * d:(head + 1) * d] = 0
        elif isinstance(attn, M.RetentionLike):  # its value channels feed the group norm: zero its norm's group too
            d = attn.head_size
            for p in (attn.q, attn.k, attn.v):
                p.weight[head * d:(head + 1) * d] = 0
            attn.group_norm.weight[head * d:(head + 1) * d] = 0
            attn.group_norm.bias[head * d:(head + 1) * d] = 0
            attn.o.weight[:, head * d:(head + 1) * d] = 0
        elif isinstance(attn, M.MultiQueryAttention):  # a query head; the one key/value head stays
            d = attn.head_dim
            attn.q.weight[head * d:(head + 1) * d] = 0
            attn.o.weight[:, head * d:(head + 1) * d] = 0
        else:  # ConvAttention: (3, heads, head_dim) output channels
            d = attn.head_dim
            for part in range(3):
                attn.qkv.weight[part * attn.heads * d + head * d:part * attn.heads * d + (head + 1) * d] = 0
            attn.proj.weight[:, head * d:(head + 1) * d] = 0


@pytest.mark.parametrize("factory, attention, head, ratio", [
    (M.token_net, "wide", 2, 0.25), (M.token_net, "grouped", 1, 0.5), (M.token_net, "multi_query", 3, 0.25), (M.token_net, "pieces", 0, 0.25),
    (M.token_net, "retention", 1, 0.25),
    (M.conv_attention_net, None, 1, 0.25)])
def test_pruning_a_zeroed_head_leaves_the_outputs_unchanged(factory, attention, head, ratio):
    model = (factory(attention) if attention else factory()).eval()
    attentions = [m for m in model.modules() if isinstance(m, ATTENTIONS)]
    for attn in attentions:
        _zero_head(attn, head)
    with torch.no_grad():
        expected = model(X)
    prune(model, X, ratio={"*attn*": ratio}, round_to=1)
    assert all(h < b for h, b in zip(_heads(model), [4] * len(attentions)))
    with torch.no_grad():
        torch.testing.assert_close(model(X), expected, rtol=1e-5, atol=1e-6)


def test_heads_tied_to_the_width_go_with_their_residual_channels_and_leave_the_outputs_unchanged():
    """No norms: a residual channel whose every weight is zero carries zero, so removing head 1 of every block
    together with residual channels 8-15 (the unit the input-width attention ties them into) changes nothing."""
    model = M.token_net("input_width", norms=False).eval()
    lo, hi = 8, 16  # head 1 of 4, head size 8
    with torch.no_grad():
        model.embed.weight[lo:hi] = 0
        model.embed.bias[lo:hi] = 0
        model.head.weight[:, lo:hi] = 0
        for blk in model.blocks:
            attn, fc1, fc2 = blk["attn"], blk["mlp"][0], blk["mlp"][2]
            for part in range(3):
                attn.qkv.weight[part * 32 + lo:part * 32 + hi] = 0
                attn.qkv.bias[part * 32 + lo:part * 32 + hi] = 0
            attn.qkv.weight[:, lo:hi] = 0
            attn.proj.weight[lo:hi] = 0
            attn.proj.weight[:, lo:hi] = 0
            attn.proj.bias[lo:hi] = 0
            fc1.weight[:, lo:hi] = 0
            fc2.weight[lo:hi] = 0
            fc2.bias[lo:hi] = 0
        expected = model(X)
    prune(model, X, ratio={"embed": 0.25}, round_to=1)
    assert _heads(model) == [3, 3] and model.embed.out_channels == 24
    with torch.no_grad():
        torch.testing.assert_close(model(X), expected, rtol=1e-5, atol=1e-6)


def test_nn_transformer_prunes_its_width_and_heads_quietly(tmp_path, capfd):
    model = attach_spec(M.translation_model().eval(), ModelSpec("own_attention_models:translation_model", {}))
    src, tgt = torch.randint(0, 40, (2, 7)), torch.randint(0, 40, (2, 5))
    prune(model, (src, tgt), ratio=0.3)
    assert model.transformer.d_model == model.src.embedding_dim < 32
    assert "def forward(self" not in capfd.readouterr().err  # no partial graph of the failed first capture
    save(model, tmp_path / "m")
    with torch.no_grad():
        assert torch.equal(load(tmp_path / "m", trust_code=True).eval()(src, tgt), model(src, tgt))


def test_a_fill_concatenated_with_a_parameter_follows_its_width():
    """``torch.zeros(1, self.bias.shape[1])`` beside the bias: the fill is sized from the bias in the code, and the
    width it is concatenated into narrows (it was kept whole: FT-Transformer at 22.9% instead of 41.8%)."""
    model, x = M.tokenized_rows().eval(), torch.randn(2, 5)
    prune(model, x, ratio=0.5, round_to=1)
    assert model.bias.shape[1] == model.weight.shape[1] == 16 and model(x).shape == (2, 2)


@pytest.mark.parametrize("ratio", [0.25, 0.5])
def test_heads_merged_with_the_batch_in_functional_attention_follow_num_heads(tmp_path, ratio):
    """``F.multi_head_attention_forward`` views its queries to (len, batch * num_heads, head_dim): the heads repeat
    batch by batch, ``num_heads`` follows them, and the width stays heads x head size (8)."""
    model = attach_spec(M.functional_pool().eval(), ModelSpec("own_attention_models:functional_pool", {}))
    prune(model, X, ratio=ratio, round_to=1)
    assert model.num_heads < 4 and model.q_proj.out_features == model.stem.out_channels == 8 * model.num_heads
    save(model, tmp_path / "m")
    with torch.no_grad():
        assert torch.equal(load(tmp_path / "m", trust_code=True).eval()(X), model(X))
