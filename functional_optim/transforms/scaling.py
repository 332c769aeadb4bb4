"""Stateless scalings: ``scale``, ``scale_by_learning_rate``, ``negate`` (maximize)."""

from __future__ import annotations

from typing import Any

from functional_optim import _validation, ops, tree
from functional_optim.core import (
    EmptyState,
    GradientTransformation,
    Hyperparam,
    LearningRate,
    Params,
    Updates,
)
from functional_optim.hyperparams import schedulable

__all__ = ["negate", "scale", "scale_by_learning_rate"]


def _scale_tree(updates: Updates, factor: Any) -> Updates:
    leaves, spec = tree.flatten(updates)
    present = [u for u in leaves if u is not None]
    if not present:
        return updates
    scaled = iter(ops.mul(present, ops.scalar(factor)))
    return tree.unflatten(spec, [None if u is None else next(scaled) for u in leaves])


@schedulable("step_size")
def scale(step_size: Hyperparam) -> GradientTransformation:
    """Multiply every update by a constant: ``u = step_size · g``.

    Args:
      step_size: a float, a 0-dim tensor (differentiable), or a schedule ``count -> value``.
    """

    def init_fn(params: Params) -> EmptyState:
        del params
        return EmptyState()

    def update_fn(updates: Updates, state: EmptyState, params: Params | None = None, **extra: Any):
        del params, extra
        return _scale_tree(updates, step_size), state

    return GradientTransformation(init_fn, update_fn)


@schedulable("learning_rate")
def scale_by_learning_rate(learning_rate: Hyperparam, *, flip_sign: bool = True) -> GradientTransformation:
    """Scale by the learning rate, flipping the sign for descent: ``u = -lr · g``.

    This is the only place where the sign of gradient descent is introduced; every other
    transform produces a direction to *descend along*.

    Args:
      learning_rate: a float, a 0-dim tensor (hyper-gradients flow to it), or a schedule.
      flip_sign: ``True`` (default) for descent; ``False`` gives ``u = lr · g``.
    """

    _validation.not_nan("learning_rate", learning_rate)

    def init_fn(params: Params) -> EmptyState:
        del params
        return EmptyState()

    def update_fn(updates: Updates, state: EmptyState, params: Params | None = None, **extra: Any):
        del params, extra
        lr = ops.scalar(learning_rate)
        return _scale_tree(updates, -lr if flip_sign else lr), state

    return GradientTransformation(init_fn, update_fn, LearningRate(learning_rate, flip_sign))


def negate() -> GradientTransformation:
    """Flip the sign of the gradient: ``u = -g``. Placed first, it turns minimisation into
    maximisation (``torch.optim``'s ``maximize=True``)."""

    def init_fn(params: Params) -> EmptyState:
        del params
        return EmptyState()

    def update_fn(updates: Updates, state: EmptyState, params: Params | None = None, **extra: Any):
        del params, extra
        leaves, spec = tree.flatten(updates)
        present = [u for u in leaves if u is not None]
        negated = iter(ops.neg(present))
        return tree.unflatten(spec, [None if u is None else next(negated) for u in leaves]), state

    return GradientTransformation(init_fn, update_fn)
