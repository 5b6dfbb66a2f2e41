"""A small convolutional network for 8x8 to 32x32 images (digits, MNIST, Fashion-MNIST)."""

from __future__ import annotations

import torch
from torch import nn

from slimforge.models import register_model


def _conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class SmallCNN(nn.Module):
    """conv-bn-relu x2, pool, conv-bn-relu x2, global average pool, linear.

    x: (batch, in_channels, H, W) with H, W >= 4 -> logits (batch, num_classes)
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1, width: int = 32, dropout: float = 0.0) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(
            _conv_bn_relu(in_channels, w),
            _conv_bn_relu(w, w),
            nn.MaxPool2d(2),
            _conv_bn_relu(w, 2 * w),
            _conv_bn_relu(2 * w, 2 * w),
            nn.AdaptiveAvgPool2d(1),
        )
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(2 * w, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(torch.flatten(self.features(x), 1)))


@register_model("cnn", help="small CNN (4 conv layers), for 8x8 to 32x32 images")
def cnn(num_classes: int = 10, in_channels: int = 1, width: int = 32, dropout: float = 0.0) -> SmallCNN:
    return SmallCNN(num_classes=num_classes, in_channels=in_channels, width=width, dropout=dropout)
