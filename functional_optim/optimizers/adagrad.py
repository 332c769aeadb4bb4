"""Adagrad as a composition of transforms (``torch.optim.Adagrad``)."""

from __future__ import annotations

from functional_optim import _validation
from functional_optim.core import GradientTransformation, Hyperparam, chain
from functional_optim.hyperparams import schedulable
from functional_optim.transforms.adagrad import scale_by_adagrad
from functional_optim.transforms.scaling import negate, scale_by_learning_rate
from functional_optim.transforms.weight_decay import add_decayed_weights

__all__ = ["adagrad"]


@schedulable("lr", "lr_decay", "weight_decay", "eps")
def adagrad(
    lr: Hyperparam = 1e-2,
    lr_decay: Hyperparam = 0,
    weight_decay: Hyperparam = 0,
    initial_accumulator_value: float = 0,
    eps: Hyperparam = 1e-10,
    *,
    maximize: bool = False,
) -> GradientTransformation:
    r"""Adagrad, with ``torch.optim.Adagrad``'s arguments, defaults and numerics.

    ```text
    chain(negate()                       if maximize,
          add_decayed_weights(weight_decay),            # L2: g += wd·p
          scale_by_adagrad(lr_decay, initial_accumulator_value, eps),
          scale_by_learning_rate(lr))                   # p -= lr/(1+(t-1)·lr_decay) · g/(√sum+eps)
    ```

    Sparse gradients are supported (torch's sparse path); ``weight_decay != 0`` with a sparse
    gradient raises ``RuntimeError`` at the step, as in torch.

    Args:
      lr: learning rate (float, 0-dim tensor or schedule).
      lr_decay: learning-rate decay ``lr/(1+(t-1)·lr_decay)``.
      weight_decay: L2 penalty.
      initial_accumulator_value: starting value of the squared-gradient sum.
      eps: term added to the denominator.
      maximize: maximize the objective instead of minimizing.

    Example:
        >>> params = {"w": torch.ones(3)}
        >>> opt = fo.adagrad(lr=1e-2)
        >>> state = opt.init(params)
        >>> updates, state = opt.update({"w": torch.tensor([1.0, -2.0, 0.5])}, state, params)
        >>> params = fo.apply_updates(params, updates)
        >>> params["w"]  # first step: p - lr · sign(g)
        tensor([0.9900, 1.0100, 0.9900])

    References:
      Duchi, Hazan & Singer, "Adaptive Subgradient Methods for Online Learning and Stochastic
      Optimization", JMLR 2011.
    """
    _validation.learning_rate(lr)
    _validation.nonnegative("lr_decay", lr_decay, "lr_decay value")
    _validation.nonnegative("weight_decay", weight_decay, "weight_decay value")
    _validation.nonnegative(
        "initial_accumulator_value", initial_accumulator_value, "initial_accumulator_value value"
    )
    _validation.nonnegative("eps", eps, "epsilon value")
    return chain(
        *([negate()] if maximize else []),
        add_decayed_weights(weight_decay),
        scale_by_adagrad(lr_decay, initial_accumulator_value, eps),
        scale_by_learning_rate(lr),
    )
