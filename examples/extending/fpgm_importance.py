"""An importance criterion: FPGM, the filter's distance from the layer's other filters.

He et al. (CVPR 2019, "Filter Pruning via Geometric Median"): a filter close to the geometric
median of its layer's filters is the one the others can stand in for, whatever its norm. The sum
of Euclidean distances to every other filter approximates that (the paper's own shortcut): a
small sum, a redundant filter.

    import fpgm_importance              # registers "fpgm"
    slimforge.prune(model, example, ratio=0.3, importance="fpgm")

    SLIMFORGE_PLUGINS=fpgm_importance slimforge prune runs/cnn --ratio 0.3 --importance fpgm

A criterion that needs gradients says so when it registers (``needs_gradients=True``); pruning
then runs the calibration batches backwards and hands it ``ctx.taylor`` (weight x gradient).
"""

from __future__ import annotations

import torch

from slimforge.prune import register_importance


@register_importance("fpgm", help="sum of distances from each filter to the layer's others (He et al. 2019)")
def fpgm_importance(ctx, slot) -> torch.Tensor | None:
    """Scores for the ``slot.dim`` positions of tensor ``slot.name``; None: no opinion on this dimension."""
    weight = ctx.tensors.get(slot.name)
    if weight is None or weight.dim() < 2 or not weight.is_floating_point() or slot.dim != 0:
        return None  # only the output dimension of a weight has filters to compare
    filters = weight.detach().float().reshape(weight.shape[0], -1)
    return torch.cdist(filters, filters).sum(1)
