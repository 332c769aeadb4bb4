"""RAdam as a composition of transforms (``torch.optim.RAdam``)."""

from __future__ import annotations

from functional_optim import _validation
from functional_optim.core import GradientTransformation, Hyperparam, chain
from functional_optim.hyperparams import schedulable
from functional_optim.transforms.radam import scale_by_radam
from functional_optim.transforms.scaling import negate, scale_by_learning_rate
from functional_optim.transforms.weight_decay import add_decayed_weights

__all__ = ["radam"]


@schedulable("lr", "betas", "eps", "weight_decay")
def radam(
    lr: Hyperparam = 1e-3,
    betas: tuple[Hyperparam, Hyperparam] = (0.9, 0.999),
    eps: Hyperparam = 1e-8,
    weight_decay: Hyperparam = 0,
    decoupled_weight_decay: bool = False,
    *,
    maximize: bool = False,
) -> GradientTransformation:
    r"""RAdam (Rectified Adam), with ``torch.optim.RAdam``'s arguments, defaults and numerics.

    ```text
    chain(negate()                              if maximize,
          add_decayed_weights(weight_decay)     # L2: g += wd·p   (unless decoupled)
          scale_by_radam(β1, β2, eps),          # rectified when rho_t > 5
          add_decayed_weights(wd, decoupled=True)     # decoupled: p *= 1 - lr·wd (if decoupled)
          scale_by_learning_rate(lr))
    ```

    Args:
      lr: learning rate (float, 0-dim tensor or schedule).
      betas: ``(β1, β2)`` for the first and second moments.
      eps: added to the uncorrected ``sqrt(v)``.
      weight_decay: L2 penalty, or decoupled decay if ``decoupled_weight_decay``.
      decoupled_weight_decay: AdamW-style decay (RAdamW).
      maximize: maximize the objective instead of minimizing.

    Example:
        >>> params = {"w": torch.ones(3)}
        >>> opt = fo.radam(lr=1e-3)
        >>> state = opt.init(params)
        >>> updates, state = opt.update({"w": torch.tensor([1.0, -2.0, 0.5])}, state, params)
        >>> params = fo.apply_updates(params, updates)
        >>> params["w"]  # no adaptive step yet: p - lr · g
        tensor([0.9990, 1.0020, 0.9995])

    References:
      Liu et al., "On the Variance of the Adaptive Learning Rate and Beyond", ICLR 2020.
    """
    _validation.learning_rate(lr)
    _validation.nonnegative("eps", eps, "epsilon value")
    betas = _validation.pair("betas", betas)
    _validation.beta("betas[0]", betas[0], 0)
    _validation.beta("betas[1]", betas[1], 1)
    _validation.nonnegative("weight_decay", weight_decay, "weight_decay value")
    decay = add_decayed_weights(weight_decay, decoupled=decoupled_weight_decay)
    return chain(
        *([negate()] if maximize else []),
        *([] if decoupled_weight_decay else [decay]),
        scale_by_radam(betas[0], betas[1], eps),
        *([decay] if decoupled_weight_decay else []),
        scale_by_learning_rate(lr),
    )
