"""MARS-AdamW (the authors' ``MARS`` optimizer: names and defaults)."""

from __future__ import annotations

from typing import Any

from functional_optim import _validation, tree
from functional_optim.combinators.partition import partition
from functional_optim.core import GradientTransformation, Hyperparam, Params, chain
from functional_optim.hyperparams import schedulable
from functional_optim.transforms.adam import scale_by_adam
from functional_optim.transforms.mars import scale_by_mars
from functional_optim.transforms.scaling import scale_by_learning_rate
from functional_optim.transforms.weight_decay import add_decayed_weights

__all__ = ["mars_adamw"]


def _labels(params: Params) -> Any:
    return tree.map(lambda p: None if p is None else ("mars" if p.ndim >= 2 else "adamw_1d"), params)


@schedulable("lr", "betas", "gamma", "eps", "weight_decay", "lr_1d", "betas_1d", "weight_decay_1d")
def mars_adamw(
    lr: Hyperparam = 3e-3,
    betas: tuple[Hyperparam, Hyperparam] = (0.95, 0.99),
    eps: Hyperparam = 1e-8,
    weight_decay: Hyperparam = 0.0,
    amsgrad: bool = False,
    gamma: Hyperparam = 0.025,
    optimize_1d: bool = False,
    lr_1d: Hyperparam = 3e-3,
    betas_1d: tuple[Hyperparam, Hyperparam] = (0.9, 0.95),
    weight_decay_1d: Hyperparam = 0.1,
) -> GradientTransformation:
    r"""MARS-AdamW, as the authors' ``MARS(mars_type="mars-adamw", is_approx=True)``.

    ```text
    mars:      chain(scale_by_mars(β1, γ), scale_by_adam(β1, β2, eps, amsgrad),
                     add_decayed_weights(weight_decay, decoupled=True), scale_by_learning_rate(lr))
    1-D (unless optimize_1d): chain(scale_by_adam(*betas_1d, eps, amsgrad),
                     add_decayed_weights(weight_decay_1d, decoupled=True), scale_by_learning_rate(lr_1d))
    ```

    Tensors with ``ndim >= 2`` (all tensors with ``optimize_1d``) get MARS, the others plain
    AdamW, as the authors' code. Its denominator is torch's Adam one,
    ``sqrt(v)/sqrt(bc2) + eps``; pytorch-optimizer's ``MARS`` puts ``eps`` before the bias
    correction (``(sqrt(v) + eps)/sqrt(bc2)``), which we do not follow.

    Example:
      >>> opt = fo.mars_adamw(lr=3e-3)
      >>> params = {"w": torch.ones(2, 2), "b": torch.zeros(2)}
      >>> updates, state = opt.update({"w": torch.ones(2, 2), "b": torch.ones(2)}, opt.init(params), params)

    References:
      Yuan et al., "MARS: Unleashing the Power of Variance Reduction for Training Large Models",
      arXiv:2411.10438, 2024 (code: github.com/AGI-Arena/MARS).
    """
    _validation.learning_rate(lr)
    _validation.betas(betas)
    _validation.betas(betas_1d)
    _validation.nonnegative("weight_decay", weight_decay, "weight_decay value")
    _validation.nonnegative("weight_decay_1d", weight_decay_1d, "weight_decay_1d value")
    mars = chain(
        scale_by_mars(betas[0], gamma),
        scale_by_adam(betas[0], betas[1], eps, amsgrad=amsgrad),
        add_decayed_weights(weight_decay, decoupled=True),
        scale_by_learning_rate(lr),
    )
    if optimize_1d:
        return mars
    adamw_1d = chain(
        scale_by_adam(betas_1d[0], betas_1d[1], eps, amsgrad=amsgrad),
        add_decayed_weights(weight_decay_1d, decoupled=True),
        scale_by_learning_rate(lr_1d),
    )
    return partition({"mars": mars, "adamw_1d": adamw_1d}, _labels)
