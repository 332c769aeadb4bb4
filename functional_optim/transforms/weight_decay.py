"""``add_decayed_weights``: L2 regularisation and decoupled weight decay."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from functional_optim import _validation, ops
from functional_optim._leafwise import update_leaves
from functional_optim.core import (
    DecoupledWeightDecay,
    EmptyState,
    GradientTransformation,
    Hyperparam,
    L2Regularization,
    Params,
    Updates,
)
from functional_optim.hyperparams import schedulable

__all__ = ["add_decayed_weights"]


@schedulable("weight_decay")
def add_decayed_weights(weight_decay: Hyperparam = 0.0, *, decoupled: bool = False) -> GradientTransformation:
    """Add the decayed parameters to the update: ``u = g + wd · p``.

    The maths is the same wherever it sits; ``decoupled`` declares what it is meant as, so that
    the adapters apply it the way ``torch.optim`` does:

    * ``decoupled=False`` (default): an L2 penalty added to the gradient, placed before the
      adaptive scaling — ``torch.optim``'s ``weight_decay`` of SGD, Adam, RMSprop...
      (``grad = grad + wd * param``);
    * ``decoupled=True``: decoupled weight decay (AdamW, Loshchilov & Hutter 2019), placed right
      before [`scale_by_learning_rate`][]; the adapters apply it as ``torch.optim``'s
      ``param.mul_(1 - lr * wd)``.

    Args:
      weight_decay: a float, a 0-dim tensor, or a schedule.
      decoupled: declare it decoupled weight decay (see above).

    Example:
      >>> decay = fo.add_decayed_weights(0.01, decoupled=True)
      >>> adamw = fo.chain(fo.scale_by_adam(), decay, fo.scale_by_learning_rate(1e-3))
      >>> params = {"w": torch.ones(3)}
      >>> updates, _ = adamw.update({"w": torch.ones(3)}, adamw.init(params), params)
      >>> updates["w"]
      tensor([-0.0010, -0.0010, -0.0010])
    """
    _validation.nonnegative("weight_decay", weight_decay, "weight_decay value")

    def init_fn(params: Params) -> EmptyState:
        del params
        return EmptyState()

    def decay(grads: list[Tensor], fields: Any, ps: list[Tensor] | None):
        del fields
        if any(g.is_sparse for g in grads):
            raise RuntimeError("add_decayed_weights: weight decay does not support sparse gradients")
        return ops.add(grads, ps, alpha=ops.scalar(weight_decay)), []

    def update_fn(updates: Updates, state: EmptyState, params: Params | None = None, **extra: Any):
        del extra
        wd = ops.scalar(weight_decay)
        if isinstance(wd, float | int) and wd == 0:
            return updates, state
        new_updates, _ = update_leaves(
            decay, updates, [], params, name="add_decayed_weights", need_params=True
        )
        return new_updates, state

    role = DecoupledWeightDecay(weight_decay) if decoupled else L2Regularization(weight_decay)
    return GradientTransformation(init_fn, update_fn, role)
