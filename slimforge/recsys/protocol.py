"""The evaluation protocol of implicit-feedback recommendation (NCF, He et al. 2017), and the
datasets the trainer reads.

From an interaction log (:class:`~slimforge.recsys.ratings.Interactions`):

1. every rating is an interaction (``min_rating`` keeps only ratings at or above it);
2. users and items get contiguous indices (items: those with an interaction);
3. leave-one-out by timestamp: each user's latest interaction is the test item, the second
   latest the validation item, the rest train. Ties in time keep file order (the later row is
   the later interaction). Users with fewer than 3 interactions cannot give all three: they are
   kept in training only and not evaluated (``train_only_users`` in the record);
4. each evaluated user gets 99 items they never interacted with as sampled negatives, from a
   fixed seed (``negative_seed``), once for validation and once for test;
5. training pairs: each training interaction is a positive and ``num_negatives`` items the user
   has no training interaction with are its negatives, drawn again every epoch.

Batches are ``(inputs, targets, indices)`` where inputs is ``{"user": (N,), "item": (N,),
"item_genres": (N, G)}`` (genre ids, 0 = none) and targets (N,) are 1.0 / 0.0; a training
batch of B interactions holds N = B x (1 + num_negatives) pairs: the B positives first, then
the negatives of positive ``b`` at ``B + b * num_negatives + j``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import Dataset

from slimforge.errors import DataError
from slimforge.recsys.metrics import expected_sampled_at, hit_at, ndcg_at, rank_of_target
from slimforge.recsys.ratings import Interactions

SAMPLED_K = 10
FULL_K = 20
MIN_EVALUATED = 3  # test + validation + at least one training interaction


@dataclass(frozen=True)
class Catalogue:
    """The id maps and item side features a model and its serving need.

    user_ids, item_ids: raw ids of user index u / item index i (sorted); genre_names: genre
    id g + 1 is ``genre_names[g]``; item_genres: (items, max_genres) int64 genre ids, 0 = none;
    popularity: (items,) training interactions per item (the cold-start ranking).
    """

    user_ids: np.ndarray
    item_ids: np.ndarray
    genre_names: tuple[str, ...]
    item_genres: torch.Tensor
    popularity: torch.Tensor

    @property
    def num_users(self) -> int:
        return len(self.user_ids)

    @property
    def num_items(self) -> int:
        return len(self.item_ids)


@dataclass(frozen=True)
class HeldOut:
    """Leave-one-out: training pairs (users, items), and per evaluated user the validation and
    test items. All (n,) int64 item/user indices."""

    train_users: torch.Tensor
    train_items: torch.Tensor
    eval_users: torch.Tensor
    val_items: torch.Tensor
    test_items: torch.Tensor
    train_only_users: int


def index_interactions(data: Interactions, genres: dict[int, list[str]], min_rating: float | None = None) -> tuple[Catalogue, Interactions]:
    """Filter by ``min_rating``, map raw ids to indices; returns the catalogue and the kept
    interactions with ``users``/``items`` as indices (same order as read)."""
    if min_rating is not None:
        keep = data.ratings >= min_rating
        if not keep.any():
            raise DataError(f"{data.source}: no rating is >= min_rating={min_rating} (ratings run from {data.ratings.min()} to {data.ratings.max()}).")
        data = Interactions(data.users[keep], data.items[keep], data.ratings[keep], data.timestamps[keep], data.source, data.duplicates_dropped)
    user_ids, users = np.unique(data.users, return_inverse=True)
    item_ids, items = np.unique(data.items, return_inverse=True)
    names = sorted({g for i in item_ids.tolist() for g in genres.get(i, [])})
    code = {g: k + 1 for k, g in enumerate(names)}
    width = max([len(genres.get(i, [])) for i in item_ids.tolist()] + [1])
    table = torch.zeros(len(item_ids), width, dtype=torch.long)
    for row, raw in enumerate(item_ids.tolist()):
        ids = [code[g] for g in genres.get(raw, [])]
        table[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
    indexed = Interactions(users.astype(np.int64), items.astype(np.int64), data.ratings, data.timestamps, data.source, data.duplicates_dropped)
    empty = torch.zeros(len(item_ids), dtype=torch.long)
    return Catalogue(user_ids, item_ids, tuple(names), table, empty), indexed


def leave_one_out(indexed: Interactions, num_users: int) -> HeldOut:
    """Split indexed interactions by time: per user the latest is test, the second latest validation."""
    order = np.lexsort((np.arange(len(indexed)), indexed.timestamps, indexed.users))
    users, items = indexed.users[order], indexed.items[order]
    counts = np.bincount(users, minlength=num_users)
    ends = np.cumsum(counts)
    evaluated = np.flatnonzero(counts >= MIN_EVALUATED)
    test_pos, val_pos = ends[evaluated] - 1, ends[evaluated] - 2
    in_train = np.ones(len(order), dtype=bool)
    in_train[test_pos] = False
    in_train[val_pos] = False
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.int64))  # noqa: E731
    return HeldOut(t(users[in_train]), t(items[in_train]), t(evaluated), t(items[val_pos]), t(items[test_pos]),
                   int(((counts > 0) & (counts < MIN_EVALUATED)).sum()))


class UserItems:
    """Each user's items as sorted keys ``user * num_items + item``: membership tests and
    per-user lists without a Python loop over users."""

    def __init__(self, users: torch.Tensor, items: torch.Tensor, num_users: int, num_items: int) -> None:
        self.num_users, self.num_items = num_users, num_items
        keys = torch.unique(users * num_items + items)  # sorted, a repeated pair once
        self.keys = keys
        self.counts = torch.bincount(keys // num_items, minlength=num_users)
        self.indptr = torch.zeros(num_users + 1, dtype=torch.long)
        self.indptr[1:] = self.counts.cumsum(0)

    def contains(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """(n,) bool: whether user ``users[k]`` has item ``items[k]``."""
        if len(self.keys) == 0:
            return torch.zeros(users.shape, dtype=torch.bool)
        query = users * self.num_items + items
        at = torch.searchsorted(self.keys, query).clamp_(max=len(self.keys) - 1)
        return self.keys[at] == query

    def items_of(self, user: int) -> torch.Tensor:
        return self.keys[self.indptr[user] : self.indptr[user + 1]] % self.num_items

    def mask(self, users: torch.Tensor) -> torch.Tensor:
        """(len(users), num_items) bool: True at each user's items."""
        counts = self.counts[users]
        rows = torch.repeat_interleave(torch.arange(len(users)), counts)
        starts = torch.repeat_interleave(self.indptr[users], counts)
        within = torch.arange(int(counts.sum())) - torch.repeat_interleave(counts.cumsum(0) - counts, counts)
        mask = torch.zeros(len(users), self.num_items, dtype=torch.bool)
        mask[rows, self.keys[starts + within] % self.num_items] = True
        return mask


def sample_eval_negatives(users: torch.Tensor, known: UserItems, count: int, seed: int) -> torch.Tensor:
    """(len(users), count) distinct items per user that the user never interacted with, drawn
    uniformly from generator ``seed`` (numpy's PCG64: the same on every platform)."""
    rng = np.random.default_rng(seed)
    out = np.empty((len(users), count), dtype=np.int64)
    for row, user in enumerate(users.tolist()):
        seen = known.items_of(user).numpy()
        free = known.num_items - len(seen)
        if free < count:
            raise DataError(
                f"User index {user} has interacted with {len(seen)} of {known.num_items} items, leaving {free} to sample "
                f"{count} negatives from. Lower eval_negatives, or drop such users from the data."
            )
        if free < 4 * count:  # nearly everything seen: draw from the complement directly
            out[row] = rng.choice(np.setdiff1d(np.arange(known.num_items), seen), count, replace=False)
            continue
        picked: list[int] = []
        chosen: set[int] = set()
        while len(picked) < count:
            draw = rng.integers(0, known.num_items, size=2 * (count - len(picked)) + 8)
            draw = draw[~np.isin(draw, seen, assume_unique=False)]
            for item in draw.tolist():
                if item not in chosen:
                    chosen.add(item)
                    picked.append(item)
                    if len(picked) == count:
                        break
        out[row] = picked
    return torch.from_numpy(out)


def pair_inputs(users: torch.Tensor, items: torch.Tensor, item_genres: torch.Tensor) -> dict[str, torch.Tensor]:
    """The model inputs of (user, item) pairs: ``{"user": (n,), "item": (n,), "item_genres": (n, G)}``."""
    return {"user": users, "item": items, "item_genres": item_genres[items]}


class ImplicitTrainDataset(Dataset):
    """Training interactions, each with ``num_negatives`` fresh negatives per epoch.

    An item is one interaction; ``__getitems__`` returns a whole batch of pairs (see the module
    docstring for the layout). ``set_epoch`` redraws the negatives from ``seed`` and the epoch, so
    every process and a resumed run see the same ones.
    """

    deterministic = False  # the negatives change every epoch: a teacher's outputs cannot be cached

    def __init__(self, users: torch.Tensor, items: torch.Tensor, num_users: int, item_genres: torch.Tensor,
                 num_negatives: int = 4, seed: int = 0) -> None:
        if num_negatives < 1:
            raise DataError(f"num_negatives must be >= 1, got {num_negatives}.")
        self.users, self.items = users, items
        self.item_genres = item_genres
        self.num_items = len(item_genres)
        self.num_negatives, self.seed = num_negatives, seed
        self.known = UserItems(users, items, num_users, self.num_items)
        full = torch.nonzero(self.known.counts >= self.num_items).flatten()
        if len(full):
            raise DataError(f"User index {int(full[0])} has a training interaction with every item; no negative can be drawn for it.")
        self.set_epoch(0)

    def __len__(self) -> int:
        return len(self.users)

    def set_epoch(self, epoch: int) -> None:
        g = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        users = self.users.repeat_interleave(self.num_negatives)
        negatives = torch.randint(self.num_items, users.shape, generator=g)
        clash = self.known.contains(users, negatives)
        while clash.any():  # redraw the pairs that hit a training interaction
            negatives[clash] = torch.randint(self.num_items, (int(clash.sum()),), generator=g)
            clash = self.known.contains(users, negatives)
        self.negatives = negatives.view(-1, self.num_negatives)

    def __getitem__(self, index: int) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
        return self.__getitems__([index])

    def __getitems__(self, indices: Sequence[int]) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
        idx = torch.as_tensor(indices, dtype=torch.long)
        users = self.users[idx]
        users = torch.cat([users, users.repeat_interleave(self.num_negatives)])
        items = torch.cat([self.items[idx], self.negatives[idx].reshape(-1)])
        targets = torch.zeros(len(items))
        targets[: len(idx)] = 1.0
        return pair_inputs(users, items, self.item_genres), targets, idx


class RankingSplit(Dataset):
    """One held-out item per user, scored by ranking (see :mod:`slimforge.recsys.metrics`).

    users: (E,) evaluated users; positives: (E,) their held-out items; negatives: (E, n)
    sampled negatives; known: every interaction known when this split is scored (train, plus
    validation for the test split), excluded from the full-catalogue ranking.
    ``full_catalogue`` adds Recall@20 / NDCG@20 over all items (costs E x items scores).
    sampled_from: the interactions the negatives were drawn around (every item a user has, the
    held-out ones included: :func:`sample_eval_negatives`' ``known``); with it, ``evaluate(expected=True)``
    gives the sampled metrics' expectation over the draw.
    """

    def __init__(self, users: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor, known: UserItems,
                 item_genres: torch.Tensor, full_catalogue: bool = True, sampled_from: UserItems | None = None) -> None:
        self.users, self.positives, self.negatives, self.sampled_from = users, positives, negatives, sampled_from
        self.known, self.item_genres, self.full_catalogue = known, item_genres, full_catalogue
        self.num_items = len(item_genres)

    def __len__(self) -> int:
        return len(self.users)

    def candidates(self, rows: torch.Tensor) -> torch.Tensor:
        """(len(rows), 1 + n) item indices: the held-out item first, then the sampled negatives."""
        return torch.cat([self.positives[rows].unsqueeze(1), self.negatives[rows]], 1)

    def __getitem__(self, index: int) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
        """One user's candidates as pairs; the target is the held-out item's column (0)."""
        row = torch.tensor([index])
        items = self.candidates(row).reshape(-1)
        return pair_inputs(self.users[row].expand(len(items)), items, self.item_genres), torch.tensor(0), row[0]

    def fingerprint(self) -> str:
        """A digest of users, held-out items and negatives: two runs scored the same split iff equal."""
        h = hashlib.sha256()
        for t in (self.users, self.positives, self.negatives):
            h.update(t.numpy().tobytes())
        return h.hexdigest()[:16]

    @torch.no_grad()
    def evaluate(self, model: Any, batch_size: int = 512, ctx: Any = None, device: Any = None, autocast_dtype: Any = None,
                 per_user: bool = False, expected: bool = False) -> dict[str, Any]:
        """HR@10, NDCG@10 over the sampled candidates, Recall@20 / NDCG@20 over the catalogue
        (``full_catalogue``), and ``loss``: mean binary cross-entropy over the sampled candidates.

        ``batch_size`` users' candidates go through the model per forward, and the catalogue in
        forwards of as many pairs. With several processes each scores every world_size-th user
        and the sums are all-reduced (every rank runs the same number of forwards). ``per_user``
        (one process): also ``per_sample``, each metric's value for every user in split order, from
        which two models' paired difference and its noise follow. ``expected``: HR@10 and NDCG@10
        are their expectation over the draw of the negatives (from the whole catalogue's scores,
        :func:`~slimforge.recsys.metrics.expected_sampled_at`), not their value on this split's
        one draw: the same quantity without the draw's noise (costs the catalogue pass)."""
        from slimforge.distributed import DistContext

        ctx = ctx or DistContext()
        if per_user and ctx.world_size > 1:
            raise ValueError("evaluate(per_user=True) scores every user in one process; call it outside distributed training.")
        if expected and self.sampled_from is None:
            raise ValueError("evaluate(expected=True) needs the interactions the negatives were drawn around (RankingSplit(sampled_from=...)).")
        module = isinstance(model, nn.Module)
        device = torch.device(device) if device is not None else (ctx.device if module else torch.device("cpu"))
        was_training = model.training if module else False
        if module:
            model.eval()
        _check_catalogue(model, self.known.num_users, self.num_items)
        rows = torch.arange(ctx.rank, len(self), ctx.world_size)
        per_rank = -(-len(self) // ctx.world_size)
        score = lambda users, items: self._score(model, users, items, device, autocast_dtype)  # noqa: E731
        each_user: dict[str, list[torch.Tensor]] = {}
        sums = self._sampled_sums(score, rows, batch_size, per_rank, {} if expected else each_user)
        if self.full_catalogue or expected:
            sums += self._catalogue_sums(score, rows, batch_size, per_rank, each_user, expected)
        sums = ctx.all_reduce_sum(sums.to(device)).cpu()  # gloo and NCCL reduce on the model's device
        if module:
            model.train(was_training)
        if expected:
            sums[1:3] = sums[6:8]
        metrics = _ranking_metrics(sums, self.full_catalogue)
        if per_user:
            metrics["per_sample"] = {k: torch.cat(v) for k, v in each_user.items() if v}
        return metrics

    def _sampled_sums(self, score: Any, rows: torch.Tensor, batch_size: int, per_rank: int,
                      each_user: dict[str, list[torch.Tensor]]) -> torch.Tensor:
        """(8,) sums: loss, HR@10, NDCG@10 over this draw's candidates, and the user count (at 5)."""
        sums = torch.zeros(8, dtype=torch.float64)  # loss, hr, ndcg, recall, ndcg_full, count, expected hr, expected ndcg
        width = 1 + self.negatives.shape[1]
        for chunk in _chunks(rows, batch_size, per_rank):
            cand = self.candidates(chunk)
            scores = score(self.users[chunk].repeat_interleave(width), cand.reshape(-1)).view(-1, width)
            labels = torch.zeros_like(scores)
            labels[:, 0] = 1.0
            sums[0] += F.binary_cross_entropy_with_logits(scores.nan_to_num(0.0), labels, reduction="sum").double() / width
            rank = rank_of_target(scores, torch.zeros(len(chunk), dtype=torch.long))
            _accumulate(sums, each_user, {1: (f"hr@{SAMPLED_K}", hit_at(rank, SAMPLED_K)), 2: (f"ndcg@{SAMPLED_K}", ndcg_at(rank, SAMPLED_K))})
            sums[5] += len(chunk)
        return sums

    def _catalogue_sums(self, score: Any, rows: torch.Tensor, batch_size: int, per_rank: int,
                        each_user: dict[str, list[torch.Tensor]], expected: bool) -> torch.Tensor:
        """(8,) sums over the whole catalogue's scores: Recall@20 and NDCG@20 (at 3, 4; ``full_catalogue``),
        and the expected sampled HR@10 and NDCG@10 (at 6, 7; ``expected``, recorded per user under their own names)."""
        sums = torch.zeros(8, dtype=torch.float64)
        users_per_forward = max(1, batch_size * (1 + self.negatives.shape[1]) // self.num_items)
        for chunk in _chunks(rows, users_per_forward, per_rank):
            users = self.users[chunk]
            items = torch.arange(self.num_items).repeat(len(chunk))
            scores = score(users.repeat_interleave(self.num_items), items).view(len(chunk), -1)
            if self.full_catalogue:
                rank = rank_of_target(scores, self.positives[chunk], exclude=self.known.mask(users))
                _accumulate(sums, each_user, {3: (f"recall@{FULL_K}", hit_at(rank, FULL_K)), 4: (f"ndcg@{FULL_K}", ndcg_at(rank, FULL_K))})
            if expected:
                pool = ~self.sampled_from.mask(users)
                above = rank_of_target(scores, self.positives[chunk], exclude=~pool)
                hits, gains = expected_sampled_at(above, pool.sum(1), self.negatives.shape[1], SAMPLED_K)
                _accumulate(sums, each_user, {6: (f"hr@{SAMPLED_K}", hits), 7: (f"ndcg@{SAMPLED_K}", gains)})
        return sums

    def _score(self, model: Any, users: torch.Tensor, items: torch.Tensor, device: torch.device, autocast_dtype: Any) -> torch.Tensor:
        inputs = {k: v.to(device) for k, v in pair_inputs(users, items, self.item_genres).items()}
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            return model(inputs).float().reshape(-1).cpu()


def _ranking_metrics(sums: torch.Tensor, full: bool) -> dict[str, Any]:
    count = int(sums[5].item())
    if count == 0:
        nan = float("nan")
        return {"loss": nan, f"hr@{SAMPLED_K}": nan, f"ndcg@{SAMPLED_K}": nan, "count": 0}
    out = {"loss": sums[0].item() / count, f"hr@{SAMPLED_K}": sums[1].item() / count, f"ndcg@{SAMPLED_K}": sums[2].item() / count}
    if full:
        out.update({f"recall@{FULL_K}": sums[3].item() / count, f"ndcg@{FULL_K}": sums[4].item() / count})
    return {**out, "count": count}


def _accumulate(sums: torch.Tensor, each_user: dict[str, list[torch.Tensor]], values: dict[int, tuple[str, torch.Tensor]]) -> None:
    """Add each (users,) tensor to ``sums`` at its index, and keep it per user under its name."""
    for at, (name, per_user) in values.items():
        sums[at] += per_user.sum()
        each_user.setdefault(name, []).append(per_user)


def _chunks(rows: torch.Tensor, size: int, per_rank: int) -> list[torch.Tensor]:
    """``rows`` in pieces of ``size``, padded with empty pieces to the number the largest rank has."""
    pieces = list(rows.split(size)) if len(rows) else []
    wanted = -(-per_rank // size) if per_rank else 0
    return pieces + [rows[:0]] * (wanted - len(pieces))


def _check_catalogue(model: Any, num_users: int, num_items: int) -> None:
    """A model built for a catalogue of another size would index out of range (or silently score
    a subset): refuse with both sizes named."""
    own = (getattr(model, "num_users", None), getattr(model, "num_items", None))
    if own != (None, None) and own != (num_users, num_items):
        raise DataError(f"{type(model).__name__} was built for {own[0]} users and {own[1]} items, but this data has {num_users} and "
                        f"{num_items}; score it on the data it was trained on.")
