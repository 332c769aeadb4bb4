"""SGD (with momentum, dampening, Nesterov) as a composition of transforms (``torch.optim.SGD``)."""

from __future__ import annotations

from functional_optim import _validation
from functional_optim.core import GradientTransformation, Hyperparam, chain
from functional_optim.hyperparams import schedulable
from functional_optim.transforms.momentum import trace
from functional_optim.transforms.scaling import negate, scale_by_learning_rate
from functional_optim.transforms.weight_decay import add_decayed_weights

__all__ = ["sgd"]


@schedulable("lr", "momentum", "dampening", "weight_decay")
def sgd(
    lr: Hyperparam = 1e-3,
    momentum: Hyperparam = 0,
    dampening: Hyperparam = 0,
    weight_decay: Hyperparam = 0,
    nesterov: bool = False,
    *,
    maximize: bool = False,
) -> GradientTransformation:
    r"""Stochastic gradient descent, with ``torch.optim.SGD``'s arguments, defaults and numerics.

    ```text
    chain(negate()                              if maximize,
          add_decayed_weights(weight_decay),    # L2: g += wd·p
          trace(momentum, dampening, nesterov)  unless momentum == 0,
          scale_by_learning_rate(lr))           # p -= lr·g
    ```

    The momentum buffer starts as the first gradient (no dampening on that step), then
    ``b = μ·b + (1-τ)·g``; with Nesterov the update is ``g + μ·b``. Without momentum the state holds
    no buffer, as torch. Sparse (COO) gradients are accepted when ``weight_decay == 0`` (torch's
    single-tensor path; with weight decay torch raises ``RuntimeError`` at the step, and so does this).
    Complex parameters use native complex arithmetic.

    Args:
      lr: learning rate (float, 0-dim tensor or schedule).
      momentum: momentum factor ``μ``.
      dampening: dampening ``τ`` of the gradient in the momentum buffer.
      weight_decay: L2 penalty (float or 0-dim tensor).
      nesterov: Nesterov momentum (requires ``momentum > 0`` and ``dampening == 0``).
      maximize: maximize the objective instead of minimizing.

    Example:
        >>> params = {"w": torch.ones(3)}
        >>> opt = fo.sgd(lr=0.1, momentum=0.9, nesterov=True)
        >>> state = opt.init(params)
        >>> updates, state = opt.update({"w": torch.tensor([1.0, -2.0, 0.5])}, state, params)
        >>> params = fo.apply_updates(params, updates)
        >>> params["w"]  # p - lr · (g + 0.9 · g)
        tensor([0.8100, 1.3800, 0.9050])

    References:
      Robbins & Monro, "A Stochastic Approximation Method", 1951.
      Sutskever et al., "On the importance of initialization and momentum in deep learning", ICML 2013.
    """
    _validation.learning_rate(lr)
    _validation.nonnegative("momentum", momentum, "momentum value")
    _validation.nonnegative("weight_decay", weight_decay, "weight_decay value")
    if nesterov:
        mu, tau = _validation.value_of(momentum), _validation.value_of(dampening)
        if (mu is not None and mu <= 0) or (tau is not None and tau != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
    no_momentum = isinstance(momentum, int | float) and momentum == 0
    return chain(
        *([negate()] if maximize else []),
        add_decayed_weights(weight_decay),
        *([] if no_momentum else [trace(momentum, dampening, nesterov)]),
        scale_by_learning_rate(lr),
    )
