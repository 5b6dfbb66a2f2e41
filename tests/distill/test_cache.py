"""Teacher cache: computed once, reused when it matches, equal to the live teacher, and abandoned under augmentation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from slimforge.distill import DistillConfig, TeacherCache, build_distill_objective, prepare_teachers
from slimforge.distill.teachers import run_teacher
from slimforge.errors import ConfigError

from .conftest import TinyNet


def _teacher(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return prepare_teachers(TinyNet())[0]


def test_cached_logits_equal_live_logits_and_are_reused(images: torch.Tensor, tmp_path: Path) -> None:
    teacher = _teacher()
    first = TeacherCache.build(teacher, images, tmp_path, batch_size=16)
    idx = torch.tensor([3, 0, 39, 17])
    assert not first.reused
    assert torch.allclose(first.lookup(idx), run_teacher(teacher, images[idx]), atol=1e-6)
    npy = next(tmp_path.glob("teacher-*.npy"))
    assert np.load(npy, mmap_mode="r").shape == (40, 4)
    mtime = npy.stat().st_mtime_ns

    second = TeacherCache.build(teacher, images, tmp_path)
    assert second.reused and npy.stat().st_mtime_ns == mtime
    assert second.meta["n"] == 40 and second.meta["shape"] == [4]


def test_cache_accepts_datasets_of_pairs(images: torch.Tensor, tmp_path: Path) -> None:
    teacher = _teacher()
    pairs = [(x, 0) for x in images]
    cache = TeacherCache.build(teacher, pairs, tmp_path, batch_size=7)
    assert torch.allclose(cache.lookup(torch.arange(40)), run_teacher(teacher, images), atol=1e-6)


def test_new_weights_or_new_data_are_not_served_a_stale_cache(images: torch.Tensor, tmp_path: Path) -> None:
    TeacherCache.build(_teacher(0), images, tmp_path)
    other_teacher = TeacherCache.build(_teacher(1), images, tmp_path)
    assert not other_teacher.reused
    other_data = TeacherCache.build(_teacher(0), images + 1, tmp_path)
    assert not other_data.reused
    assert torch.allclose(other_data.lookup(torch.arange(40)), run_teacher(_teacher(0), images + 1), atol=1e-6)


def test_float16_cache_is_close_to_live(images: torch.Tensor, tmp_path: Path) -> None:
    teacher = _teacher()
    cache = TeacherCache.build(teacher, images, tmp_path, dtype="float16")
    assert np.load(cache.path, mmap_mode="r").dtype == np.float16
    assert torch.allclose(cache.lookup(torch.arange(40)), run_teacher(teacher, images), atol=1e-2)


def test_index_outside_the_cache_is_a_clear_error(images: torch.Tensor, tmp_path: Path) -> None:
    cache = TeacherCache.build(_teacher(), images, tmp_path)
    with pytest.raises(ConfigError, match="outside the teacher cache of 40 samples"):
        cache.lookup(torch.tensor([40]))


@pytest.mark.parametrize("loss", ["kd", "dkd", "mse"])
def test_cached_and_live_objectives_give_the_same_first_losses(images: torch.Tensor, tmp_path: Path, loss: str) -> None:
    torch.manual_seed(0)
    teachers = [TinyNet(), TinyNet()]
    student = TinyNet(width=2)
    targets = torch.randint(0, 4, (40,))
    config = DistillConfig(loss=loss)
    cached = build_distill_objective(student, teachers, config, train_inputs=images, cache_dir=tmp_path)
    live = build_distill_objective(student, teachers, config)
    assert (cached.mode, live.mode) == ("cached", "live")
    for batch in (torch.arange(0, 10), torch.tensor([5, 33, 2, 19])):
        a = cached(student, images[batch], targets[batch], batch)
        b = live(student, images[batch], targets[batch], batch)
        assert a.loss.item() == pytest.approx(b.loss.item(), rel=1e-5)
        assert {k: float(v) for k, v in a.parts.items()} == pytest.approx({k: float(v) for k, v in b.parts.items()}, rel=1e-5)
    assert cached.mode == "cached"


def test_augmented_batches_fall_back_to_the_live_teacher(images: torch.Tensor, tmp_path: Path) -> None:
    teacher, student = _teacher(), TinyNet()
    objective = build_distill_objective(student, teacher, DistillConfig(), train_inputs=images, cache_dir=tmp_path)
    flipped = images[:8].flip(-1)  # what a random horizontal flip would feed the student
    out = objective(student, flipped, torch.zeros(8, dtype=torch.long), torch.arange(8))
    live = build_distill_objective(student, teacher, DistillConfig())(student, flipped, torch.zeros(8, dtype=torch.long), torch.arange(8))
    assert objective.mode == "live" and "augmentation" in objective.mode_reason
    assert out.loss.item() == pytest.approx(live.loss.item(), rel=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"config": DistillConfig(cache=False)}, "cache is off"),
        ({"train_inputs": None}, "no fixed training inputs"),
        ({"cache_dir": None}, "no cache folder"),
        ({"config": DistillConfig(hints=("body.0:body.0",))}, "hints"),
    ],
)
def test_live_mode_says_why(images: torch.Tensor, tmp_path: Path, kwargs: dict, reason: str) -> None:
    args = {"config": DistillConfig(), "train_inputs": images, "cache_dir": tmp_path, **kwargs}
    objective = build_distill_objective(TinyNet(), _teacher(), example_input=images[:2], **args)
    assert objective.mode == "live" and reason in objective.mode_reason


class BatchDataset:
    """Like slimforge's in-memory datasets: (input, target, index) items, batch fetching, a determinism flag."""

    def __init__(self, images: torch.Tensor, deterministic: bool = True) -> None:
        self.images, self.deterministic = images, deterministic

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.images[i], torch.tensor(0), torch.tensor(i)

    def __getitems__(self, idx: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.images[idx], torch.zeros(len(idx), dtype=torch.long), torch.tensor(idx)


def test_cache_reads_batch_datasets_and_respects_their_determinism_flag(images: torch.Tensor, tmp_path: Path) -> None:
    teacher = _teacher()
    cached = build_distill_objective(TinyNet(), teacher, DistillConfig(), train_inputs=BatchDataset(images), cache_dir=tmp_path)
    assert cached.mode == "cached"
    assert torch.allclose(cached.caches[0].lookup(torch.arange(40)), run_teacher(teacher, images), atol=1e-6)
    augmented = build_distill_objective(TinyNet(), teacher, DistillConfig(), train_inputs=BatchDataset(images, False), cache_dir=tmp_path)
    assert augmented.mode == "live" and "augmented" in augmented.mode_reason


def test_cache_stays_in_use_under_mixed_precision(images: torch.Tensor, tmp_path: Path) -> None:
    student = TinyNet()
    objective = build_distill_objective(student, _teacher(), DistillConfig(), train_inputs=images, cache_dir=tmp_path)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = objective(student, images[:8], torch.zeros(8, dtype=torch.long), torch.arange(8))
    assert objective.mode == "cached" and torch.isfinite(out.loss)
    assert objective.trainable_modules() == []


def test_a_long_teacher_pass_reports_its_progress(capsys, monkeypatch):
    """issue 25: labelling a transfer set ran 3.5 minutes with no output."""
    from slimforge.distill import cache

    clock = iter(range(0, 1000, 3))  # every call: 3 s later
    monkeypatch.setattr(cache.time, "monotonic", lambda: float(next(clock)))
    progress = cache._Progress(1000)
    for done in range(100, 1001, 100):
        progress.update(done)
    lines = capsys.readouterr().err.splitlines()
    assert lines and all(line.startswith("teacher outputs: ") for line in lines)
    assert "1,000 of 1,000 inputs (100%)" in lines[-1] and len(lines) <= 10
