"""MovieLens from a folder the user points at (skipped where ml-latest-small is absent)."""

from __future__ import annotations

import pytest

import slimforge
from slimforge.errors import DataError

from .conftest import MOVIELENS, needs_movielens


@needs_movielens
def test_movielens_small_loads_with_genres_and_every_user_evaluated():
    data = slimforge.load_dataset("movielens", root=str(MOVIELENS))
    info = data.info
    assert (info.num_users, info.num_items, data.split["interactions"]) == (610, 9724, 100836)  # ml-latest-small's README
    assert data.split["evaluated_users"] == 610 and len(data.train) == 100836 - 2 * 610
    assert info.num_genres == 19 and "Drama" in data.catalogue.genre_names  # 20 names less "(no genres listed)"
    assert data.test.negatives.shape == (610, 99)


@needs_movielens
def test_slimforge_data_points_at_the_parent_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("SLIMFORGE_DATA", str(MOVIELENS.parent))
    monkeypatch.chdir(tmp_path)  # not found through ../shared/data
    assert slimforge.load_dataset("movielens", min_rating=4.5).split["min_rating"] == 4.5


def test_without_the_data_the_error_says_where_to_get_it(monkeypatch, tmp_path):
    import slimforge.recsys.data as recsys_data

    monkeypatch.setenv("SLIMFORGE_DATA", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(recsys_data, "CHECKOUT_DATA", tmp_path)
    with pytest.raises(DataError, match=r"not shipped with slimforge .*grouplens.org"):
        slimforge.load_dataset("movielens")
    with pytest.raises(DataError, match="does not exist"):
        slimforge.load_dataset("movielens", root=str(tmp_path / "nowhere"))
