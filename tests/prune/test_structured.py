"""Structured pruning: exactness where it must be exact, shapes kept, plans replay through artifacts."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import slimforge
import slimforge.prune as sp
from slimforge.artifacts import get_spec
from slimforge.loading import load, save
from slimforge.errors import SlimforgeError, UnknownNameError

HERE = Path(__file__).parent


@pytest.fixture(autouse=True)
def helpers_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))


def _build(name: str) -> nn.Module:
    torch.manual_seed(0)
    model = slimforge.create_model(f"prune_helpers:{name}")
    _randomise_norms(model)
    return model.eval()


def _randomise_norms(model: nn.Module) -> None:
    """Non-trivial BatchNorm statistics, so slicing the wrong running stats would show."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


X = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("name", ["plain_net", "zoo_net"])
def test_ratio_zero_leaves_outputs_identical(name):
    model = _build(name)
    before = model(X)
    n = _params(model)
    sp.prune(model, X, ratio=0.0)
    assert _params(model) == n
    assert torch.equal(model(X), before)


def test_removing_all_zero_channels_leaves_outputs_identical():
    model = _build("plain_net")
    dead = [1, 4, 6, 9]  # conv1 channels whose weights (and BN affine) are all zero: they output 0
    with torch.no_grad():
        model.conv1.weight[dead] = 0
        model.conv1.bias[dead] = 0
        model.bn1.weight[dead] = 0
        model.bn1.bias[dead] = 0
    before = model(X)
    sp.prune(model, X, ratio={"conv1": 0.25}, importance="l1", round_to=1)
    assert model.conv1.out_channels == 12 and model.bn1.num_features == 12 and model.conv2.in_channels == 12
    assert model.conv2.weight.shape[1] == 12
    torch.testing.assert_close(model(X), before, rtol=1e-5, atol=1e-6)


def test_zoo_net_prunes_every_coupling_pattern_and_runs():
    model = _build("zoo_net")
    n = _params(model)
    sp.prune(model, X, ratio=0.5, round_to=1)
    out = model(X)
    assert out.shape == (4, 10) and torch.isfinite(out).all()
    assert _params(model) < 0.6 * n
    # Grouped conv keeps 4 equal groups; depthwise stays depthwise; LayerNorm follows its channels.
    assert model.b.groups == 4 and model.b.out_channels % 4 == 0
    assert model.dw.groups == model.dw.in_channels == model.dw.out_channels == model.gn.num_channels
    assert model.gn.num_channels % model.gn.num_groups == 0
    assert model.ln.normalized_shape == (model.pw.out_channels,)
    assert model.fc1.in_features == model.pw.out_channels * 4


@pytest.mark.parametrize("name", ["plain_net", "zoo_net"])
def test_plan_replays_onto_fresh_model_exactly(name, tmp_path):
    model = _build(name)
    sp.prune(model, X, ratio=0.5, round_to=1)
    expected = model(X)
    plan = get_spec(model).edits[-1]
    assert plan["kind"] == "prune" and plan["tensors"]

    fresh = sp.apply_plan(_build(name), plan)
    fresh.load_state_dict(model.state_dict())
    assert torch.equal(fresh.eval()(X), expected)

    save(model, tmp_path / "run")
    reloaded = load(tmp_path / "run")
    assert torch.equal(reloaded(X), expected)


def test_cifar_resnet_round_trip_and_rounding(tmp_path):
    model = slimforge.create_model("resnet20", num_classes=10).eval()
    x = torch.randn(2, 3, 16, 16)
    sp.prune(model, x, ratio=0.5, round_to=8)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert all(c.out_channels % 8 == 0 for c in convs)
    assert model.conv1.in_channels == 3 and model.fc.out_features == 10
    save(model, tmp_path / "r")
    assert torch.equal(load(tmp_path / "r")(x), model(x))


class _DenseBlock(nn.Module):
    """Two layers whose outputs are concatenated (DenseNet, Inception): one group, two producers."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 24, 3, padding=1), nn.Conv2d(3, 40, 3, padding=1)
        self.bn, self.head = nn.BatchNorm2d(64), nn.Conv2d(64, 16, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(F.relu(self.bn(torch.cat([self.a(x), self.b(x)], 1))))


@pytest.mark.parametrize("ratio", [0.3, 0.5, 0.9])
def test_each_layer_feeding_a_concat_keeps_a_rounded_width(ratio):
    torch.manual_seed(0)
    model = _DenseBlock().eval()
    with torch.no_grad():
        model.b.weight[:36] *= 100  # b's channels score far higher: a group-wide cut would empty a
    sp.prune(model, torch.randn(2, 3, 8, 8), ratio=ratio, round_to=8)
    widths = model.a.out_channels, model.b.out_channels
    assert all(w >= 8 and w % 8 == 0 for w in widths), widths
    assert model.bn.num_features == model.head.in_channels == sum(widths)
    assert model(torch.randn(2, 3, 8, 8)).shape == (2, 16, 8, 8)


class _FourBranches(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.branches = nn.ModuleList(nn.Conv2d(3, 16, 3, padding=1) for _ in range(4))
        self.head = nn.Conv2d(64, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(F.relu(torch.cat([b(x) for b in self.branches], 1)))


def test_a_concat_group_lands_near_its_ratio_in_round_steps():
    """Four 16-channel layers at ratio 0.3 want 11.2 channels each: rounded one by one to the nearest 8 they
    all kept 8 (half the group); rounded down, with the steps the total still asks for going to the
    largest remainders, the group keeps 48 of 64 (the nearest multiple of 8 to 44.8)."""
    torch.manual_seed(0)
    model = _FourBranches().eval()
    sp.prune(model, torch.randn(2, 3, 8, 8), ratio=0.3, round_to=8)
    widths = sorted(b.out_channels for b in model.branches)
    assert widths == [8, 8, 16, 16] and model.head.in_channels == 48


class _WideReach(nn.Module):
    """A residual stream read by every block, tied to each block's inner channels by a convolution that
    reads both (EfficientViT (MSRA)'s cascaded heads): one group, units of very different reach."""

    def __init__(self, blocks: int = 6) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.inner = nn.ModuleList(nn.Conv2d(16, 16, 1) for _ in range(blocks))
        self.mix = nn.ModuleList(nn.Conv2d(32, 16, 1) for _ in range(blocks))
        self.head = nn.Conv2d(16, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for inner, mix in zip(self.inner, self.mix):
            x = x + mix(torch.cat([x, F.relu(inner(x))], 1))
        return self.head(x)


def test_units_of_different_reach_each_lose_the_ratio():
    """Ranked together, the residual's channels (a mean over ~20 slots each) all score near 1 and the
    inner channels (3 slots) take the cut: the residual kept 14 of its 16 channels at ratio 0.3."""
    torch.manual_seed(0)
    model = _WideReach().eval()
    graph = sp.build_dependency_graph(model, (torch.randn(2, 3, 8, 8),))
    assert len({len(g.units) for g in graph.groups}) == 1 and len(graph.groups) == 1  # one group of 16 * 7 units
    sp.prune(model, torch.randn(2, 3, 8, 8), ratio=0.3, round_to=1)
    assert model.stem.out_channels == 11
    assert all(conv.out_channels == 11 for conv in model.inner)
    assert model(torch.randn(2, 3, 8, 8)).shape == (2, 4, 8, 8)


def test_target_params_is_met():
    model = slimforge.create_model("resnet20", num_classes=10).eval()
    n = _params(model)
    sp.prune(model, torch.randn(2, 3, 16, 16), target_params=0.5, round_to=1)
    assert 0.4 * n < _params(model) <= 0.5 * n


def test_target_macs_is_met():
    model = _build("plain_net")
    graph = sp.build_dependency_graph(model, (X,))
    macs = graph.count_macs(set())
    sp.prune(model, X, target_macs=0.5, round_to=1)
    after = sp.build_dependency_graph(model, (X,)).count_macs(set())
    assert 0.3 * macs < after <= 0.5 * macs


def test_skip_pattern_keeps_layer_and_per_layer_ratios():
    model = _build("plain_net")
    sp.prune(model, X, ratio={"conv2": 0.5, "*": 0.25}, skip=["conv1"], round_to=1)
    assert model.conv1.out_channels == 16
    assert model.conv2.out_channels == 6


def test_unsupported_op_names_op_and_module_and_skip_works():
    torch.manual_seed(0)
    from prune_helpers import CumsumNet

    model = CumsumNet().eval()
    x = torch.randn(2, 3, 8, 8)
    with pytest.raises(sp.UnsupportedOpError) as info:
        sp.prune(model, x, ratio=0.5)
    message = str(info.value)
    assert "erfinv" in message and "'odd'" in message and "skip=['odd']" in message
    assert isinstance(info.value, SlimforgeError)
    before = model(x)
    # Skipping it leaves this model nothing to shrink: said, not reported as a 1.00x "pruned" model.
    with pytest.raises(sp.PruningError, match="Nothing to prune"):
        sp.prune(model, x, ratio=0.5, skip=["odd"])
    assert model.conv.out_channels == 8 and torch.equal(model(x), before)


def test_a_ratio_that_rounds_to_nothing_is_an_error():
    model = _build("plain_net")
    before = model(X)
    with pytest.raises(sp.PruningError, match="ratio 0.01 removes nothing"):
        sp.prune(model, X, ratio=0.01, round_to=1)
    assert torch.equal(model(X), before)


@pytest.mark.parametrize("bad", [{"ratio": 1.0}, {"ratio": -0.1}, {"ratio": 0.3, "target_params": 0.5}, {}, {"target_macs": 0.0}])
def test_bad_options_are_config_errors(bad):
    with pytest.raises(sp.PruneConfigError):
        sp.prune(_build("plain_net"), X, **bad)


def test_unknown_importance_lists_known():
    with pytest.raises(UnknownNameError, match="l2"):
        sp.prune(_build("plain_net"), X, ratio=0.3, importance="l3")


@pytest.mark.parametrize("criterion", sp.list_importances())
def test_every_importance_criterion_prunes_and_runs(criterion):
    model = _build("zoo_net")
    n = _params(model)
    calibration = [(X, torch.tensor([0, 1, 2, 3]))]
    sp.prune(model, X, ratio=0.4, importance=criterion, calibration=calibration, round_to=1)
    out = model(X)
    assert out.shape == (4, 10) and torch.isfinite(out).all() and _params(model) < n


def test_taylor_without_calibration_is_an_error():
    with pytest.raises(sp.PruneConfigError, match="calibration"):
        sp.prune(_build("plain_net"), X, ratio=0.3, importance="taylor")


def test_package_is_callable_like_the_function():
    model = _build("plain_net")
    slimforge.prune(model, X, ratio=0.5, round_to=1)
    assert model.conv1.out_channels == 8


def test_pruned_model_trains():
    model = _build("zoo_net").train()
    sp.prune(model, X, ratio=0.5, round_to=1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = nn.functional.cross_entropy(model(X), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    opt.step()
    assert all(p.grad is not None and p.grad.shape == p.shape for p in model.parameters())


def test_a_norm_without_weights_is_resized_and_its_plan_replays(tmp_path):
    torch.manual_seed(0)
    model, x = slimforge.create_model("prune_helpers:weightless_norms").eval(), torch.randn(5, 8)
    sp.prune(model, x, ratio=0.5, round_to=1)
    assert model.a.out_features == 16 and model.ln.normalized_shape == (16,) and model.rms.normalized_shape == (16,)
    expected = model(x)
    plan = get_spec(model).edits[-1]
    assert plan["tensors"]["ln.normalized_shape"] == {"0": plan["tensors"]["a.weight"]["0"]}
    fresh = sp.apply_plan(slimforge.create_model("prune_helpers:weightless_norms").eval(), plan)
    fresh.load_state_dict(model.state_dict())
    assert torch.equal(fresh(x), expected)
    save(model, tmp_path / "run")
    assert torch.equal(load(tmp_path / "run")(x), expected)


def test_a_plan_that_keeps_indices_outside_a_normalized_shape_is_refused():
    plan = {"kind": "prune", "version": 1, "tensors": {"ln.normalized_shape": {"0": [[0, 40]]}}}
    with pytest.raises(SlimforgeError, match="ln.normalized_shape"):
        sp.apply_plan(slimforge.create_model("prune_helpers:weightless_norms"), plan)


def test_per_channel_prelu_slopes_follow_their_channels():
    class PReLUNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.c, self.act, self.c2, self.one, self.fc = nn.Conv2d(3, 32, 3), nn.PReLU(32), nn.Conv2d(32, 16, 3), nn.PReLU(), nn.Linear(16, 4)

        def forward(self, x):
            return self.fc(self.one(self.c2(self.act(self.c(x)))).mean((2, 3)))

    model, x = PReLUNet().eval(), torch.randn(2, 3, 12, 12)
    sp.prune(model, x, ratio=0.5, round_to=1)
    assert model.c.out_channels == 16 and model.act.weight.shape == (16,) and model.one.weight.shape == (1,)
    assert model(x).shape == (2, 4)


def test_a_failed_prune_leaves_the_model_exactly_as_it_was():
    class Fixed(nn.Module):  # its forward hard-codes the channel count: the check after slicing fails
        def __init__(self):
            super().__init__()
            self.c, self.fc = nn.Conv2d(3, 8, 3), nn.Linear(800, 4)

        def forward(self, x):
            return self.fc(self.c(x).reshape(x.shape[0], 800))

    model, x = Fixed().eval(), torch.randn(2, 3, 12, 12)
    before, expected = {k: v.clone() for k, v in model.state_dict().items()}, model(x)
    with pytest.raises(sp.PruningError):
        sp.prune(model, x, ratio=0.5, round_to=1)
    assert model.c.out_channels == 8 and model.fc.in_features == 800
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()) and torch.equal(model(x), expected)


def test_a_skip_pattern_that_matches_no_module_is_an_error():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3))
    with pytest.raises(sp.PruneConfigError, match=r"\['nosuchlayer'\] match no module"):
        sp.prune(model, torch.randn(2, 3, 10, 10), ratio=0.5, skip=["nosuchlayer"])
    assert model[0].out_channels == 8


def test_a_one_sample_example_with_batchnorm_in_training_mode_names_the_batch():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 4, 3)).train()
    with pytest.raises(sp.PruneConfigError, match="batch of at least 2"):
        sp.prune(model, torch.randn(1, 3, 10, 10), ratio=0.5)


class _SplitNet(nn.Module):
    """Res2Net's pattern: a layer's output split into pieces, each through its own convolution."""

    def __init__(self, size_from_tensor: bool) -> None:
        super().__init__()
        self.size_from_tensor = size_from_tensor
        self.stem = nn.Conv2d(3, 32, 1)
        self.branches = nn.ModuleList(nn.Conv2d(8, 8, 3, padding=1) for _ in range(3))
        self.head = nn.Conv2d(32, 16, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.stem(x)
        parts = torch.split(y, y.shape[1] // 4 if self.size_from_tensor else 8, 1)  # (a width the module keeps follows)
        return self.head(torch.cat([conv(p) for conv, p in zip(self.branches, parts)] + [parts[3]], 1))


def test_a_split_into_sizes_fixed_in_the_code_is_kept_whole_and_the_rest_pruned():
    model = _SplitNet(size_from_tensor=False).eval()
    x = torch.randn(2, 3, 8, 8)
    sp.prune(model, x, ratio=0.5, round_to=1)  # it raised "The pruned model no longer runs" before
    assert model.stem.out_channels == 32  # torch.split(y, 8) cannot follow a pruned stem
    assert all(conv.out_channels < 8 for conv in model.branches)
    assert model.head.in_channels == sum(conv.out_channels for conv in model.branches) + 8
    assert model(x).shape == (2, 16, 8, 8)

    shaped = _SplitNet(size_from_tensor=True).eval()
    sp.prune(shaped, x, ratio=0.5, round_to=1)
    assert shaped.stem.out_channels < 32  # a size computed from the tensor follows it: prunable
    assert shaped(x).shape == (2, 16, 8, 8)


class _ShuffledTokens(nn.Module):
    """ViTMAE's patch shuffle: tokens reordered by ``gather`` with an index repeated along the features, its size
    read from the tensor (as ViTMAE's ``dim``) or fixed in the code."""

    def __init__(self, size_from_tensor: bool) -> None:
        super().__init__()
        self.size_from_tensor = size_from_tensor
        self.embed, self.up, self.down, self.head = nn.Linear(6, 32), nn.Linear(32, 64), nn.Linear(64, 32), nn.Linear(32, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x)
        order = torch.argsort(x[..., 0], dim=1)  # data-dependent, as ViTMAE's noise
        index = order.unsqueeze(-1).repeat(1, 1, h.shape[-1] if self.size_from_tensor else 32).to(x.device)
        h = torch.gather(h, 1, index)
        return self.head(h + self.down(torch.relu(self.up(h))))


def test_a_gather_index_repeated_along_the_features_follows_them_when_its_size_does():
    x = torch.randn(2, 5, 6)
    model = _ShuffledTokens(size_from_tensor=True).eval()
    with torch.no_grad():  # residual channels 16..31 carry nothing: L2 pruning takes them, outputs unchanged
        for layer in (model.embed, model.down):
            layer.weight[16:] = 0.0
            layer.bias[16:] = 0.0
        model.up.weight[:, 16:] = 0.0
        model.up.weight[32:], model.up.bias[32:], model.down.weight[:, 32:] = 0.0, 0.0, 0.0  # so do hidden 32..63
    before = model(x)
    sp.prune(model, x, ratio=0.5, round_to=8)  # the residual was kept whole before (the index pinned it)
    assert model.embed.out_features == 16 and model.head.in_features == 16
    torch.testing.assert_close(model(x), before)

    fixed = _ShuffledTokens(size_from_tensor=False).eval()
    reference = fixed(x)
    sp.prune(fixed, x, ratio=0.5, round_to=8)  # repeat(..., 32) cannot follow: pruned again with it whole
    assert fixed.embed.out_features == 32 and fixed.up.in_features == 32 and fixed.up.out_features == 32
    assert fixed(x).shape == reference.shape


class _InterleavedGLU(nn.Module):
    """GPT-OSS's experts: one projection whose columns interleave gate and up, split with [..., ::2] / [..., 1::2]."""

    def __init__(self) -> None:
        super().__init__()
        self.gate_up, self.down = nn.Linear(8, 32), nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.gate_up(x)
        gate, up = h[..., ::2], h[..., 1::2]
        return self.down(torch.sigmoid(gate) * (up + 1))


def test_interleaved_slices_remove_a_gate_column_with_its_up_column():
    """A slice with a step pinned its dimension before; now each (gate, up) pair goes or stays together, so the
    pruned projection interleaves the same way. Units 8..15 carry nothing: they go, the outputs stay."""
    model = _InterleavedGLU().eval()
    with torch.no_grad():
        model.gate_up.weight[16:], model.gate_up.bias[16:] = 0.0, 0.0
        model.down.weight[:, 8:] = 0.0
    x = torch.randn(3, 8)
    before = model(x)
    sp.prune(model, x, ratio=0.5, round_to=1)
    assert model.gate_up.out_features == 16 and model.down.in_features == 8
    torch.testing.assert_close(model(x), before)


class _Fp32Island(nn.Module):
    """A block run with autocast turned off (timm's EfficientViT keeps its attention in fp32 so)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(8, 32), nn.Linear(32, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.fc1(x))
        with torch.autocast(device_type=x.device.type, enabled=False):
            h = h.float() * 2
        return self.fc2(h)


def test_a_block_with_autocast_turned_off_prunes_and_autocast_is_restored():
    torch.manual_seed(0)
    model, x = _Fp32Island(), torch.randn(4, 8)
    real = torch.autocast
    sp.prune(model, x, ratio=0.5, round_to=1)
    assert model.fc1.out_features == 16 and model.fc2.in_features == 16
    assert torch.autocast is real
    assert model(x).shape == (4, 4)


class _TiledPositions(nn.Module):
    """A per-channel window embedding tiled over the map with fewer repeats than dimensions (Hiera's
    ``pos_embed_win.tile((H, W))``: torch repeats the last dimensions)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, padding=1)
        self.window = nn.Parameter(torch.randn(1, 16, 2, 2))
        self.head = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x) + self.window.tile((4, 4))
        return self.head(h.mean((2, 3)))


def test_tile_with_fewer_repeats_than_dimensions_keeps_channels_prunable():
    torch.manual_seed(0)
    model, x = _TiledPositions(), torch.randn(2, 3, 8, 8)
    sp.prune(model, x, ratio=0.5, round_to=1)
    assert model.conv.out_channels == 8 and model.window.shape == (1, 8, 2, 2)
    assert model(x).shape == (2, 4)


class _Resized(nn.Module):
    def __init__(self, mode: str, antialias: bool) -> None:
        super().__init__()
        self.mode, self.antialias = mode, antialias
        self.conv, self.head = nn.Conv2d(3, 16, 3, padding=1), nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.interpolate(self.conv(x), size=(5, 5), mode=self.mode, antialias=self.antialias)
        return self.head(h.mean((2, 3)))


@pytest.mark.parametrize("mode,antialias", [("bicubic", True), ("bilinear", True), ("nearest-exact", False)])
def test_resizing_passes_channels_through(mode, antialias):
    """torch's antialiased and exact-nearest resizes (timm's position-embedding resizing) are spatial ops."""
    torch.manual_seed(0)
    model, x = _Resized(mode, antialias), torch.randn(2, 3, 8, 8)
    sp.prune(model, x, ratio=0.5, round_to=1)
    assert model.conv.out_channels == 8 and model(x).shape == (2, 4)


def test_grid_sampling_passes_channels_through_and_the_sampled_table_is_sliced(tmp_path, monkeypatch):
    """``F.grid_sample`` (GLM-4V's position table resampled to each image's grid) had no rule."""
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    torch.manual_seed(0)
    model, x = slimforge.create_model("prune_helpers:grid_sampled_positions_net").eval(), torch.randn(2, 16, 12)
    sp.prune(model, x, ratio=0.5, round_to=1)
    assert model.patch.out_features == model.positions.shape[1] < 32 and model.mlp[0].out_features < 64
    expected = model(x)
    save(model, tmp_path / "run")
    assert torch.equal(load(tmp_path / "run")(x), expected)


class _ToInputWidth(nn.Module):
    """PvT-v2's attention pattern: its output reshaped to its input's width, a size the capture records as a constant."""

    def __init__(self) -> None:
        super().__init__()
        self.mix = nn.Linear(16, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        return self.mix(x).reshape(b, n, c)


def test_a_module_that_fails_after_pruning_is_kept_whole_and_the_rest_pruned(caplog):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 16), _ToInputWidth(), nn.ReLU(), _ToInputWidth(),
                          nn.Linear(16, 4)).eval()
    x = torch.randn(2, 5, 8)
    with caplog.at_level("WARNING", logger="slimforge.prune.structured"):
        sp.prune(model, x, ratio={"0": 0.5, "2": 0.5, "3.*": 0.25}, round_to=1)  # raised "no longer runs" before
    assert "failed to run in 3 " in caplog.text and "its 2 _ToInputWidth module(s) kept whole" in caplog.text
    assert model[0].out_features == 16  # the rest is pruned as asked
    assert model[2].out_features == 16 and model[3].mix.weight.shape == model[5].mix.weight.shape == (16, 16)
    assert model(x).shape == (2, 5, 4)


class _RepeatedChannels(nn.Module):
    """Channels repeated along their own dimension and added to a layer twice as wide."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.head = nn.Conv2d(3, 8, 1), nn.Conv2d(3, 16, 1), nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head((self.a(x).repeat(1, 2, 1, 1) + self.b(x)).mean((2, 3)))


def test_a_repeated_dimension_stays_prunable_and_each_copy_loses_the_same_channels():
    torch.manual_seed(0)
    model, x = _RepeatedChannels(), torch.randn(2, 3, 8, 8)
    sp.prune(model, x, ratio=0.5, round_to=1)
    kept = model.a.out_channels
    assert kept == 4 and model.b.out_channels == 2 * kept and model.head.in_features == 2 * kept
    assert model(x).shape == (2, 4)


class _SelectedPositions(nn.Module):
    """index_select over positions leaves the channels prunable."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.head = nn.Conv1d(3, 16, 1), nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.index_select(self.conv(x), 2, torch.arange(0, x.shape[2], 2)).mean(2))


def test_index_select_pins_only_the_dimension_it_indexes():
    torch.manual_seed(0)
    model, x = _SelectedPositions(), torch.randn(2, 3, 10)
    sp.prune(model, x, ratio=0.5, round_to=1)
    assert model.conv.out_channels == 8 and model.head.in_features == 8
    assert model(x).shape == (2, 4)


class _TokenTypesFromAFill(nn.Module):
    """GIT's token types: ``zeros_like(embeddings, dtype=int)[..., 0]``, a pick from a tensor that holds the same
    value at every channel, so which channels remain does not change it."""

    def __init__(self) -> None:
        super().__init__()
        self.words, self.types, self.head = nn.Embedding(50, 16), nn.Embedding(2, 16), nn.Linear(16, 4)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.words(ids)
        return self.head(x + self.types(torch.zeros_like(x, dtype=torch.int)[..., 0]))


def test_a_pick_from_a_constant_fill_leaves_the_channels_prunable():
    torch.manual_seed(0)
    model, ids = _TokenTypesFromAFill(), torch.randint(0, 50, (2, 6))
    sp.prune(model, ids, ratio=0.5, round_to=1)
    assert model.words.embedding_dim == model.types.embedding_dim == model.head.in_features == 8
    assert model(ids).shape == (2, 6, 4)


class _BranchesOnData(nn.Module):
    """Branches on its input's values in eval mode too, as Longformer/LED do on ``is_global_attn``."""

    def __init__(self) -> None:
        super().__init__()
        self.up, self.down = nn.Linear(6, 32), nn.Linear(32, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.up(x))
        if (x[:, 0] > 100).any():  # never true for the example: the other path is not taken
            h = h * 2
        return self.down(h)


def test_a_forward_that_branches_on_its_data_is_captured_along_the_branch_the_example_takes():
    x = torch.randn(4, 6)
    model = _BranchesOnData().eval()
    with pytest.raises(Exception, match="data-dependent"):
        torch.export.export(model, (x,), strict=False)
    with torch.no_grad():  # hidden units 16..31 carry nothing: L2 pruning takes them, outputs unchanged
        model.up.weight[16:], model.up.bias[16:], model.down.weight[:, 16:] = 0.0, 0.0, 0.0
    before = model(x)
    sp.prune(model, x, ratio=0.5, round_to=8)
    assert model.up.out_features == 16 and model.down.in_features == 16
    torch.testing.assert_close(model(x), before)
    big = x.clone()
    big[:, 0] = 200.0  # the other branch still runs on the pruned model
    assert model(big).shape == (4, 3)


class _GlobalTokens(nn.Module):
    """Longformer's global attention in small: the positions its mask marks, found with nonzero(as_tuple=True) behind
    a branch on the data, get their own output (the tuple form failed draft_export: PendingUnbackedSymbolNotFound)."""

    def __init__(self) -> None:
        super().__init__()
        self.up, self.glob, self.down = nn.Linear(6, 32), nn.Linear(32, 32), nn.Linear(32, 3)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.up(x))
        if mask.any():
            rows, cols = mask.nonzero(as_tuple=True)
            h = h.index_put((rows, cols), self.glob(h[rows, cols]))
        return self.down(h)


def test_positions_found_with_nonzero_tuples_behind_a_data_branch_are_captured_and_prune():
    x, mask = torch.randn(2, 5, 6), torch.zeros(2, 5, dtype=torch.bool)
    mask[:, 0] = True
    model = _GlobalTokens().eval()
    sp.prune(model, x, example_kwargs={"mask": mask}, ratio=0.5, round_to=8)
    assert model.up.out_features == model.glob.out_features == model.down.in_features == 16
    assert model(x, mask).shape == (2, 5, 3) and model(x, torch.zeros_like(mask)).shape == (2, 5, 3)


class _OverlappingWindows(nn.Module):
    """Longformer's chunks: as_strided windows over the sequence of a contiguous (batch, tokens, channels) tensor,
    whose channels (the innermost, same size and stride) pass through."""

    def __init__(self) -> None:
        super().__init__()
        self.up, self.down = nn.Linear(6, 32), nn.Linear(32, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.up(x).contiguous()
        b, t, c = h.shape
        windows = h.as_strided((b, t - 1, 2, c), (t * c, c, c, 1))  # each token with the next
        return self.down(windows.sum(2))


def test_as_strided_windows_pass_their_innermost_channels_through():
    torch.manual_seed(0)
    x, model = torch.randn(2, 5, 6), _OverlappingWindows().eval()
    with torch.no_grad():
        model.up.weight[16:], model.up.bias[16:] = 0.0, 0.0
        before = model(x)
    sp.prune(model, x, ratio=0.5, round_to=8)
    assert model.up.out_features == model.down.in_features == 16
    torch.testing.assert_close(model(x), before)


class _ChannelsFirstWindows(nn.Module):
    """as_strided windows over tokens of a channels-first view (``(batch, channels, tokens)``, channels of stride 1, not
    the innermost dimension of the view): the channel dimension keeps its size and stride and each of its slabs reads
    only its own channel, so it passes through (Longformer's ``batch * heads``). ``side``'s view reads each channel one
    place over (storage offset 1), so its channels stay whole."""

    def __init__(self) -> None:
        super().__init__()
        self.up, self.down = nn.Linear(6, 32), nn.Linear(32, 3)
        self.side, self.side_down = nn.Linear(6, 32), nn.Linear(31, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.up(x).contiguous()
        b, t, c = h.shape
        windows = h.transpose(1, 2).as_strided((b, c, t - 1, 2), (t * c, 1, c, c))  # each token with the next
        s = self.side(x).contiguous()
        shifted = s.as_strided((b, t, s.shape[2] - 1), (t * s.shape[2], s.shape[2], 1), 1)
        return self.down(windows.sum(3).transpose(1, 2)) + self.side_down(shifted)[:, 1:]


def test_as_strided_passes_a_leading_dimension_that_reads_only_its_own_slab():
    torch.manual_seed(0)
    x, model = torch.randn(2, 5, 6), _ChannelsFirstWindows().eval()
    _same_outputs_after_pruning(model, x, model.up)
    assert model.up.out_features == model.down.in_features == 16 and model.side.out_features == 32


def _same_outputs_after_pruning(model: nn.Module, x: torch.Tensor, *zeroed: nn.Module, **kwargs) -> None:
    """Zero the output units 16 and up of each layer of ``zeroed`` (L2 pruning at ratio 0.5 then takes exactly those),
    prune, and check the outputs did not change: a unit grouped with the wrong channels would change them."""
    with torch.no_grad():
        for layer in zeroed:
            layer.weight[16:] = 0.0
            if getattr(layer, "bias", None) is not None:
                layer.bias[16:] = 0.0
        before = model(x, **kwargs.get("example_kwargs", {}))
    sp.prune(model, x, ratio=0.5, round_to=8, **kwargs)
    torch.testing.assert_close(model(x, **kwargs.get("example_kwargs", {})), before)


class _PositionsByFunction(nn.Module):
    """Phi-4-multimodal's ``torch.nonzero(mask, as_tuple=True)`` and the one-argument ``torch.where(mask)``, behind a
    branch on the data: the function forms of the tuple nonzero (only the method was read as an unbound nonzero)."""

    def __init__(self) -> None:
        super().__init__()
        self.up, self.glob, self.down = nn.Linear(6, 32), nn.Linear(32, 32), nn.Linear(32, 3)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.up(x))
        if mask.any():
            rows, cols = torch.nonzero(mask, as_tuple=True)
            h = h.index_put((rows, cols), self.glob(h[rows, cols]))
            rows, cols = torch.where(mask)
            h = h.index_put((rows, cols), h[rows, cols] * 2)
        return self.down(h)


def test_positions_found_with_the_function_forms_of_nonzero_are_captured_and_prune():
    x, mask = torch.randn(2, 5, 6), torch.zeros(2, 5, dtype=torch.bool)
    mask[:, 1] = True
    model = _PositionsByFunction().eval()
    _same_outputs_after_pruning(model, x, model.up, model.glob, example_kwargs={"mask": mask})
    assert model.up.out_features == model.glob.out_features == model.down.in_features == 16
    assert torch.where(mask)[0].tolist() == [0, 1]  # torch's own functions are back after the capture


class _NarrowedRotary(nn.Module):
    """PE Audio's rotary table ``cos.narrow(-1, 0, d // 2)`` (no rule for ``narrow`` failed the model): a narrow along
    the tokens passes the channels through; one along the channels keeps the part it cuts whole."""

    def __init__(self) -> None:
        super().__init__()
        self.up, self.side, self.down = nn.Linear(6, 32), nn.Linear(6, 32), nn.Linear(48, 3)
        self.register_buffer("table", torch.randn(8, 16))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.up(x)).narrow(1, 0, 4)  # the first 4 tokens
        cut = self.side(x).narrow(-1, 0, 16)[:, :4]  # half of side's channels: side stays whole
        return self.down(torch.cat([h, cut * self.table.narrow(0, 0, 4)], -1))


def test_narrow_along_tokens_passes_channels_and_along_channels_keeps_them_whole():
    torch.manual_seed(0)
    x, model = torch.randn(2, 6, 6), _NarrowedRotary().eval()
    _same_outputs_after_pruning(model, x, model.up)
    assert model.up.out_features == 16 and model.side.out_features == 32 and model.down.in_features == 32


class _SpecialTokens(nn.Module):
    """Grounding DINO's ``torch.isin(input_ids, special_ids)`` (no rule for ``isin``): elementwise on the ids."""

    def __init__(self) -> None:
        super().__init__()
        self.embed, self.down = nn.Embedding(20, 32), nn.Linear(32, 3)
        self.register_buffer("special", torch.tensor([0, 1, 2]))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        keep = ~torch.isin(ids, self.special)
        return self.down(self.embed(ids) * keep.unsqueeze(-1))


def test_isin_of_token_ids_prunes_the_embedding_behind_it():
    ids = torch.tensor([[0, 5, 7, 1], [3, 2, 9, 11]])
    model = _SpecialTokens().eval()
    with torch.no_grad():
        model.embed.weight[:, 16:] = 0.0
        before = model(ids)
    sp.prune(model, ids, ratio=0.5, round_to=8)
    assert model.embed.embedding_dim == model.down.in_features == 16
    torch.testing.assert_close(model(ids), before)


class _InterleavedTable(nn.Module):
    """EfficientLoFTR's rotary table: a fill whose even and odd channels are copied in apart
    (``emb[..., 0::2] = i * inv_freq``, ``emb[..., 1::2] = j * inv_freq``); the fill's dimension took the copy's label
    (half its length) and the rule failed ("tying vectors of lengths 8 and 16")."""

    def __init__(self) -> None:
        super().__init__()
        self.up, self.down, self.pos = nn.Linear(6, 32), nn.Linear(32, 3), nn.Linear(32, 3)
        self.register_buffer("inv_freq", torch.rand(16))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        i = torch.ones(x.shape[1], 1).cumsum(0)
        emb = torch.zeros(1, x.shape[1], 32)
        emb[:, :, 0::2] = i * self.inv_freq
        emb[:, :, 1::2] = (i + 1) * self.inv_freq
        return self.down(torch.relu(self.up(x))) + self.pos(emb.sin())


def test_a_fill_written_in_interleaved_halves_prunes_the_layers_beside_it():
    torch.manual_seed(0)
    x, model = torch.randn(2, 5, 6), _InterleavedTable().eval()
    _same_outputs_after_pruning(model, x, model.up)
    assert model.up.out_features == model.down.in_features == 16 and model.pos.in_features == 32


class _MovedHeads(nn.Module):
    """SD3's ``qkv.reshape(b, l, 3, -1, head_dim).movedim(2, 0)`` (no rule for ``movedim`` kept every layer whole):
    a permutation of the dimensions."""

    def __init__(self) -> None:
        super().__init__()
        self.qkv, self.up, self.down = nn.Linear(8, 24), nn.Linear(8, 32), nn.Linear(32, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).reshape(x.shape[0], x.shape[1], 3, 2, 4).movedim(2, 0)
        attn = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        h = torch.relu(self.up(x)).movedim((0, 1), (1, 0))  # (tokens, batch, hidden)
        return self.down(h).movedim(0, 1) + attn.transpose(1, 2).reshape(x.shape)


def test_movedim_is_read_as_the_permutation_it_is():
    torch.manual_seed(0)
    x, model = torch.randn(2, 5, 8), _MovedHeads().eval()
    _same_outputs_after_pruning(model, x, model.up)
    assert model.up.out_features == model.down.in_features == 16


class _ChunkMask(nn.Module):
    """Gated DeltaNet's chunked scan masks (positions, positions) matrices with ``tril`` (no rule for it kept the whole
    layer): channels before the last two dimensions pass through; channels that are the matrix's rows stay whole."""

    def __init__(self) -> None:
        super().__init__()
        self.up, self.down, self.pair = nn.Linear(6, 32), nn.Linear(32, 3), nn.Linear(6, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.up(x)).transpose(1, 2)  # (batch, channels, tokens)
        masked = (h.unsqueeze(-1) * h.unsqueeze(-2)).tril().sum(-1)  # (batch, channels, tokens, tokens) masked
        p = self.pair(x)
        paired = (p.unsqueeze(-1) * p.unsqueeze(-2)).triu(1).sum((-1, -2))  # pair's channels are the matrix's
        return self.down(masked.transpose(1, 2)) + paired.unsqueeze(-1)


def test_tril_passes_the_leading_dimensions_and_keeps_the_matrix_whole():
    torch.manual_seed(0)
    x, model = torch.randn(2, 5, 6), _ChunkMask().eval()
    _same_outputs_after_pruning(model, x, model.up)
    assert model.up.out_features == model.down.in_features == 16 and model.pair.out_features == 8


class _LabelsInTraining(nn.Module):
    """FastSpeech2-Conformer: its training forward needs labels the example lacks (a ValueError), its eval forward
    branches on the data; it was refused with the training error instead of captured along the example's branch."""

    def __init__(self) -> None:
        super().__init__()
        self.up, self.down = nn.Linear(6, 32), nn.Linear(32, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            raise ValueError("All labels must be provided to run in training mode.")
        h = torch.relu(self.up(x))
        return self.down(h * 2 if h.sum() > 0 else h)


def test_a_forward_that_needs_labels_in_training_and_branches_on_data_in_eval_is_captured():
    torch.manual_seed(0)
    x, model = torch.randn(4, 6), _LabelsInTraining().eval()
    _same_outputs_after_pruning(model, x, model.up)
    assert model.up.out_features == 16 and not model.training


class _LengthRegulator(nn.Module):
    """FastSpeech2's length regulator in small: durations predicted from the hidden states, each token repeated for
    its duration into a zero-filled tensor as long as the longest sequence (an ``.item()`` the data decides), a
    relative position table of ``2 * frames - 1``, frames out. Pruning changes the predicted durations, and with them
    every size made from the frame count: it was refused as a size slimforge did not update."""

    def __init__(self) -> None:
        super().__init__()
        self.up, self.duration, self.pos, self.down = nn.Linear(6, 32), nn.Linear(32, 1), nn.Linear(1, 32), nn.Linear(32, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.up(x))
        durations = (2 * self.duration(h).squeeze(-1)).exp().round().clamp(1, 6).long()
        frames = int(durations.sum(1).max())
        out = torch.zeros(x.shape[0], frames, h.shape[-1])
        for i in range(x.shape[0]):
            repeated = torch.repeat_interleave(h[i], durations[i], dim=0)
            out[i, :repeated.shape[0]] = repeated
        relative = torch.arange(2 * frames - 1, dtype=torch.float32).unsqueeze(-1)
        return self.down(out + self.pos(relative)[:frames])


def test_sizes_made_from_a_count_the_data_decides_may_follow_it_after_pruning():
    torch.manual_seed(0)  # 8 frames before, 6 after
    x, model = torch.randn(2, 5, 6), _LengthRegulator().eval()
    frames = model(x).shape[1]
    sp.prune(model, x, ratio=0.5, round_to=8)
    assert model.up.out_features == 16
    out = model(x)
    assert out.shape[0] == 2 and out.shape[2] == 3 and out.shape[1] != frames  # the frames followed the new durations


class _FixedWidthConsumer(nn.Module):
    """A torch Linear whose input width the code around it fixes where slimforge cannot see it (a pre-forward hook
    stands for Deformable DETR's queries split by the encoder memory's width): it fails once its input narrows.
    Keeping every Linear of the model whole for that left it unpruned; that one layer kept whole suffices."""

    def __init__(self) -> None:
        super().__init__()
        self.up, self.fixed, self.head = nn.Linear(6, 32), nn.Linear(32, 3), nn.Linear(32, 3)
        self.mlp = nn.Sequential(nn.Linear(6, 48), nn.ReLU(), nn.Linear(48, 3))

        def needs_32(module: nn.Module, inputs: tuple) -> None:
            if inputs[0].shape[-1] != 32:
                raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({inputs[0].shape[-1]} vs 32)")

        self.fixed.register_forward_pre_hook(needs_32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.up(x))
        return self.fixed(h) + self.head(h) + self.mlp(x)


def test_a_torch_layer_handed_a_narrower_input_is_kept_whole_alone_first():
    torch.manual_seed(0)
    x, model = torch.randn(4, 6), _FixedWidthConsumer().eval()
    sp.prune(model, x, ratio=0.5, round_to=8)
    assert model.fixed.in_features == model.up.out_features == 32 and model.mlp[0].out_features == 24
    assert model(x).shape == (4, 3)


class _BytePatches(nn.Module):
    """BLT's local encoder in small: patch starts picked with a boolean mask the data decides
    (``padded[padded_mask].reshape(b, n)``, which draft_export left pending), then the bytes' states pooled into
    their patches with ``torch.zeros(b, patches, width).scatter_reduce(1, ids.expand(-1, -1, width), h, "amax")``
    (no rule for ``scatter_reduce``)."""

    def __init__(self) -> None:
        super().__init__()
        self.up, self.entropy, self.down = nn.Linear(6, 32), nn.Linear(6, 1), nn.Linear(32, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        starts = self.entropy(x).squeeze(-1) > 0
        starts[:, 0] = True
        positions = torch.arange(n).expand(b, -1)
        padded = torch.cat([positions, torch.full_like(positions, n)], 1)
        first = padded[torch.cat([starts, ~starts], 1)].reshape(b, n)  # each row: its starts, then n
        ids = (positions.unsqueeze(-1) >= first.unsqueeze(1)).sum(-1) - 1  # the patch of each byte
        h = torch.relu(self.up(x)) * (2.0 if int(starts.sum()) > n else 1.0)  # a branch on the data: draft_export
        patches = torch.zeros(b, n, h.shape[-1]).scatter_reduce(1, ids.unsqueeze(-1).expand(-1, -1, h.shape[-1]), h, "amax",
                                                               include_self=False)
        return self.down(patches).mean(1)


def test_bytes_pooled_into_patches_found_by_a_mask_prune():
    torch.manual_seed(0)
    x, model = torch.randn(2, 6, 6), _BytePatches().eval()
    _same_outputs_after_pruning(model, x, model.up)
    assert model.up.out_features == model.down.in_features == 16
    # torch's own tensors are as they were: a capture that rewrote x[mask] on torch.Tensor itself left every tensor
    # looking like a sequence (torch.tensor of 0-d tensors failed: Qwen2-VL's rope index afterwards)
    assert "__getitem__" not in torch.Tensor.__dict__ and "nonzero" not in torch.Tensor.__dict__
    assert torch.tensor([torch.tensor(1), torch.tensor(2)]).tolist() == [1, 2]


class _ElementwiseMath(nn.Module):
    """YOSO's acos of normalised scores, a router's in-place random draw (PhiMoE's exponential_ in training)."""

    def __init__(self) -> None:
        super().__init__()
        self.up, self.down = nn.Linear(6, 32), nn.Linear(32, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.up(x))
        noise = torch.empty_like(h).exponential_() if self.training else torch.ones_like(h)
        return self.down(torch.acos(h * 0.9) * noise + torch.log1p(h.abs()))


def test_elementwise_functions_and_random_fills_follow_their_input():
    x = torch.randn(4, 6)
    model = _ElementwiseMath()
    sp.prune(model, x, ratio=0.5, round_to=8)  # both failed before: no rule for acos / exponential_
    assert model.up.out_features == 16 and model.down.in_features == 16
    assert model.eval()(x).shape == (4, 3)


class _StandardisedConv(nn.Conv2d):
    """timm's ScaledStdConv2d in short: the weight is standardised over its fan-in in every forward."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = F.batch_norm(self.weight.reshape(1, self.out_channels, -1), None, None, training=True, momentum=0.0, eps=1e-6)
        return F.conv2d(x, w.reshape_as(self.weight), self.bias, padding=1)


def test_a_weight_computed_from_its_parameter_still_produces_prunable_channels():
    model = nn.Sequential(_StandardisedConv(3, 16, 3), nn.ReLU(), _StandardisedConv(16, 16, 3), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(16, 4)).eval()
    x = torch.randn(2, 3, 16, 16)
    sp.prune(model, x, ratio=0.5, round_to=8)  # "Nothing to prune" before: a computed weight was no source of channels
    assert model[2].out_channels == 8 and model[5].in_features == 8
    assert model(x).shape == (2, 4)


class _OptionalBranch(nn.Module):
    """An extra input (LUKE's entity ids) runs a branch of its own into the same width."""

    def __init__(self) -> None:
        super().__init__()
        self.body, self.extra, self.head = nn.Linear(8, 32), nn.Linear(6, 32), nn.Linear(32, 3)

    def forward(self, x, extra=None):
        h = torch.relu(self.body(x))
        return self.head(h if extra is None else h + self.extra(extra))


def test_parameters_the_example_never_reaches_are_named_in_a_warning(caplog):
    """Pruned on inputs that skip a branch, the branch's layer keeps its width and no longer fits: say so, and what
    to do; an example that reaches it prunes it with the rest."""
    torch.manual_seed(0)
    model, x, extra = _OptionalBranch().eval(), torch.randn(4, 8), torch.randn(4, 6)
    with caplog.at_level("WARNING", logger="slimforge.prune.structured"):
        sp.prune(model, x, ratio=0.5, round_to=1)
    assert "never reach the parameters of 1 module(s) of _OptionalBranch (extra)" in caplog.text
    assert model.body.out_features == 16 and model.extra.out_features == 32
    caplog.clear()
    model = _OptionalBranch().eval()
    with caplog.at_level("WARNING", logger="slimforge.prune.structured"):
        sp.prune(model, x, example_kwargs={"extra": extra}, ratio=0.5, round_to=1)
    assert "never reach" not in caplog.text
    assert model.extra.out_features == 16 and model(x, extra).shape == (4, 3)


class _Upsampler(nn.Module):
    """A transposed convolution between two convolutions (a decoder's upsampling)."""

    def __init__(self) -> None:
        super().__init__()
        self.down, self.up, self.out = nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.ConvTranspose2d(16, 24, 2, stride=2), nn.Conv2d(24, 4, 1)

    def forward(self, x):
        return self.out(torch.relu(self.up(torch.relu(self.down(x)))))


def test_a_transposed_convolution_loses_input_and_output_channels():
    """Its weight is (in, out, kh, kw): rows follow the layer before, columns are its own outputs."""
    torch.manual_seed(0)
    model, x = _Upsampler().eval(), torch.randn(2, 3, 16, 16)
    sp.prune(model, x, ratio=0.5, round_to=1)
    assert model.down.out_channels == model.up.in_channels == 8
    assert model.up.out_channels == model.out.in_channels == 12 and model.up.weight.shape == (8, 12, 2, 2)
    assert model(x).shape == (2, 4, 16, 16)


def test_a_norm_that_keeps_normalized_shape_beside_its_weight_follows_it():
    """timm's RmsNorm (no nn.LayerNorm) passes normalized_shape with its weight to rms_norm: it was left at the
    unpruned width, the pruned model failed to run, and the norms were kept whole (Gemma 4's ViT lost 12%, not 38%)."""
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 32), timm.layers.RmsNorm(32), nn.Linear(32, 4)).eval()
    x = torch.randn(3, 8)
    sp.prune(model, x, ratio=0.5, round_to=1)
    assert model[0].out_features == 16 and tuple(model[1].normalized_shape) == (16,) and model(x).shape == (3, 4)


def test_a_fixed_depthwise_filter_applied_with_its_channels_attribute_follows_the_channels():
    """timm's BlurPool2d filters with a (channels, 1, k, k) buffer and groups=self.channels: the attribute follows
    the sliced filter (TResNet kept its blur pools, and so their channels, whole before: 46.9% -> 49.9%)."""
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), timm.layers.BlurPool2d(16, filt_size=3, stride=2),
                          nn.Conv2d(16, 4, 1)).eval()
    x = torch.randn(2, 3, 16, 16)
    sp.prune(model, x, ratio=0.5, round_to=1)
    assert model[0].out_channels == 8 and model[2].channels == 8 and model[2].filt.shape[0] == 8
    assert model(x).shape == (2, 4, 8, 8)


class _UnknownAttention(nn.Module):
    """An integer head count and linear layers, no registered form: its heads stay, what enters and leaves it narrows."""

    def __init__(self, width: int = 16, from_input: bool = False, heads_elsewhere: bool = False) -> None:
        super().__init__()
        self.num_heads, self.from_input = 2, from_input
        self.qkv, self.proj = nn.Linear(width, 3 * 16), nn.Linear(16, width)
        self.layout = {"heads": 2} if heads_elsewhere else None  # a head count no attribute of its own holds

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        heads = self.layout["heads"] if self.layout else self.num_heads
        q, k, v = (t.reshape(b, n, heads, -1).transpose(1, 2) for t in self.qkv(x).chunk(3, dim=-1))
        out = (torch.softmax(q @ k.transpose(-1, -2), -1) @ v).transpose(1, 2).reshape(b, n, -1)
        if self.from_input:  # a head size derived from the input's width (timm's C // num_heads): cannot narrow
            out = out.reshape(b, n, self.num_heads, c // self.num_heads).reshape(b, n, c)
        return self.proj(out)


class _ResidualAttention(nn.Module):
    def __init__(self, from_input: bool = False, heads_elsewhere: bool = False) -> None:
        super().__init__()
        self.embed, self.head = nn.Linear(8, 16), nn.Linear(16, 4)
        self.attn = _UnknownAttention(from_input=from_input, heads_elsewhere=heads_elsewhere)
        self.mlp = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 16))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x)
        h = h + self.attn(h)
        return self.head(h + self.mlp(h))


def test_attention_of_no_known_form_loses_heads_through_its_head_count():
    """Its head count (``num_heads``) follows the heads its reshape makes, and the residual narrows too."""
    torch.manual_seed(0)
    model, x = _ResidualAttention().eval(), torch.randn(2, 5, 8)
    sp.prune(model, x, ratio=0.5, round_to=1)
    attn = model.attn
    assert model.embed.out_features == attn.qkv.in_features == attn.proj.out_features == 8
    assert attn.num_heads == 1 and attn.qkv.out_features == 24 and attn.proj.in_features == 8
    assert model(x).shape == (2, 5, 4)


def test_attention_whose_heads_cannot_follow_keeps_its_heads_but_not_the_residual_width(caplog):
    """Where its heads cannot follow (here its forward reads the head count from elsewhere than the attribute), its
    linear layers' input columns and its output projection's rows still follow the residual stream (before, the whole
    module stayed, and with it the residual width: DeepSeek-V3.2's indexer held its model at 22.6% instead of 42.1%)."""
    torch.manual_seed(0)
    model, x = _ResidualAttention(heads_elsewhere=True).eval(), torch.randn(2, 5, 8)
    with caplog.at_level("INFO", logger="slimforge.prune.structured"):
        sp.prune(model, x, ratio=0.5, round_to=1)
    assert "pruning again with its heads kept" in caplog.text
    attn = model.attn
    assert model.embed.out_features == attn.qkv.in_features == attn.proj.out_features == 8
    assert attn.qkv.out_features == 48 and attn.proj.in_features == 16  # the heads, whole
    assert model(x).shape == (2, 5, 4)


@pytest.mark.parametrize("ratio", [0.25, 0.5, 0.7])
def test_attention_of_no_known_form_that_reads_its_input_width_keeps_width_and_heads_in_line(ratio):
    """Its forward reshapes its output to (heads, width // heads) of its input's width: whatever is pruned, the width
    entering it stays heads x head size (heads tied to the width where the first try does not fit)."""
    torch.manual_seed(0)
    model, x = _ResidualAttention(from_input=True).eval(), torch.randn(2, 5, 8)
    before = sum(p.numel() for p in model.parameters())
    sp.prune(model, x, ratio=ratio, round_to=1)
    attn = model.attn
    assert attn.qkv.in_features == model.embed.out_features == 8 * attn.num_heads == attn.proj.in_features
    assert sum(p.numel() for p in model.parameters()) < before and model(x).shape == (2, 5, 4)


class _PositionsFromData(nn.Module):
    """Position rows picked at an offset the data decides (``start.item()``, as Reformer's axial positions are)."""

    def __init__(self) -> None:
        super().__init__()
        self.embed, self.positions, self.head = nn.Embedding(10, 16), nn.Parameter(torch.randn(32, 16)), nn.Linear(16, 4)

    def forward(self, ids: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
        s = start.item()
        torch._check(s >= 0)
        torch._check(s + ids.shape[1] <= 32)
        return self.head(self.embed(ids) + self.positions[s:s + ids.shape[1]])


def test_a_slice_at_bounds_the_data_decides_keeps_its_rows_and_prunes_the_channels():
    """The slice rule failed on symbolic bounds (TypeError); such a slice now keeps the sliced dimension whole."""
    torch.manual_seed(0)
    model, ids, start = _PositionsFromData().eval(), torch.randint(0, 10, (2, 6)), torch.tensor(3)
    sp.prune(model, (ids, start), ratio=0.5, round_to=1)
    assert model.embed.embedding_dim == model.head.in_features == 8 and model.positions.shape == (32, 8)
    assert model(ids, start).shape == (2, 6, 4)


class _CheckedNorm(nn.Module):
    """A norm of its own kind that keeps its width in an attribute and checks its input against it (CPM-Ant's)."""

    def __init__(self, dim_norm: int) -> None:
        super().__init__()
        self.dim_norm, self.weight = dim_norm, nn.Parameter(torch.ones(dim_norm))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.size(-1) == self.dim_norm
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * self.weight


def test_a_norm_keeping_its_width_in_an_attribute_follows_its_weight():
    torch.manual_seed(0)
    model, x = nn.Sequential(nn.Linear(8, 16), _CheckedNorm(16), nn.Linear(16, 4)).eval(), torch.randn(2, 8)
    sp.prune(model, x, ratio=0.5, round_to=1)  # the assert failed and the norm was kept whole before
    assert model[1].dim_norm == model[1].weight.shape[0] == model[0].out_features == 8
    assert model(x).shape == (2, 4)


def test_the_output_is_kept_by_position_even_when_its_node_name_differs_from_the_signature():
    """Reformer's captured graph returned ``linear_13`` where its signature named ``getitem_8``: matched by name, the
    logits were left free to narrow (the output check then refused the pruned model as a slimforge bug)."""
    from slimforge.prune._capture import PIN, export_model
    from slimforge.prune._trace import _Tracer

    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4)).eval()
    ep = export_model(model, (torch.randn(2, 8),), {})
    [n for n in ep.graph.nodes if n.op == "call_function"][-1].name = "renamed_output"
    tracer = _Tracer(model, ep, [])
    tracer.run()
    graph = tracer.finish()
    assert (graph.roots[tracer.slot_of[("2.weight", 0)]] == PIN).all()
