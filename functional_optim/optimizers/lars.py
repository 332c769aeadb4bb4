"""LARS as a composition of transforms (optax's ``lars``)."""

from __future__ import annotations

from functional_optim.core import GradientTransformation, Hyperparam
from functional_optim.hyperparams import schedulable
from functional_optim.transforms.lars import scale_by_lars

__all__ = ["lars"]


@schedulable("lr", "momentum", "weight_decay", "trust_coefficient", "eps")
def lars(
    lr: Hyperparam = 1.0,
    momentum: Hyperparam = 0.9,
    weight_decay: Hyperparam = 0.0,
    trust_coefficient: Hyperparam = 0.001,
    eps: Hyperparam = 0.0,
    nesterov: bool = False,
    trust_ratio: bool = True,
) -> GradientTransformation:
    r"""LARS: momentum SGD with a layer-wise trust ratio.

    ```text
    scale_by_lars(lr, momentum, weight_decay, trust_coefficient, eps, nesterov=nesterov)
    # = chain(add_decayed_weights(weight_decay),             # g ← g + wd·p
    #         scale_by_trust_ratio(trust_coefficient, eps),  # · η ||p|| / (||g + wd p|| + eps)
    #         scale_by_learning_rate(lr),
    #         trace(momentum, nesterov=nesterov))            # momentum of the scaled steps
    ```

    The learning rate is inside the momentum, as in the paper's Algorithm 1 and optax (the
    same as outside it for a constant rate). [`scale_by_lars`][functional_optim.transforms.lars.scale_by_lars]
    is that chain as one rule (the same numbers), so the adapters run LARS in place; the
    transform has no separate learning-rate stage (a ready-made ``fo.lars(...)`` given to
    ``FunctionalOptimizer`` exposes no ``lr`` in the groups: pass the factory ``fo.lars`` instead).

    Args:
      lr: global learning rate ``γ``.
      momentum: momentum ``m``.
      weight_decay: ``β``, added to the gradient before the trust ratio.
      trust_coefficient: ``η``.
      eps: added to the norm of the update.
      nesterov: Nesterov momentum.
      trust_ratio: ``False``: no layer-wise adaptation (optax's ``trust_ratio_mask=False``):
        momentum SGD with the learning rate inside the momentum. In the drop-in, give the
        parameters LARS is usually not applied to (biases, normalisation layers) a group with
        ``trust_ratio=False, weight_decay=0`` (what pytorch-optimizer's ``LARS`` does to every
        tensor of fewer than two dimensions).

    Examples:
        >>> opt = fo.lars(lr=1.0)
        >>> params = [torch.tensor([3.0, 4.0])]
        >>> opt.update([torch.tensor([1.0, 0.0])], opt.init(params), params)[0][0]
        tensor([-0.0050, -0.0000])

    References:
      You et al., "Large Batch Training of Convolutional Networks", 2017. optax.lars.
    """
    return scale_by_lars(
        lr, momentum, weight_decay, trust_coefficient, eps, nesterov=nesterov, trust_ratio=trust_ratio
    )
