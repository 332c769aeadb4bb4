"""Drop-in parameter-free optimizers: ``prodigyopt.Prodigy``, ``dadaptation.DAdaptAdam`` and the
``dog-optimizer`` package's ``DoG`` (their constructors and defaults).

Per-parameter state under the packages' names (``s``, ``p0``, ``exp_avg``, ``exp_avg_sq``,
``init_buffer``...); the group values the packages keep in ``param_groups`` (``d``, ``k``,
``d_numerator``, ``rbar``, ``G``...) are in the first parameter's ``functional_state``. One step
size is estimated per parameter group (the packages estimate one for all groups together).
"""

# No ``from __future__ import annotations``: the signatures (annotations included) are the packages'.

import math
from typing import Any

from torch.optim.optimizer import ParamsT

from functional_optim.adapters.optimizers import _DropIn
from functional_optim.optimizers.dadapt_adam import dadapt_adam
from functional_optim.optimizers.dog import dog
from functional_optim.optimizers.prodigy import prodigy

__all__ = ["DAdaptAdam", "DoG", "Prodigy"]


class Prodigy(_DropIn):
    r"""``prodigyopt.Prodigy`` over [`fo.prodigy`][functional_optim.optimizers.prodigy].

    Example:
      >>> model = torch.nn.Linear(3, 1)
      >>> opt = fo.adapters.Prodigy(model.parameters(), weight_decay=0.01)
      >>> model(torch.ones(2, 3)).sum().backward()
      >>> opt.step()
    """

    _tensor_step = False
    elementwise = True

    def _elementwise(self, group: dict[str, Any]) -> bool:
        """A rule in two passes, compiled pass by pass where ``s`` and ``p0`` hold one value per
        element of their parameter (``slice_p=1``)."""
        return group["slice_p"] == 1

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1.0,
        betas: tuple[float, float] = (0.9, 0.999),
        beta3: float | None = None,
        eps: float = 1e-8,
        weight_decay: float = 0,
        decouple: bool = True,
        use_bias_correction: bool = False,
        safeguard_warmup: bool = False,
        d0: float = 1e-6,
        d_coef: float = 1.0,
        growth_rate: float = math.inf,
        fsdp_in_use: bool = False,
        slice_p: int = 1,
    ) -> None:
        if fsdp_in_use:
            raise ValueError("Prodigy: fsdp_in_use is not supported (one estimate per parameter group)")
        self._dropin_init(
            params,
            prodigy,
            dict(
                lr=lr,
                betas=betas,
                beta3=beta3,
                eps=eps,
                weight_decay=weight_decay,
                decouple=decouple,
                use_bias_correction=use_bias_correction,
                safeguard_warmup=safeguard_warmup,
                d0=d0,
                d_coef=d_coef,
                growth_rate=growth_rate,
                slice_p=slice_p,
            ),
        )


class DAdaptAdam(_DropIn):
    r"""``dadaptation.DAdaptAdam`` over [`fo.dadapt_adam`][functional_optim.optimizers.dadapt_adam]
    (``decouple=True``: D-Adapted AdamW).

    Example:
      >>> model = torch.nn.Linear(3, 1)
      >>> opt = fo.adapters.DAdaptAdam(model.parameters(), weight_decay=0.01, decouple=True)
      >>> model(torch.ones(2, 3)).sum().backward()
      >>> opt.step()
    """

    _tensor_step = False
    elementwise = True  # a rule in two passes, compiled pass by pass

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1.0,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        log_every: int = 0,
        decouple: bool = False,
        use_bias_correction: bool = False,
        d0: float = 1e-6,
        growth_rate: float = math.inf,
        fsdp_in_use: bool = False,
    ) -> None:
        if fsdp_in_use:
            raise ValueError("DAdaptAdam: fsdp_in_use is not supported (one estimate per parameter group)")
        self._dropin_init(
            params,
            dadapt_adam,
            dict(
                lr=lr,
                betas=betas,
                eps=eps,
                weight_decay=weight_decay,
                decouple=decouple,
                use_bias_correction=use_bias_correction,
                d0=d0,
                growth_rate=growth_rate,
            ),
        )
        for group in self.param_groups:
            group["log_every"] = log_every


class DoG(_DropIn):
    r"""The ``dog-optimizer`` package's ``DoG`` over [`fo.dog`][functional_optim.optimizers.dog].

    Example:
      >>> model = torch.nn.Linear(3, 1)
      >>> opt = fo.adapters.DoG(model.parameters())
      >>> model(torch.ones(2, 3)).sum().backward()
      >>> opt.step()
    """

    _tensor_step = False

    def __init__(
        self,
        params: ParamsT,
        reps_rel: float = 1e-6,
        lr: float = 1.0,
        weight_decay: float = 0.0,
        eps: float = 1e-8,
        init_eta: float | None = None,
    ) -> None:
        self._dropin_init(
            params,
            dog,
            dict(reps_rel=reps_rel, lr=lr, weight_decay=weight_decay, eps=eps, init_eta=init_eta),
        )
