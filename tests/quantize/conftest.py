"""Small trained models on synthetic data, so int8 is judged on confident predictions.

Random-initialised networks give near-tied logits, where any rounding flips the top class;
a few steps on separable synthetic images give margins like a trained model's.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from slimforge.models import create_model

CLASSES = 10


def synthetic_batches(n_batches: int, batch: int = 32, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(inputs (batch, 1, 28, 28), targets (batch,)): a fixed template per class plus noise."""
    coarse = torch.randn(CLASSES, 1, 7, 7, generator=torch.Generator().manual_seed(1234))
    templates = 2 * nn.functional.interpolate(coarse, size=(28, 28), mode="nearest")
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n_batches):
        y = torch.randint(0, CLASSES, (batch,), generator=gen)
        x = templates[y] + torch.randn(batch, 1, 28, 28, generator=gen)
        out.append((x, y))
    return out


def fit(model: nn.Module, steps: int, lr: float = 3e-3) -> nn.Module:
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for x, y in synthetic_batches(steps, seed=1):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval()


@pytest.fixture(scope="session")
def trained_cnn() -> nn.Module:
    torch.manual_seed(0)
    return fit(create_model("resnet8", num_classes=CLASSES, in_channels=1), steps=40)


@pytest.fixture(scope="session")
def trained_mlp() -> nn.Module:
    torch.manual_seed(0)
    return fit(create_model("mlp", hidden=[128, 64], num_classes=CLASSES), steps=40)


@pytest.fixture(scope="session")
def calibration() -> list[tuple[torch.Tensor, torch.Tensor]]:
    return synthetic_batches(4, seed=2)


@pytest.fixture(scope="session")
def test_batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    return synthetic_batches(4, seed=3)
