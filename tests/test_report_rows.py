"""The report's numbers: each row's speed-up, latency percentiles and accuracy change against the
baseline, on a measurement whose answers are known. Docstrings name the planted bugs
(benchmarks/planted_bugs.py) each test was checked against."""

from __future__ import annotations

import pytest

from slimforge.report import build_rows


def _variant(name, accuracy, p50, p90):
    return {"name": name, "kind": "pytorch", "accuracy": accuracy, "latency": {"8": {"p50_ms": p50, "p90_ms": p90, "throughput": 8000 / p50}}}


MEASUREMENT = {"batch_sizes": [8], "variants": [_variant("base", 0.90, 10.0, 13.0), _variant("small", 0.88, 4.0, 7.0)]}


def test_a_variant_twice_as_fast_is_2x_and_its_p90_is_its_own():
    """Planted bugs RP1 (speed-up inverted) and RP2 (the p90 column shows p50)."""
    base, small = build_rows(MEASUREMENT)
    assert small["speedup"] == pytest.approx(2.5) and base["speedup"] == pytest.approx(1.0)
    assert (small["latency_ms"], small["p90_ms"]) == (4.0, 7.0)
    assert (base["latency_ms"], base["p90_ms"]) == (10.0, 13.0)


def test_an_accuracy_loss_is_a_negative_change_in_points():
    """Planted bug RP3 (the accuracy change computed as baseline - variant)."""
    base, small = build_rows(MEASUREMENT)
    assert small["delta_points"] == pytest.approx(-2.0) and base["delta_points"] == 0.0
    assert build_rows(MEASUREMENT, baseline="small")[0]["delta_points"] == pytest.approx(2.0)
