"""recipes/movielens.yaml end to end on the generated ratings: train, distil, int4 tables, a ranking report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import slimforge
from slimforge.pipeline import load_recipe, run_recipe
from slimforge.recsys import recommend
from slimforge.recsys.serve import load_catalogue

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "movielens.yaml"
SMALL = ["data.name=synthetic-ratings", "neumf.train.epochs=3", "mf.train.epochs=3", "mf-distilled.train.epochs=3",
         "neumf.train.num_threads=1", "mf.train.num_threads=1", "mf-distilled.train.num_threads=1", "report.repeats=3"]


def test_the_movielens_recipe_runs_on_generated_ratings_and_reports_ranking_figures(tmp_path):
    pytest.importorskip("fbgemm_gpu")
    markers = run_recipe(load_recipe(RECIPE, SMALL), tmp_path, quiet=True, log=lambda *_: None)
    assert list(markers) == ["neumf", "mf", "mf-distilled", "mf-int4", "mf-md", "mf-md-int4", "report"]

    measured = json.loads((tmp_path / "report" / "measurements.json").read_text())
    assert measured["measurement"]["metric"] == "ndcg@10"
    rows = {r["variant"]: r for r in measured["rows"]}
    saved = json.loads((tmp_path / "mf" / "metrics.json").read_text())
    assert rows["mf"]["quality"] == pytest.approx(saved["test_ndcg@10"])  # the report scores the test split as training did
    assert rows["mf"]["delta_points"] == pytest.approx(100 * (rows["mf"]["quality"] / rows["neumf"]["quality"] - 1))
    assert all(r["quality"] > 0.15 for r in rows.values())  # popularity scores 0.145 on this data
    assert rows["mf-int4"]["size_bytes"] * 4 < rows["mf"]["size_bytes"]
    assert rows["mf-md-int4"]["size_bytes"] < rows["mf-int4"]["size_bytes"] < rows["mf-md"]["size_bytes"] < rows["mf"]["size_bytes"]
    items = slimforge.load(tmp_path / "mf-md").item_embedding  # 20% of the items at 32 values, 80% at 8, one 8 -> 32 projection
    assert items.stored_values() == pytest.approx(items.num_embeddings * 32 * (0.2 + 0.8 / 4) + 8 * 32, abs=32)
    report = (tmp_path / "report" / "report.md").read_text()
    assert "| variant | test ndcg@10 | Δ test ndcg@10 (%) | test hr@10 | test recall@20 | test ndcg@20 |" in report
    assert "accuracy" not in report.split("\n\n")[2]  # the table's header names the ranking metric only

    user = int(load_catalogue(tmp_path / "mf")[0].user_ids[0])
    for run in ("neumf", "mf", "mf-distilled", "mf-int4", "mf-md", "mf-md-int4"):  # each folder serves raw ids alone
        [top] = recommend(tmp_path / run, [user], k=5)
        assert len(top.items) == 5 and not top.cold_start
