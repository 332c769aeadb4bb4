"""D-Adaptation Adam / AdamW (``dadaptation.DAdaptAdam``'s names and defaults)."""

from __future__ import annotations

import math

from functional_optim.core import GradientTransformation, Hyperparam, chain
from functional_optim.hyperparams import schedulable
from functional_optim.transforms.dadapt_adam import scale_by_dadapt_adam
from functional_optim.transforms.scaling import negate

__all__ = ["dadapt_adam", "dadapt_adamw"]


@schedulable("lr", "betas", "eps", "weight_decay")
def dadapt_adam(
    lr: Hyperparam = 1.0,
    betas: tuple[Hyperparam, Hyperparam] = (0.9, 0.999),
    eps: Hyperparam = 1e-8,
    weight_decay: Hyperparam = 0,
    decouple: bool = False,
    use_bias_correction: bool = False,
    d0: float = 1e-6,
    growth_rate: float = math.inf,
    *,
    maximize: bool = False,
) -> GradientTransformation:
    r"""D-Adapted Adam, as ``dadaptation.DAdaptAdam`` (arguments and defaults; ``log_every`` and
    ``fsdp_in_use`` have no meaning here): ``chain([negate()], scale_by_dadapt_adam(...))``.

    Example:
      >>> opt = fo.dadapt_adam()
      >>> params = {"w": torch.ones(2)}
      >>> updates, state = opt.update({"w": torch.ones(2)}, opt.init(params), params)

    References:
      Defazio & Mishchenko, "Learning-Rate-Free Learning by D-Adaptation", ICML 2023.
    """
    if not isinstance(betas, tuple | list) or len(betas) != 2:
        raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
    return chain(
        *([negate()] if maximize else []),
        scale_by_dadapt_adam(
            lr, betas[0], betas[1], eps, weight_decay, decouple, use_bias_correction, d0, growth_rate
        ),
    )


@schedulable("lr", "betas", "eps", "weight_decay")
def dadapt_adamw(
    lr: Hyperparam = 1.0,
    betas: tuple[Hyperparam, Hyperparam] = (0.9, 0.999),
    eps: Hyperparam = 1e-8,
    weight_decay: Hyperparam = 0,
    use_bias_correction: bool = False,
    d0: float = 1e-6,
    growth_rate: float = math.inf,
    *,
    maximize: bool = False,
) -> GradientTransformation:
    r"""D-Adapted AdamW: [`dadapt_adam`][] with ``decouple=True`` (``DAdaptAdam(decouple=True)``).

    Example:
      >>> opt = fo.dadapt_adamw(weight_decay=0.01)
      >>> params = {"w": torch.ones(2)}
      >>> updates, state = opt.update({"w": torch.ones(2)}, opt.init(params), params)
    """
    return dadapt_adam(
        lr, betas, eps, weight_decay, True, use_bias_correction, d0, growth_rate, maximize=maximize
    )
