"""Recommendation models (``slimforge.create_model``): ``popularity``, ``mf``, ``neumf``, ``two-tower``.

Every model scores (user, item) pairs: ``model(inputs) -> (n,)`` logits, where inputs is
``{"user": (n,) int64, "item": (n,) int64, "item_genres": (n, G) int64}`` (indices, not raw
ids; genre ids with 0 = none; models without side features ignore ``item_genres``). The data
supplies ``num_users``, ``num_items`` and ``num_genres``; the rest are architecture keywords.
``sparse=True`` gives the embedding tables sparse gradients (only the rows a batch touched are
sent between processes and updated; train with ``optimizer=sgd`` and ``weight_decay=0``).

* ``popularity``: one learned bias per item, the same for every user. Trained with the softmax it
  learns each item's log share of the interactions (with BCE against uniform negatives, its log-odds
  of being interacted with): the popularity ranking, fitted by the same trainer (the floor every
  personalised model must beat).
* ``mf``: matrix factorisation, <p_u, q_i> + b_i + b (Koren et al. 2009).
* ``neumf``: NeuMF (He et al. 2017): a GMF branch (p_u * q_i) and an MLP tower over [p'_u, q'_i],
  concatenated into one logit.
* ``two-tower``: a user tower and an item tower whose input adds the item's genres (an
  ``nn.EmbeddingBag`` mean over its genre ids, DLRM's sparse-feature block); the score is the
  dot product of the towers' outputs plus an item bias, so item vectors can be precomputed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from slimforge.errors import SlimforgeError
from slimforge.models import register_model
from slimforge.recsys._rowwise import column, grouped_dot, project
from slimforge.recsys.compositional import QuotientRemainderEmbedding

INIT_STD = 0.01  # N(0, 0.01) embeddings as in NCF


class RecsysModel(nn.Module):
    """Base of the models here: checks the input ids, then ``score(users, items, item_genres)``."""

    def __init__(self, num_users: int, num_items: int) -> None:
        super().__init__()
        if num_users < 1 or num_items < 1:
            raise SlimforgeError(f"{type(self).__name__} needs num_users and num_items >= 1 (got {num_users}, {num_items}).")
        self.num_users, self.num_items = num_users, num_items

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        if isinstance(inputs, dict) and "catalogue" in inputs and "user" in inputs:
            _check_ids(inputs["user"], self.num_users, "user", type(self).__name__)
            items = inputs["catalogue"]
            if items is not True:
                _check_ids(items, self.num_items, "item", type(self).__name__)
            return self.score_catalogue(inputs["user"], None if items is True else items)
        if not isinstance(inputs, dict) or "user" not in inputs or "item" not in inputs:
            got = sorted(inputs) if isinstance(inputs, dict) else type(inputs).__name__
            raise SlimforgeError(f"{type(self).__name__} takes {{'user': ids, 'item': ids, 'item_genres': ids}} pairs, not {got}.")
        users, items = inputs["user"], inputs["item"]
        if _tracing():
            return self.score(users, items, inputs.get("item_genres"))
        _check_ids(users, self.num_users, "user", type(self).__name__)
        _check_ids(items, self.num_items, "item", type(self).__name__)
        groups = _user_groups(users) if type(self).score_grouped is not RecsysModel.score_grouped else None
        if groups is None:
            return self.score(users, items, inputs.get("item_genres"))
        return self.score_grouped(groups, items.reshape(len(groups), -1)).reshape(-1)

    def score(self, users: torch.Tensor, items: torch.Tensor, item_genres: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError

    def score_catalogue(self, users: torch.Tensor, items: torch.Tensor | None = None) -> torch.Tensor:
        """Each of B users (B,) against the same M items (M,), every item when None: (B, M);
        ``forward({"user": users, "catalogue": items or True})``. Models whose score is a dot product
        have it (the ``softmax`` objective trains them against a shared sample of the catalogue); the
        others score pairs only."""
        raise NotImplementedError(f"{type(self).__name__} scores (user, item) pairs only, not a user against the whole catalogue.")

    def score_grouped(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """The same scores for R users (R,) with L items each (R, L): (R, L). A model that has it
        computes each user's side once; ``forward`` uses it when a batch is R runs of L equal users
        (a user's candidates), as scoring and ranking evaluation send them."""
        raise NotImplementedError


class Popularity(RecsysModel):
    """An item bias only: every user gets the same ranking."""

    def __init__(self, num_users: int, num_items: int, sparse: bool = False) -> None:
        super().__init__(num_users, num_items)
        self.item_bias = _bias(num_items, sparse)

    def score(self, users, items, item_genres):
        return self.item_bias(items).squeeze(-1)

    def score_catalogue(self, users, items=None):
        return _rows(self.item_bias, items, self.num_items, users.device).T.expand(len(users), -1)


class MatrixFactorization(RecsysModel):
    """<p_u, q_i> + b_i + b; ``dim`` factors."""

    def __init__(self, num_users: int, num_items: int, dim: int = 32, sparse: bool = False, qr_buckets: int = 0) -> None:
        super().__init__(num_users, num_items)
        self.user_embedding = _embedding(num_users, dim, sparse)
        self.item_embedding = _item_table(num_items, dim, sparse, qr_buckets)
        self.item_bias = _bias(num_items, sparse)
        self.bias = nn.Parameter(torch.zeros(()))

    def score(self, users, items, item_genres):
        dot = (self.user_embedding(users) * self.item_embedding(items)).sum(-1)
        return dot + self.item_bias(items).squeeze(-1) + self.bias

    def score_grouped(self, users, items):
        dot = grouped_dot(self.item_embedding, items, self.user_embedding(users))
        return dot + column(self.item_bias, items) + self.bias

    def score_catalogue(self, users, items=None):
        bias = _rows(self.item_bias, items, self.num_items, users.device).T + self.bias
        return torch.addmm(bias, self.user_embedding(users), _rows(self.item_embedding, items, self.num_items, users.device).T)


class NeuMF(RecsysModel):
    """GMF (``dim`` factors) and an MLP tower of widths ``mlp`` (its input [p'_u, q'_i] is
    ``mlp[0]`` wide, so each of those embeddings is ``mlp[0] // 2``), joined by one linear layer."""

    def __init__(self, num_users: int, num_items: int, dim: int = 32, mlp: Sequence[int] = (64, 32, 16), dropout: float = 0.0,
                 sparse: bool = False, qr_buckets: int = 0) -> None:
        super().__init__(num_users, num_items)
        mlp = list(mlp)
        if len(mlp) < 2 or mlp[0] % 2:
            raise SlimforgeError(f"NeuMF needs at least two MLP widths, the first even (it is [user, item] embeddings); got mlp={mlp}.")
        self.gmf_user = _embedding(num_users, dim, sparse)
        self.gmf_item = _item_table(num_items, dim, sparse, qr_buckets)
        self.mlp_user = _embedding(num_users, mlp[0] // 2, sparse)
        self.mlp_item = _item_table(num_items, mlp[0] // 2, sparse, qr_buckets)
        layers: list[nn.Module] = []
        for width_in, width_out in zip(mlp[:-1], mlp[1:]):
            layers += [nn.Linear(width_in, width_out), nn.ReLU()]
            if dropout:
                layers.append(nn.Dropout(dropout))
        self.tower = nn.Sequential(*layers)
        self.predict = nn.Linear(dim + mlp[-1], 1)

    def score(self, users, items, item_genres):
        gmf = self.gmf_user(users) * self.gmf_item(items)
        tower = self.tower(torch.cat([self.mlp_user(users), self.mlp_item(items)], -1))
        return self.predict(torch.cat([gmf, tower], -1)).squeeze(-1)

    def score_grouped(self, users, items):
        # predict(cat[p*q, tower]) = <p * w_gmf, q> + <w_tower, tower> + b, and the tower's first
        # layer splits into a user part (computed once per user) and an item part.
        groups, size = items.shape
        gmf_user = self.gmf_user(users)
        width = gmf_user.shape[-1]  # from the rows, not the constructor: pruning may have narrowed them
        w_gmf, w_tower = self.predict.weight[0, :width], self.predict.weight[:, width:]
        gmf = grouped_dot(self.gmf_item, items, gmf_user * w_gmf)
        user_rows, first = self.mlp_user(users), self.tower[0]
        if isinstance(first, nn.Linear):
            width = user_rows.shape[-1]
            user_part = F.linear(user_rows, first.weight[:, :width], first.bias)
            item_part = project(self.mlp_item, items.reshape(-1), first.weight[:, width:]).view(groups, size, -1)
            tower = _run_in_place(self.tower[1:], item_part.add_(user_part.unsqueeze(1)))
        else:  # a first layer that is not one Linear (factorised): the plain form
            tower = self.tower(torch.cat([user_rows.unsqueeze(1).expand(-1, size, -1), self.mlp_item(items)], -1))
        return gmf + F.linear(tower, w_tower).squeeze(-1) + self.predict.bias


class TwoTower(RecsysModel):
    """User tower MLP(p_u), item tower MLP([q_i, mean of the item's genre embeddings]); score
    <user, item> + b_i. ``dim``: embedding and output width; ``hidden``: each tower's hidden width."""

    def __init__(self, num_users: int, num_items: int, num_genres: int = 0, dim: int = 32, hidden: int = 64, sparse: bool = False) -> None:
        super().__init__(num_users, num_items)
        self.num_genres = num_genres
        self.user_embedding = _embedding(num_users, dim, sparse)
        self.item_embedding = _embedding(num_items, dim, sparse)
        self.genre_embedding = nn.EmbeddingBag(num_genres + 1, dim, mode="mean", padding_idx=0, sparse=sparse) if num_genres else None
        if self.genre_embedding is not None:
            nn.init.normal_(self.genre_embedding.weight, std=INIT_STD)
            with torch.no_grad():
                self.genre_embedding.weight[0].zero_()
        self.user_tower = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, dim))
        self.item_tower = nn.Sequential(nn.Linear(dim * (2 if num_genres else 1), hidden), nn.ReLU(), nn.Linear(hidden, dim))
        self.item_bias = _bias(num_items, sparse)

    def score(self, users, items, item_genres):
        item = self.item_embedding(items)
        if self.genre_embedding is not None:
            if item_genres is None:
                raise SlimforgeError(f"two-tower was built with {self.num_genres} genres and needs inputs['item_genres'] (n, G) genre ids.")
            item = torch.cat([item, self.genre_embedding(item_genres)], -1)
        return (self.user_tower(self.user_embedding(users)) * self.item_tower(item)).sum(-1) + self.item_bias(items).squeeze(-1)


@register_model("popularity", help="recommendation floor: one learned bias per item (the popularity ranking)")
def popularity(num_users: int, num_items: int, num_genres: int = 0, sparse: bool = False) -> Popularity:
    return Popularity(num_users, num_items, sparse)


@register_model("mf", help="matrix factorisation: dot product of user and item embeddings, plus item bias")
def mf(num_users: int, num_items: int, num_genres: int = 0, dim: int = 32, sparse: bool = False, qr_buckets: int = 0) -> MatrixFactorization:
    """``qr_buckets`` > 0: the item table is compositional, quotient x remainder rows (:mod:`slimforge.recsys.compositional`)."""
    return MatrixFactorization(num_users, num_items, dim, sparse, qr_buckets)


@register_model("neumf", help="NeuMF: GMF + MLP tower over user/item embeddings (He et al. 2017)")
def neumf(num_users: int, num_items: int, num_genres: int = 0, dim: int = 32, mlp: Sequence[int] = (64, 32, 16), dropout: float = 0.0,
          sparse: bool = False, qr_buckets: int = 0) -> NeuMF:
    """``qr_buckets`` > 0: both item tables are compositional, quotient x remainder rows."""
    return NeuMF(num_users, num_items, dim, mlp, dropout, sparse, qr_buckets)


@register_model("two-tower", help="two-tower recommender; item tower takes genres through an EmbeddingBag")
def two_tower(num_users: int, num_items: int, num_genres: int = 0, dim: int = 32, hidden: int = 64, sparse: bool = False) -> TwoTower:
    return TwoTower(num_users, num_items, num_genres, dim, hidden, sparse)


# ---------------------------------------------------------------- helpers


def _embedding(rows: int, dim: int, sparse: bool = False) -> nn.Embedding:
    table = nn.Embedding(rows, dim, sparse=sparse)
    nn.init.normal_(table.weight, std=INIT_STD)
    return table


def _item_table(rows: int, dim: int, sparse: bool, qr_buckets: int) -> nn.Module:
    """An item table: a plain one, or with ``qr_buckets`` > 0 a quotient-remainder one of about ``rows / qr_buckets + qr_buckets`` rows."""
    if not qr_buckets:
        return _embedding(rows, dim, sparse)
    return QuotientRemainderEmbedding(rows, dim, qr_buckets, sparse, INIT_STD)


def _bias(rows: int, sparse: bool = False) -> nn.Embedding:
    table = nn.Embedding(rows, 1, sparse=sparse)
    nn.init.zeros_(table.weight)
    return table


def _rows(table: nn.Module, items: torch.Tensor | None, every: int, device: torch.device) -> torch.Tensor:
    """The rows ``items`` of an embedding table (its first ``every`` rows when None), through its forward
    (a plain, factorised, quantized or fake-quantized table alike)."""
    return table(torch.arange(every, device=device) if items is None else items)


def _run_in_place(layers: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """``layers(x)`` with each ReLU applied in place when no gradient is recorded: one (n, width)
    temporary fewer (25,600 x 32 floats are 3.2 MB)."""
    for layer in layers:
        x = x.relu_() if isinstance(layer, nn.ReLU) and not torch.is_grad_enabled() else layer(x)
    return x


def _user_groups(users: torch.Tensor) -> torch.Tensor | None:
    """The R distinct users (R,) when ``users`` (n,) is R runs of one length L >= 2, else None."""
    if users.dim() != 1 or users.numel() < 2 or users[0] != users[1]:
        return None
    runs, counts = torch.unique_consecutive(users, return_counts=True)
    if len(runs) * 2 > users.numel() or not bool((counts == counts[0]).all()):
        return None
    return runs


def _tracing() -> bool:
    """Under torch.export / compile / jit tracing the id checks (data-dependent branches) are skipped."""
    return torch.compiler.is_compiling() or torch.compiler.is_exporting() or torch.jit.is_tracing()


def _check_ids(ids: Any, size: int, what: str, model: str) -> None:
    if not isinstance(ids, torch.Tensor) or ids.dtype not in (torch.int64, torch.int32):
        raise SlimforgeError(f"{model}: inputs[{what!r}] must be an integer id tensor, not {getattr(ids, 'dtype', type(ids).__name__)}.")
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= size):
        bad = int(ids.max()) if int(ids.max()) >= size else int(ids.min())
        raise SlimforgeError(
            f"{model}: {what} index {bad} is outside the model's {size} {what}s. Inputs are indices into the training "
            f"catalogue, not raw ids; slimforge.recsys.recommend maps raw ids (unknown users get the popularity ranking)."
        )
