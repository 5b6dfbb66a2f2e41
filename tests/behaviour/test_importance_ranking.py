"""Every importance criterion ranks a planted dead channel least important: pruning one unit of a
layer removes exactly that channel, in a conv + BatchNorm layer and in a linear layer."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import slimforge.prune as sp

DEAD = 5  # the planted channel / neuron
TINY = 1e-3  # its weights' scale relative to the others
X = torch.randn(8, 3, 8, 8, generator=torch.Generator().manual_seed(1))
# Taylor scores on calibration data: 64 samples, so every healthy ReLU unit is active on some
# (with 8, one healthy neuron never fires and rightly scores 0, like the dead one).
CALIBRATION = [(torch.randn(64, 3, 8, 8, generator=torch.Generator().manual_seed(2)), torch.arange(64) % 4)]

# "random" scores channels uniformly at random by design: it has no ranking to check.
CRITERIA = [c for c in sp.list_importances() if c != "random"]


class ConvNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.conv2, self.bn2 = nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.bn2(self.conv2(x)))
        return self.fc(x.mean((2, 3)))


class MLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(192, 16), nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x.flatten(1))))


def _conv_net_with_a_dead_channel() -> nn.Module:
    torch.manual_seed(0)
    model = ConvNet()
    with torch.no_grad():
        # Healthy BatchNorm scales of both signs (|gamma| is what matters) and real statistics.
        signs = torch.tensor([1.0, -1.0] * 4)
        model.bn1.weight.copy_(signs * torch.empty(8).uniform_(0.5, 1.5))
        model.bn1.running_var.uniform_(0.5, 2.0)
        for t in (model.conv1.weight[DEAD], model.conv1.bias[DEAD:DEAD + 1], model.bn1.weight[DEAD:DEAD + 1],
                  model.bn1.bias[DEAD:DEAD + 1], model.conv2.weight[:, DEAD]):
            t.mul_(TINY)
    return model.eval()


def _mlp_with_a_dead_neuron() -> nn.Module:
    torch.manual_seed(0)
    model = MLP()
    with torch.no_grad():
        for t in (model.fc1.weight[DEAD], model.fc1.bias[DEAD:DEAD + 1], model.fc2.weight[:, DEAD]):
            t.mul_(TINY)
    return model.eval()


def _without(t: torch.Tensor, index: int, dim: int) -> torch.Tensor:
    keep = [i for i in range(t.shape[dim]) if i != index]
    return t.index_select(dim, torch.tensor(keep))


@pytest.mark.parametrize("criterion", CRITERIA)
def test_conv_channel_with_tiny_weights_is_pruned_first(criterion):
    """Planted bugs caught: the ranking reversed (`np.argsort(-s)` in `_prune_at`: the most
    important channel goes); `bn_scale` without `.abs()` (a healthy negative gamma goes);
    `taylor` without `.abs()` (a channel with a negative w*grad sum goes); `l1` as a signed sum
    of the weights instead of a norm."""
    model = _conv_net_with_a_dead_channel()
    before = model.conv1.weight.detach().clone()
    sp.prune(model, X, ratio={"conv1": 1 / 8}, importance=criterion, calibration=CALIBRATION, round_to=1)
    assert model.conv1.out_channels == 7
    assert torch.equal(model.conv1.weight, _without(before, DEAD, 0)), "a channel other than the dead one was pruned"


@pytest.mark.parametrize("criterion", CRITERIA)
def test_linear_neuron_with_tiny_weights_is_pruned_first(criterion):
    """The same for a hidden neuron of an MLP (no normalisation layer: bn_scale falls back to l2).
    Planted bugs caught: the ranking reversed; `taylor` without `.abs()`; `l1` as a signed sum."""
    model = _mlp_with_a_dead_neuron()
    before = model.fc1.weight.detach().clone()
    sp.prune(model, X, ratio={"fc1": 1 / 16}, importance=criterion, calibration=CALIBRATION, round_to=1)
    assert model.fc1.out_features == 15
    assert torch.equal(model.fc1.weight, _without(before, DEAD, 0)), "a neuron other than the dead one was pruned"
