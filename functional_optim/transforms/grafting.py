"""``graft``: the per-tensor magnitude of one rule with the direction of another."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor

from functional_optim import tree
from functional_optim.core import GradientTransformation, Params, Updates

__all__ = ["GraftState", "graft"]


class GraftState(NamedTuple):
    """State of [`graft`][]: the states of both rules (and, with ``warmup``, the number of
    calls, a 0-dim int64 tensor; ``()`` otherwise)."""

    magnitude_state: Any
    direction_state: Any
    count: Any = ()


def _grafted(m: Tensor, d: Tensor) -> Tensor:
    nm, nd = torch.linalg.vector_norm(m), torch.linalg.vector_norm(d)
    return d * (nm / torch.where(nd > 0, nd, torch.ones_like(nd)))


def graft(
    magnitude: GradientTransformation, direction: GradientTransformation, *, warmup: int = 0
) -> GradientTransformation:
    r"""Layer-wise grafting (Agarwal et al., 2020): run both rules on the same input and return,
    per tensor, the direction of one scaled to the norm of the other.

    $$
    u = \frac{\lVert M(g)\rVert}{\lVert D(g)\rVert}\, D(g)
    \qquad (u = 0 \text{ where } D(g) = 0)
    $$

    As Shampoo's grafting (``D`` = the preconditioned gradient, ``M`` = Adagrad/Adam). Both rules
    keep their own state and see the same extras (``apply_to`` included, see
    [`precondition_momentum`][functional_optim.combinators.precondition_momentum]); ``None`` gradients stay
    ``None``. With
    ``warmup = k`` the first ``k`` calls return ``M(g)`` itself (Distributed Shampoo's grafting
    method before ``start_preconditioning_step``); both rules still run.

    Args:
      magnitude: the rule whose per-tensor norm is kept (e.g. ``fo.scale_by_adam()``).
      direction: the rule whose direction is kept (e.g. ``fo.scale_by_sign()``).
      warmup: the number of first calls that return the magnitude rule's update.

    Example:
      >>> opt = fo.graft(fo.scale_by_adam(), fo.orthogonalize())
      >>> params = {"w": torch.ones(2, 2)}
      >>> updates, _ = opt.update({"w": torch.eye(2)}, opt.init(params), params)
      >>> updates["w"].shape
      torch.Size([2, 2])

    References:
      Agarwal, Anil, Hazan, Koren & Zhang, "Disentangling Adaptive Gradient Methods from Learning
      Rates", arXiv:2002.11803, 2020; Anil et al., "Scalable Second Order Optimization for Deep
      Learning" (Shampoo grafting), 2020.
    """

    if not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"graft: warmup must be an int >= 0, got {warmup!r}")

    def init_fn(params: Params) -> GraftState:
        count = torch.zeros((), dtype=torch.int64) if warmup else ()
        return GraftState(magnitude.init(params), direction.init(params), count)

    def update_fn(updates: Updates, state: GraftState, params: Params | None = None, **extra: Any):
        mags, m_state = magnitude.update(updates, state.magnitude_state, params, **extra)
        dirs, d_state = direction.update(updates, state.direction_state, params, **extra)
        count = state.count
        if warmup:
            count = count + 1
            if int(count) <= warmup:
                return mags, GraftState(m_state, d_state, count)
        m_leaves, spec = tree.flatten(mags)
        d_leaves = tree.flatten_like(spec, dirs, "graft: direction updates")
        out = [
            None if m is None or d is None else _grafted(m, d)
            for m, d in zip(m_leaves, d_leaves, strict=True)
        ]
        return tree.unflatten(spec, out), GraftState(m_state, d_state, count)

    return GradientTransformation(init_fn, update_fn)
