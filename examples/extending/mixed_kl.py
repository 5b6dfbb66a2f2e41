"""A distillation loss with a hyper-parameter of its own: forward and reverse KL, mixed.

Forward KL (teacher || student), Hinton's, covers every class the teacher gives mass to; reverse
KL (student || teacher) seeks the teacher's main mode. Wu et al. (2024, "Rethinking Kullback-Leibler
Divergence in Knowledge Distillation for Large Language Models") mix the two. ``reverse_weight``
is this loss's own setting: slimforge reads a loss's settings from its constructor, so it needs
no change anywhere else.

    import mixed_kl                     # registers "mixed-kl"
    slimforge.distill.run(student, ["runs/teacher"], data, DistillConfig(loss={"name": "mixed-kl", "reverse_weight": 0.3}))

    SLIMFORGE_PLUGINS=mixed_kl slimforge distill --teacher runs/teacher --student resnet8 \
        --loss mixed-kl distill.loss_params.reverse_weight=0.3
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from slimforge.distill import register_loss
from slimforge.errors import ConfigError


@register_loss("mixed-kl", help="T^2 * ((1 - r) * KL(teacher || student) + r * KL(student || teacher))")
class MixedKL:
    ensemble = "probabilities"  # an ensemble of teachers is merged by averaging softened probabilities

    def __init__(self, temperature: float = 4.0, reverse_weight: float = 0.5) -> None:
        if not 0.0 <= reverse_weight <= 1.0:
            raise ConfigError(f"mixed-kl: reverse_weight must be between 0 and 1, got {reverse_weight}.")
        self.temperature, self.reverse_weight = float(temperature), float(reverse_weight)

    def __call__(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        t, r = self.temperature, self.reverse_weight
        log_s = F.log_softmax(student_logits.float() / t, dim=-1)
        log_t = F.log_softmax(teacher_logits.float() / t, dim=-1)
        forward = (log_t.exp() * (log_t - log_s)).sum(-1)
        reverse = (log_s.exp() * (log_s - log_t)).sum(-1)
        return ((1 - r) * forward + r * reverse).mean() * t * t
