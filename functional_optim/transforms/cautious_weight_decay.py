"""``add_cautious_decayed_weights``: decoupled weight decay only where it agrees with the update."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from functional_optim import _validation, ops
from functional_optim._leafwise import update_leaves
from functional_optim.core import EmptyState, GradientTransformation, Hyperparam, Params, Updates
from functional_optim.hyperparams import schedulable

__all__ = ["add_cautious_decayed_weights"]


@schedulable("weight_decay")
def add_cautious_decayed_weights(weight_decay: Hyperparam = 0.0) -> GradientTransformation:
    r"""Cautious weight decay (Chen et al., 2025): decay a coordinate only where the update
    already moves it towards zero.

    Placed where decoupled decay goes (just before [`scale_by_learning_rate`][]), with
    $u$ the incoming direction and $x$ the parameters:

    $$
    u' = u + \lambda\, \mathbb 1[u \odot x \ge 0] \odot x
    $$

    so that the step $x \leftarrow x - \eta u'$ decays exactly the coordinates whose update
    has the sign of the parameter.

    Args:
      weight_decay: $\lambda$ (float, 0-dim tensor or schedule).

    Examples:
        >>> opt = fo.chain(fo.scale_by_adam(), fo.add_cautious_decayed_weights(0.1),
        ...                fo.scale_by_learning_rate(1e-3))
        >>> params = {"w": torch.tensor([1.0, -1.0])}
        >>> updates, _ = opt.update({"w": torch.tensor([1.0, 1.0])}, opt.init(params), params)
        >>> [round(v, 6) for v in updates["w"].tolist()]
        [-0.0011, -0.001]

    References:
      Chen, Liang, Liu et al., "Cautious Weight Decay", arXiv:2510.12402, 2025.
    """
    _validation.nonnegative("weight_decay", weight_decay, "weight_decay value")

    def init_fn(params: Params) -> EmptyState:
        del params
        return EmptyState()

    def update_fn(updates: Updates, state: EmptyState, params: Params | None = None, **extra: Any):
        del extra
        wd = ops.scalar(weight_decay)

        def decay(grads: list[Tensor], fields: Any, ps: list[Tensor]):
            del fields
            return [u + wd * (u * p >= 0).to(p.dtype) * p for u, p in zip(grads, ps, strict=True)], []

        new_updates, _ = update_leaves(
            decay, updates, [], params, name="add_cautious_decayed_weights", need_params=True
        )
        return new_updates, state

    return GradientTransformation(init_fn, update_fn)
