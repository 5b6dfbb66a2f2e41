"""Feature hints: module paths resolve on both models, adapters are trained, wrong paths explain themselves."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from slimforge.distill import DistillConfig, HintSpec, build_distill_objective
from slimforge.errors import ConfigError, SlimforgeError
from slimforge.models import create_model

from .conftest import TinyNet, mlp


def test_wrong_student_path_lists_nearby_valid_paths() -> None:
    student, teacher = create_model("resnet8", num_classes=4, in_channels=1, width=0.25), TinyNet()
    config = DistillConfig(hints=[HintSpec("layer1.3.conv1", "body.3")])
    with pytest.raises(SlimforgeError, match=r"student \(CifarResNet\) has no module 'layer1.3.conv1'") as err:
        build_distill_objective(student, teacher, config, example_input=torch.randn(2, 1, 8, 8))
    assert "layer1.0" in str(err.value) and "layer2" in str(err.value)


def test_wrong_teacher_path_suggests_the_close_one() -> None:
    config = DistillConfig(hints=["body.3:body.33"])
    with pytest.raises(SlimforgeError, match=r"teacher \(TinyNet\) has no module 'body.33'.*Did you mean 'body.3'"):
        build_distill_objective(TinyNet(), TinyNet(), config, example_input=torch.randn(2, 1, 8, 8))


def test_hint_specs_parse_from_yaml_like_values() -> None:
    config = DistillConfig(hints=["a.b:c", ["d", "e"], {"student": "f", "teacher": "g"}])
    assert config.hints == (HintSpec("a.b", "c"), HintSpec("d", "e"), HintSpec("f", "g"))
    with pytest.raises(ConfigError, match="student_path:teacher_path"):
        DistillConfig(hints=["no-colon"])


def test_adapters_match_widths_and_are_trained(images: torch.Tensor) -> None:
    torch.manual_seed(0)
    student, teacher = TinyNet(width=2), TinyNet(width=8)
    config = DistillConfig(hints=["body.0:body.3", "body.5:body.5"], hint_loss="cosine", hint_weight=2.0)
    objective = build_distill_objective(student, teacher, config, example_input=images[:2])
    early, pooled = objective.adapters["hint0"], objective.adapters["hint1"]
    assert isinstance(early, nn.Conv2d) and (early.in_channels, early.out_channels) == (2, 16)
    assert isinstance(pooled, nn.Conv2d) and (pooled.in_channels, pooled.out_channels) == (4, 16)

    (adapters,) = objective.trainable_modules()
    assert {id(p) for p in adapters.parameters()} == {id(p) for p in objective.parameters()}
    out = objective(student, images, torch.zeros(40, dtype=torch.long), torch.arange(40))
    out.loss.backward()
    assert out.parts["hint_loss"] > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in objective.parameters())
    assert all(p.grad is None for p in teacher.parameters())
    # Hooks live only during the objective's call: a plain forward afterwards captures nothing.
    assert not student.body[0]._forward_hooks and not teacher.body[3]._forward_hooks


def test_vector_features_get_a_linear_adapter(vectors: torch.Tensor) -> None:
    student, teacher = mlp(hidden=8), mlp(hidden=32)
    objective = build_distill_objective(student, teacher, DistillConfig(hints=["1:1"]), example_input=vectors[:2])
    adapter = objective.adapters["hint0"]
    assert isinstance(adapter, nn.Linear) and (adapter.in_features, adapter.out_features) == (8, 32)


def test_hints_without_an_example_input_are_a_config_error() -> None:
    with pytest.raises(ConfigError, match="example_input"):
        build_distill_objective(TinyNet(), TinyNet(), DistillConfig(hints=["body.0:body.0"]))


def test_hints_with_an_ensemble_are_refused() -> None:
    with pytest.raises(ConfigError, match="single teacher"):
        build_distill_objective(TinyNet(), [TinyNet(), TinyNet()], DistillConfig(hints=["body.0:body.0"]))


def test_hints_train_on_augmented_data_through_the_run_api() -> None:
    """With augmentation the teacher runs live and no fixed inputs exist to probe: the run reads its first training
    inputs to size the adapters (it failed with "hints need example_input" before, from the CLI and recipes too)."""
    import slimforge
    from slimforge.distill.api import run
    from slimforge.train import TrainConfig

    data = slimforge.load_dataset("digits", augment=True)
    torch.manual_seed(0)
    teacher = create_model("cnn", num_classes=10, in_channels=1, width=8)
    student = create_model("cnn", num_classes=10, in_channels=1, width=4)
    config = DistillConfig(hints=["features.0:features.0"])
    result = run(student, teacher, data, config, TrainConfig(epochs=1, batch_size=128, num_threads=1, quiet=True))
    assert result.history[-1]["train_hint_loss"] > 0 and result.metrics["distill"]["teacher_outputs"] == "live"
