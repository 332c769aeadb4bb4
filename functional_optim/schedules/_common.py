"""Scalar helpers shared by the schedules: one formula for Python numbers and tensors.

A schedule evaluated at a Python ``int`` count with Python-number arguments computes in Python
double (``math.cos``...), exactly like ``torch.optim.lr_scheduler``. As soon as the count or an
argument is a tensor, the same formula runs on float64 tensors (``torch.cos``, ``torch.where``)
so that hyper-gradients flow to tensor arguments and a count of any shape (e.g.
``torch.arange(1000)``) gives all the values at once.
"""

from __future__ import annotations

import math
from typing import Any, cast

import torch
from torch import Tensor

Number = float | int | Tensor


def any_tensor(*xs: Any) -> bool:
    """Whether any argument is a tensor (then the schedule computes on tensors)."""
    return any(isinstance(x, Tensor) for x in xs)


def as_count(count: Any, tensor_mode: bool) -> Number:
    """The count as a Python ``int`` (scalar mode) or a float64 tensor (tensor mode)."""
    if isinstance(count, Tensor):
        if count.is_floating_point() and count.dtype != torch.float64:
            return count.to(torch.float64)
        return count if count.dtype == torch.float64 else count.to(torch.float64)
    if tensor_mode:
        return torch.tensor(float(count), dtype=torch.float64)
    if isinstance(count, bool) or not isinstance(count, int | float):
        raise TypeError(f"a schedule's count must be an int or a tensor, got {type(count).__name__}")
    return count


def out(x: Number) -> Number:
    """A Python float for a scalar-mode value, the tensor otherwise."""
    return x if isinstance(x, Tensor) else float(x)


def _t(x: Any, like: Tensor) -> Tensor:
    if isinstance(x, Tensor):
        return x
    return torch.tensor(x, dtype=torch.float64, device=like.device)


def where(cond: Any, a: Any, b: Any) -> Any:
    """``a if cond else b``, elementwise ``torch.where`` when ``cond`` is a tensor."""
    if isinstance(cond, Tensor):
        return torch.where(cond, _t(a, cond), _t(b, cond))
    return a if cond else b


def cos(x: Number) -> Number:
    return torch.cos(x) if isinstance(x, Tensor) else math.cos(x)


def floor(x: Number) -> Number:
    return torch.floor(x) if isinstance(x, Tensor) else math.floor(x)


def minimum(a: Number, b: Number) -> Number:
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        ref = a if isinstance(a, Tensor) else cast(Tensor, b)  # one of them is a tensor
        return torch.minimum(_t(a, ref), _t(b, ref))
    return min(a, b)


def maximum(a: Number, b: Number) -> Number:
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        ref = a if isinstance(a, Tensor) else cast(Tensor, b)  # one of them is a tensor
        return torch.maximum(_t(a, ref), _t(b, ref))
    return max(a, b)


def floordiv(a: Number, b: int) -> Number:
    if isinstance(a, Tensor):
        return torch.div(a, b, rounding_mode="floor")
    return a // b


def count_at_least(count: Number, boundaries: list[int]) -> Number:
    """How many boundaries are ``<= count`` (``bisect_right``), elementwise for tensors."""
    if isinstance(count, Tensor):
        if not boundaries:
            return torch.zeros_like(count)
        b = torch.tensor(boundaries, dtype=count.dtype, device=count.device)
        return (count.unsqueeze(-1) >= b).sum(-1).to(count.dtype)
    return sum(1 for b in boundaries if count >= b)


def is_concrete_int(count: Any) -> bool:
    return isinstance(count, int) and not isinstance(count, bool)
