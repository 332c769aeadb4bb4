"""Prodigy (``prodigyopt.Prodigy``'s names and defaults)."""

from __future__ import annotations

import math

from functional_optim.core import GradientTransformation, Hyperparam, chain
from functional_optim.hyperparams import schedulable
from functional_optim.transforms.prodigy import scale_by_prodigy
from functional_optim.transforms.scaling import negate

__all__ = ["prodigy"]


@schedulable("lr", "betas", "beta3", "eps", "weight_decay", "d_coef")
def prodigy(
    lr: Hyperparam = 1.0,
    betas: tuple[Hyperparam, Hyperparam] = (0.9, 0.999),
    beta3: Hyperparam | None = None,
    eps: Hyperparam = 1e-8,
    weight_decay: Hyperparam = 0,
    decouple: bool = True,
    use_bias_correction: bool = False,
    safeguard_warmup: bool = False,
    d0: float = 1e-6,
    d_coef: Hyperparam = 1.0,
    growth_rate: float = math.inf,
    slice_p: int = 1,
    *,
    maximize: bool = False,
) -> GradientTransformation:
    r"""Prodigy, as ``prodigyopt.Prodigy`` (arguments and defaults; ``fsdp_in_use`` has no
    meaning here): ``chain([negate()], scale_by_prodigy(...))``, see [`scale_by_prodigy`][].

    Example:
      >>> opt = fo.prodigy(weight_decay=0.01)
      >>> params = {"w": torch.ones(2)}
      >>> updates, state = opt.update({"w": torch.ones(2)}, opt.init(params), params)

    References:
      Mishchenko & Defazio, "Prodigy: An Expeditiously Adaptive Parameter-Free Learner", ICML 2024.
    """
    if not isinstance(betas, tuple | list) or len(betas) != 2:
        raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
    return chain(
        *([negate()] if maximize else []),
        scale_by_prodigy(
            lr, betas[0], betas[1], beta3, eps, weight_decay, decouple, use_bias_correction,
            safeguard_warmup, d0, d_coef, growth_rate, slice_p,
        ),
    )  # fmt: skip
