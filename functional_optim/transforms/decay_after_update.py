"""``decay_after_update``: weight decay applied to the already-updated parameters."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor

from functional_optim import _validation, ops, tree
from functional_optim._leafwise import update_leaves
from functional_optim.core import GradientTransformation, Hyperparam, Params, Updates
from functional_optim.hyperparams import schedulable

__all__ = ["DecayAfterUpdateState", "decay_after_update"]


class DecayAfterUpdateState(NamedTuple):
    """Per-parameter state of [`decay_after_update`][].

    Attributes:
      count: calls that had a gradient for this parameter (0-dim int64), to skip the first
        ``skip_steps`` of them.
    """

    count: Any


@schedulable("weight_decay", "learning_rate")
def decay_after_update(
    weight_decay: Hyperparam, learning_rate: Hyperparam, *, skip_steps: int = 0
) -> GradientTransformation:
    r"""Decay the parameters *after* the update is applied: ``p ← (p + u)(1 - lr·wd)``.

    $$
    u \leftarrow u - \mathrm{lr}\cdot\mathrm{wd}\,(p + u)
    $$

    Put it last in a chain (after [`scale_by_learning_rate`][]). It differs from decoupled decay
    before the step (``p(1 - lr·wd) + u``) by the factor ``1 - lr·wd`` on ``u``; the official SOAP
    code decays this way (``p.add_(p, alpha=-lr·wd)`` after ``p.add_(u)``).

    Args:
      weight_decay: ``wd`` (float, 0-dim tensor or schedule), ``>= 0``.
      learning_rate: ``lr`` (float, 0-dim tensor or schedule).
      skip_steps: no decay during a parameter's first ``skip_steps`` steps (SOAP's first step only
        builds its preconditioner, and the official code does not decay then).

    Examples:
        >>> import torch
        >>> import functional_optim as fo
        >>> tx = fo.chain(fo.scale_by_learning_rate(0.1), fo.decay_after_update(0.5, 0.1))
        >>> p = {"w": torch.tensor([1.0])}
        >>> u, _ = tx.update({"w": torch.tensor([1.0])}, tx.init(p), p)
        >>> round(float(u["w"][0]), 6)  # (1 - 0.1)(1 - 0.05) - 1
        -0.145

    References:
      Vyas et al., "SOAP", arXiv:2409.11321, 2024 (official code's "fixed version" of AdamW decay).
    """
    _validation.nonnegative("weight_decay", weight_decay)
    if not isinstance(skip_steps, int) or skip_steps < 0:
        raise ValueError(f"decay_after_update: skip_steps must be a non-negative int, got {skip_steps!r}")

    def init_fn(params: Params) -> DecayAfterUpdateState:
        return DecayAfterUpdateState(
            tree.map(lambda p: None if p is None else torch.zeros((), dtype=torch.int64), params)
        )

    def update_fn(updates: Updates, state: DecayAfterUpdateState, params: Params | None = None, **extra: Any):
        del extra
        factor = ops.scalar(learning_rate) * ops.scalar(weight_decay)

        def decay(us: list[Tensor], fields: list[list[Tensor]], ps: Any):
            (counts,) = fields
            off = isinstance(factor, float | int) and factor == 0
            out = [
                u if off or int(c) < skip_steps else u - (p + u) * factor
                for u, p, c in zip(us, ps, counts, strict=True)
            ]
            return out, [[c + 1 for c in counts]]

        new_updates, (counts,) = update_leaves(
            decay, updates, [state.count], params, name="decay_after_update", need_params=True
        )
        return new_updates, DecayAfterUpdateState(counts)

    return GradientTransformation(init_fn, update_fn)
