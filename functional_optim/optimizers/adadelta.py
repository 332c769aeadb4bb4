"""Adadelta as a composition of transforms (``torch.optim.Adadelta``)."""

from __future__ import annotations

from functional_optim import _validation
from functional_optim.core import GradientTransformation, Hyperparam, chain
from functional_optim.hyperparams import schedulable
from functional_optim.transforms.adadelta import scale_by_adadelta
from functional_optim.transforms.scaling import negate, scale_by_learning_rate
from functional_optim.transforms.weight_decay import add_decayed_weights

__all__ = ["adadelta"]


@schedulable("lr", "rho", "eps", "weight_decay")
def adadelta(
    lr: Hyperparam = 1.0,
    rho: Hyperparam = 0.9,
    eps: Hyperparam = 1e-6,
    weight_decay: Hyperparam = 0,
    *,
    maximize: bool = False,
) -> GradientTransformation:
    r"""Adadelta, with ``torch.optim.Adadelta``'s arguments, defaults and numerics.

    ```text
    chain(negate()                       if maximize,
          add_decayed_weights(weight_decay),   # L2: g += wd·p
          scale_by_adadelta(rho, eps),         # Δ = √(acc+eps)/√(v+eps) · g
          scale_by_learning_rate(lr))          # p -= lr·Δ
    ```

    Args:
      lr: coefficient that scales the delta (float, 0-dim tensor or schedule).
      rho: decay of the running averages, in ``[0, 1]``.
      eps: added inside the square roots.
      weight_decay: L2 penalty.
      maximize: maximize the objective instead of minimizing.

    Example:
        >>> params = {"w": torch.ones(3)}
        >>> opt = fo.adadelta(lr=1.0, rho=0.9)
        >>> state = opt.init(params)
        >>> updates, state = opt.update({"w": torch.tensor([1.0, -2.0, 0.5])}, state, params)
        >>> params = fo.apply_updates(params, updates)
        >>> params["w"]
        tensor([0.9968, 1.0032, 0.9968])

    References:
      Zeiler, "ADADELTA: An Adaptive Learning Rate Method", arXiv:1212.5701, 2012.
    """
    _validation.learning_rate(lr)
    _validation.require(lambda v: 0.0 <= v <= 1.0, rho, f"Invalid rho value: {rho}")
    _validation.nonnegative("eps", eps, "epsilon value")
    _validation.nonnegative("weight_decay", weight_decay, "weight_decay value")
    return chain(
        *([negate()] if maximize else []),
        add_decayed_weights(weight_decay),
        scale_by_adadelta(rho, eps),
        scale_by_learning_rate(lr),
    )
