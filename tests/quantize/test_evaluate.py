"""How quantized models are scored: accuracy over samples, agreement with the fp32 model."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from slimforge.quantize.evaluate import accuracy, accuracy_evaluator, agreement, agreement_evaluator, compare_accuracy


def _argmax_of_first_feature(x: torch.Tensor) -> torch.Tensor:
    """Predicts class 1 where x[:, 0] > 0, else 0 (logits: (batch, 2))."""
    return torch.stack([-x[:, 0], x[:, 0]], dim=1)


def _batches():
    # 3 + 2 samples; the predictor gets 1 of 3, then 2 of 2 right: 3 of 5, not the mean of 1/3 and 1.
    x1, y1 = torch.tensor([[1.0], [-1.0], [2.0]]), torch.tensor([1, 1, 0])
    x2, y2 = torch.tensor([[-3.0], [4.0]]), torch.tensor([0, 1])
    return [(x1, y1), (x2, y2)]


def test_accuracy_is_the_fraction_of_samples_right():
    assert accuracy(_argmax_of_first_feature, _batches()) == pytest.approx(3 / 5)
    as_dicts = [{"inputs": x, "targets": y} for x, y in _batches()]
    assert accuracy(_argmax_of_first_feature, as_dicts) == pytest.approx(3 / 5)
    assert accuracy(_argmax_of_first_feature, [(x, y, "extra") for x, y in _batches()]) == pytest.approx(3 / 5)


def test_accuracy_puts_a_module_in_eval_mode():
    model = nn.Sequential(nn.Linear(1, 2), nn.Dropout(0.9))
    model.train()
    first = accuracy(model, _batches())
    assert not model.training and accuracy(model, _batches()) == first


@pytest.mark.parametrize(("loader", "message"), [
    ([], "no samples"),
    ([torch.ones(2, 1)], "labelled batches"),
    ([(torch.ones(2, 1),)], "labelled batches"),
    ([{"inputs": torch.ones(2, 1)}], "labelled batches"),
])
def test_accuracy_refuses_what_it_cannot_score(loader, message):
    with pytest.raises(ValueError, match=message):
        accuracy(_argmax_of_first_feature, loader)


def test_agreement_is_the_fraction_of_samples_with_the_same_top_class():
    flipped = lambda x: -_argmax_of_first_feature(x)  # noqa: E731 - disagrees everywhere x != 0
    sign_of_second = lambda x: _argmax_of_first_feature(x[:, 1:])  # noqa: E731
    inputs = [torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]]), (torch.tensor([[2.0, -2.0]]), torch.tensor([0]))]
    assert agreement(_argmax_of_first_feature, _argmax_of_first_feature, inputs) == 1.0
    assert agreement(_argmax_of_first_feature, flipped, inputs) == 0.0
    assert agreement(_argmax_of_first_feature, sign_of_second, inputs) == pytest.approx(2 / 4)
    with pytest.raises(ValueError, match="no inputs"):
        agreement(_argmax_of_first_feature, flipped, [])


def test_evaluators_score_each_predictor_on_the_same_data():
    evaluate = accuracy_evaluator(_batches())
    assert evaluate(_argmax_of_first_feature) == pytest.approx(3 / 5)
    assert evaluate(lambda x: -_argmax_of_first_feature(x)) == pytest.approx(2 / 5)

    reference = nn.Sequential(nn.Linear(1, 2), nn.Dropout(0.9))
    reference.train()
    by_agreement = agreement_evaluator(reference, [x for x, _ in _batches()])
    assert not reference.training  # a reference in train mode would disagree with itself
    assert by_agreement(reference) == 1.0


def test_compare_accuracy_reports_the_drop_in_points():
    fp32 = nn.Linear(1, 2)
    with torch.no_grad():
        fp32.weight.copy_(torch.tensor([[-1.0], [1.0]]))
        fp32.bias.zero_()
    worse = lambda x: torch.zeros(x.shape[0], 2).index_fill_(1, torch.tensor([0]), 1.0)  # noqa: E731 - always class 0
    result = compare_accuracy(fp32, worse, iter(_batches()))  # a one-pass iterator is enough
    assert result == {"fp32_accuracy": pytest.approx(0.6), "int8_accuracy": pytest.approx(0.4), "accuracy_drop_points": 20.0}
    # 2 of 3 against 0 of 3: 66.6667 points, to 4 decimals as recorded in metrics.json.
    three = [(torch.tensor([[1.0], [-1.0], [2.0]]), torch.tensor([1, 1, 1]))]
    assert compare_accuracy(fp32, worse, three)["accuracy_drop_points"] == 66.6667
