"""Ranking metrics against a plain sort-based reference; the split's evaluation against a per-user loop."""

from __future__ import annotations

import math

import pytest
import torch

import slimforge
from slimforge.recsys.metrics import expected_sampled_at, hit_at, ndcg_at, rank_of_target


def reference_rank(scores: list[float], target: int, excluded: set[int]) -> int:
    """Position of ``target`` after sorting the kept candidates best first, the target after its ties
    (NaN ranks above everything, a NaN target last)."""
    key = lambda c: (-math.inf if math.isnan(scores[c]) else -scores[c], c == target)  # noqa: E731
    if math.isnan(scores[target]):
        return len(scores)
    order = sorted((c for c in range(len(scores)) if c not in excluded or c == target), key=key)
    return order.index(target)


def test_rank_matches_a_sort_with_ties_nans_and_exclusions():
    g = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 6, (40, 15), generator=g).float()  # many ties
    scores[3, 4] = float("nan")
    scores[5, 0] = float("nan")  # a NaN target
    target = torch.randint(0, 15, (40,), generator=g)
    target[5] = 0
    exclude = torch.rand(40, 15, generator=g) < 0.3
    ranks = rank_of_target(scores, target, exclude)
    for u in range(40):
        excluded = {c for c in range(15) if exclude[u, c]}
        assert ranks[u] == reference_rank(scores[u].tolist(), int(target[u]), excluded), u
    assert ranks[5] == 15


def test_a_constant_model_ranks_its_item_last_not_first():
    rank = rank_of_target(torch.zeros(4, 100), torch.zeros(4, dtype=torch.long))
    assert rank.tolist() == [99] * 4 and hit_at(rank, 10).sum() == 0


def test_hit_and_ndcg_at_k():
    rank = torch.tensor([0, 1, 9, 10, 50])
    assert hit_at(rank, 10).tolist() == [1, 1, 1, 0, 0]
    expected = [1.0, 1 / math.log2(3), 1 / math.log2(11), 0.0, 0.0]
    assert ndcg_at(rank, 10).tolist() == pytest.approx(expected)


def test_split_evaluation_equals_a_per_user_reference(small_synthetic):
    data = small_synthetic
    torch.manual_seed(0)
    model = slimforge.create_model("mf", **data.info.model_kwargs(), dim=8).eval()
    with torch.no_grad():  # larger factors than the initialisation, so the ranking is not all ties
        model.user_embedding.weight.normal_()
        model.item_embedding.weight.normal_()
    split = data.test
    got = split.evaluate(model, batch_size=7)  # chunks of 7 users; the catalogue 2 users at a time
    hr = ndcg = recall = ndcg20 = 0.0
    for row, user in enumerate(split.users.tolist()):
        with torch.no_grad():
            every = model({"user": torch.full((data.info.num_items,), user), "item": torch.arange(data.info.num_items)}).tolist()
        candidates = split.candidates(torch.tensor([row]))[0].tolist()
        r = reference_rank([every[i] for i in candidates], 0, set())
        hr += r < 10
        ndcg += 1 / math.log2(r + 2) if r < 10 else 0.0
        held = int(split.positives[row])
        seen = set(split.known.items_of(user).tolist()) - {held}
        r = reference_rank(every, held, seen)
        recall += r < 20
        ndcg20 += 1 / math.log2(r + 2) if r < 20 else 0.0
    n = len(split)
    assert got["count"] == n
    assert got["hr@10"] == pytest.approx(hr / n) and got["ndcg@10"] == pytest.approx(ndcg / n)
    assert got["recall@20"] == pytest.approx(recall / n) and got["ndcg@20"] == pytest.approx(ndcg20 / n)
    assert 0 < got["hr@10"] < 1 and 0 < got["recall@20"] < 1  # a real spread, not all hits or misses


def test_validation_ranks_only_the_sampled_candidates_by_default(small_synthetic):
    model = slimforge.create_model("mf", **small_synthetic.info.model_kwargs())
    assert set(small_synthetic.val.evaluate(model)) == {"loss", "hr@10", "ndcg@10", "count"}
    assert {"recall@20", "ndcg@20"} <= set(slimforge.evaluate(model, small_synthetic.test))  # through the generic entry point


def _monte_carlo_sampled(above: int, pool: int, draws: int, k: int, trials: int, g: torch.Generator) -> tuple[float, float]:
    """HR@k and NDCG@k averaged over ``trials`` uniform draws of ``draws`` distinct items from ``pool``
    (the first ``above`` of them rank ahead of the held-out item)."""
    picked = torch.rand(trials, pool, generator=g).argsort(1)[:, :draws]
    rank = (picked < above).sum(1)
    return hit_at(rank, k).mean().item(), ndcg_at(rank, k).mean().item()


def test_the_expected_sampled_metrics_match_a_monte_carlo_average_over_negative_draws():
    """Exact hypergeometric expectation against 20,000 draws of 99 negatives from pools of 99-500 items."""
    g = torch.Generator().manual_seed(0)
    cases = [(3, 150), (10, 150), (15, 200), (30, 400), (45, 500), (12, 99), (20, 130)]
    above, pool = torch.tensor([a for a, _ in cases]), torch.tensor([n for _, n in cases])
    hits, gains = expected_sampled_at(above, pool, 99, 10)
    for (a, n), hit, gain in zip(cases, hits.tolist(), gains.tolist()):
        mc_hit, mc_gain = _monte_carlo_sampled(a, n, 99, 10, 20_000, g)
        # measured: at most 0.0027 apart (the Monte Carlo standard error of HR@10 here is up to 0.0035)
        assert hit == pytest.approx(mc_hit, abs=0.012) and gain == pytest.approx(mc_gain, abs=0.012), (a, n)


def test_expected_sampled_metrics_edge_cases():
    above = torch.tensor([0, 7, 12, 9, 5, 500])
    pool = torch.tensor([300, 50, 50, 9724, 5, 400])  # pools of 50 and 5: every item is drawn
    hits, gains = expected_sampled_at(above, pool, 99, 10)
    assert hits[0] == 1.0 and gains[0] == pytest.approx(1.0)  # nothing ahead: first whatever is drawn
    assert hits[1] == pytest.approx(1.0) and gains[1] == pytest.approx(1 / math.log2(9))  # fewer than 99 to draw: rank is 7
    assert hits[2] == 0.0 and gains[2] == 0.0  # all 50 drawn, 12 ahead: rank 12, outside the top 10
    assert 0.99 < hits[3] <= 1.0  # 9 of 9,724 ahead: 99 draws rarely take one
    assert gains[4] == pytest.approx(1 / math.log2(7))  # pool 5, all ahead: rank 5
    assert hits[5] == 0.0 and gains[5] == 0.0  # more ahead than the pool (a NaN target's rank): a miss
