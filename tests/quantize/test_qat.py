"""Quantization-aware training: fake-quant layers train, the trainer hook prepares once, convert quantizes."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from slimforge.quantize import QATCallback, QATConfig, QuantizationError, QuantizeConfig, agreement, convert_qat, prepare_qat
from slimforge.quantize.qat import is_qat_prepared, strip_qat
from slimforge.train.callbacks import TrainState

from .conftest import synthetic_batches


def test_weights_are_rounded_to_int8_per_channel(trained_mlp):
    model = prepare_qat(copy.deepcopy(trained_mlp))
    layer = model.net[1]
    assert parametrize.is_parametrized(layer, "weight")
    for row in layer.weight:
        assert torch.unique(row).numel() <= 255
    original = layer.parametrizations.weight.original
    # Rounding moves each weight by at most half a quantization step.
    step = original.abs().amax(dim=1, keepdim=True) / 127
    assert ((layer.weight - original).abs() <= step / 2 + 1e-7).all()


def test_fake_quant_model_trains_and_predicts_like_fp32(trained_mlp, test_batches):
    model = prepare_qat(copy.deepcopy(trained_mlp))
    assert agreement(trained_mlp, model.eval(), test_batches) >= 0.97
    model.train()
    x, y = synthetic_batches(1, seed=5)[0]
    nn.functional.cross_entropy(model(x), y).backward()
    grad = model.net[1].parametrizations.weight.original.grad
    assert grad is not None and grad.abs().sum() > 0


def test_activation_range_tracks_training_and_freezes_in_eval(trained_mlp):
    model = prepare_qat(copy.deepcopy(trained_mlp), QATConfig(momentum=0.5))
    observer = model.net[3].input_fake_quant
    model.train()
    model(torch.randn(8, 1, 28, 28))
    first = observer.max_val.clone()
    model(10 * torch.randn(8, 1, 28, 28))
    assert observer.max_val > first
    model.eval()
    frozen = observer.max_val.clone()
    model(100 * torch.randn(8, 1, 28, 28))
    assert torch.equal(observer.max_val, frozen)


def test_callback_prepares_once_at_the_start_epoch_and_asks_for_a_new_optimizer(trained_mlp):
    model = copy.deepcopy(trained_mlp)
    callback = QATCallback(start_epoch=1)
    state = TrainState(model=model, epoch=0)
    callback.on_epoch_start(state)
    assert not is_qat_prepared(model) and not state.rebuild_optimizer
    state.epoch = 1
    callback.on_epoch_start(state)
    assert is_qat_prepared(model) and state.rebuild_optimizer
    restored = QATCallback(start_epoch=1)
    restored.load_state_dict(callback.state_dict())
    assert restored.prepared


def test_convert_strips_fake_quant_and_quantizes(trained_mlp, calibration, test_batches):
    pytest.importorskip("onnxruntime")
    model = prepare_qat(copy.deepcopy(trained_mlp))
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    model.train()
    for x, y in synthetic_batches(3, seed=6):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    result = convert_qat(model, calibration, QuantizeConfig(backend="onnxruntime", calib_batches=2))
    assert not is_qat_prepared(model)
    assert set(model.state_dict()) == set(trained_mlp.state_dict())
    assert agreement(model.eval(), result.quantized, test_batches) >= 0.97


def test_prepare_twice_or_without_layers_is_a_clear_error(trained_mlp):
    model = prepare_qat(copy.deepcopy(trained_mlp))
    with pytest.raises(QuantizationError, match="twice"):
        prepare_qat(model)
    with pytest.raises(QuantizationError, match="no Conv or Linear"):
        prepare_qat(nn.Sequential(nn.ReLU()))
    assert strip_qat(model) is model and not is_qat_prepared(model)
