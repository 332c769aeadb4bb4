"""Drop-in optimizers of the Adam family: ``AdaBelief``, ``Yogi``, ``ADOPT``, ``AdEMAMix``,
``Adan``, ``LaProp``.

Each has its authors' PyTorch constructor (names and defaults), runs the pure alias
``fo.<name>`` and keeps its state under the reference's keys where the alias has them
(``exp_avg``, ``exp_avg_sq``, ``exp_avg_var``, ``exp_avg_diff``, ``pre_grad``, ...).

Example::

    opt = functional_optim.adapters.Adan(model.parameters(), lr=1e-3, weight_decay=0.02)
"""

# No ``from __future__ import annotations``: the signatures are the reference classes'.

from collections.abc import Callable
from typing import Any

from torch.optim.optimizer import ParamsT

from functional_optim.adapters.optimizers import _DropIn
from functional_optim.optimizers.adabelief import adabelief
from functional_optim.optimizers.adan import adan
from functional_optim.optimizers.ademamix import ademamix
from functional_optim.optimizers.adopt import adopt
from functional_optim.optimizers.laprop import laprop
from functional_optim.optimizers.yogi import yogi
from functional_optim.transforms.adopt import adopt_clip

__all__ = ["ADOPT", "AdEMAMix", "AdaBelief", "Adan", "LaProp", "Yogi"]


class AdaBelief(_DropIn):
    """adabelief-pytorch's ``AdaBelief`` (0.2, ``rectify=True`` by default) over
    [`fo.adabelief`][functional_optim.optimizers.adabelief]. A group with ``rectify=False`` is
    `elementwise`, so ``"fused": True`` compiles its step; a rectified group runs the eager step
    (the rectification needs concrete step counters, which a compiled step does not have)."""

    def _elementwise(self, group: dict[str, Any]) -> bool:
        return not group["rectify"]

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-16,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        weight_decouple: bool = True,
        fixed_decay: bool = False,
        rectify: bool = True,
        degenerated_to_sgd: bool = True,
    ) -> None:
        self._dropin_init(
            params,
            adabelief,
            dict(
                lr=lr,
                betas=betas,
                eps=eps,
                weight_decay=weight_decay,
                amsgrad=amsgrad,
                weight_decouple=weight_decouple,
                fixed_decay=fixed_decay,
                rectify=rectify,
                degenerated_to_sgd=degenerated_to_sgd,
            ),
        )


class Yogi(_DropIn):
    """``Yogi`` (the authors' defaults) over [`fo.yogi`][functional_optim.optimizers.yogi]."""

    elementwise = True

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-2,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-3,
        initial_accumulator: float = 1e-6,
        weight_decay: float = 0.0,
    ) -> None:
        self._dropin_init(
            params,
            yogi,
            dict(
                lr=lr,
                betas=betas,
                eps=eps,
                initial_accumulator=initial_accumulator,
                weight_decay=weight_decay,
            ),
        )


class ADOPT(_DropIn):
    """The authors' ``ADOPT`` over [`fo.adopt`][functional_optim.optimizers.adopt] (clipping at the paper's
    step)."""

    elementwise = True

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.9999),
        eps: float = 1e-6,
        clip_lambda: Callable[[Any], Any] | None = adopt_clip,
        weight_decay: float = 0.0,
        decouple: bool = False,
    ) -> None:
        self._dropin_init(
            params,
            adopt,
            dict(
                lr=lr,
                betas=betas,
                eps=eps,
                clip_lambda=clip_lambda,
                weight_decay=weight_decay,
                decouple=decouple,
            ),
        )


class AdEMAMix(_DropIn):
    """The authors' ``AdEMAMix`` (apple/ml-ademamix) over
    [`fo.ademamix`][functional_optim.optimizers.ademamix]."""

    elementwise = True

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        betas: tuple[float, float, float] = (0.9, 0.999, 0.9999),
        alpha: float = 2.0,
        beta3_warmup: int | None = None,
        alpha_warmup: int | None = None,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        self._dropin_init(
            params,
            ademamix,
            dict(
                lr=lr,
                betas=betas,
                alpha=alpha,
                beta3_warmup=beta3_warmup,
                alpha_warmup=alpha_warmup,
                eps=eps,
                weight_decay=weight_decay,
            ),
        )


class Adan(_DropIn):
    """The authors' ``Adan`` (sail-sg/Adan) over [`fo.adan`][functional_optim.optimizers.adan]."""

    elementwise = True

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        betas: tuple[float, float, float] = (0.98, 0.92, 0.99),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        max_grad_norm: float = 0.0,
        no_prox: bool = False,
    ) -> None:
        self._dropin_init(
            params,
            adan,
            dict(
                lr=lr,
                betas=betas,
                eps=eps,
                weight_decay=weight_decay,
                max_grad_norm=max_grad_norm,
                no_prox=no_prox,
            ),
        )


class LaProp(_DropIn):
    """The authors' ``LaProp`` over [`fo.laprop`][functional_optim.optimizers.laprop]."""

    elementwise = True

    def __init__(
        self,
        params: ParamsT,
        lr: float = 4e-4,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-15,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
    ) -> None:
        self._dropin_init(
            params, laprop, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)
        )
