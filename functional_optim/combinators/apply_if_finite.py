"""``apply_if_finite``: skip the steps whose gradient holds a NaN or an infinity."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor

from functional_optim import tree
from functional_optim.combinators._select import select_tree
from functional_optim.core import Combinator, GradientTransformation, Params, Updates

__all__ = ["ApplyIfFiniteState", "all_finite", "apply_if_finite"]


class ApplyIfFiniteState(NamedTuple):
    """State of [`apply_if_finite`][].

    Attributes:
      notfinite_count: consecutive non-finite steps so far (0-dim int64).
      last_finite: whether the last gradient was finite (0-dim bool).
      total_notfinite: non-finite steps in total (0-dim int64).
      inner_state: the wrapped transform's state.
    """

    notfinite_count: Tensor
    last_finite: Tensor
    total_notfinite: Tensor
    inner_state: Any


def _device(params: Params) -> torch.device:
    for leaf in tree.leaves(params):
        if isinstance(leaf, Tensor):
            return leaf.device
    return torch.device("cpu")


def all_finite(updates: Updates) -> Tensor:
    """A 0-dim bool tensor: every element of every non-``None`` leaf is finite (no sync)."""
    checks = []
    for u in tree.leaves(updates):
        if u is None:
            continue
        values = u.coalesce().values() if u.is_sparse else u
        checks.append(torch.isfinite(values).all())
    if not checks:
        return torch.ones((), dtype=torch.bool)
    device = checks[0].device
    return torch.stack([c.to(device) for c in checks]).all()


def apply_if_finite(inner: GradientTransformation, max_consecutive_errors: int) -> GradientTransformation:
    r"""Apply ``inner`` only when the gradient is finite; otherwise return zero updates and keep
    the inner state bit for bit.

    ```text
    finite  = all(isfinite(g))
    count   = 0 if finite else count + 1          # consecutive non-finite steps
    apply   = finite or count > max_consecutive_errors
    u, s    = inner(g, s)   if apply   else   0, s
    ```

    After more than ``max_consecutive_errors`` consecutive bad steps the update is applied
    anyway (optax's semantics: a persistent problem surfaces instead of silently stalling).

    The decision is never taken on the host: the inner update is always computed and the result
    is chosen leaf by leaf with ``torch.where``, so ``update`` stays pure and traceable
    (``vmap``/``grad``/``torch.compile``) and needs no device synchronisation. On a skipped
    step the returned inner state holds the old values exactly. The counters live on the device
    of the first parameter. ``None`` gradients stay ``None``.

    Args:
      inner: the transform to protect.
      max_consecutive_errors: how many consecutive non-finite steps to skip (int >= 0).

    Example::

        opt = fo.apply_if_finite(fo.adamw(1e-3), max_consecutive_errors=5)

    References:
      optax.apply_if_finite (DeepMind).
    """
    if not isinstance(inner, GradientTransformation):
        raise ValueError(
            f"apply_if_finite: inner must be a GradientTransformation, got {type(inner).__name__}"
        )
    if isinstance(max_consecutive_errors, bool) or not isinstance(max_consecutive_errors, int):
        raise ValueError(f"max_consecutive_errors must be an int, got {max_consecutive_errors!r}")
    if max_consecutive_errors < 0:
        raise ValueError(f"max_consecutive_errors must be >= 0, got {max_consecutive_errors}")

    def init_fn(params: Params) -> ApplyIfFiniteState:
        device = _device(params)
        zero = torch.zeros((), dtype=torch.int64, device=device)
        return ApplyIfFiniteState(
            zero, torch.ones((), dtype=torch.bool, device=device), zero.clone(), inner.init(params)
        )

    def update_fn(updates: Updates, state: ApplyIfFiniteState, params: Params | None = None, **extra: Any):
        device = state.notfinite_count.device
        finite = all_finite(updates).to(device)
        notfinite_count = torch.where(
            finite, torch.zeros_like(state.notfinite_count), state.notfinite_count + 1
        )
        total_notfinite = state.total_notfinite + (~finite).to(state.total_notfinite.dtype)
        apply = finite | (notfinite_count > max_consecutive_errors)
        new_updates, new_inner = inner.update(updates, state.inner_state, params, **extra)
        out = select_tree(apply, new_updates, tree.zeros_like(new_updates))
        inner_state = select_tree(apply, new_inner, state.inner_state)
        return out, ApplyIfFiniteState(notfinite_count, finite, total_notfinite, inner_state)

    return GradientTransformation(init_fn, update_fn, Combinator((inner,), keeps_old_state=True))
