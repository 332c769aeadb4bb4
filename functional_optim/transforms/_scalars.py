"""Scalar helpers of the transforms whose step sizes are computed from the state (Schedule-Free,
Prodigy, D-Adaptation, DoG): 0-dim float64 maths, as the reference packages' Python doubles."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from functional_optim import ops


def f64(x: Any) -> Tensor:
    """``x`` as a 0-dim float64 tensor (gradients flow through a tensor ``x``)."""
    return x.to(torch.float64) if isinstance(x, Tensor) else torch.tensor(float(x), dtype=torch.float64)


def axpy(xs: list[Tensor], ys: list[Tensor], alpha: Any) -> list[Tensor]:
    """``x + alpha·y`` per tensor: one fused op for a Python ``alpha`` (torch.optim's
    ``add_(y, alpha=...)``), a product then a sum for a tensor ``alpha`` (traced)."""
    if isinstance(alpha, Tensor):
        return ops.add(xs, ops.mul(ys, alpha))
    return ops.add(xs, ys, alpha=alpha)


def axpy_(xs: list[Tensor], ys: list[Tensor], alpha: Any) -> list[Tensor]:
    """`axpy` written into ``xs`` where allowed (``xs`` must be temporaries of this update)."""
    if isinstance(alpha, Tensor):
        return ops.add_(xs, ops.mul(ys, alpha))
    return ops.add_(xs, ys, alpha=alpha)


def advance(steps: list[Tensor], by: Any) -> list[Tensor]:
    """``step + by`` per counter, keeping the counters' dtype (``by``: 0 or 1, maybe a tensor)."""
    if isinstance(by, Tensor):
        return [s + by.to(s.dtype) for s in steps]
    return ops.add(steps, by)


def total(values: list[Tensor]) -> Tensor:
    """The float64 sum of per-tensor 0-dim values (as ``sum(v.item() for v in values)``)."""
    if not values:
        return torch.zeros((), dtype=torch.float64)
    out = values[0].to(torch.float64)
    for v in values[1:]:
        out = out + v.to(torch.float64)
    return out
