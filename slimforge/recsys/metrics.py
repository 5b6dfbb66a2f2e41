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


def expected_sampled_at(above: torch.Tensor, pool: torch.Tensor, draws: int, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """E[HR@k] and E[NDCG@k] of the held-out item among ``draws`` negatives drawn uniformly without
    replacement from a pool, exactly (Krichene & Rendle 2020, "On Sampled Metrics for Item Recommendation").

    above: (users,) pool items that rank ahead of the held-out item (scored above or equal to it,
    or NaN: the convention of :func:`rank_of_target`); pool: (users,) items the negatives are drawn
    from. The sampled rank is hypergeometric: ``min(draws, pool)`` items from ``pool`` of which
    ``above`` are ahead, so P(rank = r) = C(above, r) C(pool - above, d - r) / C(pool, d).
    Returns two (users,) float64 tensors: sum_{r<k} P(r) and sum_{r<k} P(r) / log2(r + 2).
    The fixed-draw metrics are one draw of this; their per-user average over many draws tends to it.
    """
    m, n = above.double().unsqueeze(1), pool.double().unsqueeze(1)
    d = torch.minimum(n, torch.full_like(n, float(draws)))
    r = torch.arange(k, dtype=torch.float64).unsqueeze(0)
    possible = (r <= m) & (d - r <= n - m) & (r <= d)
    log_p = _log_choose(m, r) + _log_choose(n - m, d - r) - _log_choose(n, d)
    p = torch.where(possible, log_p.clamp(max=0.0).exp(), torch.zeros_like(log_p))
    return p.sum(1).clamp(max=1.0), (p / torch.log2(r + 2.0)).sum(1).clamp(max=1.0)  # clamped: rounding of the log-binomials


def _log_choose(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """log C(a, b) for 0 <= b <= a (other entries are garbage, masked by the caller)."""
    a, b = torch.broadcast_tensors(a, b)
    b = b.clamp(min=0.0)
    return torch.lgamma(a + 1) - torch.lgamma(b + 1) - torch.lgamma((a - b).clamp(min=0.0) + 1)
