"""Yogi as a composition of transforms."""

from __future__ import annotations

from functional_optim import _validation
from functional_optim.core import GradientTransformation, Hyperparam, chain
from functional_optim.hyperparams import schedulable
from functional_optim.transforms.scaling import scale_by_learning_rate
from functional_optim.transforms.weight_decay import add_decayed_weights
from functional_optim.transforms.yogi import scale_by_yogi

__all__ = ["yogi"]


@schedulable("lr", "betas", "eps", "weight_decay")
def yogi(
    lr: Hyperparam = 1e-2,
    betas: tuple[Hyperparam, Hyperparam] = (0.9, 0.999),
    eps: Hyperparam = 1e-3,
    initial_accumulator: float = 1e-6,
    weight_decay: Hyperparam = 0.0,
) -> GradientTransformation:
    r"""Yogi, with the authors' defaults (TensorFlow Addons ``Yogi``: lr 0.01, eps 1e-3, 1e-6).

    ```text
    chain(add_decayed_weights(weight_decay),     # L2: g ← g + wd·p
          scale_by_yogi(β1, β2, eps, initial_accumulator),
          scale_by_learning_rate(lr))
    ```

    Args:
      lr: learning rate.
      betas: ``(β1, β2)``.
      eps: added to the denominator.
      initial_accumulator: starting value of both moments.
      weight_decay: L2 penalty.

    Examples:
        >>> opt = fo.yogi()
        >>> params = [torch.zeros(1)]
        >>> opt.update([torch.tensor([1.0])], opt.init(params), params)[0][0]
        tensor([-0.0100])

    References:
      Zaheer et al., "Adaptive Methods for Nonconvex Optimization", NeurIPS 2018.
    """
    _validation.learning_rate(lr)
    _validation.betas(betas)
    return chain(
        add_decayed_weights(weight_decay),
        scale_by_yogi(betas[0], betas[1], eps, initial_accumulator),
        scale_by_learning_rate(lr),
    )
