"""Recommendation datasets (``slimforge.load_dataset``): ``movielens``, ``ratings`` and the
generated ``synthetic-ratings``, all through the protocol of :mod:`slimforge.recsys.protocol`.

MovieLens is never shipped (its licence is research-only): ``movielens`` reads the folder given
as ``root`` (``--data-root``), else ``$SLIMFORGE_DATA/movielens-small`` or
``../shared/data/movielens-small``. Both MovieLens layouts are read: ``ratings.csv`` +
``movies.csv`` (ml-latest, ml-25m ...) and ``ratings.dat`` + ``movies.dat`` (ml-1m, ``::``).

Options of every recommendation dataset:

* ``min_rating``: only ratings >= this are interactions (None: every rating is one);
* ``num_negatives`` (4): training negatives per interaction, drawn again every epoch from
  ``split_seed`` (``data.split_seed``);
* ``eval_negatives`` (99) and ``negative_seed`` (0): the sampled negatives of each validation
  and test user, fixed by that seed (the NCF protocol);
* ``val_full_catalogue`` (False): also rank the whole catalogue on validation (test always does);
* ``duplicates``: a (user, item) pair on several rows keeps its latest row (``"latest"``) or is
  an error (``"error"``).

``val_fraction`` and ``augment`` do not apply: leave-one-out picks each user's validation item,
and interactions are not augmented.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from slimforge.data import DataSplits, DatasetInfo, register_dataset
from slimforge.errors import DataError
from slimforge.recsys.protocol import (
    MIN_EVALUATED,
    Catalogue,
    ImplicitTrainDataset,
    RankingSplit,
    UserItems,
    index_interactions,
    leave_one_out,
    sample_eval_negatives,
)
from slimforge.recsys.ratings import Interactions, find_ratings_file, read_genres, read_ratings

MOVIELENS_SUBFOLDER = "movielens-small"
CHECKOUT_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"  # beside a development checkout, as for text

# What a ranking model trains with unless its config says otherwise (TrainConfig fields): the
# `ranking` objective (a sampled softmax over the catalogue for models that score it at once, mf and
# popularity; binary cross-entropy over positives and sampled negatives for pair scorers, neumf and
# two-tower), Adam, and the validation NDCG@10 picks the epoch kept. Measured on movielens-small with
# benchmarks/recsys_movielens.py (BENCHMARKS.md).
TRAIN_DEFAULTS = {
    "loss": "ranking",
    "monitor": "val_ndcg@10",
    "optimizer": "adamw",
    "lr": 5e-3,
    "weight_decay": 0.0,
    "batch_size": 256,
    "epochs": 10,
}


@dataclass(frozen=True)
class RecsysDatasetInfo(DatasetInfo):
    """An implicit-feedback dataset: sizes of its catalogue. ``num_classes`` is 1: a model gives
    one logit per (user, item) pair."""

    num_users: int = 0
    num_items: int = 0
    num_genres: int = 0
    task: str = "ranking"
    metric: str = "ndcg@10"

    def __post_init__(self) -> None:  # not a classifier: its own sizes are what must hold
        if self.num_users < 1 or self.num_items < 1 or self.num_genres < 0:
            raise DataError(f"Dataset {self.name!r} has {self.num_users} users, {self.num_items} items and {self.num_genres} genres; "
                            "a recommender needs at least one user and one item.")

    def model_kwargs(self) -> dict[str, Any]:
        return {"num_users": self.num_users, "num_items": self.num_items, "num_genres": self.num_genres}


@dataclass
class RecsysDataSplits(DataSplits):
    """train: :class:`ImplicitTrainDataset`; val/test: :class:`RankingSplit`; catalogue: the id
    maps and side features that ``save_assets`` writes beside a trained model."""

    catalogue: Catalogue | None = None

    def save_assets(self, folder: str | Path) -> Path:
        """``folder/catalogue.safetensors`` and ``catalogue.json``: what serving needs besides the model."""
        from slimforge.recsys.serve import save_catalogue

        return save_catalogue(folder, self.catalogue, self.train.known)

    def describe(self) -> dict[str, Any]:
        info = self.info
        return {
            "name": info.name,
            "task": info.task,
            "num_users": info.num_users,
            "num_items": info.num_items,
            "num_genres": info.num_genres,
            "sizes": {"train": len(self.train), "val": len(self.val), "test": len(self.test)},
            **self.split,
        }


def build_recsys_splits(
    name: str,
    interactions: Interactions,
    genres: dict[int, list[str]],
    *,
    min_rating: float | None = None,
    num_negatives: int = 4,
    eval_negatives: int = 99,
    negative_seed: int = 0,
    split_seed: int = 0,
    val_full_catalogue: bool = False,
) -> RecsysDataSplits:
    """Interactions -> leave-one-out splits with sampled negatives (see :mod:`slimforge.recsys.protocol`)."""
    if eval_negatives < 1:
        raise DataError(f"eval_negatives must be >= 1, got {eval_negatives}.")
    catalogue, indexed = index_interactions(interactions, genres, min_rating)
    held = leave_one_out(indexed, catalogue.num_users)
    if len(held.eval_users) == 0:
        raise DataError(f"{interactions.source}: no user has {MIN_EVALUATED} or more interactions, so none can be evaluated by leave-one-out.")
    every = UserItems(torch.from_numpy(indexed.users), torch.from_numpy(indexed.items), catalogue.num_users, catalogue.num_items)
    test_neg = sample_eval_negatives(held.eval_users, every, eval_negatives, negative_seed)
    val_neg = sample_eval_negatives(held.eval_users, every, eval_negatives, negative_seed + 1_000_003)
    popularity = torch.bincount(held.train_items, minlength=catalogue.num_items)
    catalogue = Catalogue(catalogue.user_ids, catalogue.item_ids, catalogue.genre_names, catalogue.item_genres, popularity)

    train = ImplicitTrainDataset(held.train_users, held.train_items, catalogue.num_users, catalogue.item_genres, num_negatives, split_seed)
    known_at_test = UserItems(torch.cat([held.train_users, held.eval_users]), torch.cat([held.train_items, held.val_items]),
                              catalogue.num_users, catalogue.num_items)
    val = RankingSplit(held.eval_users, held.val_items, val_neg, train.known, catalogue.item_genres, val_full_catalogue, sampled_from=every)
    test = RankingSplit(held.eval_users, held.test_items, test_neg, known_at_test, catalogue.item_genres, True, sampled_from=every)
    info = RecsysDatasetInfo(name, 1, (), num_users=catalogue.num_users, num_items=catalogue.num_items, num_genres=len(catalogue.genre_names))
    record = {
        "protocol": "leave-one-out by timestamp",
        "interactions": len(indexed),
        "min_rating": min_rating,
        "duplicates_dropped": interactions.duplicates_dropped,
        "evaluated_users": len(held.eval_users),
        "train_only_users": held.train_only_users,
        "num_negatives": num_negatives,
        "eval_negatives": eval_negatives,
        "negative_seed": negative_seed,
        "split_seed": split_seed,
        "test_sha256": test.fingerprint(),
    }
    return RecsysDataSplits(train, val, test, info, record, train_defaults=dict(TRAIN_DEFAULTS), catalogue=catalogue)


def movielens_folder(root: str | Path | None) -> Path:
    """``root``, else the first ``movielens-small`` under $SLIMFORGE_DATA, ../shared/data (from the
    working directory), or the ``shared/data`` beside this checkout."""
    if root is not None:
        return Path(root)
    from slimforge.data.vision import shared_data_dirs

    for base in [*shared_data_dirs(), CHECKOUT_DATA]:
        if (base / MOVIELENS_SUBFOLDER).is_dir():
            return base / MOVIELENS_SUBFOLDER
    raise DataError(
        "MovieLens is not shipped with slimforge (its licence is research-only). Download ml-latest-small (or ml-1m) from "
        f"https://grouplens.org/datasets/movielens/ and pass its folder as root= (--data-root), or put it at $SLIMFORGE_DATA/{MOVIELENS_SUBFOLDER}."
    )


@register_dataset("movielens", help="MovieLens ratings (ratings.csv/.dat + movies for genres) from root= or $SLIMFORGE_DATA; leave-one-out")
def load_movielens(
    root: str | None = None,
    min_rating: float | None = None,
    num_negatives: int = 4,
    eval_negatives: int = 99,
    negative_seed: int = 0,
    split_seed: int = 0,
    val_full_catalogue: bool = False,
    duplicates: str = "latest",
    val_fraction: float | None = None,
    augment: bool | None = None,
) -> RecsysDataSplits:
    folder = movielens_folder(root)
    ratings = find_ratings_file(folder)
    return build_recsys_splits(
        "movielens", read_ratings(ratings, duplicates=duplicates), read_genres(ratings.parent), min_rating=min_rating,
        num_negatives=num_negatives, eval_negatives=eval_negatives, negative_seed=negative_seed, split_seed=split_seed,
        val_full_catalogue=val_full_catalogue,
    )


@register_dataset("ratings", help="any ratings CSV (user, item, rating, timestamp columns) or ::-separated .dat; leave-one-out")
def load_ratings(
    path: str | None = None,
    root: str | None = None,
    items: str | None = None,
    user_column: str = "userId",
    item_column: str = "movieId",
    rating_column: str = "rating",
    time_column: str = "timestamp",
    min_rating: float | None = None,
    num_negatives: int = 4,
    eval_negatives: int = 99,
    negative_seed: int = 0,
    split_seed: int = 0,
    val_full_catalogue: bool = False,
    duplicates: str = "latest",
    val_fraction: float | None = None,
    augment: bool | None = None,
) -> RecsysDataSplits:
    """``path`` (or ``root``): the ratings file or its folder; ``items``: a MovieLens-style movies
    file for genres (default: the one beside the ratings, if any)."""
    if path is None and root is None:
        raise DataError("The 'ratings' dataset needs path= (a ratings file or its folder).")
    file = find_ratings_file(path or root)
    data = read_ratings(file, user_column, item_column, rating_column, time_column, duplicates)
    return build_recsys_splits(
        "ratings", data, read_genres(items or file.parent), min_rating=min_rating, num_negatives=num_negatives,
        eval_negatives=eval_negatives, negative_seed=negative_seed, split_seed=split_seed, val_full_catalogue=val_full_catalogue,
    )


@register_dataset("synthetic-ratings", help="generated interactions with planted low-rank structure and genres (tiny; the recommendation demo)")
def load_synthetic_ratings(
    num_users: int = 300,
    num_items: int = 400,
    rank: int = 4,
    min_per_user: int = 8,
    max_per_user: int = 40,
    num_genres: int = 8,
    seed: int = 0,
    num_negatives: int = 4,
    eval_negatives: int = 99,
    negative_seed: int = 0,
    split_seed: int = 0,
    val_full_catalogue: bool = False,
    min_rating: float | None = None,
    val_fraction: float | None = None,
    augment: bool | None = None,
) -> RecsysDataSplits:
    data, genres = synthetic_interactions(num_users, num_items, rank, min_per_user, max_per_user, num_genres, seed)
    return build_recsys_splits(
        "synthetic-ratings", data, genres, min_rating=min_rating, num_negatives=num_negatives, eval_negatives=eval_negatives,
        negative_seed=negative_seed, split_seed=split_seed, val_full_catalogue=val_full_catalogue,
    )


def synthetic_interactions(
    num_users: int = 300, num_items: int = 400, rank: int = 4, min_per_user: int = 8, max_per_user: int = 40,
    num_genres: int = 8, seed: int = 0,
) -> tuple[Interactions, dict[int, list[str]]]:
    """Interactions drawn from a planted rank-``rank`` preference model plus item popularity.

    User u picks n_u items (uniform in [min_per_user, max_per_user]) without replacement with
    probabilities softmax(2 x <p_u, q_i> / sqrt(rank) + b_i) (Gumbel top-k); the order of picks is
    random in time. Each item's genres are the directions of q_i it leans on most, so genres
    carry part of the structure. Ratings 1-5 follow the preference score. Raw ids start at 1.
    """
    if not 1 <= min_per_user <= max_per_user <= num_items:
        raise DataError(f"synthetic-ratings: need 1 <= min_per_user <= max_per_user <= num_items (got {min_per_user}, {max_per_user}, {num_items}).")
    rng = np.random.default_rng(seed)
    p = rng.normal(size=(num_users, rank))
    q = rng.normal(size=(num_items, rank))
    bias = rng.normal(scale=0.7, size=num_items)
    score = 2.0 * p @ q.T / np.sqrt(rank) + bias
    users, items, stamps, ratings = [], [], [], []
    for u in range(num_users):
        n = int(rng.integers(min_per_user, max_per_user + 1))
        picks = np.argsort(-(score[u] + rng.gumbel(size=num_items)))[:n]
        users += [u + 1] * n
        items += (picks + 1).tolist()
        stamps += (1_000_000 + rng.permutation(n) * 60 + u).tolist()
        ratings += np.clip(np.round(3 + score[u, picks] / 2), 1, 5).tolist()
    directions = rng.normal(size=(rank, num_genres))
    affinity = q @ directions
    names = [f"genre-{g}" for g in range(num_genres)]
    genres = {i + 1: [names[g] for g in np.argsort(-affinity[i])[: 1 + int(affinity[i].max() > 1.5)]] for i in range(num_items)} if num_genres else {}
    arr = lambda x, t: np.asarray(x, dtype=t)  # noqa: E731
    return Interactions(arr(users, np.int64), arr(items, np.int64), arr(ratings, np.float32), arr(stamps, np.int64), "generated"), genres
