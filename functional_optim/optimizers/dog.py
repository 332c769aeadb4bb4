"""DoG (the ``dog-optimizer`` package's ``DoG``: names and defaults)."""

from __future__ import annotations

from functional_optim.core import GradientTransformation, Hyperparam, chain
from functional_optim.hyperparams import schedulable
from functional_optim.transforms.dog import scale_by_dog
from functional_optim.transforms.scaling import negate

__all__ = ["dog"]


@schedulable("lr", "weight_decay")
def dog(
    reps_rel: float = 1e-6,
    lr: Hyperparam = 1.0,
    weight_decay: Hyperparam = 0.0,
    eps: float = 1e-8,
    init_eta: float | None = None,
    *,
    maximize: bool = False,
) -> GradientTransformation:
    r"""DoG, as ``dog.DoG`` (arguments, order and defaults):
    ``chain([negate()], scale_by_dog(lr, reps_rel, eps, init_eta, weight_decay))``.

    Example:
      >>> opt = fo.dog()
      >>> params = {"w": torch.ones(2)}
      >>> updates, state = opt.update({"w": torch.ones(2)}, opt.init(params), params)

    References:
      Ivgi, Hinder & Carmon, "DoG is SGD's Best Friend", ICML 2023.
    """
    return chain(*([negate()] if maximize else []), scale_by_dog(lr, reps_rel, eps, init_eta, weight_decay))
