"""``skip_large_updates``: drop the steps whose update is too large."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor

from functional_optim import _validation, tree
from functional_optim.combinators._select import select_tree
from functional_optim.combinators.apply_if_finite import _device
from functional_optim.core import Combinator, GradientTransformation, Params, Updates

__all__ = ["SkipLargeUpdatesState", "skip_large_updates"]


class SkipLargeUpdatesState(NamedTuple):
    """State of [`skip_large_updates`][].

    Attributes:
      skipped: whether the last step was skipped (0-dim bool).
      total_skipped: steps skipped so far (0-dim int64).
      inner_state: the wrapped transform's state.
    """

    skipped: Tensor
    total_skipped: Tensor
    inner_state: Any


def squared_norm(updates: Updates) -> Tensor:
    """``sum_i ||u_i||²`` over the non-``None`` leaves, accumulated in float32 or wider."""
    terms = []
    for u in tree.leaves(updates):
        if u is None:
            continue
        x = u.to_dense() if u.is_sparse else u
        if x.is_complex():
            x = torch.view_as_real(x)
        if x.dtype not in (torch.float32, torch.float64):
            x = x.float()
        terms.append(torch.sum(x * x))
    if not terms:
        return torch.zeros(())
    device, dtype = terms[0].device, torch.promote_types(terms[0].dtype, torch.float32)
    return torch.stack([t.to(device, dtype) for t in terms]).sum()


def skip_large_updates(inner: GradientTransformation, max_squared_norm: float) -> GradientTransformation:
    r"""Skip the step (zero updates, inner state kept bit for bit) when the squared norm of the
    inner transform's update exceeds ``max_squared_norm`` or is not finite.

    $$
    u, s' = T(g, s);\qquad (u, s) \leftarrow \begin{cases}(u, s') & \sum_i \|u_i\|^2 \le \tau \\
    (0, s) & \text{otherwise}\end{cases}
    $$

    The test is on the step actually taken (the inner transform's output). As in
    [`apply_if_finite`][], the choice is made with ``torch.where`` (pure, traceable, no device
    sync).

    Args:
      inner: the transform whose updates are checked.
      max_squared_norm: the threshold ``τ`` on ``sum ||u||²`` (> 0).

    Example::

        opt = fo.skip_large_updates(fo.sgd(0.1), max_squared_norm=1.0)

    References:
      optax.skip_large_updates (DeepMind), used with MultiSteps' ``should_skip_update_fn``.
    """
    if not isinstance(inner, GradientTransformation):
        raise ValueError(
            f"skip_large_updates: inner must be a GradientTransformation, got {type(inner).__name__}"
        )
    _validation.require(
        lambda v: v > 0, max_squared_norm, f"max_squared_norm must be > 0, got {max_squared_norm}"
    )

    def init_fn(params: Params) -> SkipLargeUpdatesState:
        device = _device(params)
        return SkipLargeUpdatesState(
            torch.zeros((), dtype=torch.bool, device=device),
            torch.zeros((), dtype=torch.int64, device=device),
            inner.init(params),
        )

    def update_fn(updates: Updates, state: SkipLargeUpdatesState, params: Params | None = None, **extra: Any):
        new_u, new_inner = inner.update(updates, state.inner_state, params, **extra)
        sq = squared_norm(new_u).to(state.skipped.device)
        ok = sq <= max_squared_norm  # False for NaN
        out = select_tree(ok, new_u, tree.zeros_like(new_u))
        inner_state = select_tree(ok, new_inner, state.inner_state)
        total = state.total_skipped + (~ok).to(state.total_skipped.dtype)
        return out, SkipLargeUpdatesState(~ok, total, inner_state)

    return GradientTransformation(init_fn, update_fn, Combinator((inner,), keeps_old_state=True))
