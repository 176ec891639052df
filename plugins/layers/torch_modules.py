"""``torch.nn`` modules of the built-in layers that torch lacks (imported only when torch is wanted)."""

from __future__ import annotations

import torch
from torch import nn


class TriangleModule(nn.Module):
    """``max(0, x − mean over channels) ** power`` (the ``triangle`` layer)."""

    def __init__(self, power: float = 1.0):
        super().__init__()
        self.power = power

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(x - x.mean(dim=1, keepdim=True))
        return y if self.power == 1.0 else y**self.power


class PowerReLU(nn.Module):
    """``max(0, x) ** power`` (the ``relu`` layer with a ``power``)."""

    def __init__(self, power: float):
        super().__init__()
        self.power = power

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x) ** self.power
