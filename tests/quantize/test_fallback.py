"""Accuracy-aware fallback: sensitive layers go back to fp32; the best model is always kept and saved."""

from __future__ import annotations

import json

import pytest
from torch import nn

from slimforge.quantize import (
    FallbackConfig,
    QuantizeConfig,
    agreement_evaluator,
    load_quantized,
    quantize_with_fallback,
)

pytest.importorskip("onnxruntime")

CONFIG = QuantizeConfig(backend="onnxruntime", calib_batches=2)


def scripted_evaluator(scores: dict[frozenset, float], default: float, fp32_score: float = 0.95):
    """A stand-in for test accuracy that depends only on which layers were kept in fp32."""

    def evaluate(predict) -> float:
        if isinstance(predict, nn.Module):
            return fp32_score
        return scores.get(frozenset(predict.fp32_layers), default)

    return evaluate


def test_most_sensitive_layers_return_to_fp32_until_within_tolerance(trained_mlp, calibration, tmp_path):
    # Layers: net.1, net.3, net.5. net.3 matters most, net.1 a little; both together recover fp32.
    scores = {
        frozenset({"net.1"}): 0.91,
        frozenset({"net.3"}): 0.94,
        frozenset({"net.1", "net.3"}): 0.95,
    }
    result = quantize_with_fallback(
        trained_mlp, calibration, scripted_evaluator(scores, 0.90), CONFIG, FallbackConfig(max_drop=0.003), out=tmp_path
    )
    assert result.within_tolerance and result.score == 0.95
    assert result.best.info["fp32_layers"] == ["net.1", "net.3"]
    assert max(result.sensitivity, key=result.sensitivity.get) == "net.3"
    # all-int8, three single-layer trials, then the top two together
    assert [h["fp32_layers"] for h in result.history] == [[], ["net.1"], ["net.3"], ["net.5"], ["net.1", "net.3"]]
    saved = json.loads((tmp_path / "quantized.json").read_text())
    assert saved["fp32_layers"] == ["net.1", "net.3"] and saved["metrics"]["within_tolerance"] is True
    assert load_quantized(tmp_path).fp32_layers == ("net.1", "net.3")


def test_best_model_is_kept_when_later_trials_are_worse(trained_mlp, calibration, tmp_path):
    scores = {frozenset({"net.3"}): 0.94}  # every other combination, bigger ones included, scores 0.90
    result = quantize_with_fallback(
        trained_mlp, calibration, scripted_evaluator(scores, 0.90), CONFIG, FallbackConfig(max_drop=0.003, max_fp32_layers=3), out=tmp_path
    )
    assert not result.within_tolerance
    assert result.score == 0.94 and result.best.info["fp32_layers"] == ["net.3"]
    # tried the top two as well; the top three is every layer, which is not a quantized model
    assert len(result.history) == 1 + 3 + 1
    assert json.loads((tmp_path / "quantized.json").read_text())["fp32_layers"] == ["net.3"]


def test_no_search_when_int8_is_already_within_tolerance(trained_mlp, calibration):
    result = quantize_with_fallback(trained_mlp, calibration, scripted_evaluator({}, 0.949), CONFIG, FallbackConfig(max_drop=0.003))
    assert result.within_tolerance and len(result.history) == 1 and result.best.info["fp32_layers"] == []


def test_real_search_never_returns_worse_than_all_int8(trained_cnn, calibration, test_batches):
    inputs = [x for x, _ in test_batches]
    evaluate = agreement_evaluator(trained_cnn, inputs)
    result = quantize_with_fallback(trained_cnn, calibration, evaluate, CONFIG, FallbackConfig(max_drop=0.0, max_fp32_layers=2))
    assert result.score >= result.history[0]["score"]
    assert result.score == evaluate(result.best.quantized)
