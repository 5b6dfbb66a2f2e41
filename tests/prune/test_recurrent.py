"""Recurrent layers (nn.LSTM, nn.GRU, nn.RNN) lose hidden units: every gate's row, the recurrent
weights' column and the output feature of a unit go together, in every layer and direction."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import slimforge
import slimforge.prune as sp
from slimforge.artifacts import get_spec
from slimforge.loading import load, save

HERE = Path(__file__).parent
X = torch.randn(2, 5, 6, generator=torch.Generator().manual_seed(1))


@pytest.fixture(autouse=True)
def helpers_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))


def _build(**kwargs) -> torch.nn.Module:
    torch.manual_seed(0)
    return slimforge.create_model("prune_helpers:recurrent_net", **kwargs).eval()


@pytest.mark.parametrize("kwargs", [dict(cell="lstm"), dict(cell="lstm", num_layers=2, bidirectional=True),
                                    dict(cell="gru", bidirectional=True), dict(cell="rnn", num_layers=2)])
def test_hidden_units_go_from_every_layer_and_direction_and_the_plan_replays(kwargs, tmp_path):
    model = _build(**kwargs)
    sp.prune(model, X, ratio=0.5, round_to=1)
    rnn = model.rnn
    assert rnn.hidden_size == 12 and model.a.out_features == 8 and rnn.input_size == 8
    directions = 2 if rnn.bidirectional else 1
    assert model.b.in_features == 12 * directions
    gates = {"LSTM": 4, "GRU": 3, "RNN": 1}[type(rnn).__name__]
    for name, p in rnn.named_parameters():
        assert p.shape[0] == gates * 12, name
        if name.startswith("weight_hh"):
            assert p.shape[1] == 12
    expected = model(X)
    fresh = sp.apply_plan(_build(**kwargs), get_spec(model).edits[-1])
    fresh.load_state_dict(model.state_dict())
    assert torch.equal(fresh(X), expected)
    save(model, tmp_path / "run")
    assert torch.equal(load(tmp_path / "run")(X), expected)


def test_removing_units_whose_weights_are_zero_leaves_the_outputs_identical():
    model = _build(cell="lstm", bidirectional=True)
    dead, off = [1, 3, 7, 11, 20, 22], [1, 5, 9, 12]  # a quarter of the hidden units and of the input features
    with torch.no_grad():
        for name, p in model.rnn.named_parameters():  # a dead unit reads nothing, carries no bias: its state stays 0
            for g in range(4):
                p[[g * 24 + j for j in dead]] = 0
            if name.startswith("weight_hh"):
                p[:, dead] = 0
            if name.startswith("weight_ih"):
                p[:, off] = 0
        model.b.weight[:, dead + [24 + j for j in dead]] = 0
        model.a.weight[off] = 0  # features that are always zero after the ReLU
        model.a.bias[off] = -1
    expected = model(X)
    sp.prune(model, X, ratio=0.25, round_to=1, importance="l1")
    assert model.rnn.hidden_size == 18 and model.a.out_features == 12
    torch.testing.assert_close(model(X), expected, rtol=0, atol=1e-6)


def test_a_stack_with_a_projection_stays_whole():
    model = _build(cell="lstm", proj_size=8)
    with pytest.raises(slimforge.errors.SlimforgeError, match="Nothing to prune"):
        sp.prune(model, X, ratio=0.5, round_to=1)
    assert model.rnn.hidden_size == 24 and model.rnn.proj_size == 8
