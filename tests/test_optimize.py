"""`slimforge optimize`: candidates are measured, the best within budget is saved at every step."""

from __future__ import annotations

import json

import pytest

import slimforge
from slimforge.cli import main
from slimforge.cli.optimize import parse_duration
from slimforge.errors import ConfigError
from slimforge.optimize import OptimizeConfig, optimize
from slimforge.train import TrainConfig


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    out = tmp_path_factory.mktemp("base")
    assert main(["train", "--data", "digits", "--model", "cnn", "--epochs", "3", "--lr", "0.05", "--out", str(out), "--quiet", "train.num_threads=1"]) == 0
    return out


def test_search_keeps_the_fastest_candidate_within_budget(baseline, tmp_path):
    data = slimforge.load_dataset("digits", augment=False)
    cfg = OptimizeConfig(max_accuracy_drop=100.0, backends=("onnxruntime",), mac_targets=(0.25,), time_budget_s=300, repeats=5, refine=False, auto_recovery=False,
                         recovery=TrainConfig(epochs=1, lr=0.02, batch_size=128, num_threads=1))
    from slimforge.experiment import DataConfig

    summary = optimize(baseline, data, cfg, tmp_path / "opt", log=lambda *_: None, data_config=DataConfig(name="digits", augment=False))
    names = [c["name"] for c in summary["candidates"]]
    assert names == ["baseline-int8-onnxruntime", "prune-macs0.25", "prune-macs0.25-int8-onnxruntime"]
    pruned_config = (tmp_path / "opt" / "candidates" / "prune-macs0.25" / "config.yaml").read_text()
    assert "name: digits" in pruned_config  # candidates record their data, so they can be evaluated alone
    int8_config = (tmp_path / "opt" / "candidates" / "baseline-int8-onnxruntime" / "config.yaml").read_text()
    assert "name: digits" in int8_config  # int8 candidates too
    best = summary["best"]
    assert best["speedup"] == max(c["speedup"] for c in summary["candidates"])  # a 100-point budget admits all
    saved = json.loads((tmp_path / "opt" / "optimize.json").read_text())
    assert saved["best"]["name"] == best["name"]
    assert (tmp_path / "opt" / "best").is_dir() and (tmp_path / "opt" / "report" / "report.html").is_file()
    pruned = next(c for c in summary["candidates"] if c["name"] == "prune-macs0.25")
    assert pruned["macs"] < 0.35 * summary["baseline"]["macs"]


def test_nothing_within_a_zero_budget_still_leaves_a_record(baseline, tmp_path):
    data = slimforge.load_dataset("digits", augment=False)
    cfg = OptimizeConfig(max_accuracy_drop=0.0, backends=("onnxruntime",), mac_targets=(0.02, 0.1), time_budget_s=120, repeats=5, refine=False, auto_recovery=False,
                         recovery=TrainConfig(epochs=1, lr=1e-6, batch_size=128, num_threads=1))
    summary = optimize(baseline, data, cfg, tmp_path / "opt", log=lambda *_: None)
    assert summary["failed"][-1]["name"] == "prune-macs0.02" and "above the target" in summary["failed"][-1]["error"]
    prune = next(c for c in summary["candidates"] if c["name"].startswith("prune"))
    assert prune["name"] == "prune-macs0.1" and not prune["within_budget"]
    assert json.loads((tmp_path / "opt" / "optimize.json").read_text())["candidates"]


def test_durations_and_bad_objective():
    assert parse_duration("90s") == 90 and parse_duration("45m") == 2700 and parse_duration("1.5h") == 5400 and parse_duration("30") == 30
    with pytest.raises(ConfigError, match="not a duration"):
        parse_duration("soon")
    with pytest.raises(ConfigError, match="objective 'sise' is not supported. Did you mean 'size'"):
        OptimizeConfig(objective="sise")


@pytest.mark.parametrize(("baseline", "candidate", "budget", "expected"), [
    (0.9825, 0.9725, 1.0, True),  # exactly 1 point: 1.0000000000000009 in floating point
    (0.9825, 0.9725, 0.99, False),
    (0.50, 0.4975, 0.25, True),  # 1 image of 400
    (0.50, 0.4974, 0.25, False),
    (0.90, 0.95, 0.0, True),  # a gain is always within
    (0.90, 0.90, 0.0, True),
])
def test_a_candidate_exactly_at_the_budget_is_within_it(baseline, candidate, budget, expected):
    from slimforge.optimize import within_budget

    assert within_budget(baseline, candidate, budget) is expected  # no noise margin: the drop alone
    assert within_budget(baseline, candidate, budget, margin_points=0.0) is expected


@pytest.mark.parametrize(("baseline", "candidate", "margin", "expected"), [
    (0.9825, 0.9775, 0.5, True),  # 0.5 + 0.5: exactly the budget, 1.0000000000000009 in floating point
    (0.9825, 0.9775, 0.51, False),
    (0.90, 0.905, 1.5, True),  # a 0.5-point gain with a 1.5-point margin: exactly at the budget
    (0.90, 0.90, 1.01, False),  # no drop, but a margin wider than the budget: not shown to be within
])
def test_the_noise_margin_is_added_to_the_drop(baseline, candidate, margin, expected):
    from slimforge.optimize import within_budget

    assert within_budget(baseline, candidate, 1.0, margin_points=margin) is expected


@pytest.mark.parametrize("change", [{"max_accuracy_drop": float("nan")}, {"max_accuracy_drop": float("inf")}, {"batch_size": 0}, {"threads": 0}])
def test_a_budget_or_measurement_setting_that_means_nothing_is_refused(change):
    from slimforge.errors import ConfigError
    from slimforge.optimize import OptimizeConfig

    with pytest.raises(ConfigError, match="optimize:"):
        OptimizeConfig(**change)


def test_latency_aware_pruning_in_the_search(baseline, tmp_path):
    """prune_by='latency': the ladder's targets are fractions of the latency measured on this machine."""
    data = slimforge.load_dataset("digits", augment=False)
    cfg = OptimizeConfig(max_accuracy_drop=100.0, backends=("onnxruntime",), mac_targets=(0.5,), time_budget_s=300, repeats=5,
                         refine=False, auto_recovery=False, prune_by="latency", reference=("eager",),
                         recovery=TrainConfig(epochs=1, lr=0.02, batch_size=128, num_threads=1))
    summary = optimize(baseline, data, cfg, tmp_path / "opt", log=lambda *_: None)
    pruned = next(c for c in summary["candidates"] if c["name"] == "prune-latency0.5")
    assert pruned["macs"] < summary["baseline"]["macs"] and "prune(latency=0.5" in pruned["recipe"]
    edit = json.loads((tmp_path / "opt" / "candidates" / "prune-latency0.5" / "model.json").read_text())["edits"][-1]
    assert edit["latency"]["target"] == 0.5 and edit["latency"]["batch_size"] == 32


def test_a_continued_recovery_is_a_candidate_of_its_own(baseline, tmp_path):
    """Step 5's building block, for real: a pruned candidate recovered for one more epoch keeps its
    size, says where it came from and how many epochs it has had, and its folder predicts alone."""
    from slimforge.measure import load_variant
    from slimforge.optimize.search import _Search

    data = slimforge.load_dataset("digits", augment=False)
    cfg = OptimizeConfig(backends=("onnxruntime",), time_budget_s=300, repeats=2, auto_recovery=False, reference=("eager",),
                         recovery=TrainConfig(epochs=1, lr=0.02, batch_size=128, num_threads=1))
    search = _Search(baseline, data, cfg, tmp_path / "opt", log=lambda *_: None)
    pruned = search.try_prune(0.25, 1)
    continued = search.try_continue(pruned.name, 1)
    assert (continued.name, continued.source, continued.epochs) == ("prune-macs0.25+2ep", "prune-macs0.25", 2)
    assert continued.macs == pruned.macs and "1 more epochs" in continued.recipe
    assert continued.margin_points >= 0 and continued.val_gained is not None and continued.val_lost is not None
    variant = load_variant(continued.path, continued.name, threads=1)
    x, y = data.val.__getitems__(list(range(64)))[:2]
    assert variant.predict(x).shape == (64, data.info.num_classes)
    pool = {m.name: m for m in search.recovering()}
    assert pool[continued.name].continued == 1 and pool[pruned.name].continued == 0


def test_a_target_that_prunes_to_a_model_already_recovered_is_not_recovered_again(baseline, tmp_path):
    """MNIST-5k: targets 0.42 and 0.354 both pruned to 5.87 M MACs, and the second recovery (217 s)
    made a model the search already had. Here 0.25 and 0.2499 round to the same channel counts."""
    from slimforge.optimize.search import _Search

    data = slimforge.load_dataset("digits", augment=False)
    cfg = OptimizeConfig(backends=("onnxruntime",), time_budget_s=300, repeats=2, auto_recovery=False, reference=("eager",),
                         recovery=TrainConfig(epochs=1, lr=0.02, batch_size=128, num_threads=1))
    lines: list[str] = []
    search = _Search(baseline, data, cfg, tmp_path / "opt", log=lines.append)
    first = search.try_prune(0.25, 1)
    assert search.try_prune(0.2499, 1) is None
    assert [c.name for c in search.candidates] == [first.name]
    assert search.tries[-1].target == 0.2499 and search.tries[-1].within == first.within_budget
    assert any("the same pruned model as prune-macs0.25" in line for line in lines)
