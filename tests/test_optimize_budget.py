"""optimize's settings and budget arithmetic: every limit accepted at its edge and refused past it."""

from __future__ import annotations

import math

import pytest

from slimforge.errors import ConfigError
from slimforge.optimize.budget import (
    DEFAULT_MARGIN_Z, Budget, JointMargin, OptimizeConfig, PairedDrop, interval_points, paired_drop, paired_standard_error, recovery_epochs,
)
from slimforge.quantize import list_backends


@pytest.mark.parametrize("edge", [
    {"max_accuracy_drop": 0.0}, {"max_accuracy_drop": 0.5}, {"batch_size": 1}, {"threads": 1}, {"repeats": 1},
    {"train_threads": 1}, {"train_threads": None}, {"time_budget_s": 0.5}, {"mac_targets": (0.001, 0.999)},
    {"backends": ("torch",)}, {"prune_by": "macs"}, {"prune_by": "latency"}, {"reference": ("eager",)}, {"reference": ()},
    {"objective": "size"}, {"objective": "latency"},
])
def test_every_setting_is_accepted_at_its_edge(edge):
    cfg = OptimizeConfig(**edge)
    assert all(getattr(cfg, key) == value for key, value in edge.items())


@pytest.mark.parametrize(("change", "named"), [
    ({"objective": "speed"}, "objective 'speed' is not supported.* Known objectives: latency, size"),
    ({"max_accuracy_drop": -0.1}, "max_accuracy_drop .* not -0.1"),
    ({"max_accuracy_drop": float("nan")}, "max_accuracy_drop .* not nan"),
    ({"batch_size": 0}, r"batch_size.*\(got 0, 1, None, 20\)"),
    ({"threads": 0}, r"threads.*\(got 32, 0, None, 20\)"),
    ({"repeats": 0}, r"repeats.*\(got 32, 1, None, 0\)"),
    ({"train_threads": 0}, r"train_threads.*\(got 32, 1, 0, 20\)"),
    ({"time_budget_s": 0.0}, "time_budget_s must be > 0, got 0.0"),
    ({"time_budget_s": -5.0}, "time_budget_s must be > 0, got -5.0"),
    ({"mac_targets": ()}, r"mac_targets .* got \[\]"),
    ({"mac_targets": (0.25, 0.0)}, r"mac_targets .* got \[0.25, 0.0\]"),
    ({"mac_targets": (1.0,)}, r"mac_targets .* got \[1.0\]"),
    ({"mac_targets": (1.5,)}, r"mac_targets .* got \[1.5\]"),
    ({"prune_by": "flops"}, "prune_by is 'macs' or 'latency', not 'flops'"),
])
def test_a_setting_past_its_edge_is_refused_by_name(change, named):
    with pytest.raises(ConfigError, match=named):
        OptimizeConfig(**change)


def test_an_unknown_backend_is_refused_with_the_known_ones_listed():
    with pytest.raises(ConfigError) as info:
        OptimizeConfig(backends=("onnxruntime", "tensorrt"))
    message = str(info.value)
    assert "['tensorrt']" in message and f"known: {', '.join(list_backends())}." in message


def test_an_unknown_reference_form_is_refused_with_the_known_ones_listed():
    from slimforge.deploy_forms import list_reference_forms

    with pytest.raises(ConfigError) as info:
        OptimizeConfig(reference=("eager", "tensorrt"))
    message = str(info.value)
    assert "['tensorrt']" in message and f"known: {', '.join(list_reference_forms())}." in message


def test_accuracy_interval_edges():
    assert interval_points(0.5, 0) == math.inf  # no samples: nothing is known
    assert interval_points(1.0, 1) == pytest.approx(98.0)  # one sample: p clamped to 0.5, 1.96 * 0.5
    # A score of 0 is as uncertain as a score of 1 (both clamped half a sample from the edge).
    assert interval_points(0.0, 400) == pytest.approx(interval_points(1.0, 400))
    assert interval_points(0.0, 400) == pytest.approx(100 * 1.96 * math.sqrt(0.00125 * 0.99875 / 400))


def test_recovery_is_never_shorter_than_asked():
    assert recovery_epochs(40, 3600, 128) == 40  # more than the cap, asked for explicitly
    assert recovery_epochs(4, 500 * 128, 128) == 4  # exactly 500 steps in one epoch
    assert recovery_epochs(1, 250 * 128, 128) == 2  # 250 steps an epoch: 2 epochs reach 500


def test_recovery_takes_at_most_a_quarter_of_the_time_budget_only_when_both_are_known():
    # 500 steps at 29 steps an epoch: 18 epochs; 1200 s / 4 / 70 s an epoch = 4.3: 4 whole epochs.
    assert recovery_epochs(1, 3600, 128, seconds_per_epoch=70, time_budget_s=1200) == 4
    assert recovery_epochs(1, 3600, 128, seconds_per_epoch=50, time_budget_s=1200) == 6  # exactly a quarter
    assert recovery_epochs(1, 3600, 128, seconds_per_epoch=70, time_budget_s=None) == 18
    assert recovery_epochs(1, 3600, 128, seconds_per_epoch=None, time_budget_s=1200) == 18


@pytest.mark.parametrize(("baseline", "candidate", "budget", "expected"), [
    (0.50, 0.49, Budget(2.0, relative=True), True),  # exactly 2% of 0.50: 2.0000000000000018 in floating point
    (0.50, 0.4899, Budget(2.0, relative=True), False),
    (0.4615, 0.4615 * 0.98, Budget(2.0, relative=True), True),
    (0.50, 0.49, Budget(1.0), True),  # exactly 1 point
    (0.50, 0.49, Budget(0.99), False),
    (0.20, 0.21, Budget(0.0, relative=True), True),  # a gain is always within
    (0.0, 0.0, Budget(2.0, relative=True), True),
    (0.0, -0.1, Budget(2.0, relative=True), False),
])
def test_a_candidate_exactly_at_a_relative_or_points_budget_is_within_it(baseline, candidate, budget, expected):
    assert budget.allows(baseline, candidate) is expected


@pytest.mark.parametrize(("text", "expected"), [
    ("2%", Budget(2.0, relative=True)), (" 0.5 % ", Budget(0.5, relative=True)), ("0.5", Budget(0.5)), ("1pt", Budget(1.0)), ("0", Budget(0.0)),
])
def test_budget_text_says_relative_or_points(text, expected):
    assert Budget.parse(text) == expected


@pytest.mark.parametrize(("text", "named"), [("two%", "neither a relative loss"), ("-1%", "finite number >= 0, not -1.0"), ("nan", "not nan")])
def test_a_budget_that_means_nothing_is_refused(text, named):
    with pytest.raises(ConfigError, match=named):
        Budget.parse(text)


def test_the_latency_search_refuses_a_relative_budget_or_another_metric():
    from slimforge.optimize.search import _accuracy_points

    with pytest.raises(ConfigError, match="accuracy points .* not 2% relative; a relative budget needs --objective size"):
        _accuracy_points(OptimizeConfig(budget=Budget(2.0, relative=True)))
    with pytest.raises(ConfigError, match="not 'ndcg@10'"):
        _accuracy_points(OptimizeConfig(metric="ndcg@10"))
    assert _accuracy_points(OptimizeConfig(budget=Budget(0.5))).max_accuracy_drop == 0.5


def test_the_paired_standard_error_is_that_of_the_per_sample_differences():
    # Per sample the difference candidate - baseline is +1 (gained), -1 (lost) or 0: the SE of its
    # mean is the population standard deviation over sqrt(n), here computed the long way.
    baseline = [True] * 380 + [False] * 20
    candidate = [False] * 6 + [True] * 374 + [True] * 3 + [False] * 17  # 6 lost, 3 gained
    paired = paired_drop(baseline, candidate)
    assert (paired.n, paired.gained, paired.lost) == (400, 3, 6)
    diffs = [int(c) - int(b) for b, c in zip(baseline, candidate)]
    mean = sum(diffs) / 400
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / 400)
    assert paired.drop_points == pytest.approx(-100 * mean) == pytest.approx(0.75)
    assert paired.se_points == pytest.approx(100 * sd / math.sqrt(400))
    assert paired.se_points == pytest.approx(100 * math.sqrt(9 - 9 / 400) / 400)  # the formula in the docstring


@pytest.mark.parametrize(("gained", "lost", "se"), [
    (0, 0, 0.0),  # identical predictions: no noise at all
    (2, 2, 100 * math.sqrt(4) / 400),  # as many gained as lost: no drop, but noise
    (0, 400, 0.0),  # every sample flipped one way: the difference is certain
    (0, 1, 100 * math.sqrt(1 - 1 / 400) / 400),
])
def test_paired_standard_error_edges(gained, lost, se):
    assert PairedDrop(400, gained, lost).se_points == pytest.approx(se)


def test_paired_drop_needs_the_same_samples():
    with pytest.raises(ValueError, match="400 samples and the candidate on 399"):
        paired_drop([True] * 400, [True] * 399)
    with pytest.raises(ValueError, match="non-empty"):
        paired_drop([], [])


def test_the_margin_setting_is_refused_past_its_edge():
    assert OptimizeConfig(margin_z=0.0).margin_z == 0.0  # the raw drop, as before the margin
    assert OptimizeConfig().margin_z == DEFAULT_MARGIN_Z == 1.645
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ConfigError, match=f"margin_z .* not {bad}"):
            OptimizeConfig(margin_z=bad)


def test_the_general_paired_standard_error_is_paired_drop_s_for_0_1_values():
    baseline = [True] * 380 + [False] * 20
    candidate = [False] * 6 + [True] * 374 + [True] * 3 + [False] * 17
    assert 100 * paired_standard_error(baseline, candidate) == pytest.approx(paired_drop(baseline, candidate).se_points)
    with pytest.raises(ValueError, match="same, non-empty split"):
        paired_standard_error([0.5], [0.5, 0.4])


def _noisy(base, rng, scale=0.1):
    return (base + rng.normal(0, scale, base.size)).tolist()


def test_the_joint_margin_is_z_for_one_candidate_and_bonferroni_for_independent_ones():
    from statistics import NormalDist

    import numpy as np

    rng = np.random.default_rng(3)
    base = rng.random(600)
    joint = JointMargin(DEFAULT_MARGIN_Z, base.tolist())
    assert joint.add(_noisy(base, rng)) == DEFAULT_MARGIN_Z  # never below z; one candidate's own quantile is z
    values = [joint.add(_noisy(base, rng)) for _ in range(19)]
    assert values == sorted(values)  # a new candidate never lowers it
    bonferroni = NormalDist().inv_cdf(1 - 0.05 / 20)  # 20 independent differences: max-T is Bonferroni (a hair under)
    assert bonferroni - 0.08 < values[-1] <= bonferroni + 0.03


def test_candidates_that_differ_from_the_baseline_alike_cost_the_joint_margin_nothing():
    import numpy as np

    rng = np.random.default_rng(4)
    base = rng.random(600)
    shared = np.asarray(_noisy(base, rng))
    joint = JointMargin(DEFAULT_MARGIN_Z, base.tolist())
    first = joint.add(shared.tolist())
    for k in range(10):  # int8 / int4 of one model: the same per-sample differences up to a little rounding
        assert joint.add((shared + rng.normal(0, 1e-4, base.size)).tolist()) < first + 0.02
    assert joint.with_extra(base.tolist()) == joint.value  # identical to the baseline: no noise to cover
    assert joint.with_extra((base + 0.01).tolist()) == joint.value  # a constant shift: no spread, no noise either
    assert JointMargin(0.0, base.tolist()).add(shared.tolist()) == 0.0  # margin off


def test_the_joint_margin_needs_the_baseline_s_samples():
    with pytest.raises(ValueError, match="the baseline has 3 values and the candidate 2"):
        JointMargin(DEFAULT_MARGIN_Z, [0.1, 0.2, 0.3]).add([0.1, 0.2])
