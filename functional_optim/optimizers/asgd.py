"""ASGD (averaged SGD) as a composition of transforms (``torch.optim.ASGD``)."""

from __future__ import annotations

from functional_optim import _validation
from functional_optim.core import GradientTransformation, Hyperparam, chain
from functional_optim.hyperparams import schedulable
from functional_optim.transforms.asgd import scale_by_asgd
from functional_optim.transforms.scaling import negate, scale_by_learning_rate
from functional_optim.transforms.weight_decay import add_decayed_weights

__all__ = ["asgd"]


@schedulable("lr", "lambd", "alpha", "t0", "weight_decay")
def asgd(
    lr: Hyperparam = 1e-2,
    lambd: Hyperparam = 1e-4,
    alpha: Hyperparam = 0.75,
    t0: Hyperparam = 1e6,
    weight_decay: Hyperparam = 0,
    *,
    maximize: bool = False,
) -> GradientTransformation:
    r"""ASGD, with ``torch.optim.ASGD``'s arguments, defaults and for-loop numerics.

    ```text
    chain(negate()                       if maximize,
          add_decayed_weights(weight_decay),       # L2: g += wd·p
          scale_by_asgd(lr, lambd, alpha, t0),     # u = p - (p·(1-λη) - η·g); ax, η, μ
          scale_by_learning_rate(1.0))             # p -= u
    ```

    The averaged parameters are ``state[...].ax`` (``torch.optim.ASGD``'s ``state[p]["ax"]``).

    Args:
      lr: learning rate (float or 0-dim tensor).
      lambd: decay term.
      alpha: power for the eta update.
      t0: point at which averaging starts.
      weight_decay: L2 penalty.
      maximize: maximize the objective instead of minimizing.

    Example:
        >>> params = {"w": torch.ones(3)}
        >>> opt = fo.asgd(lr=1e-2, t0=100)
        >>> state = opt.init(params)
        >>> updates, state = opt.update({"w": torch.tensor([1.0, -2.0, 0.5])}, state, params)
        >>> params = fo.apply_updates(params, updates)
        >>> params["w"]
        tensor([0.9900, 1.0200, 0.9950])

    References:
      Polyak & Juditsky, "Acceleration of Stochastic Approximation by Averaging", SIAM J. Control
      Optim. 30(4), 1992.
    """
    _validation.learning_rate(lr)
    _validation.nonnegative("weight_decay", weight_decay, "weight_decay value")
    return chain(
        *([negate()] if maximize else []),
        add_decayed_weights(weight_decay),
        scale_by_asgd(lr, lambd, alpha, t0),
        scale_by_learning_rate(1.0),
    )
