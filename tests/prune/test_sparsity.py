"""Unstructured sparsity: the cubic schedule, global and N:M masks, and the trainer callbacks' hooks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import slimforge
from slimforge.artifacts import get_spec
from slimforge.prune.sparsity import (
    GradualMagnitudeSparsity,
    IterativePruning,
    cubic_sparsity,
    magnitude_masks,
    sparsity_report,
)
from slimforge.prune.errors import PruneConfigError
from slimforge.train.callbacks import TrainState


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 8))


@pytest.mark.parametrize("step", [0, 10, 25, 50, 75, 100, 120])
def test_cubic_schedule_matches_zhu_gupta_formula(step):
    s_i, s_f, t0, n = 0.1, 0.8, 10, 80
    t = min(max(step, t0), t0 + n)
    expected = s_f + (s_i - s_f) * (1 - (t - t0) / n) ** 3
    assert cubic_sparsity(step, s_f, t0, t0 + n, s_i) == pytest.approx(expected)


def test_global_masks_hit_the_target_and_prefer_small_weights():
    model = _mlp()
    masks = magnitude_masks(model, 0.6)
    kept = sum(int(m.sum()) for m in masks.values())
    total = sum(m.numel() for m in masks.values())
    assert 1 - kept / total == pytest.approx(0.6, abs=0.01)
    w = torch.cat([p.detach().abs().flatten() for n, p in model.named_parameters() if n.endswith("weight")])
    m = torch.cat([masks[n].flatten() for n in ("0.weight", "2.weight")])
    assert w[~m].max() <= w[m].min()


def test_two_four_masks_keep_two_of_every_four():
    model = _mlp()
    masks = magnitude_masks(model, 0.0, n_m=(2, 4))
    for mask in masks.values():
        groups = mask.reshape(mask.shape[0], -1, 4)
        assert (groups.sum(-1) == 2).all()


def test_gradual_sparsity_callback_follows_schedule_and_folds():
    model = _mlp()
    cb = GradualMagnitudeSparsity(0.75, start_step=0, end_step=40, frequency=10)
    state = TrainState(model=model, total_steps=50)
    cb.on_train_start(state)
    seen = []
    for step in range(1, 51):
        with torch.no_grad():  # a "training step" that would revive pruned weights
            for p in model.parameters():
                p.add_(0.01 * torch.randn_like(p))
        state.step = step
        cb.on_step_end(state)
        if step % 10 == 0:
            seen.append((step, sparsity_report(model)["sparsity"]))
    for step, s in seen:
        assert s == pytest.approx(cubic_sparsity(step, 0.75, 0, 40), abs=0.01)
    cb.on_train_end(state)
    assert state.metrics["sparsity"] == pytest.approx(0.75, abs=0.01)
    assert cb.state_dict() == {"current": pytest.approx(0.75)}


def test_n_m_callback_leaves_a_two_four_model():
    model = _mlp()
    cb = GradualMagnitudeSparsity(0.5, n_m=(2, 4), frequency=5)
    state = TrainState(model=model, total_steps=10)
    cb.on_train_start(state)
    for step in range(1, 11):
        with torch.no_grad():
            model[0].weight.add_(0.01)
        state.step = step
        cb.on_step_end(state)
    cb.on_train_end(state)
    groups = (model[0].weight != 0).reshape(32, -1, 4)
    assert (groups.sum(-1) <= 2).all()
    assert state.metrics["sparsity"] == pytest.approx(0.5, abs=0.01)


def test_iterative_pruning_callback_shrinks_model_and_asks_for_new_optimizer():
    model = slimforge.create_model("resnet20", num_classes=10)
    x = torch.randn(2, 3, 16, 16)
    cb = IterativePruning(x, ratio=0.5, epochs=[1, 2], round_to=1)
    state = TrainState(model=model, epoch=0)
    cb.on_epoch_start(state)
    assert not state.rebuild_optimizer and model.conv1.out_channels == 16
    for epoch in (1, 2):
        state.epoch, state.rebuild_optimizer = epoch, False
        cb.on_epoch_start(state)
        assert state.rebuild_optimizer
    assert state.model.conv1.out_channels == 8
    assert [e["kind"] for e in get_spec(state.model).edits] == ["prune", "prune"]
    assert cb.state_dict() == {"done": [1, 2], "measured": []}
    assert state.model(x).shape == (2, 10)


def test_iterative_pruning_takes_a_ratio_per_module_pattern():
    model = slimforge.create_model("resnet20", num_classes=10)
    x = torch.randn(2, 3, 16, 16)
    cb = IterativePruning(x, ratio={"layer3*": 0.75}, epochs=[0, 1], round_to=1)
    state = TrainState(model=model)
    for epoch in (0, 1):
        state.epoch = epoch
        cb.on_epoch_start(state)
    assert state.model.layer3[0].conv1.out_channels == 16  # 64 -> 32 -> 16: 1 - (1 - 0.75) ** (1 / 2) = 0.5 per step
    assert state.model.layer1[0].conv1.out_channels == 16  # not matched: kept
    with pytest.raises(PruneConfigError):
        IterativePruning(x, ratio={"layer3*": 1.5}, epochs=[0])


def test_iterative_pruning_reaches_a_latency_target_in_steps(tmp_path):
    """Real timings, tiny CNN, target 0.5 in two steps: the first aims at 0.5 ** (1 / 2) of its input's latency, the
    second at 0.5 over what the first measured (so the first's error does not carry over), and both record what
    they measured, as one-step latency-aware pruning does."""
    from slimforge.prune.latency import LatencySettings

    model = slimforge.create_model("cnn", num_classes=10, in_channels=1, width=32)
    x = torch.randn(2, 1, 16, 16)
    settings = LatencySettings(batch_size=8, cache_dir=str(tmp_path), repeats=3, max_rounds=2)
    cb = IterativePruning(x, target_latency=0.5, epochs=[0, 1], latency=settings)
    state = TrainState(model=model)
    for epoch in (0, 1):
        state.epoch = epoch
        cb.on_epoch_start(state)
    edits = [e for e in get_spec(state.model).edits if e["kind"] == "prune"]
    first, second = (e["latency"] for e in edits)
    assert first["target"] == pytest.approx(0.5 ** 0.5)
    assert second["target"] == pytest.approx(min(0.99, max(0.01, 0.5 / first["measured"])))
    assert cb.state_dict()["measured"] == [first["measured"], second["measured"]]
    assert state.model.features[0][0].out_channels < 32 and state.model(x).shape == (2, 10)
    with pytest.raises(PruneConfigError, match="exactly one of"):
        IterativePruning(x, ratio=0.5, target_latency=0.5, epochs=[0])
    with pytest.raises(PruneConfigError, match="removes whole blocks in one shot"):
        IterativePruning(x, target_latency=0.5, epochs=[0, 1], latency=LatencySettings(blocks=1))


def test_resume_replays_pruning_done_during_training(tmp_path):
    from slimforge.train import TrainConfig, train

    data = slimforge.load_dataset("digits")
    x = data.train.__getitems__([0, 1])[0]
    cfg = TrainConfig(epochs=2, batch_size=64, lr=0.05, num_threads=1, quiet=True)

    def fresh():
        torch.manual_seed(0)
        return slimforge.create_model("cnn", num_classes=10, in_channels=1, width=8)

    first = train(fresh(), data, cfg, tmp_path, callbacks=[IterativePruning(x, ratio=0.5, epochs=[0, 1], round_to=1)])
    assert first.model.features[0][0].out_channels < 8
    longer = cfg.model_copy(update={"epochs": 3})
    resumed = train(fresh(), data, longer, tmp_path, resume=True,
                    callbacks=[IterativePruning(x, ratio=0.5, epochs=[0, 1], round_to=1)])
    assert [e["kind"] for e in get_spec(resumed.model).edits] == ["prune", "prune"]
    assert sum(p.numel() for p in resumed.model.parameters()) == sum(p.numel() for p in first.model.parameters())
    assert resumed.model.features[0][0].out_channels == first.model.features[0][0].out_channels
    assert resumed.history[-1]["epoch"] == 3


def test_keep_best_never_reloads_an_epoch_before_the_target_sparsity(tmp_path):
    from slimforge.train import TrainConfig, train

    data = slimforge.load_dataset("digits")
    model = slimforge.create_model("cnn", width=8, **data.info.model_kwargs())
    steps = -(-len(data.train) // 64)
    cb = GradualMagnitudeSparsity(0.9, start_step=0, end_step=2 * steps, frequency=2)
    result = train(model, data, TrainConfig(epochs=3, batch_size=64, lr=0.05, quiet=True, num_threads=1), tmp_path / "run", callbacks=[cb])
    # Epoch 1 ends below the target: it may not be the best, however good its validation accuracy.
    assert result.history[0]["sparsity"] < 0.85 and result.history[1]["sparsity"] == pytest.approx(0.9)
    assert result.metrics["best_epoch"] in (2, 3)
    assert result.metrics["sparsity"] == pytest.approx(0.9, abs=0.01)
    assert sparsity_report(slimforge.load(tmp_path / "run"))["sparsity"] == pytest.approx(0.9, abs=0.01)
    assert all("sparsity" in m for m in result.history)
