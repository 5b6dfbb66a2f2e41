"""Small recommendation fixtures: ratings files written on the fly, and the generated data set."""

from __future__ import annotations

from pathlib import Path

import pytest

import slimforge

MOVIELENS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "movielens-small"
needs_movielens = pytest.mark.skipif(not (MOVIELENS / "ratings.csv").is_file(), reason="../shared/data/movielens-small is absent")


def write_ratings(path: Path, rows: list[tuple], header: str = "userId,movieId,rating,timestamp") -> Path:
    """A ratings.csv with ``header`` and one line per row (fields joined by commas)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + "\n" + "".join(",".join(str(v) for v in row) + "\n" for row in rows))
    return path


@pytest.fixture(scope="session")
def synthetic():
    """The generated data set at its default size (300 users, ~400 items; ~0.2 s)."""
    return slimforge.load_dataset("synthetic-ratings")


@pytest.fixture(scope="session")
def small_synthetic():
    """A smaller generated set for model contracts and quick training."""
    return slimforge.load_dataset("synthetic-ratings", num_users=80, num_items=160, max_per_user=20, eval_negatives=49)
