"""Contract of every recommendation model: (n,) finite logits for (user, item) pairs, a save/load
round trip, and clear errors for inputs that are not catalogue indices."""

from __future__ import annotations

import pytest
import torch

import slimforge
from slimforge.errors import SlimforgeError
from slimforge.models import create_model, list_models, resolve_factory
from slimforge.recsys.models import _user_groups
from slimforge.recsys.protocol import pair_inputs

RECSYS_MODELS = [n for n in list_models() if resolve_factory(n).__module__.startswith("slimforge.recsys")]
SIZES = {"num_users": 13, "num_items": 29, "num_genres": 5}


def _pairs(n: int = 17) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    genres = torch.randint(0, 6, (29, 3), generator=g)
    return pair_inputs(torch.randint(0, 13, (n,), generator=g), torch.randint(0, 29, (n,), generator=g), genres)


def test_every_recommendation_model_is_covered():
    assert set(RECSYS_MODELS) == {"popularity", "mf", "neumf", "two-tower"}


@pytest.mark.parametrize("name", RECSYS_MODELS)
def test_recsys_model_contract(name, tmp_path):
    torch.manual_seed(0)
    model = create_model(name, **SIZES).eval()
    with torch.no_grad():  # non-zero biases, so a lost tensor changes the scores
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    pairs = _pairs()
    with torch.no_grad():
        scores = model(pairs)
    assert scores.shape == (17,) and scores.dtype == torch.float32 and torch.isfinite(scores).all()
    assert scores.std() > 0 or name == "popularity"
    # The same pair scores the same in any batch (no cross-sample mixing).
    with torch.no_grad():
        alone = model({k: v[3:4] for k, v in pairs.items()})
    torch.testing.assert_close(alone, scores[3:4])
    slimforge.save(model, tmp_path / name)
    with torch.no_grad():
        assert torch.equal(slimforge.load(tmp_path / name)(pairs), scores)


@pytest.mark.parametrize("name", RECSYS_MODELS)
def test_every_parameter_learns_from_a_batch(name):
    model = create_model(name, **SIZES)
    scores = model(_pairs())
    scores.sum().backward()
    # A parameter without gradient would be dead weight (e.g. a tower left out of the score).
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert no_grad == [], no_grad


def test_popularity_ranks_every_user_the_same():
    model = create_model("popularity", **SIZES)
    with torch.no_grad():
        model.item_bias.weight.copy_(torch.randn(29, 1))
        a = model({"user": torch.zeros(29, dtype=torch.long), "item": torch.arange(29)})
        b = model({"user": torch.full((29,), 12), "item": torch.arange(29)})
    assert torch.equal(a, b)


def test_out_of_range_and_wrong_inputs_are_clear_errors():
    model = create_model("mf", **SIZES)
    with pytest.raises(SlimforgeError, match=r"user index 13 is outside the model's 13 users.*not raw ids"):
        model({"user": torch.tensor([13]), "item": torch.tensor([0])})
    with pytest.raises(SlimforgeError, match=r"item index -1 is outside"):
        model({"user": torch.tensor([0]), "item": torch.tensor([-1])})
    with pytest.raises(SlimforgeError, match="integer id tensor"):
        model({"user": torch.tensor([0.5]), "item": torch.tensor([0])})
    with pytest.raises(SlimforgeError, match=r"takes \{'user': ids"):
        model(torch.zeros(2, 2, dtype=torch.long))
    with pytest.raises(SlimforgeError, match=r"needs inputs\['item_genres'\]"):
        create_model("two-tower", **SIZES)({"user": torch.tensor([0]), "item": torch.tensor([0])})
    with pytest.raises(SlimforgeError, match="at least two MLP widths, the first even"):
        create_model("neumf", **SIZES, mlp=[63, 16])


def test_two_tower_without_genres_needs_none():
    model = create_model("two-tower", num_users=3, num_items=4, num_genres=0)
    assert model({"user": torch.tensor([0, 2]), "item": torch.tensor([1, 3])}).shape == (2,)


@pytest.mark.parametrize("name", RECSYS_MODELS)
def test_a_users_candidates_score_as_pairs_do(name):
    """The grouped path (each user's side once, for R runs of L equal users) equals scoring pair by pair;
    any other batch takes the pairwise path."""
    torch.manual_seed(0)
    model = create_model(name, **SIZES).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.3)
    genres = torch.randint(0, 6, (29, 3), generator=torch.Generator().manual_seed(1))
    grouped = pair_inputs(torch.tensor([4, 9, 4]).repeat_interleave(29), torch.randperm(29).repeat(3), genres)
    uneven = pair_inputs(torch.tensor([4] * 20 + [9] * 9), torch.arange(29), genres)
    with torch.no_grad():
        for pairs in (grouped, uneven):
            expected = model.score(pairs["user"], pairs["item"], pairs["item_genres"])
            torch.testing.assert_close(model(pairs), expected, atol=1e-5, rtol=1e-5)
    assert _user_groups(grouped["user"]).tolist() == [4, 9, 4] and _user_groups(uneven["user"]) is None
    model.train()
    model(grouped).sum().backward()  # trains through the grouped path too
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert no_grad == [], no_grad


def test_a_pruned_neumf_scores_a_users_candidates_as_pairs_do():
    """Pruning narrows the GMF tables (32 -> 16 here): the grouped path splits the output layer by
    the rows' width, not the constructor's ``dim``."""
    from slimforge.prune.structured import prune

    torch.manual_seed(0)
    model = create_model("neumf", **SIZES).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.3)
    pairs = pair_inputs(torch.tensor([4, 9]).repeat_interleave(29), torch.randperm(29).repeat(2), torch.zeros(29, 1, dtype=torch.long))
    result = prune(model, (pairs,), ratio=0.5)
    pruned = getattr(result, "model", result)
    assert pruned.gmf_user.embedding_dim < 32
    with torch.no_grad():
        torch.testing.assert_close(pruned(pairs), pruned.score(pairs["user"], pairs["item"], None), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["mf", "popularity"])
def test_a_users_scores_over_the_catalogue_are_its_pair_scores(name):
    torch.manual_seed(0)
    model = create_model(name, **SIZES).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.3)
    users = torch.tensor([4, 9, 0])
    catalogue = model({"user": users, "catalogue": True})
    assert catalogue.shape == (3, 29)
    pairs = pair_inputs(users.repeat_interleave(29), torch.arange(29).repeat(3), torch.zeros(29, 1, dtype=torch.long))
    torch.testing.assert_close(catalogue.reshape(-1), model.score(pairs["user"], pairs["item"], None), atol=1e-5, rtol=1e-5)
    with pytest.raises(SlimforgeError, match="user index 13 is outside"):
        model({"user": torch.tensor([13]), "catalogue": True})


def test_a_pair_scoring_model_says_it_cannot_score_the_catalogue():
    with pytest.raises(NotImplementedError, match="scores .user, item. pairs only"):
        create_model("neumf", **SIZES)({"user": torch.tensor([1]), "catalogue": True})
