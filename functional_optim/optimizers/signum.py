"""Signum and sign SGD as compositions of transforms."""

from __future__ import annotations

from functional_optim import _validation
from functional_optim.core import GradientTransformation, Hyperparam, chain
from functional_optim.hyperparams import schedulable
from functional_optim.transforms.scaling import scale_by_learning_rate
from functional_optim.transforms.sign import scale_by_sign, scale_by_signum
from functional_optim.transforms.weight_decay import add_decayed_weights

__all__ = ["sign_sgd", "signum"]


@schedulable("lr", "momentum", "weight_decay")
def signum(
    lr: Hyperparam = 0.01, momentum: Hyperparam = 0.9, weight_decay: Hyperparam = 0.0
) -> GradientTransformation:
    r"""Signum: the sign of a moving average of the gradients (sign SGD when ``momentum=0``).

    ```text
    chain(add_decayed_weights(weight_decay),   # L2: g ← g + wd·p
          scale_by_signum(momentum),           # m ← β m + (1-β) g; u = sign(m)
                                               # (scale_by_sign() if momentum == 0)
          scale_by_learning_rate(lr))
    ```

    The moving average starts at zero (no debiasing: it does not change the sign); it is
    ``chain(ema(momentum), scale_by_sign())`` as one rule, whose buffer the adapters update in
    place (state ``momentum_buffer``, as pytorch-optimizer's ``SignSGD``).

    Args:
      lr: learning rate.
      momentum: ``β``; ``0`` gives sign SGD.
      weight_decay: L2 penalty added to the gradient.

    Examples:
        >>> opt = fo.signum(lr=0.1)
        >>> params = [torch.tensor([1.0, 1.0])]
        >>> u, _ = opt.update([torch.tensor([3.0, -1e-3])], opt.init(params), params)
        >>> u[0]
        tensor([-0.1000,  0.1000])

    References:
      Bernstein et al., "signSGD: Compressed Optimisation for Non-Convex Problems", ICML 2018.
    """
    _validation.learning_rate(lr)
    _validation.nonnegative("weight_decay", weight_decay, "weight_decay value")
    no_momentum = isinstance(momentum, float | int) and momentum == 0
    return chain(
        add_decayed_weights(weight_decay),
        scale_by_sign() if no_momentum else scale_by_signum(momentum),
        scale_by_learning_rate(lr),
    )


@schedulable("lr")
def sign_sgd(lr: Hyperparam = 0.01) -> GradientTransformation:
    r"""Sign SGD: ``p ← p - lr·sign(g)``; ``chain(scale_by_sign(), scale_by_learning_rate(lr))``.

    Examples:
        >>> opt = fo.sign_sgd(0.5)
        >>> opt.update([torch.tensor([-2.0])], opt.init(None))[0][0]
        tensor([0.5000])

    References:
      Bernstein et al., "signSGD: Compressed Optimisation for Non-Convex Problems", ICML 2018.
    """
    _validation.learning_rate(lr)
    return chain(scale_by_sign(), scale_by_learning_rate(lr))
