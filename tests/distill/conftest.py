from __future__ import annotations

import pytest
import torch
from torch import nn


class TinyNet(nn.Module):
    """x: (batch, 1, 8, 8) -> logits (batch, classes); ``body.0``/``body.3`` are hookable feature maps."""

    def __init__(self, classes: int = 4, width: int = 4) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
        )
        self.head = nn.Linear(2 * width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(self.body(x), 1))


def mlp(inputs: int = 16, classes: int = 4, hidden: int = 32) -> nn.Module:
    return nn.Sequential(nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, classes))


class Wrapper(nn.Module):
    """Stands in for DistributedDataParallel: forwards to ``.module``."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x)


@pytest.fixture(autouse=True)
def one_thread():
    # Tiny tensors on a shared CPU: several intra-op threads spin-wait and run ~50x slower.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def images() -> torch.Tensor:
    return torch.randn(40, 1, 8, 8, generator=torch.Generator().manual_seed(0))


@pytest.fixture
def vectors() -> torch.Tensor:
    return torch.randn(64, 16, generator=torch.Generator().manual_seed(0))


@pytest.fixture(autouse=True)
def teacher_cache_home(tmp_path, monkeypatch):
    """Teacher caches land in this test's folder, not in the user's shared one."""
    monkeypatch.setenv("SLIMFORGE_CACHE", str(tmp_path / "slimforge-cache"))
    return tmp_path / "slimforge-cache" / "teacher-outputs"
