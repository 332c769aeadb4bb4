"""Small models with BatchNorm and a deterministic 'training' trajectory for the averaging tests."""

from __future__ import annotations

import torch
from torch import nn


def make_model(dtype: torch.dtype = torch.float32, seed: int = 0) -> nn.Module:
    """Conv2d + BatchNorm2d + Linear + BatchNorm1d + Linear (parameters and BN buffers)."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(2, 3, 3, bias=False),  # no bias before BN: its gradient is rounding noise
        nn.BatchNorm2d(3),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(3 * 4 * 4, 8, bias=False),
        nn.BatchNorm1d(8),
        nn.Tanh(),
        nn.Linear(8, 2),
    )
    return model.to(dtype)


def inputs(n: int, dtype: torch.dtype = torch.float32, seed: int = 1) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(4, 2, 6, 6, generator=gen, dtype=torch.float64).to(dtype) for _ in range(n)]


@torch.no_grad()
def perturb(model: nn.Module, step: int) -> None:
    """One fake training step: move every parameter and run a train-mode forward (BN buffers move)."""
    gen = torch.Generator().manual_seed(100 + step)
    for p in model.parameters():
        p.add_(0.3 * torch.randn(p.shape, generator=gen, dtype=torch.float64).to(p.dtype))
    model.train()
    model(inputs(1, next(model.parameters()).dtype, seed=200 + step)[0])


def max_abs_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    diffs = [(a[k].double() - b[k].double()).abs().max().item() for k in a if a[k].numel()]
    return max(diffs, default=0.0)
