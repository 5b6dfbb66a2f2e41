"""`optimize --objective size`: the engine keeps the smallest candidate within the budget, on any metric.

The generator and the scores are stand-ins here (a score per embedding width), so which candidate
wins is known exactly; tests/recsys/test_optimize_size.py runs the real recommender generator."""

from __future__ import annotations

import json

import pytest
import torch

import slimforge
from slimforge.errors import ConfigError
from slimforge.optimize import Budget, OptimizeConfig, optimize
from slimforge.optimize import size as size_search

# Validation (and test) ndcg@10 of an MF model by its embedding width; the baseline is 32 wide.
SCORES = {32: 0.50, 24: 0.495, 16: 0.49, 8: 0.4899}


@pytest.fixture(scope="module")
def ratings():
    return slimforge.load_dataset("synthetic-ratings", num_users=80, num_items=160, max_per_user=20, eval_negatives=49)


@pytest.fixture(scope="module")
def mf_baseline(ratings, tmp_path_factory):
    return slimforge.save(slimforge.create_model("mf", dim=32, **ratings.info.model_kwargs()), tmp_path_factory.mktemp("mf") / "base")


class ByWidth:
    """Proposes MF models of each width in ``widths``, saved as fp32 run folders."""

    description = "MF models of other widths (test stand-in)"

    def __init__(self, ratings, widths=(24, 16, 8)) -> None:
        self.ratings, self.widths = ratings, widths

    def accepts(self, model) -> bool:
        return True

    def propose(self, session) -> None:
        for dim in self.widths:
            model = slimforge.create_model("mf", dim=dim, **self.ratings.info.model_kwargs())
            session.add(f"dim{dim}", lambda folder, m=model: slimforge.save(m, folder), f"MF with {dim} factors")


@pytest.fixture
def stand_ins(monkeypatch, ratings):
    """The ByWidth generator alone, and scores from SCORES (every split alike)."""
    monkeypatch.setattr(size_search, "_generators_for", lambda model: [("by-width", ByWidth(ratings))])
    monkeypatch.setattr(size_search, "_evaluate", lambda model, split, per_sample=False, expected=False: {
        "ndcg@10": SCORES[model.user_embedding.embedding_dim], "hr@10": 0.9, "loss": 0.1, "count": len(split)})


def test_the_smallest_candidate_within_the_budget_is_chosen_and_exactly_at_it_counts(stand_ins, ratings, mf_baseline, tmp_path):
    cfg = OptimizeConfig(objective="size", metric="ndcg@10", budget=Budget(2.0, relative=True))
    summary = optimize(mf_baseline, ratings, cfg, tmp_path / "opt", log=lambda *_: None)
    verdicts = {c["name"]: (c["within_budget"], c["verdict"]) for c in summary["candidates"]}
    assert verdicts["dim16"][0] and verdicts["dim16"][1].startswith("best")  # 0.50 -> 0.49 is 2.000...02% in floating point
    assert verdicts["dim8"] == (False, "rejected: validation loss 2.02 + noise margin 0.00 > budget 2% relative")
    assert verdicts["dim24"] == (True, "within budget, larger than dim16")
    best = summary["best"]
    assert best["name"] == "dim16" and best["bytes"] < min(c["bytes"] for c in summary["candidates"] if c["name"] == "dim24")
    assert best["bytes"] == (tmp_path / "opt" / "best" / "model.safetensors").stat().st_size  # size: the weight file
    assert best["size_x"] == pytest.approx(summary["baseline"]["bytes"] / best["bytes"], rel=1e-3)
    assert slimforge.load(tmp_path / "opt" / "best").user_embedding.embedding_dim == 16
    assert json.loads((tmp_path / "opt" / "optimize.json").read_text())["best"]["name"] == "dim16"
    table = (tmp_path / "opt" / "summary.md").read_text()
    assert "| dim16 |" in table and "| dim8 |" in table and "-2.00% rel." in table and "Best: dim16" in table
    assert (tmp_path / "opt" / "candidates" / "dim8" / "catalogue.json").is_file()  # each candidate serves alone


def test_a_points_budget_is_in_points(stand_ins, ratings, mf_baseline, tmp_path):
    cfg = OptimizeConfig(objective="size", budget=Budget(0.5))  # 0.50 -> 0.495 is 0.5 points: dim24 only
    summary = optimize(mf_baseline, ratings, cfg, tmp_path / "opt", log=lambda *_: None)
    assert summary["metric"] == "ndcg@10"  # the data's headline metric when none is named
    assert summary["best"]["name"] == "dim24" and [c["within_budget"] for c in summary["candidates"]] == [True, False, False]


def test_nothing_within_the_budget_leaves_the_record_and_no_best(stand_ins, ratings, mf_baseline, tmp_path):
    cfg = OptimizeConfig(objective="size", budget=Budget(0.5, relative=True))  # 0.495 is 1% below
    summary = optimize(mf_baseline, ratings, cfg, tmp_path / "opt", log=lambda *_: None)
    assert summary["best"] is None and not (tmp_path / "opt" / "best").exists()
    assert summary["headline"].startswith("No candidate within 0.5% relative of validation ndcg@10")


def test_an_unknown_metric_is_refused_with_the_known_ones_named(ratings, mf_baseline, tmp_path):
    cfg = OptimizeConfig(objective="size", metric="ndcg@11")
    with pytest.raises(ConfigError, match=r"unknown metric 'ndcg@11': the validation split reports hr@10, ndcg@10\. Did you mean 'ndcg@10'"):
        optimize(mf_baseline, ratings, cfg, tmp_path / "opt", log=lambda *_: None)
    assert not (tmp_path / "opt").exists()
    with pytest.raises(ConfigError, match="unknown metric 'loss'"):  # lower is better: not a budget metric
        optimize(mf_baseline, ratings, OptimizeConfig(objective="size", metric="loss"), tmp_path / "opt", log=lambda *_: None)


def test_objective_size_on_a_classifier_says_which_models_it_takes(tmp_path):
    digits = slimforge.load_dataset("digits", augment=False)
    base = slimforge.save(slimforge.create_model("mlp", hidden=[16], **digits.info.model_kwargs()), tmp_path / "mlp")
    with pytest.raises(ConfigError, match="no candidate generator accepts MLP .*embedding-tables .*use --objective latency"):
        optimize(base, digits, OptimizeConfig(objective="size"), tmp_path / "opt", log=lambda *_: None)


def test_every_size_generator_is_listed_and_loads():
    from slimforge.optimize.size import BUILTIN_SIZE_GENERATORS, SIZE_GENERATORS

    assert SIZE_GENERATORS.names() == sorted(BUILTIN_SIZE_GENERATORS)
    for name in SIZE_GENERATORS.names():
        generator = SIZE_GENERATORS.get(name)
        assert generator.description and callable(generator.accepts) and callable(generator.propose)


def test_a_drop_within_the_budget_but_inside_its_noise_is_refused(monkeypatch, ratings, mf_baseline, tmp_path):
    """Per-user values give the paired difference's noise: dim24 loses 1% on average but as +/-0.4 per user
    (SE 0.4 / sqrt(n)), so 1% + 1.645 SE is over a 2% budget; dim16 loses exactly 2% for every user alike
    (SE 0) and is within."""
    n = 400
    per_user = {32: [0.5] * n, 24: [0.895, 0.095] * (n // 2), 16: [0.49] * n, 8: [0.0] * n}
    monkeypatch.setattr(size_search, "_generators_for", lambda model: [("by-width", ByWidth(ratings))])

    def scores(model, split, per_sample=False, expected=False):
        values = per_user[model.user_embedding.embedding_dim]
        out = {"ndcg@10": sum(values) / n, "hr@10": 0.9, "loss": 0.1, "count": n}
        return {**out, "per_sample": {"ndcg@10": torch.tensor(values, dtype=torch.float64)}} if per_sample else out

    monkeypatch.setattr(size_search, "_evaluate", scores)
    summary = optimize(mf_baseline, ratings, OptimizeConfig(objective="size", budget=Budget(2.0, relative=True)), tmp_path / "opt",
                       log=lambda *_: None)
    by_name = {c["name"]: c for c in summary["candidates"]}
    se = 0.4 / n ** 0.5
    assert by_name["dim24"]["margin"] == pytest.approx(100 * 1.645 * se / 0.5, abs=1e-3) and not by_name["dim24"]["within_budget"]
    assert by_name["dim16"]["margin"] == 0.0 and by_name["dim16"]["within_budget"] and summary["best"]["name"] == "dim16"
    assert "noise margin" in (tmp_path / "opt" / "summary.md").read_text()
    no_margin = optimize(mf_baseline, ratings, OptimizeConfig(objective="size", budget=Budget(2.0, relative=True), margin_z=0.0),
                         tmp_path / "opt0", log=lambda *_: None)
    assert {c["name"]: c["within_budget"] for c in no_margin["candidates"]}["dim24"]  # the raw drop alone is within


def test_validation_is_scored_as_the_expectation_over_the_negative_draw_and_test_on_its_draw(monkeypatch, ratings, mf_baseline, tmp_path):
    """The budget and the margin read validation's expected sampled metrics (the default); test keeps its fixed draw;
    OptimizeConfig(sampled_expectation=False) (--fixed-draw) scores validation on its draw too."""
    monkeypatch.setattr(size_search, "_generators_for", lambda model: [("by-width", ByWidth(ratings, widths=(16,)))])
    real = size_search._evaluate
    calls = []

    def recording(model, split, per_sample=False, expected=False):
        calls.append(("val" if split is ratings.val else "test", expected))
        return real(model, split, per_sample, expected)

    monkeypatch.setattr(size_search, "_evaluate", recording)
    for sampled_expectation in (True, False):
        calls.clear()
        cfg = OptimizeConfig(objective="size", budget=Budget(50.0, relative=True), sampled_expectation=sampled_expectation)
        summary = optimize(mf_baseline, ratings, cfg, tmp_path / f"opt{sampled_expectation}", log=lambda *_: None)
        assert set(calls) == {("val", sampled_expectation), ("test", False)}
        expected_val = ratings.val.evaluate(slimforge.load(mf_baseline), expected=True)["ndcg@10"]
        fixed_val = ratings.val.evaluate(slimforge.load(mf_baseline))["ndcg@10"]
        assert summary["baseline"]["val"] == pytest.approx(expected_val if sampled_expectation else fixed_val, abs=1e-12)
        assert summary["budget"]["validation_sampled_metrics"] == ("expectation over the negative draw" if sampled_expectation else "one fixed draw")
    assert expected_val != fixed_val
