"""Ranking metrics with one held-out item per user (leave-one-out).

The rank of the held-out item is the number of candidates scored above it, plus those scored
*equal* to it: ties count against the model, so a model that scores everything the same ranks
last, not first. A NaN score of the held-out item is a miss; a NaN among the others counts as
above it.

* sampled (the NCF protocol): the held-out item among 1 + 99 candidates; HR@10 and NDCG@10;
* full catalogue: among every item the user has not interacted with (known interactions are
  excluded); Recall@20 and NDCG@20. With one relevant item, recall@k is the hit rate at k.
"""

from __future__ import annotations

import torch


def rank_of_target(scores: torch.Tensor, target: torch.Tensor, exclude: torch.Tensor | None = None) -> torch.Tensor:
    """0-based rank of one target column per row, ties counted against it.

    scores: (users, candidates); target: (users,) column of each user's held-out item;
    exclude: (users, candidates) bool, candidates left out of the ranking (seen items), or None.
    Returns (users,) int64; a NaN target score ranks last (``candidates``).
    """
    rows = torch.arange(scores.shape[0], device=scores.device)
    own = scores[rows, target].unsqueeze(1)
    ahead = (scores >= own) | scores.isnan()
    ahead[rows, target] = False  # not counted against itself
    if exclude is not None:
        ahead &= ~exclude
    rank = ahead.sum(1)
    return torch.where(own.squeeze(1).isnan(), torch.full_like(rank, scores.shape[1]), rank)


def hit_at(rank: torch.Tensor, k: int) -> torch.Tensor:
    """(users,) 1.0 where the held-out item is in the top ``k``."""
    return (rank < k).double()


def ndcg_at(rank: torch.Tensor, k: int) -> torch.Tensor:
    """(users,) 1 / log2(rank + 2) in the top ``k``, else 0 (one relevant item: the ideal DCG is 1)."""
    gain = 1.0 / torch.log2(rank.double() + 2.0)
    return torch.where(rank < k, gain, torch.zeros_like(gain))
