"""BPR (Rendle et al. 2009): the ``bpr`` training objective (``train.loss=bpr``).

It reads the layout of :class:`~slimforge.recsys.protocol.ImplicitTrainDataset` batches: the B
positives first, then each positive's ``num_negatives`` negatives, and maximises
log sigmoid(s(u, i+) - s(u, i-)) over every (positive, negative) pair.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from slimforge.errors import DataError
from slimforge.train.callbacks import LossOutput
from slimforge.train.config import TrainConfig
from slimforge.train.objectives import register_objective


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
