"""LaProp as a composition of transforms."""

from __future__ import annotations

from functional_optim import _validation
from functional_optim.core import GradientTransformation, Hyperparam, chain
from functional_optim.hyperparams import schedulable
from functional_optim.transforms.laprop import scale_by_laprop
from functional_optim.transforms.scaling import scale_by_learning_rate
from functional_optim.transforms.weight_decay import add_decayed_weights

__all__ = ["laprop"]


@schedulable("lr", "betas", "eps", "weight_decay")
def laprop(
    lr: Hyperparam = 4e-4,
    betas: tuple[Hyperparam, Hyperparam] = (0.9, 0.999),
    eps: Hyperparam = 1e-15,
    weight_decay: Hyperparam = 0.0,
    amsgrad: bool = False,
) -> GradientTransformation:
    r"""LaProp, with the authors' arguments and defaults (Z-T-WANG/LaProp-Optimizer).

    ```text
    chain(scale_by_laprop(β1, β2, eps, amsgrad),
          add_decayed_weights(weight_decay, decoupled=True),    # p ← p - lr·wd·p
          scale_by_learning_rate(lr))
    ```

    The authors' code decays by ``wd·p`` (not scaled by ``lr``); we use AdamW's ``lr·wd·p``, as
    pytorch-optimizer's ``LaProp``. The ``centered`` variant is not provided.

    Args:
      lr: learning rate.
      betas: ``(β1, β2)``.
      eps: added to the denominator.
      weight_decay: decoupled decay.
      amsgrad: running maximum of the second moment.

    Examples:
        >>> opt = fo.laprop(lr=0.1)
        >>> params = [torch.zeros(1)]
        >>> opt.update([torch.tensor([1.0])], opt.init(params), params)[0][0]
        tensor([-0.1000])

    References:
      Ziyin et al., "LaProp: Separating Momentum and Adaptivity in Adam", 2020.
    """
    _validation.learning_rate(lr)
    _validation.betas(betas)
    return chain(
        scale_by_laprop(betas[0], betas[1], eps, amsgrad=amsgrad),
        add_decayed_weights(weight_decay, decoupled=True),
        scale_by_learning_rate(lr),
    )
