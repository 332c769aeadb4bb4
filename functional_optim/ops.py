"""List-of-tensor maths with one code path for every backend.

Each function takes lists of tensors (and scalars, lists of scalars or 0-dim tensors) and
returns **new** tensors; nothing here writes into its inputs. Plain dense tensors go through
``torch._foreach_*`` kernels (one C++ loop, horizontally fused on CUDA, the path
``torch.compile`` fuses best). A per-tensor loop is used where foreach cannot go: inside
``torch.func`` transforms (foreach has no batching rules), and for sparse tensors.

Scalar coefficients follow ``torch.optim``'s for-loop numerics: when the hyperparameters and
step counters are concrete (not traced by ``torch.func``/``torch.compile`` and not requiring
grad), they are turned into Python floats and the per-step coefficients (bias corrections,
step sizes) are computed in Python double, exactly as ``torch.optim`` does. Otherwise they
stay tensors, so gradients flow to them and tracing does not break.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

Scalar = float | int | Tensor
ScalarOrList = Scalar | Sequence[Scalar]

_is_functorch_wrapped = torch._C._functorch.is_functorch_wrapped_tensor


# ----------------------------------------------------------------------------- backend choice


def is_traced(x: Any) -> bool:
    """True if ``x`` is a tensor whose value must not be read on the host: it requires grad,
    is wrapped by a ``torch.func`` transform, or we are inside ``torch.compile``."""
    if not isinstance(x, Tensor):
        return False
    if torch.compiler.is_compiling():
        return True
    return x.requires_grad or _is_functorch_wrapped(x)


def use_foreach(*lists: Sequence[Tensor]) -> bool:
    """Whether ``torch._foreach_*`` kernels can run on these lists (dense, not under ``torch.func``)."""
    compiling = torch.compiler.is_compiling()
    for xs in lists:
        if not xs:
            continue
        first = xs[0]
        if not isinstance(first, Tensor) or (not compiling and _is_functorch_wrapped(first)):
            return False
        for x in xs:
            if x.layout is not torch.strided:
                return False
    return True


def _aslist(result: Any) -> list[Tensor]:
    return result if isinstance(result, list) else list(result)


def _broadcast(value: ScalarOrList, n: int) -> Sequence[Scalar]:
    if isinstance(value, list | tuple):
        if len(value) != n:
            raise ValueError(f"expected {n} per-tensor values, got {len(value)}")
        return value
    return [value] * n


def _is_scalar_list(value: Any) -> bool:
    return isinstance(value, list | tuple) and all(isinstance(v, float | int) for v in value)


# ----------------------------------------------------------------------------- scalars


def scalar(x: Scalar) -> Scalar:
    """A hyperparameter as a Python number when that is safe (concrete tensor), else unchanged."""
    if isinstance(x, Tensor) and not is_traced(x):
        return x.item()
    return x


def step_values(steps: Sequence[Tensor]) -> list[float] | list[Tensor]:
    """Per-parameter step counters as Python floats (concrete) or 0-dim float64 tensors (traced)."""
    if not steps:
        return []
    if any(is_traced(s) for s in steps[:1]) or torch.compiler.is_compiling():
        return [s.to(torch.float64) for s in steps]
    return torch.stack([s.detach().to("cpu", torch.float64) for s in steps]).tolist()


def is_python_number(*values: Any) -> bool:
    return all(isinstance(v, float | int) for v in values)


# ----------------------------------------------------------------------------- elementwise ops
# ``other`` may be a tensor list, a scalar, or a per-tensor list of scalars / 0-dim tensors.


def add(xs: list[Tensor], other: Any, alpha: Scalar = 1) -> list[Tensor]:
    """``x + alpha * other`` per tensor; ``other`` is a tensor list, a scalar or per-tensor scalars."""
    if isinstance(other, list | tuple) and other and isinstance(other[0], Tensor):
        if isinstance(alpha, float | int):
            if use_foreach(xs, other):
                return _aslist(torch._foreach_add(xs, list(other), alpha=alpha))
            return [torch.add(x, o, alpha=alpha) for x, o in zip(xs, other, strict=True)]
        return [x + alpha * o for x, o in zip(xs, other, strict=True)]
    if not (isinstance(alpha, float | int) and alpha == 1):
        other = [o * alpha for o in other] if isinstance(other, list | tuple) else other * alpha
    return _binary("add", xs, other)


def sub(xs: list[Tensor], ys: list[Tensor]) -> list[Tensor]:
    """``x - y`` per tensor."""
    if use_foreach(xs, ys):
        return _aslist(torch._foreach_sub(xs, ys))
    return [x - y for x, y in zip(xs, ys, strict=True)]


def mul(xs: list[Tensor], other: Any) -> list[Tensor]:
    """``x * other`` per tensor."""
    return _binary("mul", xs, other)


def div(xs: list[Tensor], other: Any) -> list[Tensor]:
    """``x / other`` per tensor."""
    return _binary("div", xs, other)


def maximum(xs: list[Tensor], ys: list[Tensor]) -> list[Tensor]:
    """Elementwise ``max(x, y)``."""
    if use_foreach(xs, ys):
        return _aslist(torch._foreach_maximum(xs, ys))
    return [torch.maximum(x, y) for x, y in zip(xs, ys, strict=True)]


def _binary(name: str, xs: list[Tensor], other: Any) -> list[Tensor]:
    torch_op = getattr(torch, name)
    if isinstance(other, list | tuple):
        if use_foreach(xs) and (
            _is_scalar_list(other) or (use_foreach(other) and all(isinstance(o, Tensor) for o in other))
        ):
            return _aslist(getattr(torch, f"_foreach_{name}")(xs, list(other)))
        return [torch_op(x, o) for x, o in zip(xs, other, strict=True)]
    if use_foreach(xs) and (isinstance(other, float | int) or not is_traced(other)):
        return _aslist(getattr(torch, f"_foreach_{name}")(xs, other))
    return [torch_op(x, other) for x in xs]


def lerp(xs: list[Tensor], ys: list[Tensor], weight: Scalar) -> list[Tensor]:
    """``x + weight * (y - x)`` per tensor (``torch.lerp``)."""
    if isinstance(weight, float | int) and use_foreach(xs, ys):
        return _aslist(torch._foreach_lerp(xs, ys, weight))
    return [torch.lerp(x, y, weight) for x, y in zip(xs, ys, strict=True)]


def addcmul(xs: list[Tensor], ys: list[Tensor], zs: list[Tensor], value: ScalarOrList = 1) -> list[Tensor]:
    """``x + value * y * z`` per tensor."""
    if use_foreach(xs, ys, zs) and (isinstance(value, float | int) or _is_scalar_list(value)):
        return _aslist(
            torch._foreach_addcmul(xs, ys, zs, value if not isinstance(value, tuple) else list(value))
        )
    vs = _broadcast(value, len(xs))
    return [
        torch.addcmul(x, y, z, value=v) if isinstance(v, float | int) else x + v * y * z
        for x, y, z, v in zip(xs, ys, zs, vs, strict=True)
    ]


def addcdiv(xs: list[Tensor], ys: list[Tensor], zs: list[Tensor], value: ScalarOrList = 1) -> list[Tensor]:
    """``x + value * y / z`` per tensor."""
    if use_foreach(xs, ys, zs) and (isinstance(value, float | int) or _is_scalar_list(value)):
        return _aslist(
            torch._foreach_addcdiv(xs, ys, zs, value if not isinstance(value, tuple) else list(value))
        )
    vs = _broadcast(value, len(xs))
    return [
        torch.addcdiv(x, y, z, value=v) if isinstance(v, float | int) else x + v * y / z
        for x, y, z, v in zip(xs, ys, zs, vs, strict=True)
    ]


def _unary(name: str, xs: list[Tensor]) -> list[Tensor]:
    if use_foreach(xs):
        return _aslist(getattr(torch, f"_foreach_{name}")(xs))
    return [getattr(torch, name)(x) for x in xs]


def sqrt(xs: list[Tensor]) -> list[Tensor]:
    """``sqrt(x)`` per tensor. When gradients can flow (``requires_grad`` or under ``torch.func``)
    the derivative at ``x == 0`` is taken as 0 instead of ``inf`` (which would turn into NaN
    meta-gradients for a zero second moment); the forward values are unchanged."""
    if xs and (xs[0].requires_grad or (not torch.compiler.is_compiling() and _is_functorch_wrapped(xs[0]))):
        return [_sqrt_safe_at_zero(x) for x in xs]
    return _unary("sqrt", xs)


def _sqrt_safe_at_zero(x: Tensor) -> Tensor:
    positive = x > 0
    return torch.where(positive, torch.where(positive, x, torch.ones_like(x)).sqrt(), torch.zeros_like(x))


def abs(xs: list[Tensor]) -> list[Tensor]:
    return _unary("abs", xs)


def neg(xs: list[Tensor]) -> list[Tensor]:
    return _unary("neg", xs)


def sign(xs: list[Tensor]) -> list[Tensor]:
    return _unary("sign", xs)


def reciprocal(xs: list[Tensor]) -> list[Tensor]:
    """``1 / x`` per tensor (torch evaluates ``scalar / tensor`` as ``tensor.reciprocal() * scalar``)."""
    return _unary("reciprocal", xs)


def square(xs: list[Tensor]) -> list[Tensor]:
    """``x * x`` per tensor."""
    if use_foreach(xs):
        return _aslist(torch._foreach_mul(xs, xs))
    return [x * x for x in xs]


def clone(xs: list[Tensor]) -> list[Tensor]:
    return [x.clone() for x in xs]


def zeros_like(xs: list[Tensor]) -> list[Tensor]:
    return [torch.zeros_like(x) for x in xs]


def clamp(xs: list[Tensor], min: Scalar | None = None, max: Scalar | None = None) -> list[Tensor]:
    """Elementwise clamp to ``[min, max]``."""
    if use_foreach(xs) and is_python_number(*(v for v in (min, max) if v is not None)):
        out = xs
        if min is not None:
            out = _aslist(torch._foreach_clamp_min(out, min))
        if max is not None:
            out = _aslist(torch._foreach_clamp_max(out, max))
        return out
    return [torch.clamp(x, min=min, max=max) for x in xs]


def norm(xs: list[Tensor]) -> list[Tensor]:
    """The L2 norm of each tensor (0-dim tensors)."""
    if use_foreach(xs):
        return _aslist(torch._foreach_norm(xs))
    return [torch.linalg.vector_norm(x) for x in xs]


# ----------------------------------------------------------------------------- complex numbers


def view_as_real(xs: Sequence[Tensor | None]) -> list[Tensor | None]:
    """Complex tensors as real views of shape ``(..., 2)`` (``torch.optim``'s treatment of complex
    parameters); real tensors and ``None`` are returned as they are."""
    return [torch.view_as_real(x) if x is not None and x.is_complex() else x for x in xs]


def view_as_complex_like(xs: Sequence[Tensor], like: Sequence[Tensor]) -> list[Tensor]:
    """Undo :func:`view_as_real` for the tensors whose counterpart in ``like`` is complex."""
    return [
        torch.view_as_complex(x if x.is_contiguous() else x.contiguous()) if ref.is_complex() else x
        for x, ref in zip(xs, like, strict=True)
    ]
