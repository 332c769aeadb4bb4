"""LAMB as a composition of transforms."""

from __future__ import annotations

from functional_optim import _validation
from functional_optim.core import GradientTransformation, Hyperparam, chain
from functional_optim.hyperparams import schedulable
from functional_optim.transforms.lamb import scale_by_lamb
from functional_optim.transforms.scaling import scale_by_learning_rate

__all__ = ["lamb"]


@schedulable("lr", "betas", "eps", "weight_decay")
def lamb(
    lr: Hyperparam = 1e-3,
    betas: tuple[Hyperparam, Hyperparam] = (0.9, 0.999),
    eps: Hyperparam = 1e-6,
    weight_decay: Hyperparam = 0.0,
) -> GradientTransformation:
    r"""LAMB: Adam's bias-corrected step plus decoupled decay, scaled layer-wise by ``||p|| / ||u||``.

    ```text
    chain(scale_by_lamb(β1, β2, eps, weight_decay),  # scale_by_adam(β1, β2, eps): m̂ / (sqrt(v̂) + eps)
                                                     # + wd·p            (add_decayed_weights)
                                                     # · ||p|| / ||u||   (scale_by_trust_ratio)
          scale_by_learning_rate(lr))
    ```

    [`scale_by_lamb`][functional_optim.transforms.lamb.scale_by_lamb] is the three transforms of
    its comment as one rule (the same numbers), so the adapters run LAMB in place.

    As the paper's Algorithm 2 and optax.lamb: bias correction on, no clipping of ``||p||``
    (cybertronai's pytorch-lamb, with the same arguments, drops the bias correction and clips
    ``||p||`` to 10).

    Args:
      lr: learning rate.
      betas: ``(β1, β2)``.
      eps: added to the denominator.
      weight_decay: decoupled decay, inside the trust ratio.

    Examples:
        >>> opt = fo.lamb(lr=0.1)
        >>> params = [torch.tensor([3.0, 4.0])]
        >>> opt.update([torch.tensor([1.0, 1.0])], opt.init(params), params)[0][0]
        tensor([-0.3536, -0.3536])

    References:
      You et al., "Large Batch Optimization for Deep Learning: Training BERT in 76 minutes", ICLR 2020.
    """
    _validation.learning_rate(lr)
    _validation.betas(betas)
    _validation.nonnegative("eps", eps, "epsilon value")
    _validation.nonnegative("weight_decay", weight_decay, "weight_decay value")
    return chain(scale_by_lamb(betas[0], betas[1], eps, weight_decay), scale_by_learning_rate(lr))
