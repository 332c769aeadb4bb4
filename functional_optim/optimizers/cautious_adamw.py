"""C-AdamW: AdamW with cautious masking (the authors' ``AdamW`` of C-Optim)."""

from __future__ import annotations

from functional_optim import _validation
from functional_optim.core import GradientTransformation, Hyperparam, chain
from functional_optim.hyperparams import schedulable
from functional_optim.transforms.adam import scale_by_adam
from functional_optim.transforms.cautious import cautious
from functional_optim.transforms.cautious_weight_decay import add_cautious_decayed_weights
from functional_optim.transforms.scaling import scale_by_learning_rate
from functional_optim.transforms.weight_decay import add_decayed_weights

__all__ = ["cautious_adamw"]


@schedulable("lr", "betas", "eps", "weight_decay")
def cautious_adamw(
    lr: Hyperparam = 1e-3,
    betas: tuple[Hyperparam, Hyperparam] = (0.9, 0.999),
    eps: Hyperparam = 1e-8,
    weight_decay: Hyperparam = 1e-2,
    *,
    rescale: str = "mean",
    cautious_weight_decay: bool = False,
) -> GradientTransformation:
    r"""C-AdamW (Liang et al., 2024): AdamW whose update keeps only the components that agree in
    sign with the gradient.

    ```text
    chain(cautious(scale_by_adam(β1, β2, eps), rescale),
          add_decayed_weights(wd)  (or add_cautious_decayed_weights(wd)),
          scale_by_learning_rate(lr))
    ```

    Args: as [`adamw`][]; ``rescale`` as [`cautious`][]; ``cautious_weight_decay`` decays
    only where the update agrees with the parameter's sign (Chen et al., 2025).

    Example:
      >>> opt = fo.cautious_adamw(lr=1e-3)
      >>> params = {"w": torch.ones(2)}
      >>> updates, state = opt.update({"w": torch.ones(2)}, opt.init(params), params)

    References:
      Liang et al., "Cautious Optimizers: Improving Training with One Line of Code", 2024.
    """
    _validation.learning_rate(lr)
    _validation.betas(betas)
    _validation.nonnegative("weight_decay", weight_decay, "weight_decay value")
    decay = add_cautious_decayed_weights if cautious_weight_decay else add_decayed_weights
    return chain(
        cautious(scale_by_adam(betas[0], betas[1], eps), rescale),
        decay(weight_decay),
        scale_by_learning_rate(lr),
    )
