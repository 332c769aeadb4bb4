"""Lion as a composition of transforms (lion-pytorch's ``Lion``)."""

from __future__ import annotations

from functional_optim import _validation
from functional_optim.core import GradientTransformation, Hyperparam, chain
from functional_optim.hyperparams import schedulable
from functional_optim.transforms.lion import scale_by_lion
from functional_optim.transforms.scaling import scale_by_learning_rate
from functional_optim.transforms.weight_decay import add_decayed_weights

__all__ = ["lion"]


@schedulable("lr", "betas", "weight_decay")
def lion(
    lr: Hyperparam = 1e-4, betas: tuple[Hyperparam, Hyperparam] = (0.9, 0.99), weight_decay: Hyperparam = 0.0
) -> GradientTransformation:
    r"""Lion (EvoLved Sign Momentum), with lion-pytorch's arguments and defaults.

    ```text
    chain(scale_by_lion(β1, β2),               # sign(β1 m + (1-β1) g); m ← β2 m + (1-β2) g
          add_decayed_weights(weight_decay, decoupled=True),  # p ← p - lr·wd·p
          scale_by_learning_rate(lr))
    ```

    Args:
      lr: learning rate (3-10x smaller than AdamW's, the paper advises).
      betas: ``(β1, β2)``: interpolation for the update, decay of the momentum.
      weight_decay: decoupled weight decay (3-10x larger than AdamW's).

    Example:
      >>> opt = fo.lion(lr=1e-4, weight_decay=1.0)
      >>> params = {"w": torch.ones(3)}
      >>> updates, state = opt.update({"w": torch.ones(3)}, opt.init(params), params)
      >>> fo.apply_updates(params, updates)["w"]
      tensor([0.9998, 0.9998, 0.9998])

    References:
      Chen et al., "Symbolic Discovery of Optimization Algorithms", NeurIPS 2023.
    """
    _validation.learning_rate(lr)
    _validation.betas(betas)
    _validation.nonnegative("weight_decay", weight_decay, "weight_decay value")
    return chain(
        scale_by_lion(betas[0], betas[1]),
        add_decayed_weights(weight_decay, decoupled=True),
        scale_by_learning_rate(lr),
    )
