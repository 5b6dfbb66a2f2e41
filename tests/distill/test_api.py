"""The distillation stage end to end: CLI, cached teacher, pruned-teacher students, errors."""

from __future__ import annotations

import json

import pytest
import torch

import slimforge
from slimforge.cli import main
from slimforge.distill.api import DistillRunConfig
from slimforge.errors import SlimforgeError
from slimforge.train import TrainConfig


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher")
    assert main(["train", "--data", "digits", "--model", "cnn", "--epochs", "3", "--lr", "0.05", "--out", str(out), "--quiet", "model.kwargs.width=8"]) == 0
    return out


def test_cli_distills_with_a_cached_teacher(teacher, tmp_path, capsys):
    out = tmp_path / "student"
    code = main(["distill", "--teacher", str(teacher), "--student", "cnn", "--loss", "dkd", "--epochs", "3",
                 "--lr", "0.05", "--out", str(out), "student.kwargs.width=8", "train.num_threads=1", "distill.warmup_epochs=1"])
    assert code == 0
    assert "teacher cached" in capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_accuracy"] > 0.5
    student = slimforge.load(out)
    assert student.classifier.in_features == 16  # width 8 -> 2*8 features
    assert list((out / "teacher-cache").glob("*.npy"))


def test_student_from_a_pruned_teacher_reloads(teacher, tmp_path):
    out = tmp_path / "slim"
    assert main(["distill", "--teacher", str(teacher), "--prune-teacher", "0.5", "--epochs", "1", "--out", str(out), "--quiet", "train.num_threads=1"]) == 0
    slim, full = slimforge.load(out), slimforge.load(teacher)
    assert sum(p.numel() for p in slim.parameters()) < 0.5 * sum(p.numel() for p in full.parameters())
    assert slim(torch.randn(2, 1, 8, 8)).shape == (2, 10)


def test_wrong_hint_path_is_named(teacher, tmp_path, capsys):
    code = main(["distill", "--teacher", str(teacher), "--student", "cnn", "--epochs", "1", "--out", str(tmp_path / "s"),
                 "--quiet", "distill.hints=['features.9:features.3']"])
    assert code == 2
    assert "features.9" in capsys.readouterr().err


def test_class_mismatch_is_refused(teacher):
    data = slimforge.load_dataset("digits")
    student = slimforge.create_model("cnn", num_classes=5, in_channels=1)
    with pytest.raises(SlimforgeError, match="teacher predicts 10 classes but the student predicts 5"):
        slimforge.distill(student, [teacher], data, train_config=TrainConfig(epochs=1, quiet=True))


def test_unknown_distill_key(teacher, tmp_path):
    assert main(["distill", "--teacher", str(teacher), "--out", str(tmp_path / "s"), "distill.temprature=2"]) == 2
    assert "temperature" in DistillRunConfig.model_fields["distill"].annotation.model_fields


def test_warmup_ramps_the_distillation_term(teacher, tmp_path):
    from slimforge.distill import DistillConfig
    from slimforge.distill.api import DistillWarmup
    from slimforge.train import TrainState

    data = slimforge.load_dataset("digits")
    student = slimforge.create_model("cnn", width=4, **data.info.model_kwargs())
    from slimforge.distill import build_distill_objective

    objective = build_distill_objective(student, [teacher], DistillConfig(warmup_epochs=2))
    ramp = DistillWarmup(objective, 2)
    state = TrainState(model=student, steps_per_epoch=10)
    seen = []
    for step in (0, 5, 10, 20, 30):
        state.step = step
        ramp.on_step_end(state)
        seen.append(objective.scale)
    assert seen == [0.0, 0.25, 0.5, 1.0, 1.0]
    x, y, i = data.train.__getitems__([0, 1, 2])
    objective.scale = 0.0
    zero = objective(student, x, y, i)
    assert zero.loss.item() == pytest.approx(zero.parts["hard_loss"], rel=1e-5)
