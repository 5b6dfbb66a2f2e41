"""Ranking objectives beside ``bce``: ``bpr``, ``softmax`` and ``ranking`` (``train.loss=...``).

All read the layout of :class:`~slimforge.recsys.protocol.ImplicitTrainDataset` batches: the B
positives first, then each positive's ``num_negatives`` negatives.

* ``bpr`` (Rendle et al. 2009) maximises log sigmoid(s(u, i+) - s(u, i-)) over every (positive,
  negative) pair.
* ``softmax``: cross-entropy of each positive against the catalogue, as retrieval two-towers train
  (Covington et al. 2016): for a model that scores a user against many items at once (``mf``,
  ``popularity``), against a uniform sample of ``SHARED_NEGATIVES`` items shared by the batch (the
  whole catalogue, exactly, when it is no larger); for the others (``neumf``, ``two-tower``: a score
  per pair), against the positive's own sampled negatives. On movielens-small it lifted MF's
  full-catalogue NDCG@20 from 0.036 to 0.046 over ``bce`` (BENCHMARKS.md, "Recommendation").
* ``ranking`` (the data's default): ``softmax`` for the first kind of model, ``bce`` for the second.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from slimforge.errors import DataError
from slimforge.recsys.models import RecsysModel
from slimforge.train.callbacks import LossOutput
from slimforge.train.config import TrainConfig
from slimforge.train.objectives import BinaryCrossEntropyObjective, register_objective


class BPRObjective:
    """Pairwise ranking loss; the logged accuracy is pointwise (logit > 0 on a positive, < 0 on a negative)."""

    def __call__(self, model: nn.Module, inputs: dict[str, torch.Tensor], targets: torch.Tensor, indices: torch.Tensor) -> LossOutput:
        scores = model(inputs).float().reshape(-1)
        positives = len(indices)
        if positives == 0 or len(scores) % positives or len(scores) == positives:
            raise DataError(f"BPR needs batches of B positives followed by their negatives (a recommendation dataset); got {len(scores)} "
                            f"scores for {positives} samples.")
        pos, neg = scores[:positives], scores[positives:].view(positives, -1)
        return LossOutput(-F.logsigmoid(pos.unsqueeze(1) - neg).mean(), scores)


@register_objective("bpr", help="Bayesian personalised ranking: each positive above its sampled negatives")
def _bpr(cfg: TrainConfig) -> BPRObjective:
    return BPRObjective()


SHARED_NEGATIVES = 4096  # the softmax's sample of the catalogue per batch (the whole catalogue when it is no larger)


class SoftmaxObjective:
    """Each positive's cross-entropy against a shared uniform sample of the catalogue (models that score
    a user against many items at once), or against its own sampled negatives (pair-scoring models). The
    logged accuracy is pairwise: a positive counts when it scores above all its sampled negatives, a
    negative when it scores below its positive."""

    def __init__(self, shared: int = SHARED_NEGATIVES) -> None:
        self.shared = shared

    def uses_catalogue(self, model: nn.Module) -> bool:
        """It scores ``model`` against a sample of the catalogue, not only the batch's pairs (distillation's label term asks)."""
        return _catalogue_size(model) is not None

    def __call__(self, model: nn.Module, inputs: dict[str, torch.Tensor], targets: torch.Tensor, indices: torch.Tensor) -> LossOutput:
        positives = len(indices)
        users, items = inputs["user"], inputs["item"]
        if positives == 0 or len(items) % positives or len(items) == positives:
            raise DataError(f"softmax needs batches of B positives followed by their negatives (a recommendation dataset); got "
                            f"{len(items)} pairs for {positives} samples.")
        own, negatives = items[:positives], items[positives:].view(positives, -1)
        catalogue = _catalogue_size(model)
        if catalogue is not None:
            loss, pos, neg = self._against_the_catalogue(model, users[:positives], own, negatives, catalogue)
        else:
            scores = model(inputs).float().reshape(-1)
            pos, neg = scores[:positives], scores[positives:].view(positives, -1)
            loss = F.cross_entropy(torch.cat([pos[:, None], neg], 1), torch.zeros(positives, dtype=torch.long, device=pos.device))
        order = torch.cat([pos - neg.max(1).values, (pos[:, None] - neg).reshape(-1)])  # > 0: in the right order
        return LossOutput(loss, torch.where(targets > 0.5, order, -order).detach())

    def _against_the_catalogue(self, model, users, own, negatives, catalogue: int):
        """Sampled softmax (Jean et al. 2015; Covington et al. 2016) with a uniform sample shared by the
        batch: a negative's logit gets log(N / M), so that the M drawn stand for the N items of the
        catalogue's partition function; the positive's own column is masked out of the sample."""
        if catalogue <= self.shared:
            every = model({"user": users, "catalogue": True}).float()
            loss = F.cross_entropy(every, own)
            return loss, every.gather(1, own[:, None]).squeeze(1), every.gather(1, negatives)
        drawn = torch.randint(catalogue, (self.shared,), device=own.device)
        scored = model({"user": users, "catalogue": torch.cat([own, drawn])}).float()
        pos = scored[:, : len(own)].diagonal()
        sample = scored[:, len(own):].masked_fill(drawn[None, :] == own[:, None], float("-inf"))
        logits = torch.cat([pos[:, None], sample + math.log(catalogue / self.shared)], 1)
        loss = F.cross_entropy(logits, torch.zeros(len(own), dtype=torch.long, device=own.device))
        with torch.no_grad():  # the batch's own negatives, for the logged accuracy only (outside any DDP wrapper)
            inner = getattr(model, "module", model)
            neg = inner.score(users.repeat_interleave(negatives.shape[1]), negatives.reshape(-1), None).float().view_as(negatives)
        return loss, pos, neg


def _catalogue_size(model: nn.Module) -> int | None:
    """How many items a model scores against at once, None: it scores pairs only."""
    inner = getattr(model, "module", model)  # DDP / FSDP wrap the model; its forward is still called through them
    if not isinstance(inner, RecsysModel) or type(inner).score_catalogue is RecsysModel.score_catalogue:
        return None
    return inner.num_items


@register_objective("softmax", help="recommendation: each positive against the whole catalogue (mf, popularity) or its sampled negatives")
def _softmax(cfg: TrainConfig) -> SoftmaxObjective:
    return SoftmaxObjective()


class AutoRankingObjective:
    """The measured best per model: ``softmax`` for a model that scores a user against many items at once
    (``mf``, ``popularity``), ``bce`` for one that scores pairs (``neumf``, ``two-tower``), where the softmax
    over its 4 sampled negatives measured lower than BCE on movielens-small (BENCHMARKS.md)."""

    def __init__(self) -> None:
        self.softmax, self.bce = SoftmaxObjective(), BinaryCrossEntropyObjective()

    def uses_catalogue(self, model: nn.Module) -> bool:
        return self.softmax.uses_catalogue(model)

    def __call__(self, model: nn.Module, inputs: dict[str, torch.Tensor], targets: torch.Tensor, indices: torch.Tensor) -> LossOutput:
        chosen = self.softmax if _catalogue_size(model) is not None else self.bce
        return chosen(model, inputs, targets, indices)


@register_objective("ranking", help="recommendation default: softmax for models that score the catalogue (mf, popularity), bce for pair scorers")
def _ranking(cfg: TrainConfig) -> AutoRankingObjective:
    return AutoRankingObjective()
