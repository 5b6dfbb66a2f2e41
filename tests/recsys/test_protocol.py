"""The NCF protocol: leave-one-out by time, sampled negatives from a fixed seed, fresh training negatives."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import slimforge
from slimforge.errors import DataError
from slimforge.recsys.data import build_recsys_splits
from slimforge.recsys.protocol import ImplicitTrainDataset
from slimforge.recsys.ratings import read_ratings

from .conftest import write_ratings

# user, item, rating, timestamp. User 10's items 3 and 4 share the latest time: the later row (4) is latest.
ROWS = [
    (10, 1, 4.0, 5), (10, 2, 2.0, 1), (10, 3, 5.0, 9), (10, 4, 3.0, 9), (10, 5, 4.0, 3),
    (20, 1, 5.0, 2), (20, 2, 1.0, 4),                      # two interactions: training only
    (30, 6, 3.0, 30), (30, 7, 4.0, 10), (30, 8, 5.0, 20),
    *[(40, item, 3.0, item) for item in range(1, 13)],
    *[(50, item, 4.0, item) for item in range(13, 21)],     # a catalogue of 20 items
]


@pytest.fixture
def tiny(tmp_path):
    data = read_ratings(write_ratings(tmp_path / "ratings.csv", ROWS))
    return build_recsys_splits("tiny", data, {3: ["Drama"], 4: ["Comedy", "Drama"]}, eval_negatives=3, num_negatives=2)


def _raw(splits, split, user_raw):
    """(held-out raw item, raw negatives) of ``user_raw`` in split ``split``."""
    cat = splits.catalogue
    ds = getattr(splits, split)
    row = ds.users.tolist().index(int(np.searchsorted(cat.user_ids, user_raw)))
    return int(cat.item_ids[ds.positives[row]]), cat.item_ids[ds.negatives[row].numpy()].tolist()


def test_leave_one_out_holds_out_the_latest_then_the_second_latest(tiny):
    assert _raw(tiny, "test", 10)[0] == 4 and _raw(tiny, "val", 10)[0] == 3  # tie at t=9: file order decides
    assert _raw(tiny, "test", 30)[0] == 6 and _raw(tiny, "val", 30)[0] == 8
    cat, train = tiny.catalogue, tiny.train
    user10 = int(np.searchsorted(cat.user_ids, 10))
    assert sorted(cat.item_ids[train.items[train.users == user10].numpy()].tolist()) == [1, 2, 5]


def test_users_with_fewer_than_three_interactions_train_but_are_not_evaluated(tiny):
    user20 = int(np.searchsorted(tiny.catalogue.user_ids, 20))
    assert user20 not in tiny.test.users.tolist() and user20 not in tiny.val.users.tolist()
    assert (tiny.train.users == user20).sum() == 2
    assert tiny.split["train_only_users"] == 1 and tiny.split["evaluated_users"] == 4


def test_sampled_negatives_are_distinct_items_the_user_never_touched(synthetic):
    cat = synthetic.catalogue
    every = {}
    for ds in (synthetic.train,):
        for u, i in zip(ds.users.tolist(), ds.items.tolist()):
            every.setdefault(u, set()).add(i)
    for split in (synthetic.val, synthetic.test):
        assert split.negatives.shape == (len(split), 99)
    for row, u in enumerate(synthetic.test.users.tolist()):
        touched = every[u] | {int(synthetic.val.positives[row]), int(synthetic.test.positives[row])}
        for split in (synthetic.val, synthetic.test):
            negatives = set(split.negatives[row].tolist())
            assert len(negatives) == 99 and not negatives & touched
    assert cat.num_items == synthetic.info.num_items


def test_negatives_come_from_a_fixed_seed(synthetic):
    again = slimforge.load_dataset("synthetic-ratings")
    assert torch.equal(again.test.negatives, synthetic.test.negatives) and torch.equal(again.val.negatives, synthetic.val.negatives)
    assert again.split["test_sha256"] == synthetic.split["test_sha256"]
    other = slimforge.load_dataset("synthetic-ratings", negative_seed=1)
    assert not torch.equal(other.test.negatives, synthetic.test.negatives)
    assert torch.equal(other.test.positives, synthetic.test.positives)  # the held-out items do not depend on it
    assert not torch.equal(synthetic.val.negatives, synthetic.test.negatives)


def test_training_negatives_change_each_epoch_and_avoid_the_user_s_training_items(synthetic):
    train = synthetic.train
    train.set_epoch(0)  # the session's data set: other tests' training left it at a later epoch
    inputs, targets, idx = train.__getitems__(list(range(64)))
    b, k = 64, train.num_negatives
    assert targets[:b].eq(1).all() and targets[b:].eq(0).all() and len(targets) == b * (1 + k)
    assert torch.equal(inputs["user"][:b], train.users[:b]) and torch.equal(inputs["item"][:b], train.items[:b])
    assert torch.equal(inputs["user"][b:].view(b, k), train.users[:b, None].expand(b, k))  # negatives of positive b follow in order
    positives = set(zip(train.users.tolist(), train.items.tolist()))
    first = train.negatives.clone()
    assert not any((u, i) in positives for u, i in zip(train.users.repeat_interleave(k).tolist(), first.flatten().tolist()))
    train.set_epoch(1)
    second = train.negatives.clone()
    assert (second != first).float().mean() > 0.9
    assert not any((u, i) in positives for u, i in zip(train.users.repeat_interleave(k).tolist(), second.flatten().tolist()))
    train.set_epoch(0)
    assert torch.equal(train.negatives, first)  # an epoch's negatives are reproducible (resume, several processes)


def test_genres_become_padded_ids(tiny):
    cat = tiny.catalogue
    assert cat.genre_names == ("Comedy", "Drama")
    row = int(np.searchsorted(cat.item_ids, 4))
    assert cat.item_genres[row].tolist() == [1, 2] and cat.item_genres[int(np.searchsorted(cat.item_ids, 3))].tolist() == [2, 0]
    assert cat.item_genres[int(np.searchsorted(cat.item_ids, 1))].tolist() == [0, 0]
    assert tiny.info.model_kwargs() == {"num_users": 5, "num_items": 20, "num_genres": 2}


def test_min_rating_keeps_only_high_ratings(tmp_path):
    data = read_ratings(write_ratings(tmp_path / "ratings.csv", ROWS))
    splits = build_recsys_splits("tiny", data, {}, eval_negatives=3, min_rating=4.0)
    assert splits.split["interactions"] == sum(r[2] >= 4.0 for r in ROWS)
    with pytest.raises(DataError, match=r"no rating is >= min_rating=6"):
        build_recsys_splits("tiny", data, {}, min_rating=6)


def test_too_few_items_for_the_negatives_is_a_clear_error(tmp_path):
    data = read_ratings(write_ratings(tmp_path / "ratings.csv", ROWS))
    with pytest.raises(DataError, match=r"has interacted with 12 of 20 items, leaving 8 to sample 9 negatives"):
        build_recsys_splits("tiny", data, {}, eval_negatives=9)
    with pytest.raises(DataError, match="User index 0 has a training interaction with every item"):  # no training negative exists
        ImplicitTrainDataset(torch.zeros(3, dtype=torch.long), torch.arange(3), 1, torch.zeros(3, 1, dtype=torch.long))


def test_a_log_where_nobody_can_be_evaluated_is_refused(tmp_path):
    data = read_ratings(write_ratings(tmp_path / "ratings.csv", [(1, 1, 3, 1), (1, 2, 3, 2), (2, 1, 3, 3)]))
    with pytest.raises(DataError, match="no user has 3 or more interactions"):
        build_recsys_splits("tiny", data, {}, eval_negatives=1)


def test_per_user_values_average_to_the_metrics_and_pair_two_models(synthetic):
    """evaluate(per_user=True): each metric per user in split order, whose mean is the metric; two models'
    paired standard error then measures their difference's noise (0 for the same model)."""
    from slimforge.optimize.budget import paired_standard_error

    torch.manual_seed(0)
    model = slimforge.create_model("mf", dim=8, **synthetic.info.model_kwargs())
    other = slimforge.create_model("mf", dim=8, **synthetic.info.model_kwargs())
    metrics = synthetic.val.evaluate(model, per_user=True)
    per_user = metrics["per_sample"]
    assert set(per_user) >= {"hr@10", "ndcg@10"} and all(len(v) == len(synthetic.val) for v in per_user.values())
    for name, values in per_user.items():
        assert values.mean().item() == pytest.approx(metrics[name], abs=1e-12)
    assert "per_sample" not in synthetic.val.evaluate(model)
    assert paired_standard_error(per_user["ndcg@10"].tolist(), per_user["ndcg@10"].tolist()) == 0.0
    theirs = synthetic.val.evaluate(other, per_user=True)["per_sample"]["ndcg@10"]
    diffs = theirs - per_user["ndcg@10"]
    assert paired_standard_error(per_user["ndcg@10"].tolist(), theirs.tolist()) == pytest.approx(
        diffs.std(unbiased=False).item() / len(diffs) ** 0.5)


def test_expected_sampled_metrics_are_the_average_over_redrawn_negatives(synthetic):
    """evaluate(expected=True): per user, the mean of HR@10 / NDCG@10 over many draws of the 99 negatives
    (here 100 redraws with the split's own sampler), without the draw's noise."""
    from slimforge.recsys.protocol import RankingSplit, sample_eval_negatives

    torch.manual_seed(0)
    model = slimforge.create_model("mf", dim=8, **synthetic.info.model_kwargs())
    val = synthetic.val
    exact = val.evaluate(model, per_user=True, expected=True)
    draws = [RankingSplit(val.users, val.positives, sample_eval_negatives(val.users, val.sampled_from, val.negatives.shape[1], seed),
                          val.known, val.item_genres, False).evaluate(model, per_user=True)["per_sample"] for seed in range(100)]
    for name in ("hr@10", "ndcg@10"):
        average = torch.stack([d[name] for d in draws]).mean(0)
        assert exact["per_sample"][name].mean().item() == pytest.approx(exact[name], abs=1e-12)
        # measured: means 0.0007 / 0.0007 apart, each user's at most 0.073 / 0.033 (100 draws of a 0/1 value: one standard error up to 0.05)
        assert exact[name] == pytest.approx(average.mean().item(), abs=0.004)
        assert (exact["per_sample"][name] - average).abs().max() < 0.15
    assert exact["loss"] == val.evaluate(model)["loss"]  # the rest of the evaluation is the fixed draw's
    with pytest.raises(ValueError, match="needs the interactions the negatives were drawn around"):
        RankingSplit(val.users, val.positives, val.negatives, val.known, val.item_genres).evaluate(model, expected=True)
