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
              M.RetentionLike, M.FunctionalAttention, M.PackedGroupedAttention, M.FairseqAttention, M.GroupedFusedAttention,
              M.TwoModuleAttention, M.SpeechAttention, M.BloomAttention, M.ProjectedKeysAttention, M.KeyDimAttention, M.LatentAttention)


def _count(attn: nn.Module) -> int:
    return next(getattr(attn, a) for a in ("num_heads", "heads", "n_heads", "h", "head_num", "num_head") if hasattr(attn, a))


def _heads(model: nn.Module) -> list[int]:
    return [_count(m) for m in model.modules() if isinstance(m, ATTENTIONS)]


@pytest.mark.parametrize("attention", ["input_width", "wide", "grouped", "multi_query", "sdpa_grouped", "annotated", "inner_width",
                                       "pieces", "stacked", "retention", "functional", "packed_grouped", "fairseq",
                                       "grouped_fused", "two_module", "speech", "bloom_named", "projected_keys", "key_dim", "latent"])
def test_hand_written_attention_loses_heads_and_reloads(tmp_path, attention):
    model = attach_spec(M.token_net(attention).eval(), ModelSpec("own_attention_models:token_net", {"attention": attention}))
    def per_group() -> list[float]:  # query heads per key/value head
        return [_count(m) / kv for m in model.modules()
                if isinstance(m, ATTENTIONS) and (kv := getattr(m, "n_kv_heads", getattr(m, "num_kv_heads", None)))]

    before, groups = _heads(model), per_group()
    prune(model, X, ratio=0.3)
    after = _heads(model)
    assert all(a < b for a, b in zip(after, before)), (before, after)
    assert per_group() == groups  # whole key/value groups go, with their query heads
    save(model, tmp_path / "m")
    with torch.no_grad():
        assert torch.equal(load(tmp_path / "m", trust_code=True).eval()(X), model(X))


def test_latent_attention_keeps_its_ranks_and_position_count_in_line():
    """DeepSeek-V2's remote code: the latent split reads ``kv_lora_rank``, of the same value as ``q_lora_rank`` (only
    the first was taken, the split failed and the heads were kept); ``max_position_embeddings`` equal to the width
    followed it."""
    model = M.token_net("latent").eval()
    prune(model, X, ratio=0.3)
    for block in model.blocks:
        attn = block["attn"]
        assert attn.num_heads == 3 and attn.max_position_embeddings == 32
        assert attn.kv_lora_rank == attn.kv_b_proj.in_features and attn.q_lora_rank == attn.q_a_proj.out_features
    assert model(X).shape == (2, 5)


def test_heads_split_around_the_attention_by_the_block_that_calls_its_methods_go(tmp_path):
    """SD3's MMDiT: the joint block splits both streams' heads with its streams' head counts; the model's own
    ``num_heads`` (its configuration) was read as the count of every split in it, tying the heads to the output's
    reshape into patches, and no head went."""
    model = attach_spec(M.joint_stream_net().eval(), ModelSpec("own_attention_models:joint_stream_net", {}))
    prune(model, X, ratio=0.3)
    assert [(b.context.num_heads, b.image.num_heads) for b in model.blocks] == [(3, 3), (3, 3)]
    assert model.num_heads == 4 and model.blocks[0].image.qkv.out_features == 3 * 3 * 8
    save(model, tmp_path / "m")
    with torch.no_grad():
        assert torch.equal(load(tmp_path / "m", trust_code=True).eval()(X), model(X))


def test_one_head_of_a_size_the_view_derives_loses_channels_and_one_of_a_kept_size_keeps_them(tmp_path):
    derived = attach_spec(M.token_net("one_derived_head").eval(), ModelSpec("own_attention_models:token_net", {"attention": "one_derived_head"}))
    prune(derived, X, ratio=0.3)
    assert all(b["attn"].to_q.out_features < 32 for b in derived.blocks)
    save(derived, tmp_path / "m")
    with torch.no_grad():
        assert torch.equal(load(tmp_path / "m", trust_code=True).eval()(X), derived(X))
    kept = M.token_net("projected_keys").eval()  # one key/value head viewed to self.dim_head
    prune(kept, X, ratio=0.3)
    assert all(b["attn"].to_k.out_features == b["attn"].dim_head == 8 for b in kept.blocks)


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


def _zero_residual_unit(attn: nn.Module, lo: int, hi: int) -> None:
    """The attention's share of a zeroed residual unit: its head ``lo:hi``'s q/k/v rows, input columns and output."""
    qkv_w, qkv_b, proj = ((attn.qkv.weight, attn.qkv.bias, attn.proj) if isinstance(attn, M.InputWidthAttention)
                          else (attn.in_proj_weight, attn.in_proj_bias, attn.out_proj))
    width = qkv_w.shape[1]
    for part in range(3):
        qkv_w[part * width + lo:part * width + hi] = 0
        qkv_b[part * width + lo:part * width + hi] = 0
    qkv_w[:, lo:hi] = 0
    proj.weight[lo:hi] = 0
    proj.weight[:, lo:hi] = 0
    proj.bias[lo:hi] = 0


@pytest.mark.parametrize("attention", ["input_width", "functional"])
def test_heads_tied_to_the_width_go_with_their_residual_channels_and_leave_the_outputs_unchanged(attention):
    """No norms: a residual channel whose every weight is zero carries zero, so removing head 1 of every block
    together with residual channels 8-15 (the unit the attention ties them into: ``C // num_heads``, or
    ``F.multi_head_attention_forward``'s check of ``self.embed_dim`` against its input) changes nothing."""
    model = M.token_net(attention, norms=False).eval()
    lo, hi = 8, 16  # head 1 of 4, head size 8
    with torch.no_grad():
        model.embed.weight[lo:hi] = 0
        model.embed.bias[lo:hi] = 0
        model.head.weight[:, lo:hi] = 0
        for blk in model.blocks:
            fc1, fc2 = blk["mlp"][0], blk["mlp"][2]
            _zero_residual_unit(blk["attn"], lo, hi)
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


class _TwelveChannelHeads(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Conv2d(3, 32, 4, 4)
        self.attn = M.WideHeadsAttention(32, 4, 12)
        self.head = nn.Linear(32, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed(x).flatten(2).transpose(1, 2)
        return self.head((x + self.attn(x)).mean(1))


def test_heads_wider_than_round_to_go_one_at_a_time():
    """4 heads of 12 channels at ratio 0.3 and round_to=8: one head goes (3 kept, 36 channels), not two (the
    multiple of 8 that pairs of heads would keep, half the layer)."""
    model = _TwelveChannelHeads().eval()
    prune(model, X, ratio=0.3)
    assert model.attn.heads == 3 and model.attn.to_out.in_features == 36
    model(X)


def test_chunks_that_feed_layers_of_their_own_are_not_heads():
    """EfficientViT's cascaded attention chunks its input into num_heads pieces, each the input of its own projection:
    a piece is not a head that can go (its projection would be left with no inputs); the chunks lose the same
    channels each, and the model still runs."""
    model = M.token_net("cascaded", dim=32).eval()
    prune(model, X, ratio=0.3)
    for m in model.modules():
        if isinstance(m, M.CascadedAttention):
            assert m.num_heads == len(m.qkvs) == 4
            assert len({q.in_features for q in m.qkvs}) == 1 and m.qkvs[0].in_features < 8
    model(X)


def test_a_model_level_head_count_is_configuration_and_fills_follow_the_width(tmp_path):
    """SAINT-style: the model keeps ``self.heads`` (2, as many as its GEGLU's chunks) and ``self.dim``; it fills
    ``torch.empty(b, n, self.dim)`` column by column and zeroes masked rows by a mask repeated to the width. The
    GEGLU's chunks are not heads, the fill and ``dim`` follow the width, and the mask does not pin it."""
    model = attach_spec(M.column_table().eval(), ModelSpec("own_attention_models:column_table", {}))
    args = (torch.randint(0, 10, (4, 2)), torch.randn(4, 3))
    prune(model, args, ratio=0.3)
    assert model.dim == model.embeds.embedding_dim < 32
    assert model.attn.num_heads == 1 and model.heads == 2  # heads tied to the width; the model's own count stays
    assert model.ff[0].out_features % 2 == 0 and model.ff[0].out_features < 128  # the GEGLU's halves shrink alike
    save(model, tmp_path / "m")
    with torch.no_grad():
        assert torch.equal(load(tmp_path / "m", trust_code=True).eval()(*args), model(*args))


def test_a_head_size_equal_to_the_head_count_is_not_taken_for_heads():
    """Multi-query attention with 8 heads of 8 channels: the key's channels, unsqueezed beside the heads, are not
    heads because their size is the head count (they were tied to the heads, which SDPA then kept whole)."""
    model = M.TokenNet("multi_query", dim=64, heads=8).eval()
    prune(model, X, ratio=0.3)
    assert all(m.n_heads < 8 for m in model.modules() if isinstance(m, M.MultiQueryAttention))
    model(X)


def test_a_forward_called_directly_is_captured_as_its_module(tmp_path):
    """``self.attn.forward(x)`` (mistral-src, BERT4Rec) instead of ``self.attn(x)``: torch.export records only modules
    called, so the heads viewed with ``self.d_k`` and an ``-1`` were taken for channels and the pruned model failed;
    the capture now routes a direct ``forward`` through the module, whose heads then go."""
    model = attach_spec(M.direct_forward_net().eval(), ModelSpec("own_attention_models:direct_forward_net", {}))
    prune(model, X, ratio=0.3)
    assert model.attn.h < 4 and model.attn.d_k == 8
    assert "forward" not in vars(model.attn)  # the routing is gone after the capture
    save(model, tmp_path / "m")
    with torch.no_grad():
        assert torch.equal(load(tmp_path / "m", trust_code=True).eval()(X), model(X))


def test_a_tensor_attribute_the_forward_moves_stays_on_its_device():
    """OpenAI CLIP moves ``self.attn_mask`` to its input's device in the forward; the pruning's shape check on the
    meta device left it there ("Cannot copy out of meta tensor" on the next call)."""
    model = M.MovedMaskBlock().eval()
    prune(model, X, ratio=0.3)
    assert model.attn_mask.device.type == "cpu"
    model(X)


def test_a_model_its_factory_cannot_build_on_the_meta_device_saves(tmp_path):
    """The save check rebuilds the model from its factory on the meta device; a factory that needs data while it
    builds (Performer's random features) is rebuilt for real instead of refusing the save."""
    model = attach_spec(M.random_features().eval(), ModelSpec("own_attention_models:random_features", {}))
    prune(model, X, ratio=0.3)
    save(model, tmp_path / "m", factory="own_attention_models:random_features", kwargs={})
    with torch.no_grad():
        assert torch.equal(load(tmp_path / "m", trust_code=True).eval()(X), model(X))


def test_a_module_that_computes_a_size_pruning_missed_keeps_that_size():
    """Heads counted under a name no rule reads, viewed with a leading -1: the pruned model runs but a view in that
    module gives another shape than the graph expects. Its split was a guess (the larger factor, ``self.width``, taken
    to follow the tensor): it is kept whole and the rest pruned, the residual width included (before, the module was
    kept whole, and with it the width its projections read), instead of pruning giving up."""
    model = M.UnnamedCountNet().eval()
    prune(model, X, ratio=0.3)
    assert all(lin.out_features == 32 for lin in model.attn.qkv) and model.attn.out.in_features == 32
    assert model.mlp[0].out_features < 64 and model.embed.out_channels < 32
    model(X)


def test_a_fill_added_to_a_parameter_follows_its_width():
    """CLIP's class token, ``class_embedding + torch.zeros(b, 1, x.shape[-1])``: the fill takes the width it is added
    to (it pinned the vision tower's residual: 31% of the parameters at ratio 0.3 in the seventh held-out set)."""
    model = M.ClassTokenByFill().eval()
    prune(model, X, ratio=0.3)
    assert model.class_embedding.shape[0] == model.conv1.out_channels < 32
    model(X)


@pytest.mark.parametrize("name", ["no_heads", "num_attention_heads_per_partition", "num_heads_kv", "n_local_heads", "nhead"])
def test_head_counts_are_read_under_the_names_public_code_gives_them(name):
    """OpenFold's ``no_heads``, Megatron's heads on one tensor-parallel rank, flash-attn's ``num_heads_kv``: a count
    the rule does not read keeps its heads (the dimension per head shrinks instead)."""
    class Attention(nn.Module):
        def __init__(self, dim: int = 32, heads: int = 4) -> None:
            super().__init__()
            setattr(self, name, heads)
            self.qkv, self.out = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            heads = getattr(self, name)
            q, k, v = (t.reshape(*t.shape[:-1], heads, -1).transpose(1, 2) for t in self.qkv(x).chunk(3, dim=-1))
            y = torch.nn.functional.scaled_dot_product_attention(q, k, v)
            return self.out(y.transpose(1, 2).reshape(*x.shape[:-1], -1))

    model = nn.Sequential(nn.Linear(8, 32), Attention(), nn.Linear(32, 2)).eval()
    prune(model, torch.randn(2, 5, 8), ratio=0.3)
    assert getattr(model[1], name) == 3 and model[1].qkv.out_features == 72


@pytest.mark.parametrize("name", ["head_dim", "hidden", "no", "n_layers", "num_query_groups", "heads_dim"])
def test_names_that_do_not_count_heads_are_not_read_as_head_counts(name):
    from slimforge.prune._capture import head_counts

    module = nn.Linear(2, 2)
    setattr(module, name, 4)
    assert head_counts(module) == {}
