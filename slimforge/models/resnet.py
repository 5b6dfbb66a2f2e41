"""CIFAR-style ResNets (He et al. 2016, section 4.2): 6n+2 layers in three stages.

Stage widths are 16, 32, 64 times ``width``. They take any input of 8x8 and up, colour or grey
(``in_channels``), since the head pools globally.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from slimforge.models import register_model


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            # Projection shortcut (option B): a 1x1 conv keeps the block prunable like any other.
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """x: (batch, in_channels, H, W) -> logits (batch, num_classes)."""

    def __init__(self, depth: int, num_classes: int = 10, in_channels: int = 3, width: float = 1.0) -> None:
        super().__init__()
        if (depth - 2) % 6 != 0 or depth < 8:
            raise ValueError(f"CIFAR ResNet depth must be 6n+2 and at least 8, got {depth}")
        blocks = (depth - 2) // 6
        widths = [max(1, round(c * width)) for c in (16, 32, 64)]
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        layers = []
        cin = widths[0]
        for stage, cout in enumerate(widths):
            stage_blocks = []
            for b in range(blocks):
                stage_blocks.append(BasicBlock(cin, cout, stride=2 if (stage > 0 and b == 0) else 1))
                cin = cout
            layers.append(nn.Sequential(*stage_blocks))
        self.layer1, self.layer2, self.layer3 = layers
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.pool(x), 1))


def _register(depth: int) -> None:
    @register_model(f"resnet{depth}", help=f"CIFAR-style ResNet-{depth}; width= multiplies 16/32/64 channels")
    def factory(num_classes: int = 10, in_channels: int = 3, width: float = 1.0) -> CifarResNet:
        return CifarResNet(depth, num_classes=num_classes, in_channels=in_channels, width=width)


for _depth in (8, 14, 20, 32, 44, 56, 110):
    _register(_depth)
