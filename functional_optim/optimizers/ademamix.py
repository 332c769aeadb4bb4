"""AdEMAMix as a composition of transforms (apple/ml-ademamix's ``AdEMAMix``)."""

from __future__ import annotations

from typing import cast

from functional_optim import _validation
from functional_optim.core import GradientTransformation, Hyperparam, chain
from functional_optim.hyperparams import schedulable
from functional_optim.transforms.ademamix import (
    ademamix_alpha_warmup,
    ademamix_beta3_warmup,
    scale_by_ademamix,
)
from functional_optim.transforms.scaling import scale_by_learning_rate
from functional_optim.transforms.weight_decay import add_decayed_weights

__all__ = ["ademamix"]


@schedulable("lr", "betas", "alpha", "eps", "weight_decay")
def ademamix(
    lr: Hyperparam = 1e-3,
    betas: tuple[Hyperparam, Hyperparam, Hyperparam] = (0.9, 0.999, 0.9999),
    alpha: Hyperparam = 2.0,
    beta3_warmup: int | None = None,
    alpha_warmup: int | None = None,
    eps: Hyperparam = 1e-8,
    weight_decay: Hyperparam = 0.0,
) -> GradientTransformation:
    r"""AdEMAMix, with the authors' arguments and defaults.

    ```text
    chain(scale_by_ademamix(β1, β2, β3 [warmed up], α [warmed up], eps),
          add_decayed_weights(weight_decay, decoupled=True),    # p ← p - lr·wd·p
          scale_by_learning_rate(lr))
    ```

    Args:
      lr: learning rate.
      betas: ``(β1, β2, β3)``: fast momentum, second moment, slow momentum.
      alpha: weight of the slow momentum.
      beta3_warmup: steps of the paper's ``β3`` warmup from ``β1`` (``None``: none).
      alpha_warmup: steps of the linear ``α`` warmup (``None``: none).
      eps: added to the denominator.
      weight_decay: decoupled decay.

    Examples:
        >>> opt = fo.ademamix(lr=0.1, alpha=0.0)
        >>> params = [torch.zeros(1)]
        >>> opt.update([torch.tensor([1.0])], opt.init(params), params)[0][0]
        tensor([-0.1000])

    References:
      Pagliardini et al., "The AdEMAMix Optimizer: Better, Faster, Older", ICLR 2025.
    """
    _validation.learning_rate(lr)
    if not isinstance(betas, tuple | list) or len(betas) != 3:
        raise ValueError(f"ademamix: betas must be (beta1, beta2, beta3), got {betas!r}")
    # inside a @schedulable factory a hyperparameter is a value (a float, or a 0-dim tensor that
    # the warmups' maths accept), never a schedule
    b1_, b3_, alpha_ = cast("tuple[float, float, float]", (betas[0], betas[2], alpha))
    b3 = betas[2] if beta3_warmup is None else ademamix_beta3_warmup(b1_, b3_, beta3_warmup)
    a = alpha if alpha_warmup is None else ademamix_alpha_warmup(alpha_, alpha_warmup)
    return chain(
        scale_by_ademamix(betas[0], betas[1], b3, a, eps),
        add_decayed_weights(weight_decay, decoupled=True),
        scale_by_learning_rate(lr),
    )
