"""``add_decayed_weights``: L2 regularisation and decoupled weight decay."""

from __future__ import annotations

from typing import Any

from functional_optim import _validation, fusion, ops
from functional_optim._leafwise import update_leaves
from functional_optim.core import EmptyState, GradientTransformation, Hyperparam, Params, Updates
from functional_optim.hyperparams import schedulable

__all__ = ["add_decayed_weights"]


@schedulable("weight_decay")
def add_decayed_weights(weight_decay: Hyperparam = 0.0) -> GradientTransformation:
    """Add the decayed parameters to the update: ``u = g + wd · p``.

    Where it sits in a chain decides which weight decay it is:

    * first (before the adaptive scaling): L2 regularisation, ``torch.optim``'s ``weight_decay``
      of SGD, Adam, RMSprop... (``grad = grad + wd * param``);
    * just before :func:`scale_by_learning_rate`: decoupled weight decay (AdamW, Loshchilov &
      Hutter 2019), equal to ``torch.optim``'s ``param.mul_(1 - lr * wd)``.

    Args:
      weight_decay: a float, a 0-dim tensor, or a schedule.

    Example::

        adamw = chain(scale_by_adam(), add_decayed_weights(0.01), scale_by_learning_rate(1e-3))
    """
    _validation.nonnegative("weight_decay", weight_decay, "weight_decay value")

    def init_fn(params: Params) -> EmptyState:
        del params
        return EmptyState()

    def update_fn(updates: Updates, state: EmptyState, params: Params | None = None, **extra: Any):
        del extra
        wd = ops.scalar(weight_decay)
        if isinstance(wd, float | int) and wd == 0:
            return updates, state

        def decay(grads, fields, ps):
            del fields
            dense = [i for i, g in enumerate(grads) if not g.is_sparse]
            if len(dense) != len(grads):
                raise RuntimeError("add_decayed_weights: weight decay does not support sparse gradients")
            out = ops.add(grads, ps, alpha=wd, donate=True)
            ops.release(out)
            return out, []

        new_updates, _ = update_leaves(
            decay, updates, [], params, name="add_decayed_weights", need_params=True
        )
        return new_updates, state

    fusion.mark_weight_decay(update_fn, weight_decay)  # the adapters apply it as p.mul_(1 - lr·wd)
    return GradientTransformation(init_fn, update_fn)
