"""The objective as the trainer sees it: wrapped students, sequence logits, config checks, and a short run."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from slimforge.distill import DistillConfig, build_distill_objective, build_student
from slimforge.errors import ConfigError, UnknownNameError

from .conftest import TinyNet, Wrapper, mlp


def test_wrapped_student_gives_the_same_loss_and_hooks_the_inner_module(images: torch.Tensor) -> None:
    torch.manual_seed(0)
    student, teacher = TinyNet(width=2), TinyNet()
    config = DistillConfig(loss="dkd", hints=["body.3:body.3"])
    objective = build_distill_objective(Wrapper(student), teacher, config, example_input=images[:2])
    targets, idx = torch.randint(0, 4, (40,)), torch.arange(40)
    wrapped = objective(Wrapper(student), images, targets, idx)
    plain = objective(student, images, targets, idx)
    assert wrapped.loss.item() == pytest.approx(plain.loss.item(), rel=1e-6)
    assert wrapped.logits.shape == (40, 4) and "hint_loss" in wrapped.parts


def test_total_is_the_weighted_sum_of_its_parts(vectors: torch.Tensor) -> None:
    student, teacher = mlp(), mlp()
    config = DistillConfig(loss="kd", hard_weight=0.3, soft_weight=0.7, temperature=3.0)
    targets = torch.randint(0, 4, (64,))
    out = build_distill_objective(student, teacher, config)(student, vectors, targets, torch.arange(64))
    with torch.no_grad():
        soft = F.kl_div(F.log_softmax(student(vectors) / 3, -1), F.softmax(teacher(vectors) / 3, -1), reduction="batchmean") * 9
        hard = F.cross_entropy(student(vectors), targets)
    assert {k: float(v) for k, v in out.parts.items()} == pytest.approx({"hard_loss": hard.item(), "soft_loss": soft.item()}, rel=1e-5)
    assert out.loss.item() == pytest.approx(0.3 * hard.item() + 0.7 * soft.item(), rel=1e-5)


def test_sequence_logits_skip_padded_positions() -> None:
    class TinyLM(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed, self.out = nn.Embedding(11, 8), nn.Linear(8, 11)

        def forward(self, tokens: torch.Tensor) -> torch.Tensor:
            return self.out(self.embed(tokens))  # (batch, seq, vocab)

    torch.manual_seed(0)
    student, teacher = TinyLM(), TinyLM()
    tokens = torch.randint(0, 11, (3, 5))
    targets = tokens.roll(-1, 1)
    targets[:, -2:] = -100
    out = build_distill_objective(student, teacher, DistillConfig(loss="mse", hard_weight=0.0))(student, tokens, targets, torch.arange(3))
    with torch.no_grad():
        expected = F.mse_loss(student(tokens)[:, :3], teacher(tokens)[:, :3])
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"temperature": 0.0}, "distill.temperature must be positive"),
        ({"loss": "dkd", "beta": -1.0}, "distill.beta must be >= 0"),
        ({"hint_loss": "l1"}, "distill.hint_loss='l1' is not one of"),
        ({"cache_dtype": "int8"}, "distill.cache_dtype='int8'"),
        ({"teacher_dtype": "half"}, "distill.teacher_dtype='half'"),
    ],
)
def test_bad_config_values_name_the_key(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        DistillConfig(**kwargs)


def test_unknown_loss_in_config_is_refused_early() -> None:
    with pytest.raises(UnknownNameError, match="Unknown distillation loss 'kld'"):
        DistillConfig(loss="kld")


def test_adapters_round_trip_through_state_dict(images: torch.Tensor) -> None:
    config = DistillConfig(hints=["body.3:body.3"])
    a = build_distill_objective(TinyNet(), TinyNet(), config, example_input=images[:2])
    b = build_distill_objective(TinyNet(), TinyNet(), config, example_input=images[:2])
    b.load_state_dict(a.state_dict())
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))
    a.sync_gradients()  # one process: nothing to average, must not fail


def test_students_from_names_factories_and_modules() -> None:
    named = build_student("resnet8", num_classes=3, in_channels=1, width=0.25)
    assert named(torch.randn(2, 1, 8, 8)).shape == (2, 3)
    factory = build_student(lambda num_classes: mlp(classes=num_classes), num_classes=5)
    assert factory(torch.randn(2, 16)).shape == (2, 5)
    module = mlp()
    assert build_student(module, num_classes=4) is module


def test_distilled_student_learns_the_teacher() -> None:
    # Synthetic task whose labels come from a fixed teacher; the student should come to agree with it.
    torch.manual_seed(0)
    teacher = mlp(hidden=64)
    train_x, test_x = torch.randn(512, 16), torch.randn(256, 16)
    with torch.no_grad():
        train_y, test_y = teacher(train_x).argmax(-1), teacher(test_x).argmax(-1)
    student = mlp(hidden=16)
    objective = build_distill_objective(student, teacher, DistillConfig(loss="dkd", temperature=2.0))
    optimizer = torch.optim.SGD(student.parameters(), lr=0.1, momentum=0.9)
    distill_losses = []
    for _ in range(300):
        idx = torch.randint(0, 512, (64,))
        out = objective(student, train_x[idx], train_y[idx], idx)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        distill_losses.append(float(out.parts["soft_loss"]))
    assert sum(distill_losses[-20:]) < 0.6 * sum(distill_losses[:20])
    with torch.no_grad():
        agreement = (student(test_x).argmax(-1) == test_y).float().mean().item()
    assert agreement > 0.9  # on held-out inputs; an untrained student agrees ~1 time in 4
