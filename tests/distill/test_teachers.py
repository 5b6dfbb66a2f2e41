"""Teachers: ensembles average softened probabilities, teachers are frozen, class counts must agree."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from slimforge.distill import DistillConfig, build_distill_objective, combine_teachers, prepare_teachers
from slimforge.errors import SlimforgeError

from .conftest import Wrapper, mlp


@pytest.mark.parametrize("temperature", [1.0, 4.0])
def test_ensemble_pseudo_logits_soften_to_the_mean_of_teacher_probabilities(temperature: float) -> None:
    logits = torch.randn(3, 6, 5, generator=torch.Generator().manual_seed(0)) * 4
    combined = combine_teachers(logits, "probabilities", temperature)
    expected = torch.stack([F.softmax(z / temperature, -1) for z in logits]).mean(0)
    assert torch.allclose(F.softmax(combined / temperature, -1), expected, atol=1e-6)


def test_logit_ensembles_average_logits_and_one_teacher_passes_through() -> None:
    logits = torch.randn(3, 6, 5)
    assert torch.allclose(combine_teachers(logits, "logits", 4.0), logits.mean(0))
    assert torch.equal(combine_teachers(logits[:1], "probabilities", 4.0), logits[0])


def test_teachers_are_unwrapped_frozen_in_eval_mode_and_cast() -> None:
    teacher = Wrapper(mlp())
    teacher.train()
    (prepared,) = prepare_teachers(teacher, dtype="bfloat16")
    assert prepared is teacher.module
    assert not prepared.training
    assert all(not p.requires_grad and p.dtype == torch.bfloat16 for p in prepared.parameters())


def test_objective_uses_the_ensemble_average(vectors: torch.Tensor) -> None:
    torch.manual_seed(0)
    teachers = [mlp() for _ in range(3)]
    student = mlp()
    config = DistillConfig(loss="kd", temperature=2.0, hard_weight=0.0)
    objective = build_distill_objective(student, teachers, config)
    targets = torch.zeros(len(vectors), dtype=torch.long)
    out = objective(student, vectors, targets, torch.arange(len(vectors)))
    with torch.no_grad():
        mean_probs = torch.stack([F.softmax(t(vectors) / 2.0, -1) for t in teachers]).mean(0)
    expected = F.kl_div(F.log_softmax(student(vectors) / 2.0, -1), mean_probs, reduction="batchmean") * 4.0
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_class_count_mismatch_names_both_counts(vectors: torch.Tensor) -> None:
    with pytest.raises(SlimforgeError, match="teacher predicts 10 classes but the student predicts 4"):
        build_distill_objective(mlp(classes=4), mlp(classes=10), DistillConfig(), example_input=vectors[:2])


def test_class_count_mismatch_in_one_ensemble_member_is_caught_without_a_probe(vectors: torch.Tensor) -> None:
    student = mlp(classes=4)
    objective = build_distill_objective(student, [mlp(classes=4), mlp(classes=3)], DistillConfig())
    with pytest.raises(SlimforgeError, match="teacher predicts 3 classes but the student predicts 4"):
        objective(student, vectors, torch.zeros(len(vectors), dtype=torch.long), torch.arange(len(vectors)))


def test_bfloat16_teacher_gives_float32_distillation_loss(vectors: torch.Tensor) -> None:
    student = mlp()
    objective = build_distill_objective(student, mlp(), DistillConfig(teacher_dtype="bfloat16"))
    out = objective(student, vectors, torch.zeros(len(vectors), dtype=torch.long), torch.arange(len(vectors)))
    out.loss.backward()
    assert out.loss.dtype == torch.float32 and torch.isfinite(out.loss)
    assert all(p.grad is not None for p in student.parameters())
