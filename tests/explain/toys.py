"""Toy models whose right attribution is known, for the explanation tests.

`LeftHalfNet` sees only the left half of its input (the right half is multiplied by zero before
the first convolution, and the convolutions have no bias), so every faithful method must put
(almost) all of class 0's evidence on the left half. Class 0's logit grows with the activations
(positive head weights), so there is evidence to find.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

SIZE = 32


class LeftHalfNet(nn.Module):
    def __init__(self, size: int = SIZE, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        mask = torch.zeros(1, 1, size, size)
        mask[..., : size // 2] = 1
        self.register_buffer("mask", mask)
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.drop = nn.Dropout(0.5)
        self.head = nn.Linear(8, 2)
        with torch.no_grad():
            self.head.weight[0].fill_(1.0)
            self.head.weight[1].fill_(-1.0)
            self.head.bias.zero_()
        self.calls = 0  # forward passes, counted by the model itself (no hook to disturb)

    def forward(self, x):
        self.calls += 1
        x = x * self.mask
        x = torch.relu(self.conv2(torch.relu(self.bn(self.conv1(x))) * self.mask)) * self.mask
        return self.head(self.drop(x.mean(dim=(2, 3))))


def positive_images(n: int = 2, size: int = SIZE, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(0.2, 1.0, size=(n, 3, size, size)).astype(np.float32)


def left_share(maps: np.ndarray) -> np.ndarray:
    """The share of each map's total on the left half of the image."""
    width = maps.shape[-1]
    total = maps.sum(axis=(1, 2))
    return maps[..., : width // 2].sum(axis=(1, 2)) / np.where(total > 0, total, 1)
