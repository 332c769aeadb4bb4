"""Adam and AdamW as compositions of transforms (``torch.optim.Adam`` / ``torch.optim.AdamW``)."""

from __future__ import annotations

from functional_optim import _validation
from functional_optim.core import GradientTransformation, Hyperparam, chain
from functional_optim.hyperparams import schedulable
from functional_optim.transforms.adam import scale_by_adam
from functional_optim.transforms.scaling import negate, scale_by_learning_rate
from functional_optim.transforms.weight_decay import add_decayed_weights

__all__ = ["adam", "adamw"]


@schedulable("lr", "betas", "eps", "weight_decay")
def adam(
    lr: Hyperparam = 1e-3,
    betas: tuple[Hyperparam, Hyperparam] = (0.9, 0.999),
    eps: Hyperparam = 1e-8,
    weight_decay: Hyperparam = 0,
    amsgrad: bool = False,
    *,
    maximize: bool = False,
    decoupled_weight_decay: bool = False,
) -> GradientTransformation:
    r"""Adam, with ``torch.optim.Adam``'s arguments, defaults and numerics.

    .. code-block:: text

        chain(negate()            if maximize,
              add_decayed_weights(weight_decay)   # L2: g += wd·p   (unless decoupled)
              scale_by_adam(β1, β2, eps, amsgrad),
              add_decayed_weights(weight_decay)   # decoupled: p *= 1 - lr·wd (if decoupled)
              scale_by_learning_rate(lr))

    Args:
      lr: learning rate (float, 0-dim tensor or schedule).
      betas: ``(β1, β2)`` for the first and second moments.
      eps: term added to the denominator.
      weight_decay: L2 penalty, or decoupled decay if ``decoupled_weight_decay``.
      amsgrad: use the AMSGrad maximum of the second moment.
      maximize: maximize the objective instead of minimizing.
      decoupled_weight_decay: AdamW-style decay (equivalent to :func:`adamw`).

    Example::

        opt = fo.adam(lr=1e-3)
        state = opt.init(params)
        updates, state = opt.update(grads, state, params)
        params = fo.apply_updates(params, updates)

    References:
      Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015.
    """
    _validation.learning_rate(lr)
    _validation.nonnegative("eps", eps, "epsilon value")
    betas = _validation.betas(betas)
    _validation.nonnegative("weight_decay", weight_decay, "weight_decay value")
    decay = add_decayed_weights(weight_decay)
    return chain(
        *([negate()] if maximize else []),
        *([] if decoupled_weight_decay else [decay]),
        scale_by_adam(betas[0], betas[1], eps, amsgrad=amsgrad),
        *([decay] if decoupled_weight_decay else []),
        scale_by_learning_rate(lr),
    )


@schedulable("lr", "betas", "eps", "weight_decay")
def adamw(
    lr: Hyperparam = 1e-3,
    betas: tuple[Hyperparam, Hyperparam] = (0.9, 0.999),
    eps: Hyperparam = 1e-8,
    weight_decay: Hyperparam = 1e-2,
    amsgrad: bool = False,
    *,
    maximize: bool = False,
) -> GradientTransformation:
    r"""AdamW: Adam with decoupled weight decay (``torch.optim.AdamW``).

    The parameters decay as ``p ← p - lr·wd·p`` beside the Adam step, instead of the decay
    entering the moments: ``chain(scale_by_adam(...), add_decayed_weights(wd),
    scale_by_learning_rate(lr))``.

    Args: as :func:`adam` (``weight_decay`` defaults to 1e-2).

    References:
      Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR 2019.
    """
    return adam(lr, betas, eps, weight_decay, amsgrad, maximize=maximize, decoupled_weight_decay=True)
