"""NovoGrad as a composition of transforms (NVIDIA's ``Novograd``)."""

from __future__ import annotations

from functional_optim import _validation
from functional_optim.core import GradientTransformation, Hyperparam, chain
from functional_optim.hyperparams import schedulable
from functional_optim.transforms.novograd import scale_by_novograd
from functional_optim.transforms.scaling import scale_by_learning_rate

__all__ = ["novograd"]


@schedulable("lr", "betas", "eps", "weight_decay")
def novograd(
    lr: Hyperparam = 1e-3,
    betas: tuple[Hyperparam, Hyperparam] = (0.95, 0.98),
    eps: Hyperparam = 1e-8,
    weight_decay: Hyperparam = 0.0,
    grad_averaging: bool = False,
) -> GradientTransformation:
    r"""NovoGrad, with NVIDIA's ``Novograd`` arguments and defaults.

    ```text
    chain(scale_by_novograd(β1, β2, eps, weight_decay, grad_averaging),
          scale_by_learning_rate(lr))
    ```

    Args:
      lr: learning rate.
      betas: ``(β1, β2)``: momentum, decay of the layer-wise second moment.
      eps: added to ``sqrt(v)``.
      weight_decay: decay added inside the momentum.
      grad_averaging: scale the normalised gradient by ``1 - β1``.

    Examples:
        >>> opt = fo.novograd(lr=0.1)
        >>> params = [torch.zeros(2)]
        >>> opt.update([torch.tensor([3.0, 4.0])], opt.init(params), params)[0][0]
        tensor([-0.0600, -0.0800])

    References:
      Ginsburg et al., "Stochastic Gradient Methods with Layer-wise Adaptive Moments for Training
      of Deep Networks", 2019.
    """
    _validation.learning_rate(lr)
    _validation.betas(betas)
    return chain(
        scale_by_novograd(betas[0], betas[1], eps, weight_decay, grad_averaging=grad_averaging),
        scale_by_learning_rate(lr),
    )
