"""RMSprop as a composition of transforms (``torch.optim.RMSprop``)."""

from __future__ import annotations

from functional_optim import _validation
from functional_optim.core import GradientTransformation, Hyperparam, chain
from functional_optim.hyperparams import schedulable
from functional_optim.transforms.rms import scale_by_rms
from functional_optim.transforms.scaling import negate, scale_by_learning_rate
from functional_optim.transforms.weight_decay import add_decayed_weights

__all__ = ["rmsprop"]


@schedulable("lr", "alpha", "eps", "weight_decay", "momentum")
def rmsprop(
    lr: Hyperparam = 1e-2,
    alpha: Hyperparam = 0.99,
    eps: Hyperparam = 1e-8,
    weight_decay: Hyperparam = 0,
    momentum: Hyperparam = 0,
    centered: bool = False,
    *,
    maximize: bool = False,
) -> GradientTransformation:
    r"""RMSprop, with ``torch.optim.RMSprop``'s arguments, defaults and numerics.

    ```text
    chain(negate()                       if maximize,
          add_decayed_weights(weight_decay),          # L2: g += wd·p
          scale_by_rms(alpha, eps, centered, momentum),  # buf = μ·buf + g/(√(v[-ḡ²])+eps)
          scale_by_learning_rate(lr))                 # p -= lr·buf
    ```

    Args:
      lr: learning rate (float, 0-dim tensor or schedule).
      alpha: smoothing constant.
      eps: added to the denominator, outside the square root.
      weight_decay: L2 penalty.
      momentum: momentum factor.
      centered: normalise by the estimated variance of the gradient.
      maximize: maximize the objective instead of minimizing.

    Example:
        >>> params = {"w": torch.ones(3)}
        >>> opt = fo.rmsprop(lr=1e-2, momentum=0.9, centered=True)
        >>> state = opt.init(params)
        >>> updates, state = opt.update({"w": torch.tensor([1.0, -2.0, 0.5])}, state, params)
        >>> params = fo.apply_updates(params, updates)
        >>> params["w"]
        tensor([0.8995, 1.1005, 0.8995])

    References:
      Hinton, "Lecture 6e: rmsprop", Neural Networks for Machine Learning (Coursera), 2012.
      Graves, "Generating Sequences With Recurrent Neural Networks", arXiv:1308.0850, 2013.
    """
    _validation.learning_rate(lr)
    _validation.nonnegative("eps", eps, "epsilon value")
    _validation.nonnegative("momentum", momentum, "momentum value")
    _validation.nonnegative("weight_decay", weight_decay, "weight_decay value")
    _validation.nonnegative("alpha", alpha, "alpha value")
    return chain(
        *([negate()] if maximize else []),
        add_decayed_weights(weight_decay),
        scale_by_rms(alpha, eps, centered, momentum),
        scale_by_learning_rate(lr),
    )
