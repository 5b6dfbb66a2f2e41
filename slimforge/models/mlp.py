"""Multi-layer perceptrons, including Hinton et al.'s 784-1200-1200-10 and 784-800-800-10."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from slimforge.models import register_model


class MLP(nn.Module):
    """Flatten, [dropout on the inputs], then [linear, ReLU, dropout] per hidden layer, then a linear classifier.

    x: (batch, *input_shape) -> logits (batch, num_classes)
    """

    def __init__(self, in_features: int, hidden: Sequence[int], num_classes: int, dropout: float = 0.0, input_dropout: float = 0.0) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        if input_dropout > 0:  # Hinton et al. drop 20% of the pixels of the large MNIST net
            layers.append(nn.Dropout(input_dropout))
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(inplace=True)]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = h
        layers.append(nn.Linear(width, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _in_features(in_channels: int, input_size: Sequence[int]) -> int:
    return in_channels * math.prod(input_size)


@register_model("mlp", help="MLP with configurable hidden=[...] sizes, dropout and input_dropout")
def mlp(
    num_classes: int = 10,
    in_channels: int = 1,
    input_size: Sequence[int] = (28, 28),
    hidden: Sequence[int] = (256,),
    dropout: float = 0.0,
    input_dropout: float = 0.0,
) -> MLP:
    return MLP(_in_features(in_channels, input_size), list(hidden), num_classes, dropout, input_dropout)


@register_model("mlp-1200", help="784-1200-1200-10 MLP, dropout 0.5 (Hinton et al. 2015's teacher also drops 0.2 of the inputs: input_dropout=0.2)")
def mlp_1200(
    num_classes: int = 10, in_channels: int = 1, input_size: Sequence[int] = (28, 28), dropout: float = 0.5, input_dropout: float = 0.0
) -> MLP:
    return MLP(_in_features(in_channels, input_size), [1200, 1200], num_classes, dropout, input_dropout)


@register_model("mlp-800", help="784-800-800-10 MLP, dropout 0.2 (Hinton et al. 2015's student has none: dropout=0)")
def mlp_800(
    num_classes: int = 10, in_channels: int = 1, input_size: Sequence[int] = (28, 28), dropout: float = 0.2, input_dropout: float = 0.0
) -> MLP:
    return MLP(_in_features(in_channels, input_size), [800, 800], num_classes, dropout, input_dropout)
