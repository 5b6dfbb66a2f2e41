"""Distillation from a good teacher beats training on the labels alone when labels are scarce."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from slimforge.distill import DistillConfig
from slimforge.distill.api import run as distill
from slimforge.train import TrainConfig, train

from .helpers import make_mlp

SEEDS = (0, 1, 2)
SAMPLES = 100  # labelled training samples the student sees


@pytest.fixture(scope="module")
def teacher(digits):
    """An MLP trained on all of digits' training split (test accuracy 0.975 when measured)."""
    return train(make_mlp(digits, hidden=(128,)), digits, TrainConfig(epochs=8, batch_size=64, lr=0.1, quiet=True, num_threads=1)).model


def test_kd_beats_labels_only_on_a_small_training_set(digits, teacher):
    """Measured (3 seeds, 100 samples): labels only 0.886 / 0.880 / 0.903 test accuracy, KD
    0.933 / 0.914 / 0.955, i.e. +3.3 to +5.3 points. Asserted with a margin: KD wins in every
    seed and by 2.5 points on average. Planted bugs caught: the KD loss's target taken from the
    student itself (`F.softmax(student_logits.detach() / t)`: the distillation term teaches
    nothing); the distillation term dropped from the total (`soft_weight` ignored); the KD
    loss without its T^2 factor (gains then 1.7 / 3.1 / 1.4 points: caught by the mean, narrowly)."""
    gains = []
    for seed in SEEDS:
        idx = torch.randperm(len(digits.train), generator=torch.Generator().manual_seed(seed))[:SAMPLES]
        small = dataclasses.replace(digits, train=digits.train.subset(idx))
        cfg = TrainConfig(epochs=30, batch_size=25, lr=0.05, seed=seed, quiet=True, num_threads=1)
        labels_only = train(make_mlp(small, seed=seed), small, cfg).metrics["test_accuracy"]
        kd = distill(make_mlp(small, seed=seed), teacher, small, DistillConfig(loss="kd", temperature=4.0), cfg).metrics["test_accuracy"]
        gains.append(100 * (kd - labels_only))
    assert min(gains) > 0 and sum(gains) / len(gains) > 2.5, f"KD gains over labels only, in points: {gains}"


def test_distillation_honours_label_smoothing_or_refuses_it(digits, teacher):
    """train.label_smoothing set on a distillation run must either smooth its hard-label term or be
    refused, never be silently dropped. With soft_weight=0 the objective is the hard term alone,
    whose floor with eps=0.2 over 10 classes is 0.867 (see test_training_dynamics). Before the fix
    the final train loss was 0.051, bit-identical to training without smoothing."""
    from slimforge.errors import ConfigError

    cfg = TrainConfig(epochs=6, batch_size=64, lr=0.1, label_smoothing=0.2, quiet=True, num_threads=1)
    try:
        result = distill(make_mlp(digits, hidden=(64,)), teacher, digits, DistillConfig(soft_weight=0.0, hard_weight=1.0), cfg)
    except ConfigError:
        return  # refusing the setting is an honest answer too
    eps, k = 0.2, 10
    p_true, p_other = 1 - eps + eps / k, eps / k
    floor = -(p_true * math.log(p_true) + (k - 1) * p_other * math.log(p_other))
    assert result.history[-1]["train_loss"] >= floor
