"""``zero_nans``: replace NaN gradients by zeros and record where they were."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor

from functional_optim import tree
from functional_optim._leafwise import update_leaves
from functional_optim.core import GradientTransformation, Params, Updates

__all__ = ["ZeroNansState", "zero_nans"]


class ZeroNansState(NamedTuple):
    """State of [`zero_nans`][].

    Attributes:
      found_nan: per parameter, whether its last gradient held a NaN (0-dim bool tensors).
    """

    found_nan: Any


def zero_nans() -> GradientTransformation:
    r"""Replace every NaN in the updates by 0: ``u = where(isnan(g), 0, g)`` (infinities are kept).

    ``state.found_nan`` tells, per parameter, whether the last gradient had a NaN. ``None``
    gradients stay ``None`` and keep their flag.

    Example:
        >>> opt = fo.zero_nans()
        >>> g = {"w": torch.tensor([float("nan"), 2.0])}
        >>> updates, state = opt.update(g, opt.init(g))
        >>> updates["w"], state.found_nan["w"]
        (tensor([0., 2.]), tensor(True))

    References:
      optax.zero_nans (DeepMind).
    """

    def init_fn(params: Params) -> ZeroNansState:
        return ZeroNansState(
            tree.map(
                lambda p: None if p is None else torch.zeros((), dtype=torch.bool, device=p.device), params
            )
        )

    def update_fn(updates: Updates, state: ZeroNansState, params: Params | None = None, **extra: Any):
        del params, extra

        def fn(grads: list[Tensor], fields: list[list[Tensor]], _: Any):
            nans = [torch.isnan(g) for g in grads]
            out = [torch.where(n, torch.zeros_like(g), g) for g, n in zip(grads, nans, strict=True)]
            return out, [[n.any() for n in nans]]

        new_u, (found,) = update_leaves(fn, updates, [state.found_nan], name="zero_nans")
        return new_u, ZeroNansState(found)

    return GradientTransformation(init_fn, update_fn)
