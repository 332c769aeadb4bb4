"""The averaging maths, written once over lists of tensors and shared by every public API.

Each function returns **new** tensors (nothing is written into its inputs) and reproduces the
expression ``torch.optim.swa_utils`` evaluates, so that the pure averagers, the ``get_*_fn``
factories and [`AveragedModel`][] give torch's numbers exactly:

* ``swa_lerp``   -- ``get_swa_multi_avg_fn``: ``lerp(avg, cur, 1/(n+1))`` (float/complex),
* ``swa_div``    -- ``get_swa_avg_fn``: ``avg + (cur - avg) / (n+1)``,
* ``swa_default``-- what ``AveragedModel`` does without an averaging function: ``swa_lerp`` on
  devices with foreach kernels (CUDA...), ``swa_div`` elsewhere (CPU),
* ``ema_lerp``   -- ``get_ema_multi_avg_fn``: ``lerp(ema, cur, 1-decay)`` (float/complex),
* ``ema_affine`` -- ``get_ema_avg_fn``: ``decay*ema + (1-decay)*cur``.

Integer tensors (``num_batches_tracked`` when buffers are averaged) follow torch too: the
expression is evaluated with torch's type promotion and the result is cast back (truncated), as
``Tensor.copy_`` does.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from functional_optim import ops


def foreach_device_types() -> tuple[str, ...]:
    """Device types on which torch's ``AveragedModel`` uses the foreach (lerp) SWA update."""
    try:
        from torch.utils._foreach_utils import _get_foreach_kernels_supported_devices

        return tuple(_get_foreach_kernels_supported_devices())
    except ImportError:  # pragma: no cover - older/newer torch layouts
        return ("cuda", "xpu")


def is_float(t: Tensor) -> bool:
    return t.is_floating_point() or t.is_complex()


def cast_like(values: Sequence[Tensor], like: Sequence[Tensor]) -> list[Tensor]:
    """``values`` in the dtypes of ``like`` (what ``like[i].copy_(values[i])`` would store)."""
    return [v if v.dtype == r.dtype else v.to(r.dtype) for v, r in zip(values, like, strict=True)]


def copy(cur: Sequence[Tensor], like: Sequence[Tensor]) -> list[Tensor]:
    """The first average: a copy of ``cur`` in the dtype of ``like``."""
    return [c.to(r.dtype, copy=True) for c, r in zip(cur, like, strict=True)]


def _reciprocal(n: Tensor | int) -> float | Tensor:
    """``1/(n+1)`` as torch's ``get_swa_multi_avg_fn`` computes it: with a tensor ``n`` it is a
    default-dtype tensor division (float32 usually) whose value is then read as a Python scalar."""
    w = 1 / (n + 1)
    return ops.scalar(w) if isinstance(w, Tensor) else w


def _real_dtype(t: Tensor) -> torch.dtype:
    return t.real.dtype if t.is_complex() else t.dtype


def lerp(avg: list[Tensor], cur: list[Tensor], weight: float | Tensor) -> list[Tensor]:
    """``avg + weight * (cur - avg)`` for float/complex tensors (a tensor weight is cast per tensor)."""
    if isinstance(weight, Tensor):
        return [torch.lerp(a, c, weight.to(_real_dtype(a))) for a, c in zip(avg, cur, strict=True)]
    return ops.lerp(avg, cur, weight)


def swa_lerp(avg: list[Tensor], cur: list[Tensor], n: Tensor | int) -> list[Tensor]:
    """``get_swa_multi_avg_fn``'s update of one (device, dtype) group (``n`` models already averaged)."""
    if not avg:
        return []
    if is_float(avg[0]):
        return lerp(avg, cur, _reciprocal(n))
    diffs = torch._foreach_sub(list(cur), list(avg))
    if isinstance(n, Tensor):
        return list(torch._foreach_addcdiv(list(avg), diffs, [n + 1] * len(avg)))
    return list(torch._foreach_add(list(avg), diffs, alpha=1.0 / (n + 1)))


def swa_div(avg: list[Tensor], cur: list[Tensor], n: Tensor | int) -> list[Tensor]:
    """``get_swa_avg_fn``'s update ``avg + (cur - avg) / (n + 1)``, cast back to ``avg``'s dtype."""
    if isinstance(n, Tensor) and not ops.is_traced(n):
        n = int(n.item())  # dividing by the long tensor or by the int gives the same numbers
    if avg and all(is_float(a) for a in avg) and not isinstance(n, Tensor):
        return ops.add(avg, ops.div(ops.sub(cur, avg), n + 1))
    return cast_like([a + (c - a) / (n + 1) for a, c in zip(avg, cur, strict=True)], avg)


def swa_default(avg: list[Tensor], cur: list[Tensor], n: Tensor | int) -> list[Tensor]:
    """``AveragedModel``'s default update: foreach lerp on foreach devices, per-tensor division elsewhere."""
    out: list[Tensor | None] = [None] * len(avg)
    groups: dict[tuple[torch.device, torch.dtype], list[int]] = {}
    for i, a in enumerate(avg):
        groups.setdefault((a.device, a.dtype), []).append(i)
    fast = foreach_device_types()
    for (device, _), idx in groups.items():
        a_g, c_g = [avg[i] for i in idx], [cur[i] for i in idx]
        n_g = n.to(device) if isinstance(n, Tensor) else n
        new = swa_lerp(a_g, c_g, n_g) if device.type in fast else swa_div(a_g, c_g, n_g)
        for i, v in zip(idx, cast_like(new, a_g), strict=True):
            out[i] = v
    return out  # type: ignore[return-value]


def ema_lerp(avg: list[Tensor], cur: list[Tensor], decay: float | Tensor) -> list[Tensor]:
    """``get_ema_multi_avg_fn``'s update: ``lerp(ema, cur, 1 - decay)`` (float/complex), else
    ``ema*decay + cur*(1-decay)`` cast back."""
    if not avg:
        return []
    if is_float(avg[0]):
        return lerp(avg, cur, 1 - decay)
    return cast_like([a * decay + c * (1 - decay) for a, c in zip(avg, cur, strict=True)], avg)


def ema_affine(avg: Tensor, cur: Tensor, decay: float) -> Tensor:
    """``get_ema_avg_fn``'s update ``decay*ema + (1-decay)*cur`` (one tensor)."""
    return decay * avg + (1 - decay) * cur


def weighted(avg: list[Tensor], cur: list[Tensor], weight: float | Tensor) -> list[Tensor]:
    """``avg + weight * (cur - avg)`` for any dtype (integers: evaluated then cast back)."""
    out: list[Tensor | None] = [None] * len(avg)
    fl = [i for i, a in enumerate(avg) if is_float(a)]
    other = [i for i, a in enumerate(avg) if not is_float(a)]
    if fl:
        for i, v in zip(fl, lerp([avg[i] for i in fl], [cur[i] for i in fl], weight), strict=True):
            out[i] = v
    for i in other:
        a, c = avg[i], cur[i]
        out[i] = (a + weight * (c - a)).to(a.dtype)
    return out  # type: ignore[return-value]
