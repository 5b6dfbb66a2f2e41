"""Channel blocks of timm's CNN families that kept channels whole until session 21: ECA's convolution along the
channels, MixNet's mixed convolution, CSP stages and Res2Net splitting by a width they keep, NFNet's standardised
weights. Each must prune, run, and replay from its saved folder exactly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import slimforge
import slimforge.prune as sp
from slimforge.artifacts import get_spec
from slimforge.loading import load, save

HERE = Path(__file__).parent


@pytest.fixture(autouse=True)
def helpers_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))


@pytest.fixture
def pruned():
    torch.manual_seed(0)
    model = slimforge.create_model("prune_helpers:channel_blocks_net").eval()
    x = torch.randn(2, 3, 8, 8)
    sp.prune(model, x, ratio=0.5, round_to=1)
    return model, x


def test_a_convolution_along_the_channels_lets_them_shrink(pruned):
    model, x = pruned
    assert model.stem.out_channels < 16  # ECA's Conv1d over the pooled channels pinned them all before
    assert model.eca.conv.weight.shape == (1, 1, 3)  # its kernel mixes neighbours: the kept ones around each channel
    assert model(x).shape == (2, 5)


def test_a_mixed_convolution_prunes_each_piece_and_its_splits_follow(pruned):
    model, _ = pruned
    pieces = [conv.in_channels for conv in model.mixed.values()]
    assert model.expand.out_channels < 48 and model.mixed.splits == pieces and sum(pieces) == model.expand.out_channels
    assert all(p >= 1 for p in pieces)
    assert model.mixed.in_channels == model.mixed.out_channels == sum(pieces)


def test_a_split_by_a_width_the_module_keeps_follows_the_pruned_width(pruned):
    model, _ = pruned
    assert model.csp.conv_exp.out_channels < 32 and model.csp.expand_chs == model.csp.conv_exp.out_channels
    assert model.csp.block.in_channels == model.csp.expand_chs // 2
    assert model.res2.stem.out_channels < 32 and model.res2.width * 4 == model.res2.stem.out_channels
    assert all(conv.in_channels == model.res2.width for conv in model.res2.convs)


def test_standardised_weights_leave_their_input_channels_prunable(pruned):
    model, _ = pruned
    assert model.std.out_channels < 32  # std2's weight.reshape(1, out, -1) merged its inputs with its 3x3 kernel
    assert model.std.weight.shape[2:] == (3, 3)


def test_the_pruned_channel_blocks_replay_from_their_folder(pruned, tmp_path):
    model, x = pruned
    expected = model(x)
    plan = get_spec(model).edits[-1]
    assert plan["tensors"]["csp.expand_chs"] == {"0": plan["tensors"]["csp.conv_exp.weight"]["0"]}
    save(model, tmp_path / "run")
    loaded = load(tmp_path / "run")
    assert loaded.csp.expand_chs == model.csp.expand_chs and loaded.mixed.splits == model.mixed.splits
    assert torch.equal(loaded(x), expected)


def _kept_rows(new: torch.Tensor, old: torch.Tensor) -> list[int]:
    return [next(i for i in range(old.shape[0]) if torch.equal(old[i], row)) for row in new]


def test_glu_halves_lose_the_same_channels_and_replay(tmp_path):
    torch.manual_seed(0)
    model, x = slimforge.create_model("prune_helpers:conformer_conv_net").eval(), torch.randn(2, 16, 12)
    sp.prune(model, x, ratio=0.5, round_to=1)  # no rule for glu before: UnsupportedOpError
    assert model.depthwise.in_channels < 32 and model.pointwise1.out_channels == 2 * model.depthwise.in_channels
    expected = model(x)
    save(model, tmp_path / "run")
    assert torch.equal(load(tmp_path / "run")(x), expected)


def test_weight_norm_keeps_the_kept_weights_as_they_were(tmp_path):
    torch.manual_seed(0)
    model = slimforge.create_model("prune_helpers:weight_norm_net").eval()
    original = {n: p.detach().clone() for n, p in (("a", model.a.weight), ("pos", model.pos.weight), ("wn0", model.wn0.weight))}
    x = torch.randn(2, 10, 8)
    sp.prune(model, x, ratio=0.5, round_to=1)  # no rule for _weight_norm before: UnsupportedOpError
    kept = _kept_rows(model.a.weight, original["a"])
    assert len(kept) < 32 and model.pos.in_channels == len(kept) and model.pos.groups == 4
    local = [k % 8 for k in kept[:len(kept) // 4]]  # the grouped convolution keeps the same local channels in each group
    # The norm runs over every channel of a kernel tap: g was rescaled, so the kept entries are unchanged.
    torch.testing.assert_close(model.pos.weight, original["pos"][kept][:, local], rtol=0, atol=1e-6)
    rows = original["wn0"][:, kept]
    assert all(any(torch.allclose(r, row, atol=1e-6) for r in rows) for row in model.wn0.weight.detach())
    expected = model(x)
    save(model, tmp_path / "run")
    assert torch.equal(load(tmp_path / "run")(x), expected)


def test_a_weightless_norm_sized_from_its_tensor_follows_it_and_a_fixed_one_stays():
    torch.manual_seed(0)
    read_off = slimforge.create_model("prune_helpers:per_expert_norm_net").eval()
    sp.prune(read_off, torch.randn(4, 8), ratio=0.5, round_to=1)
    assert read_off.a.out_features < 32 and read_off.scale.shape[0] == read_off.a.out_features
    fixed = slimforge.create_model("prune_helpers:per_expert_norm_net", fixed=True).eval()
    sp.prune(fixed, torch.randn(4, 8), ratio=0.5, round_to=1)  # the guess fails to run: pruned again with it kept
    assert fixed.a.out_features == 32 and fixed.up.out_features < 16 and fixed(torch.randn(4, 8)).shape == (4, 3)


def test_unequal_splits_sized_by_the_modules_attributes_prune_each_piece_and_replay(tmp_path):
    torch.manual_seed(0)
    model, x = slimforge.create_model("prune_helpers:attribute_split_net").eval(), torch.randn(2, 3, 8, 8)
    sp.prune(model, x, ratio=0.5, round_to=1)  # the stem stayed whole before: split sizes fixed by the capture
    assert model.stem.out_channels < 48
    assert model.dim_conv3 == model.partial.in_channels and model.dim_conv3 + model.dim_untouched == model.stem.out_channels
    pieces = (model.split_indexes[0], model.hw.in_channels, model.w.in_channels, model.h.in_channels)
    assert model.split_indexes == pieces and isinstance(model.split_indexes, tuple) and min(pieces) >= 1
    assert sum(pieces) == model.stem.out_channels
    expected = model(x)
    plan = get_spec(model).edits[-1]["tensors"]
    assert set(plan["split_indexes"]) == {"0", "1", "2", "3"} and "dim_untouched" in plan
    save(model, tmp_path / "run")
    loaded = load(tmp_path / "run")
    assert loaded.split_indexes == model.split_indexes and torch.equal(loaded(x), expected)


def test_slices_cut_at_an_attribute_prune_both_parts_and_replay(tmp_path):
    torch.manual_seed(0)
    model, x = slimforge.create_model("prune_helpers:attribute_slice_net").eval(), torch.randn(2, 3, 8, 8)
    sp.prune(model, x, ratio=0.5, round_to=1)  # the expansion stayed whole before: its slices pinned it
    assert model.expand.out_channels < 40 and model.stem.out_channels == model.in_channels < 16
    assert model.residual.in_channels == model.num_1x1_c and model.dense.in_channels == model.expand.out_channels - model.num_1x1_c
    expected = model(x)
    save(model, tmp_path / "run")
    loaded = load(tmp_path / "run")
    assert (loaded.in_channels, loaded.num_1x1_c) == (model.in_channels, model.num_1x1_c) and torch.equal(loaded(x), expected)


def test_a_split_into_an_attribute_and_the_rest_of_a_kept_width_prunes_both(tmp_path):
    torch.manual_seed(0)
    model, x = slimforge.create_model("prune_helpers:partial_single_head_net").eval(), torch.randn(2, 3, 4, 4)
    sp.prune(model, x, ratio=0.5, round_to=1)  # the stem stayed whole before: dim - pdim matches no attribute
    assert model.stem.out_channels == model.dim < 48 and model.pdim < 16 and model.qk_dim <= 8  # q and k lose the same channels
    assert model.qkv.in_channels == model.pdim and model.qkv.out_channels == 2 * model.qk_dim + model.pdim
    expected = model(x)
    save(model, tmp_path / "run")
    loaded = load(tmp_path / "run")
    assert (loaded.dim, loaded.pdim) == (model.dim, model.pdim) and torch.equal(loaded(x), expected)


def test_a_norm_over_groups_of_channels_loses_whole_groups_and_its_count_follows(tmp_path):
    """timm's EvoNorm2dS0 reshapes its channels to ``(B, self.groups, C // groups, H, W)`` and asserts ``C % groups ==
    0``: the largest factor shrank against a count fixed in the module (ese_vovnet39b_evos did not prune at all)."""
    torch.manual_seed(0)
    model, x = slimforge.create_model("prune_helpers:evo_norm_net").eval(), torch.randn(2, 3, 8, 8)
    before = model[:2](x).detach()
    weights = model[0].weight.detach().clone()
    sp.prune(model, x, ratio=0.5, round_to=1)
    conv, norm = model[0], model[1]
    assert conv.out_channels < 32 and conv.out_channels % 4 == 0 and norm.groups == conv.out_channels // 4
    kept = [i for i in range(32) if any(torch.equal(weights[i], w) for w in conv.weight.detach())]
    assert len(kept) == conv.out_channels  # whole groups of 4 went:
    assert all(kept[j] % 4 == 0 and kept[j:j + 4] == list(range(kept[j], kept[j] + 4)) for j in range(0, len(kept), 4))
    # each group kept normalises the same channels as before: their values are unchanged
    assert torch.allclose(model[:2](x), before[:, kept], atol=1e-5)
    expected = model(x)
    save(model, tmp_path / "run")
    loaded = load(tmp_path / "run")
    assert loaded[1].groups == norm.groups and torch.equal(loaded(x), expected)



def test_a_norm_over_few_large_groups_loses_whole_groups_too():
    """Two groups of 8: the statistic over a group's channels is expanded back to them, so only whole groups can go."""
    from timm.layers import EvoNorm2dS0
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), EvoNorm2dS0(16, groups=2), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(16, 3)).eval()
    x = torch.randn(2, 3, 8, 8)
    sp.prune(model, x, ratio=0.5, round_to=1)
    assert model[1].groups == 1 and model[0].out_channels == 8 and model(x).shape == (2, 3)
