"""Serving a trained recommender from its run folder: raw ids in, ranked raw item ids out.

A run trained on a recommendation dataset holds, beside the model, ``catalogue.safetensors``
(raw user and item ids, item genres, training popularity, the training interactions) and
``catalogue.json`` (genre names). :func:`recommend` needs nothing else.

Ids the model never saw:

* a **user** id not in the training data (a cold start) gets the popularity ranking: items by
  number of training interactions, most first (``cold_start=True`` in the result);
* an **item** id cannot be scored (the model has no embedding for it); :func:`score` refuses it,
  naming the ids, and :func:`recommend` only ever returns catalogue items.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from slimforge import artifacts, loading
from slimforge.errors import ArtifactError, DataError
from slimforge.recsys.protocol import Catalogue, UserItems, pair_inputs

CATALOGUE_TENSORS = "catalogue.safetensors"
CATALOGUE_JSON = "catalogue.json"
CATALOGUE_FORMAT = 1
SCORE_PAIRS = 65_536  # pairs per forward when scoring the catalogue


@dataclass(frozen=True)
class Recommendation:
    """user: the raw id asked for; items: raw item ids, best first; scores: the model's logits
    (training interaction counts for a cold start); cold_start: the user was not in the training data."""

    user: int
    items: list[int]
    scores: list[float]
    cold_start: bool


def save_catalogue(folder: str | Path, catalogue: Catalogue, known: UserItems) -> Path:
    """Write the catalogue (and the training interactions, to exclude at serving time) into ``folder``."""
    folder = Path(folder)
    tensors = {
        "user_ids": torch.from_numpy(catalogue.user_ids.astype(np.int64)),
        "item_ids": torch.from_numpy(catalogue.item_ids.astype(np.int64)),
        "item_genres": catalogue.item_genres,
        "popularity": catalogue.popularity,
        "known_keys": known.keys,
    }
    artifacts.atomic_write_bytes(folder / CATALOGUE_TENSORS, artifacts.state_dict_bytes(tensors))
    artifacts.write_json(folder / CATALOGUE_JSON, {"format": CATALOGUE_FORMAT, "genres": list(catalogue.genre_names),
                                                   "num_users": catalogue.num_users, "num_items": catalogue.num_items})
    return folder


def load_catalogue(folder: str | Path) -> tuple[Catalogue, UserItems]:
    """The catalogue and training interactions saved by :func:`save_catalogue`."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ArtifactError(f"{folder} is not a run folder (it does not exist or is a file).")
    if not (folder / CATALOGUE_TENSORS).is_file():
        raise ArtifactError(f"{folder} has no {CATALOGUE_TENSORS}: it was not trained on a recommendation dataset through slimforge train.")
    meta = artifacts.read_json(folder / CATALOGUE_JSON)
    t = artifacts.read_tensors(folder / CATALOGUE_TENSORS)
    expected = {"user_ids", "item_ids", "item_genres", "popularity", "known_keys"}
    if not isinstance(meta, dict) or set(t) != expected:
        raise ArtifactError(f"{folder / CATALOGUE_TENSORS} does not hold a catalogue (tensors {sorted(t)}, expected {sorted(expected)}).")
    catalogue = Catalogue(t["user_ids"].numpy(), t["item_ids"].numpy(), tuple(meta.get("genres", [])), t["item_genres"], t["popularity"])
    keys = t["known_keys"]
    known = UserItems(keys // catalogue.num_items, keys % catalogue.num_items, catalogue.num_users, catalogue.num_items)
    return catalogue, known


def recommend(run: str | Path, users: Sequence[int], k: int = 10, exclude_seen: bool = True, model: Any = None) -> list[Recommendation]:
    """The top ``k`` catalogue items for each raw user id in ``users``.

    exclude_seen: leave out items the user interacted with in training. ``model``: an already
    loaded model of ``run`` (default: loaded from the folder; an int8 artifact works too).
    """
    catalogue, known = load_catalogue(run)
    model = model if model is not None else loading.load(run)
    if hasattr(model, "eval"):
        model.eval()
    k = min(k, catalogue.num_items)
    index = _user_index(catalogue, users)
    popular = torch.argsort(catalogue.popularity, descending=True, stable=True)[:k]
    results = []
    for raw, u in zip(users, index.tolist()):
        if u < 0:
            results.append(Recommendation(int(raw), catalogue.item_ids[popular.numpy()].tolist(),
                                          catalogue.popularity[popular].double().tolist(), cold_start=True))
            continue
        scores = _score_catalogue(model, u, catalogue)
        if exclude_seen:
            scores[known.items_of(u)] = float("-inf")
        top = torch.topk(scores, k)
        results.append(Recommendation(int(raw), catalogue.item_ids[top.indices.numpy()].tolist(), top.values.double().tolist(), cold_start=False))
    return results


def score(run: str | Path, users: Sequence[int], items: Sequence[int], model: Any = None) -> torch.Tensor:
    """(n,) logits of the raw (user, item) pairs ``zip(users, items)``; unknown ids are refused."""
    catalogue, _ = load_catalogue(run)
    model = model if model is not None else loading.load(run)
    u, i = _user_index(catalogue, users), _item_index(catalogue, items)
    unknown = [f"user {raw}" for raw, x in zip(users, u.tolist()) if x < 0] + [f"item {raw}" for raw, x in zip(items, i.tolist()) if x < 0]
    if unknown:
        raise DataError(f"{', '.join(unknown[:5])}{' ...' if len(unknown) > 5 else ''} never appeared in {run}'s training data, so the model "
                        "has no embedding to score them; recommend() gives unknown users the popularity ranking.")
    with torch.no_grad():
        return model(pair_inputs(u, i, catalogue.item_genres)).float()


def _user_index(catalogue: Catalogue, users: Sequence[int]) -> torch.Tensor:
    return _lookup(catalogue.user_ids, users)


def _item_index(catalogue: Catalogue, items: Sequence[int]) -> torch.Tensor:
    return _lookup(catalogue.item_ids, items)


def _lookup(sorted_ids: np.ndarray, raw: Sequence[int]) -> torch.Tensor:
    """Index of each raw id in ``sorted_ids``, -1 where absent."""
    raw_arr = np.asarray(list(raw), dtype=np.int64)
    at = np.searchsorted(sorted_ids, raw_arr).clip(max=max(len(sorted_ids) - 1, 0))
    found = sorted_ids[at] == raw_arr if len(sorted_ids) else np.zeros(len(raw_arr), dtype=bool)
    return torch.from_numpy(np.where(found, at, -1).astype(np.int64))


def _score_catalogue(model: Any, user: int, catalogue: Catalogue) -> torch.Tensor:
    out = []
    with torch.no_grad():
        for items in torch.arange(catalogue.num_items).split(SCORE_PAIRS):
            out.append(model(pair_inputs(torch.full_like(items, user), items, catalogue.item_genres)).float().reshape(-1))
    return torch.cat(out)
