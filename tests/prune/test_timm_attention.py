"""Whole-head pruning of timm's attention families beyond ViT/Swin/LeViT (slimforge/prune/_timm_attention.py,
_timm_hybrid_attention.py): one tiny random-init model per registered form, heads removed with every
per-head table, forward shape kept, slimforge.save/load identical; stand-in forwards equal timm's own."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import slimforge
import slimforge.prune as sp
from slimforge.artifacts import ModelSpec, attach_spec
from slimforge.loading import load, save
from slimforge.prune._timm_attention import own_class
from slimforge.prune.attention import ATTENTION_FORMS, find_attention_form, swap_for

timm = pytest.importorskip("timm")


def _named(name: str, size: int, **kwargs):
    torch.manual_seed(0)
    return slimforge.create_model(f"timm:{name}", num_classes=5, **kwargs).eval(), torch.randn(2, 3, size, size)


def _class(path: str, size: int, **kwargs):
    """A timm model class built directly (not through create_model): saved with its own factory spec."""
    module, _, cls = path.rpartition(".")
    torch.manual_seed(0)
    model = getattr(__import__(module, fromlist=[cls]), cls)(num_classes=5, **kwargs).eval()
    return attach_spec(model, ModelSpec(f"{module}:{cls}", {"num_classes": 5, **kwargs})), torch.randn(2, 3, size, size)


def _helper(factory: str, size: int):
    """A model from tests/prune/prune_helpers.py, saved with that factory as its spec."""
    import prune_helpers

    torch.manual_seed(0)
    return attach_spec(getattr(prune_helpers, factory)().eval(), ModelSpec(f"prune_helpers:{factory}", {})), torch.randn(2, 3, size, size)


_TINY_VIT = dict(img_size=32, patch_size=8, depth=1, embed_dim=64, num_heads=4)
_TWINS = dict(depths=(1, 2, 1, 1), embed_dims=(32, 64, 96, 128), num_heads=(1, 2, 3, 4), wss=(2, 2, 2, 2), img_size=64)
_GCVIT = dict(depths=(1, 1, 1, 1), num_heads=(2, 4, 8, 16), embed_dim=32, img_size=64, window_ratio=(16, 16, 16, 32))
MODELS = {
    "beit": lambda: _named("beit_base_patch16_224", 32, **_TINY_VIT),
    "relpos": lambda: _named("vit_relpos_small_patch16_224", 32, **_TINY_VIT),
    "relpos-bias": lambda: _named("vit_relpos_medium_patch16_rpn_224", 32, **_TINY_VIT),
    "cait": lambda: _named("cait_xxs24_224", 32, depth_token_only=1, **_TINY_VIT),
    "pvt": lambda: _class("timm.models.pvt_v2.PyramidVisionTransformerV2", 64, depths=(1, 1, 1, 1), embed_dims=(32, 64, 96, 128)),
    "twins": lambda: _class("timm.models.twins.Twins", 64, **_TWINS),
    "xcit": lambda: _named("xcit_nano_12_p16_224", 32, img_size=32, depth=1, cls_attn_layers=1),
    "davit": lambda: _class("timm.models.davit.DaVit", 64, depths=(1, 1, 1, 1), embed_dims=(16, 32, 48, 64), num_heads=(1, 2, 3, 4)),
    "efficientformer": lambda: _class("timm.models.efficientformer.EfficientFormer", 224, depths=(1, 1, 1, 1),
                                      embed_dims=(16, 32, 48, 64), num_vit=1),
    "tiny-vit": lambda: _class("timm.models.tiny_vit.TinyVit", 64, depths=(1, 1, 1, 1), embed_dims=(32, 64, 96, 128),
                               num_heads=(1, 2, 3, 4), window_sizes=(2, 2, 2, 2)),
    "maxvit": lambda: _named("maxvit_rmlp_pico_rw_256", 64, img_size=64, depths=(1, 1, 1, 1)),
    "coatnet": lambda: _named("coatnet_pico_rw_224", 64, img_size=64, depths=(1, 1, 1, 1)),
    "convit": lambda: _named("convit_tiny", 32, img_size=32, patch_size=8, depth=2, local_up_to_layer=1),
    "gcvit": lambda: _class("timm.models.gcvit.GlobalContextVit", 64, **_GCVIT),
    # parallel blocks end in a Conv1d along the embedding (the aggregate head): a spatial dimension with channels
    "coat": lambda: _class("timm.models.coat.CoaT", 32, embed_dims=(16, 32, 32, 32), serial_depths=(1, 1, 1, 1),
                           parallel_depth=1, num_heads=8, mlp_ratios=(2, 2, 2, 2), img_size=32, patch_size=4),
    "eva": lambda: _named("eva02_tiny_patch14_224", 28, img_size=28, depth=1),
    # separate q/k/v projections, a norm over all heads' channels (scale_attn_inner)
    "eva-separate": lambda: _named("eva02_tiny_patch14_224", 28, img_size=28, depth=1, qkv_fused=False, scale_attn_inner=True),
    "gemma4": lambda: _named("gemma4_vit_167m", 32, img_size=32, depth=1),
    "swinv2": lambda: _class("timm.models.swin_transformer_v2.SwinTransformerV2", 64, img_size=64, window_size=4, embed_dim=32,
                             depths=(1, 1, 2, 1), num_heads=(1, 2, 4, 8)),
    "fastvit": lambda: _class("timm.models.fastvit.FastVit", 64, layers=(1, 1, 1, 1), embed_dims=(48, 96, 192, 384),
                              token_mixers=("repmixer", "repmixer", "attention", "attention")),
    "nest": lambda: _class("timm.models.nest.Nest", 32, img_size=32, patch_size=4, num_levels=3, embed_dims=(32, 64, 96),
                           num_heads=(1, 2, 3), depths=(1, 1, 1)),
    # SigLIP's attention-pool head ('map'), after ViT blocks
    "siglip": lambda: _named("vit_base_patch16_siglip_224", 32, img_size=32, patch_size=8, depth=1, embed_dim=64, num_heads=4),
    # pooled q/k/v: depthwise convolutions and norms along the head size, shared by all heads
    "mvitv2": lambda: _named("mvitv2_tiny", 64, img_size=64),
    # on a (B, H, W, C) map, windowed and global blocks, decomposed relative position; its position
    # embedding goes through an antialiased bicubic resample while exported (timm resamples it always then)
    "sam": lambda: _named("samvit_base_patch16", 32, img_size=32, patch_size=8, depth=2, embed_dim=64, num_heads=4,
                          window_size=2, global_attn_indexes=(1,), neck_chans=32),
    # LeViT: its downsampling attention's queries (key_dim per head) come from a subsampled grid
    "levit": lambda: _named("levit_128s", 64, img_size=64),
    "levit-conv": lambda: _named("levit_conv_128s", 64, img_size=64),
    # talking heads (1x1 convolutions across heads) and a downsampling attention with local-global queries
    "efficientformerv2": lambda: _class("timm.models.efficientformer_v2.EfficientFormerV2", 64, img_size=64, depths=(1, 1, 2, 2),
                                        embed_dims=(16, 32, 48, 64), num_vit=1, mlp_ratios=2),
    # two branches; each one's class token attends to the other's tokens
    "crossvit": lambda: _named("crossvit_tiny_240", 120, img_size=120, depth=((1, 1, 0),), embed_dim=(48, 96), num_heads=(2, 4)),
    # outlook attention over unfolded k x k neighbourhoods (F.unfold / F.fold), attention on a map, class attention
    "volo": lambda: _class("timm.models.volo.VOLO", 64, img_size=64, layers=(1, 1, 1, 1), embed_dims=(32, 64, 64, 64),
                           num_heads=(2, 4, 4, 4), stem_hidden_dim=16),
    # inner (pixel) and outer (patch) attention; the pixel embedding reshapes to the inner width
    "tnt": lambda: _class("timm.models.tnt.TNT", 32, img_size=32, patch_size=8, embed_dim=64, inner_dim=16, depth=2,
                          num_heads_inner=2, num_heads_outer=4, first_stride=2),
    "tnt-legacy": lambda: _class("timm.models.tnt.TNT", 32, img_size=32, patch_size=8, embed_dim=64, inner_dim=16, depth=2,
                                 num_heads_inner=2, num_heads_outer=4, first_stride=2, legacy=True),
    # pooled keys and values
    "nextvit": lambda: _class("timm.models.nextvit.NextViT", 64, in_chans=3, stem_chs=(16, 16, 16), depths=(1, 1, 5, 1),
                              sr_ratios=(4, 2, 2, 1)),
    # queries per head, keys and values shared by the heads; timm reshapes the output to the input's width
    "lambda": lambda: _named("lambda_resnet26t", 64),
    # scaled cosine attention, logit scale and position-bias MLP output per head
    "swinv2-cr": lambda: _named("swinv2_cr_tiny_ns_224", 64, img_size=64, window_size=4, embed_dim=32, depths=(2, 1, 1, 1),
                                num_heads=(1, 2, 4, 8)),
    "edgenext": lambda: _class("timm.models.edgenext.EdgeNeXt", 64, depths=(1, 1, 1, 1), dims=(24, 48, 88, 168),
                               heads=(2, 2, 4, 4), global_block_counts=(0, 1, 1, 1)),
    "caformer": lambda: _helper("tiny_caformer", 64),
    "visformer": lambda: _class("timm.models.visformer.Visformer", 64, img_size=64, init_channels=16, embed_dim=96, depth=(1, 1, 1),
                                num_heads=3),
    # the second and third stages widen in their first block (dim -> dim_out) and pool the queries
    "hiera": lambda: _class("timm.models.hiera.Hiera", 64, img_size=64, embed_dim=32, num_heads=1, stages=(1, 1, 2, 1)),
    # multi-query: query heads from a 1x1 convolution, one key and one value head (kept whole) shared by all
    "mobilenetv4-hybrid": lambda: _named("mobilenetv4_hybrid_medium", 64),
    # heads folded into the batch, no output projection: the values' width is the module's output
    "botnet": lambda: _helper("tiny_botnet", 16),
    "halonet": lambda: _helper("tiny_halonet", 16),
    "sam2": lambda: _class("timm.models.hieradet_sam2.HieraDet", 64, embed_dim=32, num_heads=1, stages=(1, 1, 2, 1),
                           global_att_blocks=(3,), window_spec=(8, 4, 4, 2), global_pos_size=(7, 7)),
    # multi-scale linear attention: no head count, 3 x dim channels a head, aggregated by a convolution in 3 x heads groups
    # a 1x1-convolution qkv on a strided depthwise-convolved map, (N, heads, 3 x head_dim, hw), merged to o_proj_inpdim
    "lowformer": lambda: _named("lowformer_b0", 64),
    "efficientvit-mit": lambda: _class("timm.models.efficientvit_mit.EfficientVit", 64, widths=(8, 16, 32, 64, 128), depths=(1, 1, 1, 1, 1),
                                       head_dim=8, head_widths=(64, 80)),
}
# The model of each form (several forms share one).
FORMS = {
    "timm-beit-attention": "beit", "timm-relpos-attention": "relpos", "timm-relative-position": "relpos-bias",
    "timm-talking-heads-attention": "cait", "timm-class-attention": "cait", "timm-pvt-attention": "pvt",
    "timm-twins-global-attention": "twins", "timm-twins-local-attention": "twins", "timm-xcit-attention": "xcit",
    "timm-davit-channel-attention": "davit", "timm-davit-window-attention": "davit",
    "timm-efficientformer-attention": "efficientformer", "timm-tiny-vit-attention": "tiny-vit",
    "timm-maxxvit-attentioncl": "maxvit", "timm-maxxvit-attention2d": "coatnet", "timm-convit-gpsa": "convit",
    "timm-convit-mhsa": "convit", "timm-gcvit-attention": "gcvit", "timm-edgenext-attention": "edgenext",
    "timm-coat-attention": "coat", "timm-coat-conv-position": "coat", "timm-eva-attention": "eva",
    "timm-swinv2-attention": "swinv2", "timm-fastvit-attention": "fastvit", "timm-nest-attention": "nest",
    "timm-attention-pool": "siglip", "timm-metaformer-attention": "caformer", "timm-visformer-attention": "visformer", "timm-lowformer-attention": "lowformer",
    "timm-hiera-attention": "hiera", "timm-sam2-attention": "sam2", "timm-mvitv2-attention": "mvitv2",
    "timm-sam-attention": "sam", "timm-levit-downsample-attention": "levit",
    "timm-crossvit-cross-attention": "crossvit", "timm-volo-outlook-attention": "volo", "timm-volo-attention": "volo",
    "timm-volo-class-attention": "volo", "timm-tnt-attention": "tnt", "timm-tnt-pixel-embed": "tnt",
    "timm-nextvit-attention": "nextvit", "timm-swinv2-cr-attention": "swinv2-cr", "timm-lambda-layer": "lambda",
    "timm-multi-query-attention-2d": "mobilenetv4-hybrid", "timm-bottleneck-attention": "botnet", "timm-halo-attention": "halonet",
    "timm-gemma4-attention": "gemma4", "timm-lite-mla": "efficientvit-mit", "timm-efficientformerv2-attention2d": "efficientformerv2", "timm-efficientformerv2-attention2ddownsample": "efficientformerv2",
}


def _heads(m: nn.Module) -> int:
    if hasattr(m, "aggreg"):  # EfficientViT's LiteMLA counts no heads: its q/k/v width over a head's
        return m.qkv.conv.out_channels // (3 * m.dim)
    return m.num_heads if isinstance(getattr(m, "num_heads", None), int) else m.heads  # Hiera: ``heads``


def _attention(model: nn.Module) -> dict[str, nn.Module]:
    return {p: m for p, m in model.named_modules() if (f := find_attention_form(m)) is not None and not f.part}


def _per_head_sizes(m: nn.Module) -> list[int]:
    """Sizes of every per-head tensor of an attention module (and of its relative-position part)."""
    sizes = []
    for name, dim in (("relative_position_bias_table", -1), ("temperature", 0), ("gating_param", 0), ("attention_biases", 0),
                      ("logit_scale", 0)):
        if isinstance(getattr(m, name, None), torch.Tensor):
            sizes.append(getattr(m, name).shape[dim])
    for name, attr in (("proj_l", "in_features"), ("proj_w", "out_features"), ("pos_proj", "out_features"),
                       ("talking_head1", "in_channels"), ("talking_head2", "out_channels")):
        if isinstance(getattr(m, name, None), (nn.Linear, nn.Conv2d)):
            sizes.append(getattr(getattr(m, name), attr))
    if isinstance(getattr(m, "unfold", None), nn.Unfold):  # VOLO's outlook attention: k^4 attention weights per head
        sizes.append(m.attn.out_features // m.kernel_size ** 4)
    for branch in getattr(m, "aggreg", ()):  # LiteMLA's aggregation: a group per head's query, key and value
        sizes.append(branch[1].groups // 3)
    if hasattr(m, "meta_mlp"):  # Swin v2 CR's position-bias MLP
        sizes.append(m.meta_mlp.fc2.out_features)
    if isinstance(getattr(m, "cpb_mlp", None), nn.Sequential):  # Swin v2's continuous position bias
        sizes.append(m.cpb_mlp[-1].out_features)
    rel = getattr(m, "rel_pos", None)
    if rel is not None:
        fc2 = getattr(getattr(rel, "mlp", None), "fc2", None)
        sizes.append(fc2.out_features if fc2 is not None else rel.relative_position_bias_table.shape[-1])
        sizes.append(rel.bias_shape[-1] if type(rel).__name__ != "RelPosBiasTf" else rel.bias_shape[0])
    crpe = getattr(m, "crpe", None)
    if crpe is not None:  # CoaT: one depthwise convolution per group of heads, shared by a stage's blocks
        sizes.append(sum(crpe.head_splits))
        assert crpe.channel_splits == [c.out_channels for c in crpe.conv_list] and min(crpe.head_splits) >= 1
    return sizes


# Forms whose heads stay, tested in test_timm_models.py.
ELSEWHERE = ["timm-efficientvit-cascaded-attention"]


def test_every_timm_form_has_a_model():
    assert sorted([*FORMS, *ELSEWHERE]) == sorted(n for n in ATTENTION_FORMS.names() if n.startswith("timm-")
                                                  and n not in ("timm-attention", "timm-window-attention", "timm-levit-attention"))


@pytest.mark.parametrize("family", sorted(MODELS))
def test_family_loses_whole_heads_and_round_trips(family, tmp_path):
    model, x = MODELS[family]()
    assert {ATTENTION_FORMS.get(f) for f, fam in FORMS.items() if fam == family} <= {find_attention_form(m) for m in model.modules()}
    forms = {find_attention_form(m) for m in _attention(model).values()}
    heads = {p: _heads(m) for p, m in _attention(model).items()}
    shape = model(x).shape

    sp.prune(model, x, ratio=0.5)

    attns = _attention(model)
    for form in forms:  # every attention form of the model lost heads somewhere
        assert any(_heads(m) < heads[p] for p, m in attns.items() if find_attention_form(m) is form), form
    for path, m in attns.items():
        assert _heads(m) <= heads[path]
        assert all(s == _heads(m) for s in _per_head_sizes(m)), (path, _heads(m), _per_head_sizes(m))
    out = model(x)
    assert out.shape == shape and torch.isfinite(out).all()
    save(model, tmp_path / family)
    reloaded = load(tmp_path / family, trust_code=True).eval()
    assert [type(m) for m in _attention(reloaded).values()] == [type(m) for m in attns.values()]  # stand-ins swapped in again
    assert torch.equal(reloaded(x), out)


# timm's own forward reads the head count in efficientformer(v2), tiny-vit, maxvit, coatnet, visformer, sam2, mvitv2, sam,
# levit, tnt, MobileNetV4's multi-query attention, BoTNet, HaloNet, Gemma 4's ViT and EfficientViT's LiteMLA: no stand-in.
STAND_IN_FAMILIES = sorted(set(MODELS) - {"efficientformer", "tiny-vit", "maxvit", "coatnet", "visformer", "sam2", "mvitv2", "sam",
                                           "levit", "levit-conv", "efficientformerv2", "tnt", "tnt-legacy", "mobilenetv4-hybrid", "botnet", "halonet",
                                           "gemma4", "efficientvit-mit", "lowformer"})


@pytest.mark.parametrize("family", STAND_IN_FAMILIES)
def test_stand_in_forward_equals_timms_own(family):
    """The stand-ins compute what timm's forwards compute (before any pruning)."""
    model, x = MODELS[family]()
    reference = model(x)
    swapped = 0
    for m in model.modules():
        swap = swap_for(type(m))
        if swap is not None and swap.matches(m):
            find_attention_form(m).remember(m)
            swap.use(m)
            swapped += 1
    assert swapped
    torch.testing.assert_close(model(x), reference, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("family", ["beit", "cait", "pvt", "xcit", "eva-separate", "siglip"])
def test_heads_only_pruning_runs_the_stand_in_with_the_width_kept(family, tmp_path):
    """Heads pruned, residual width kept: timm's own forward (reshape to the input's width) cannot
    run it, so the module keeps its stand-in, also after slimforge.load."""
    model, x = MODELS[family]()
    attns = _attention(model)
    pattern = {f"{p}.{n}": 0.5 for p, m in attns.items() for n in ("qkv", "q", "q_proj") if isinstance(getattr(m, n, None), nn.Linear)}
    sp.prune(model, x, ratio=pattern, round_to=1)
    pruned = [m for m in attns.values() if own_class(m) is not type(m)]
    assert pruned and all(m.proj.in_features < m.proj.out_features for m in pruned)
    out = model(x)
    save(model, tmp_path / family)
    reloaded = load(tmp_path / family, trust_code=True).eval()
    assert sum(own_class(m) is not type(m) for m in _attention(reloaded).values()) == len(pruned)
    assert torch.equal(reloaded(x), out)


def test_single_head_keeps_its_channels():
    """A one-head attention (PVT's first stage) reshapes to (..., 1, head_dim): no head split ties its
    channels, so they stay whole instead of shrinking the head size."""
    model, x = MODELS["pvt"]()
    first = model.stages[0].blocks[0].attn
    assert first.num_heads == 1
    width = first.q.out_features
    sp.prune(model, x, ratio=0.5)
    assert first.q.out_features == width and first.kv.out_features == 2 * width and first.head_dim == width
    assert model.stages[1].blocks[0].attn.num_heads == 1  # 2 heads -> 1


def test_a_pruned_model_with_stand_ins_pickles():
    """Stand-in classes are made at run time but found by name in their module, as pickle looks them up."""
    import pickle

    import slimforge.prune._timm_attention as standins

    model, x = MODELS["pvt"]()
    sp.prune(model, x, ratio=0.5)
    classes = {type(m) for m in _attention(model).values() if own_class(m) is not type(m)}
    assert classes and all(getattr(standins, c.__qualname__) is c for c in classes)
    assert pickle.dumps(model)  # not unpickled: slimforge's own artifacts never need pickle
