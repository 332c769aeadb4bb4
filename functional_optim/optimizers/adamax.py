"""Adamax as a composition of transforms (``torch.optim.Adamax``)."""

from __future__ import annotations

from functional_optim import _validation
from functional_optim.core import GradientTransformation, Hyperparam, chain
from functional_optim.hyperparams import schedulable
from functional_optim.transforms.adamax import scale_by_adamax
from functional_optim.transforms.scaling import negate, scale_by_learning_rate
from functional_optim.transforms.weight_decay import add_decayed_weights

__all__ = ["adamax"]


@schedulable("lr", "betas", "eps", "weight_decay")
def adamax(
    lr: Hyperparam = 2e-3,
    betas: tuple[Hyperparam, Hyperparam] = (0.9, 0.999),
    eps: Hyperparam = 1e-8,
    weight_decay: Hyperparam = 0,
    *,
    maximize: bool = False,
) -> GradientTransformation:
    r"""Adamax (Adam with the infinity norm), with ``torch.optim.Adamax``'s arguments, defaults and numerics.

    ```text
    chain(negate()                              if maximize,
          add_decayed_weights(weight_decay),    # L2: g += wd·p
          scale_by_adamax(β1, β2, eps),         # m/(u·(1-β1^t)), u = max(β2·u, |g|+eps)
          scale_by_learning_rate(lr))
    ```

    Args:
      lr: learning rate (float, 0-dim tensor or schedule).
      betas: ``(β1, β2)`` for the first moment and the infinity norm.
      eps: added to ``|g|`` inside the maximum.
      weight_decay: L2 penalty.
      maximize: maximize the objective instead of minimizing.

    Example:
        >>> params = {"w": torch.ones(3)}
        >>> opt = fo.adamax(lr=2e-3)
        >>> state = opt.init(params)
        >>> updates, state = opt.update({"w": torch.tensor([1.0, -2.0, 0.5])}, state, params)
        >>> params = fo.apply_updates(params, updates)
        >>> params["w"]
        tensor([0.9980, 1.0020, 0.9980])

    References:
      Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015 (section 7.1).
    """
    _validation.learning_rate(lr)
    _validation.nonnegative("eps", eps, "epsilon value")
    betas = _validation.pair("betas", betas)
    _validation.beta("betas[0]", betas[0], 0)
    _validation.beta("betas[1]", betas[1], 1)
    _validation.nonnegative("weight_decay", weight_decay, "weight_decay value")
    return chain(
        *([negate()] if maximize else []),
        add_decayed_weights(weight_decay),
        scale_by_adamax(betas[0], betas[1], eps),
        scale_by_learning_rate(lr),
    )
