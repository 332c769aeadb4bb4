"""``scale_by_proximal_decay``: the proximal (implicit) form of weight decay, ``1 / (1 + lr·wd)``."""

from __future__ import annotations

from typing import Any

from functional_optim import _validation, ops, tree
from functional_optim.core import (
    EmptyState,
    GradientTransformation,
    Hyperparam,
    Params,
    ProximalDecay,
    Updates,
)
from functional_optim.hyperparams import schedulable

__all__ = ["scale_by_proximal_decay"]


@schedulable("learning_rate", "weight_decay")
def scale_by_proximal_decay(learning_rate: Hyperparam, weight_decay: Hyperparam) -> GradientTransformation:
    r"""Divide the update by ``1 + lr·wd``.

    Placed as ``chain(..., add_decayed_weights(wd), scale_by_proximal_decay(lr, wd),
    scale_by_learning_rate(lr))`` it gives the proximal weight decay of Adan (the authors'
    default, ``no_prox=False``):

    $$
    p \leftarrow \frac{p - \mathrm{lr}\, u}{1 + \mathrm{lr}\,\lambda}
    = p - \mathrm{lr}\,\frac{u + \lambda p}{1 + \mathrm{lr}\,\lambda}
    $$

    which the adapters apply in place as the authors' code does: the step, then
    ``p.div_(1 + lr·λ)``.

    Args:
      learning_rate: the learning rate of the chain (the same value or schedule).
      weight_decay: ``λ``.

    Examples:
        >>> tx = fo.scale_by_proximal_decay(0.5, 2.0)
        >>> tx.update([torch.tensor([4.0])], tx.init(None))[0][0]
        tensor([2.])

    References:
      Xie et al., "Adan", TPAMI 2024 (Algorithm 1, proximal step).
    """
    _validation.nonnegative("weight_decay", weight_decay, "weight_decay value")

    def init_fn(params: Params) -> EmptyState:
        del params
        return EmptyState()

    def update_fn(updates: Updates, state: EmptyState, params: Params | None = None, **extra: Any):
        del params, extra
        factor = 1 / (1 + ops.scalar(learning_rate) * ops.scalar(weight_decay))
        leaves, spec = tree.flatten(updates)
        present = [u for u in leaves if u is not None]
        if not present:
            return updates, state
        scaled = iter(ops.mul(present, factor))
        return tree.unflatten(spec, [None if u is None else next(scaled) for u in leaves]), state

    return GradientTransformation(init_fn, update_fn, ProximalDecay(learning_rate, weight_decay))
