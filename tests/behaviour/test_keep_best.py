"""keep_best: the saved model is the best validation epoch's, not the last one's."""

from __future__ import annotations

import json

import pytest
import torch

import slimforge
from slimforge.train import Callback, TrainConfig, train

from .helpers import assert_same_weights, make_mlp, state_copy


class SnapshotEpochs(Callback):
    """Keeps each epoch's weights as validated; after the last optimizer step it negates the
    classifier, so the last epoch validates near 0 and can never be the best."""

    def __init__(self) -> None:
        self.weights: dict[int, dict[str, torch.Tensor]] = {}

    def on_step_end(self, state) -> None:
        if state.step == state.total_steps:
            with torch.no_grad():
                state.model.net[-1].weight.neg_()
                state.model.net[-1].bias.neg_()

    def on_epoch_end(self, state) -> None:
        self.weights[state.epoch + 1] = state_copy(state.model)


@pytest.mark.parametrize("monitor", ["val_accuracy", "val_loss"])
def test_keep_best_saves_and_returns_the_best_epochs_weights(digits, tmp_path, monitor):
    """Planted bugs caught: keep-best never reloads best.safetensors (the `_load_best` call
    dropped); best.safetensors written every epoch instead of on improvement; the best-epoch
    comparison reversed (`value < best` for accuracy); for val_loss, lower-is-better ignored."""
    snapshots = SnapshotEpochs()
    cfg = TrainConfig(epochs=3, batch_size=64, lr=0.05, monitor=monitor, quiet=True, num_threads=1)
    result = train(make_mlp(digits), digits, cfg, tmp_path / "run", callbacks=[snapshots])

    history = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    best_epoch = result.metrics["best_epoch"]
    assert history[-1]["val_accuracy"] < 0.3  # the sabotaged last epoch
    chosen = min(history, key=lambda m: m["val_loss"]) if monitor == "val_loss" else max(history, key=lambda m: m["val_accuracy"])
    assert best_epoch == chosen["epoch"] and best_epoch < 3
    # The returned model and the saved artifact are the best epoch's weights, bit for bit ...
    assert_same_weights(state_copy(result.model), snapshots.weights[best_epoch])
    saved = slimforge.load(tmp_path / "run")
    assert_same_weights(state_copy(saved), snapshots.weights[best_epoch])
    # ... so they score exactly the best epoch's validation accuracy the metrics report.
    assert slimforge.evaluate(saved, digits.val)["accuracy"] == result.metrics["best_val_accuracy"]
    assert result.metrics["best_val_accuracy"] == history[best_epoch - 1]["val_accuracy"]


def test_keep_best_without_a_run_folder_returns_the_best_epochs_weights(digits):
    """Without ``out`` there is no best.safetensors to reload: the trainer keeps the best epoch in
    memory. Planted bug caught: the returned model and its test metrics are the (sabotaged) last
    epoch's, as they were before (benchmarks/recsys_movielens.py reported last-epoch test metrics)."""
    snapshots = SnapshotEpochs()
    cfg = TrainConfig(epochs=3, batch_size=64, lr=0.05, quiet=True, num_threads=1)
    result = train(make_mlp(digits), digits, cfg, callbacks=[snapshots])
    best_epoch = result.metrics["best_epoch"]
    assert best_epoch < 3
    assert_same_weights(state_copy(result.model), snapshots.weights[best_epoch])
    assert result.metrics["test_accuracy"] > 0.5  # the sabotaged last epoch scores about 0.1


def test_without_keep_best_the_last_epoch_is_saved(digits, tmp_path):
    """The control for the test above: with keep_best=false the sabotaged last epoch is what is
    kept, so the sabotage works and the test above cannot pass by accident. (Planting "reload
    whatever the setting" is not caught: with keep_best=false no best.safetensors is written.)"""
    snapshots = SnapshotEpochs()
    cfg = TrainConfig(epochs=3, batch_size=64, lr=0.05, keep_best=False, quiet=True, num_threads=1)
    result = train(make_mlp(digits), digits, cfg, tmp_path / "run", callbacks=[snapshots])
    assert_same_weights(state_copy(result.model), snapshots.weights[3])
    assert slimforge.evaluate(result.model, digits.val)["accuracy"] < 0.3


class SabotageFrom(Callback):
    """Keeps each epoch's weights as validated; from epoch ``first`` (1-based) on, after the
    epoch's last step, sets the classifier to always answer class 0 (val accuracy about 0.1);
    raises at the start of epoch ``crash_before`` to cut the run there."""

    def __init__(self, first: int, crash_before: int | None = None) -> None:
        self.first, self.crash_before = first, crash_before
        self.weights: dict[int, dict[str, torch.Tensor]] = {}

    def on_epoch_start(self, state) -> None:
        if state.epoch + 1 == self.crash_before:
            self.crash_before = None  # the resumed run goes on
            raise KeyboardInterrupt

    def on_step_end(self, state) -> None:
        if state.step % state.steps_per_epoch == 0 and state.step // state.steps_per_epoch >= self.first:
            with torch.no_grad():
                state.model.net[-1].weight.zero_()
                state.model.net[-1].bias.copy_(torch.arange(10) == 0)

    def on_epoch_end(self, state) -> None:
        self.weights[state.epoch + 1] = state_copy(state.model)


def test_keep_best_survives_a_resume_after_the_best_epoch(digits, tmp_path):
    """The best epoch (2) is before the cut (after epoch 3); the resumed run's epoch 4 is worse,
    so the final model must still be epoch 2's. Planted bugs caught: resume forgetting the best
    so far (`book` restored without `best`/`best_epoch`: epoch 4 becomes the best); resume
    deleting best.safetensors like a fresh start does."""
    sabotage = SabotageFrom(first=3, crash_before=4)
    cfg = TrainConfig(epochs=4, batch_size=64, lr=0.05, quiet=True, num_threads=1)
    with pytest.raises(KeyboardInterrupt):
        train(make_mlp(digits), digits, cfg, tmp_path / "run", callbacks=[sabotage])
    result = train(make_mlp(digits), digits, cfg, tmp_path / "run", callbacks=[sabotage], resume=True)

    history = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in history] == [1, 2, 3, 4] and max(history[2]["val_accuracy"], history[3]["val_accuracy"]) < 0.3
    assert result.metrics["best_epoch"] == 2 and history[1]["val_accuracy"] > history[0]["val_accuracy"]
    assert_same_weights(state_copy(slimforge.load(tmp_path / "run")), sabotage.weights[2])
    assert slimforge.evaluate(result.model, digits.val)["accuracy"] == result.metrics["best_val_accuracy"] == history[1]["val_accuracy"]
