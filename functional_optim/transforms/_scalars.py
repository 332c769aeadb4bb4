"""Scalar helpers of the transforms whose step sizes are computed from the state (Schedule-Free,
Prodigy, D-Adaptation, DoG): 0-dim float64 maths, as the reference packages' Python doubles."""

from __future__ import annotations

import math
import operator
from typing import Any

import torch
from torch import Tensor

from functional_optim import ops


def f64(x: Any) -> Tensor:
    """``x`` as a 0-dim float64 tensor (gradients flow through a tensor ``x``)."""
    return (
        x.to(torch.float64) if isinstance(x, Tensor) else torch.scalar_tensor(float(x), dtype=torch.float64)
    )


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


def advance(steps: list[Tensor], by: Any, *, in_place: bool = False) -> list[Tensor]:
    """``step + by`` per counter, keeping the counters' dtype (``by``: 0 or 1, maybe a tensor);
    written into the counters with ``in_place`` (a rule's fused step)."""
    if isinstance(by, Tensor):
        return [s + by.to(s.dtype) for s in steps]
    return ops.add(steps, by, in_place=in_place)


def total(values: list[Tensor]) -> Tensor:
    """The float64 sum of per-tensor 0-dim values (as ``sum(v.item() for v in values)``)."""
    if not values:
        return torch.zeros((), dtype=torch.float64)
    out = values[0].to(torch.float64)
    for v in values[1:]:
        out = out + v.to(torch.float64)
    return out


def on_host(*values: Any) -> list[Any] | None:
    """The values as Python numbers (``item()`` of the 0-dim tensors) when none is traced
    (`functional_optim.ops.is_traced`: autograd, ``torch.func``, ``torch.compile``), so that a
    step's scalar maths runs in Python double as the reference packages'; else ``None`` (the
    maths then runs on 0-dim float64 tensors)."""
    if torch.compiler.is_compiling() or ops.any_traced(values):
        return None
    return [v.item() if isinstance(v, Tensor) else v for v in values]


def maximum(a: Any, b: Any) -> Any:
    """Python's ``max(a, b)`` (``a`` unless ``b > a``: a NaN ``b`` is ignored, as the reference
    packages' scalar maths does) of Python numbers or 0-dim tensors."""
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        return torch.where(torch.as_tensor(b > a), b, a)
    return max(a, b)


def minimum(a: Any, b: Any) -> Any:
    """Python's ``min(a, b)`` (``a`` unless ``b < a``) of Python numbers or 0-dim tensors."""
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        return torch.where(torch.as_tensor(b < a), b, a)
    return min(a, b)


def ratio_or_zero(num: Any, den: Any) -> Any:
    """``num / den``, or 0 where ``den`` is 0 (the reference packages' ``ZeroDivisionError``
    fallback), for Python numbers or 0-dim tensors (no ``inf·0`` in the gradient)."""
    if isinstance(den, Tensor):
        nonzero = den != 0
        return torch.where(nonzero, num / torch.where(nonzero, den, 1.0), 0.0)
    return num / den if den != 0 else 0.0


def where(cond: Any, a: Any, b: Any) -> Any:
    """``a if cond else b`` for a Python ``cond``, ``torch.where`` for a tensor one."""
    if isinstance(cond, Tensor):
        return torch.where(cond, a, b)
    return a if cond else b


def sqrt(x: Any) -> Any:
    """``math.sqrt`` of a Python number, ``torch.sqrt`` of a tensor (both correctly rounded)."""
    return x.sqrt() if isinstance(x, Tensor) else math.sqrt(x)


def host_sum(values: list[Tensor], scale: float = 1.0) -> float:
    """``Σ scale·v.item()``, accumulated left to right in Python double as the reference
    packages do (one transfer for all values)."""
    if not values:
        return 0.0
    first = values[0].device
    if all(map(first.__eq__, map(_DEVICE, values))):
        numbers = torch.stack(values).tolist()
    else:  # a group on several devices: one transfer per value (this runs in a fused commit)
        numbers = [v.item() for v in values]
    acc = 0.0
    for v in numbers:
        acc += scale * v
    return acc


_DEVICE = operator.attrgetter("device")


def ordered_total(values: list[Tensor], scale: Any = None) -> Tensor:
    """``Σ scale·v`` as a 0-dim float64 tensor, accumulated left to right as the reference
    packages' ``+= scale * v.item()``: in Python double (`host_sum`) unless a value is traced
    (then `total`, on tensors)."""
    if ops.is_traced(scale) or ops.any_traced(values):
        return total(values if scale is None else [scale * v.to(torch.float64) for v in values])
    factor = 1.0 if scale is None else float(scale)
    return torch.scalar_tensor(host_sum(values, factor), dtype=torch.float64)
