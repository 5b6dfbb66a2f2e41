"""The distillation stage end to end: CLI, cached teacher, pruned-teacher students, errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

import slimforge
from slimforge.cli import main
from slimforge.distill.api import DistillRunConfig
from slimforge.errors import SlimforgeError
from slimforge.train import TrainConfig
from tests.conftest import SHARED_DATA, needs_shared


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher")
    assert main(["train", "--data", "digits", "--model", "cnn", "--epochs", "3", "--lr", "0.05", "--out", str(out), "--quiet", "model.kwargs.width=8"]) == 0
    return out


def test_cli_distills_with_a_cached_teacher_that_the_next_run_reuses(teacher, tmp_path, capsys, teacher_cache_home):
    out = tmp_path / "student"
    code = main(["distill", "--teacher", str(teacher), "--student", "cnn", "--loss", "dkd", "--epochs", "3",
                 "--lr", "0.05", "--out", str(out), "student.kwargs.width=8", "train.num_threads=1", "distill.warmup_epochs=1"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "teacher cached" in printed and "computed in" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_accuracy"] > 0.5
    student = slimforge.load(out)
    assert student.classifier.in_features == 16  # width 8 -> 2*8 features
    entries = list(teacher_cache_home.glob("teacher-*.npy"))
    assert len(entries) == 1
    written = entries[0].stat().st_mtime_ns

    # Another student of the same teacher on the same data, in another folder: the entry is reused.
    again = tmp_path / "student2"
    assert main(["distill", "--teacher", str(teacher), "--student", "cnn", "--epochs", "1", "--out", str(again), "train.num_threads=1",
                 "student.kwargs.width=4"]) == 0
    printed = capsys.readouterr().out
    assert f"teacher cache: {entries[0]}" in printed and "reused" in printed
    assert entries[0].stat().st_mtime_ns == written
    cache = json.loads((again / "metrics.json").read_text())["distill"]["teacher_caches"]
    assert cache[0]["reused"] and cache[0]["bytes"] == entries[0].stat().st_size - 128  # minus the .npy header
    # Other data (no validation split: more training rows) is another entry beside it.
    assert main(["distill", "--teacher", str(teacher), "--student", "cnn", "--epochs", "1", "--out", str(tmp_path / "s3"), "--quiet",
                 "train.num_threads=1", "student.kwargs.width=4", "data.val_fraction=0"]) == 0
    assert len(list(teacher_cache_home.glob("teacher-*.npy"))) == 2


def test_teacher_cache_folder_is_shareable_by_path(teacher, tmp_path):
    shared = tmp_path / "shared-cache"
    for name in ("a", "b"):
        assert main(["distill", "--teacher", str(teacher), "--student", "cnn", "--epochs", "1", "--out", str(tmp_path / name), "--quiet",
                     "--teacher-cache", str(shared), "train.num_threads=1", "student.kwargs.width=4"]) == 0
    caches = [json.loads((tmp_path / n / "metrics.json").read_text())["distill"]["teacher_caches"][0] for n in ("a", "b")]
    assert [c["reused"] for c in caches] == [False, True]
    assert Path(caches[1]["path"]).parent == shared.resolve()


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
    assert zero.loss.item() == pytest.approx(objective.config.hard_weight * float(zero.parts["hard_loss"]), rel=1e-5)


@pytest.fixture(scope="module")
def folder_teacher(tmp_path_factory):
    """A teacher on a dataset that is not the default one (RGB 12x12 images, 2 classes)."""
    from PIL import Image

    root = tmp_path_factory.mktemp("images")
    for split in ("train", "test"):
        for c, cls in enumerate(("cat", "dog")):
            (root / split / cls).mkdir(parents=True)
            for i in range(12):
                Image.new("RGB", (12, 12), (i * 20, 90 * c, 200 * c)).save(root / split / cls / f"{i}.png")
    out = tmp_path_factory.mktemp("folder-teacher")
    assert main(["train", "--data", "image-folder", "--data-root", str(root), "--model", "cnn", "--epochs", "1", "--out", str(out),
                 "--quiet", "--threads", "1", "model.kwargs.width=4", "data.options.image_size=12", "data.val_fraction=0.25"]) == 0
    return out


def test_a_data_override_without_data_keeps_the_teacher_s_dataset(folder_teacher, tmp_path):
    import yaml

    teacher_data = yaml.safe_load((folder_teacher / "config.yaml").read_text())["data"]
    out = tmp_path / "student"
    assert main(["distill", "--teacher", str(folder_teacher), "--student", "cnn", "--epochs", "1", "--out", str(out), "--quiet",
                 "--threads", "1", "student.kwargs.width=4", "data.augment=false"]) == 0
    data = yaml.safe_load((out / "config.yaml").read_text())["data"]
    assert data == {**teacher_data, "augment": False}  # the teacher's section, one key changed
    assert data["name"] == "image-folder" and json.loads((out / "metrics.json").read_text())["data"]["input_shape"] == [3, 12, 12]


def test_a_teacher_that_cannot_take_the_data_is_named(folder_teacher, tmp_path, capsys):
    code = main(["distill", "--teacher", str(folder_teacher), "--data", "digits", "--student", "cnn", "--epochs", "1",
                 "--out", str(tmp_path / "s"), "--quiet", "--threads", "1"])
    err = capsys.readouterr().err
    assert code == 2 and f"The teacher {folder_teacher} cannot run on this data's inputs (shape [1, 8, 8]" in err
    assert "Traceback" not in err


def test_settings_the_loss_does_not_take_are_refused(teacher, tmp_path, capsys):
    for args, named in ((["--loss", "kd", "distill.alpha=2"], "distill.alpha=2.0 does not apply to the 'kd' loss"),
                        (["--loss", "mse", "--temperature", "3"], "distill.temperature=3.0 does not apply to the 'mse' loss"),
                        (["--soft-weight", "0.9", "--hard-weight", "0.5"], "must be 1 (a convex combination), got 0.9 + 0.5")):
        assert main(["distill", "--teacher", str(teacher), "--out", str(tmp_path / "s"), "--quiet", *args]) == 2
        assert named in capsys.readouterr().err
    assert not (tmp_path / "s").exists()  # refused before any data was loaded or folder written


def test_metrics_record_the_teacher_the_settings_and_each_epoch_s_soft_and_hard_loss(teacher, tmp_path):
    import yaml

    out = tmp_path / "student"
    assert main(["distill", "--teacher", str(teacher), "--student", "cnn", "--epochs", "2", "--out", str(out), "--quiet",
                 "--threads", "1", "--temperature", "20", "--soft-weight", "0.9", "student.kwargs.width=4"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    section = metrics["distill"]
    taught = json.loads((teacher / "metrics.json").read_text())
    assert section["teachers"][0]["path"] == str(teacher.resolve()) and section["teachers"][0]["model"] == "cnn"
    assert section["teachers"][0]["test_errors"] == taught["test_errors"] and len(section["teachers"][0]["weights_sha256"]) == 64
    assert (section["loss"], section["temperature"], section["soft_weight"], section["hard_weight"]) == ("kd", 20.0, 0.9, pytest.approx(0.1))
    assert [e["epoch"] for e in section["epochs"]] == [1, 2]
    history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    for epoch, line in zip(section["epochs"], history):
        assert epoch["soft_loss"] == line["train_soft_loss"] > 0 and epoch["hard_loss"] == line["train_hard_loss"] > 0
        assert line["train_loss"] == pytest.approx(0.9 * line["train_soft_loss"] + 0.1 * line["train_hard_loss"], rel=1e-4)
    assert metrics["test_errors"] == round((1 - metrics["test_accuracy"]) * metrics["data"]["sizes"]["test"])
    recorded = yaml.safe_load((out / "config.yaml").read_text())["distill"]
    assert (recorded["temperature"], recorded["soft_weight"], recorded["alpha"]) == (20.0, 0.9, None)  # resolved, and kd takes no alpha


@needs_shared
def test_kd_at_temperature_20_stays_finite_at_the_default_learning_rate():
    # The failure of issue 23 at small scale: the paper's student (784-800-800, no dropout) on 4,096 MNIST
    # images, T = 20, soft weight 0.9, SGD lr 0.1, against a teacher whose logits spread like a trained
    # one's (std ~9). Unclipped it diverges within the first epoch; with distillation's default
    # gradient clip it trains.
    from slimforge.data.core import DataSplits
    from slimforge.distill import DistillConfig
    from slimforge.distill.api import DISTILL_GRAD_CLIP, distill_train_config
    from slimforge.train import TrainingDiverged

    full = slimforge.load_dataset("mnist", root=str(SHARED_DATA / "mnist"), val_fraction=0.0)
    train_split = full.train.subset(torch.arange(4096))
    torch.manual_seed(1)
    teacher = slimforge.create_model("mlp", hidden=[64], num_classes=10)
    with torch.no_grad():
        for p in teacher.parameters():
            p.mul_(6.0)
        logits = teacher(train_split.__getitems__(list(range(4096)))[0])
    assert 7 < logits.std() < 12
    train_split.labels = logits.argmax(1)
    data = DataSplits(train_split, full.val, full.test.subset(torch.arange(500)), full.info)
    config = DistillConfig(temperature=20.0, soft_weight=0.9)

    def student():
        torch.manual_seed(0)
        return slimforge.create_model("mlp-800", dropout=0.0)

    with pytest.raises(TrainingDiverged, match="epoch 1 .*temperature 20"):
        slimforge.distill(student(), teacher, data, config, distill_train_config(epochs=1, lr=0.1, grad_clip=None, quiet=True, num_threads=1))
    defaults = distill_train_config(epochs=2, lr=0.1, quiet=True, num_threads=1)
    assert defaults.grad_clip == DISTILL_GRAD_CLIP
    result = slimforge.distill(student(), teacher, data, config, defaults)
    losses = [epoch["train_loss"] for epoch in result.history]
    assert all(math.isfinite(v) for v in losses) and losses[1] < 0.5 * losses[0]
