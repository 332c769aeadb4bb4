"""Rprop as a composition of transforms (``torch.optim.Rprop``)."""

from __future__ import annotations

from functional_optim import _validation
from functional_optim.core import GradientTransformation, Hyperparam, chain
from functional_optim.hyperparams import schedulable
from functional_optim.transforms.rprop import scale_by_rprop
from functional_optim.transforms.scaling import negate, scale_by_learning_rate

__all__ = ["rprop"]


@schedulable("lr", "etas", "step_sizes")
def rprop(
    lr: Hyperparam = 1e-2,
    etas: tuple[Hyperparam, Hyperparam] = (0.5, 1.2),
    step_sizes: tuple[Hyperparam, Hyperparam] = (1e-6, 50),
    *,
    maximize: bool = False,
) -> GradientTransformation:
    r"""Rprop, with ``torch.optim.Rprop``'s arguments, defaults and numerics (bit for bit).

    ```text
    chain(negate()                       if maximize,
          scale_by_rprop(lr, etas, step_sizes),   # u = sign(g')·step_size (full step)
          scale_by_learning_rate(1.0))            # p -= u
    ```

    ``lr`` only seeds the per-element step sizes at ``init``; as in torch, changing it later
    (or scheduling it) has no effect.

    Args:
      lr: initial step size (float or 0-dim tensor).
      etas: ``(η-, η+)``, multiplicative decrease and increase factors, ``0 < η- < 1 < η+``.
      step_sizes: ``(min, max)`` allowed step sizes.
      maximize: maximize the objective instead of minimizing.

    Example:
        >>> params = {"w": torch.ones(3)}
        >>> opt = fo.rprop(lr=1e-2)
        >>> state = opt.init(params)
        >>> updates, state = opt.update({"w": torch.tensor([1.0, -2.0, 0.5])}, state, params)
        >>> params = fo.apply_updates(params, updates)
        >>> params["w"]  # first step: p - lr · sign(g)
        tensor([0.9900, 1.0100, 0.9900])

    References:
      Riedmiller & Braun, "A Direct Adaptive Method for Faster Backpropagation Learning: The RPROP
      Algorithm", ICNN 1993.
    """
    _validation.learning_rate(lr)
    return chain(
        *([negate()] if maximize else []),
        scale_by_rprop(lr, etas, step_sizes),
        scale_by_learning_rate(1.0),
    )
