"""Accuracy-aware quantization: return the most sensitive layers to fp32 until the loss is small.

1. Quantize every layer; stop if ``baseline - score <= max_drop``.
2. Sensitivity: quantize again with each layer alone kept in fp32; the score it wins back ranks it.
3. Keep the top 1, 2, ... ``max_fp32_layers`` layers in fp32 until within ``max_drop``.

The best model found so far (highest score, then fewest fp32 layers) is kept throughout and,
with ``out``, saved each time it improves, so an interrupted or failed search still leaves it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from slimforge.errors import ConfigError
from slimforge.quantize._calibration import Batch
from slimforge.quantize.core import QuantizeConfig, QuantizeResult, bind_preprocess, prepare, save_quantized
from slimforge.quantize.evaluate import Evaluator


@dataclass(frozen=True)
class FallbackConfig:
    """max_drop: tolerated loss of the evaluator's score (a fraction: 0.003 is 0.3 accuracy point);
    max_fp32_layers: most layers returned to fp32 before giving up (the best found is returned)."""

    max_drop: float = 0.003
    max_fp32_layers: int = 8

    def __post_init__(self) -> None:
        if self.max_drop < 0 or self.max_fp32_layers < 0:
            raise ConfigError(f"FallbackConfig needs max_drop >= 0 and max_fp32_layers >= 0, got {self}.")


@dataclass
class FallbackResult:
    """best: the best quantized model found; within_tolerance: whether it meets max_drop;
    history: every trial as {"fp32_layers", "score"}; sensitivity: layer -> score won back in fp32."""

    best: QuantizeResult
    baseline: float
    score: float
    within_tolerance: bool
    history: list[dict[str, Any]] = field(default_factory=list)
    sensitivity: dict[str, float] = field(default_factory=dict)

    def metrics(self) -> dict[str, Any]:
        return {
            "fp32_score": self.baseline,
            "int8_score": self.score,
            "score_drop_points": round(100 * (self.baseline - self.score), 4),
            "within_tolerance": self.within_tolerance,
            "fp32_layers": list(self.best.info["fp32_layers"]),
            "trials": len(self.history),
        }


def quantize_with_fallback(
    model: nn.Module,
    calibration: Iterable[Batch],
    evaluate: Evaluator,
    config: QuantizeConfig = QuantizeConfig(),
    fallback: FallbackConfig = FallbackConfig(),
    out: str | Path | None = None,
) -> FallbackResult:
    """Quantize ``model``, returning sensitive layers to fp32 until ``evaluate`` drops by at most ``max_drop``.

    evaluate: ``evaluate(predict) -> score`` (higher is better), e.g.
    :func:`~slimforge.quantize.accuracy_evaluator` (test loader) or
    :func:`~slimforge.quantize.agreement_evaluator` (fp32 agreement, no labels).
    out: folder where the best model so far is saved (``save_quantized``) whenever it improves.
    """
    # Set-up: export and calibrate once; search without compiling (same numerics, much faster).
    search_config = dataclasses.replace(config, compile=False)
    prepared, info = prepare(model, calibration, search_config)
    baseline = evaluate(model.eval())
    search = _Search(prepared, info, evaluate, baseline, fallback, out)

    # 1. Everything quantized (except layers the config keeps in fp32).
    base = frozenset(info["fp32_layers"])
    first = search.trial(base)
    if search.within(first) or fallback.max_fp32_layers == 0:
        return search.result(config)

    # 2. Sensitivity: what each layer alone wins back in fp32.
    candidates = [layer for layer in prepared.layers if layer not in base]
    sensitivity = {layer: search.trial(base | {layer}) - first for layer in candidates}
    ranked = sorted(sensitivity, key=lambda layer: -sensitivity[layer])
    search.sensitivity = sensitivity

    # 3. Return the top-k layers to fp32 until within tolerance.
    for k in range(2, min(fallback.max_fp32_layers, len(ranked)) + 1):
        if search.within(search.best_score):
            break
        search.trial(base | set(ranked[:k]))
    return search.result(config)


class _Search:
    """The trials of one fallback search and the best quantized model among them."""

    def __init__(self, prepared: Any, info: dict[str, Any], evaluate: Evaluator, baseline: float, fallback: FallbackConfig, out: str | Path | None) -> None:
        self.prepared, self.info, self.evaluate = prepared, info, evaluate
        self.baseline, self.fallback, self.out = baseline, fallback, out
        self.history: list[dict[str, Any]] = []
        self.sensitivity: dict[str, float] = {}
        self.best: QuantizeResult | None = None
        self.best_score = float("-inf")

    def within(self, score: float) -> bool:
        return self.baseline - score <= self.fallback.max_drop + 1e-12

    def trial(self, fp32_layers: frozenset[str] | set[str]) -> float:
        if set(fp32_layers) >= set(self.prepared.layers):
            return float("-inf")  # all layers in fp32 is not a quantized model
        quantized = self.prepared.quantize(frozenset(fp32_layers))
        score = self.evaluate(quantized)
        self.history.append({"fp32_layers": sorted(fp32_layers), "score": score})
        fewer = self.best is not None and score == self.best_score and len(fp32_layers) < len(self.best.info["fp32_layers"])
        if score > self.best_score or fewer:
            self.best_score = score
            self.best = QuantizeResult(quantized, {**self.info, "fp32_layers": sorted(fp32_layers)})
            if self.out is not None:
                save_quantized(self.best, self.out, self._metrics())
        return score

    def result(self, config: QuantizeConfig) -> FallbackResult:
        assert self.best is not None, "the first trial always quantizes something"
        if hasattr(self.best.quantized, "compile"):
            self.best.quantized.compile = config.compile
        self.best.info["config"] = dataclasses.asdict(config)
        bind_preprocess(self.best.quantized, self.best.info)  # takes raw data as quantize()'s result does
        result = FallbackResult(self.best, self.baseline, self.best_score, self.within(self.best_score), self.history, self.sensitivity)
        if self.out is not None:
            save_quantized(self.best, self.out, result.metrics())
        return result

    def _metrics(self) -> dict[str, Any]:
        return {
            "fp32_score": self.baseline,
            "int8_score": self.best_score,
            "score_drop_points": round(100 * (self.baseline - self.best_score), 4),
            "within_tolerance": self.within(self.best_score),
            "trials": len(self.history),
        }
