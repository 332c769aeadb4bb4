"""``MuonWithAdamW``: Muon for a model's hidden matrices, AdamW for the rest, as one optimizer."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from torch import Tensor

from functional_optim.adapters._base import FunctionalOptimizer
from functional_optim.core import GradientTransformation
from functional_optim.optimizers.adam import adamw
from functional_optim.optimizers.muon import muon
from functional_optim.optimizers.muon_split import muon_labels

__all__ = ["MuonWithAdamW", "muon_or_adamw"]


def muon_or_adamw(
    use_muon: bool = False,
    lr: float | Tensor = 1e-3,
    weight_decay: float = 0.0,
    momentum: float = 0.95,
    nesterov: bool = True,
    ns_steps: int = 5,
    adjust_lr_fn: str | None = None,
    betas: tuple[float, float] = (0.9, 0.95),
    eps: float = 1e-8,
) -> GradientTransformation:
    """The transform of one parameter group of :class:`MuonWithAdamW`: :func:`~functional_optim.muon`
    when ``use_muon`` else :func:`~functional_optim.adamw` (each reads only its own arguments)."""
    if use_muon:
        return muon(
            lr=lr,
            weight_decay=weight_decay,
            momentum=momentum,
            nesterov=nesterov,
            ns_steps=ns_steps,
            adjust_lr_fn=adjust_lr_fn,
        )
    return adamw(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)


class MuonWithAdamW(FunctionalOptimizer):
    """One ``torch.optim.Optimizer`` that trains a whole model with Muon and AdamW.

    The named parameters are split by :func:`functional_optim.muon_labels` (hidden 2-D matrices
    → Muon; embeddings, output head, biases, norms and anything not 2-D → AdamW; pass ``rule`` to
    override) into two parameter groups, ``use_muon=True`` and ``use_muon=False``, each with its
    own ``lr`` and ``weight_decay`` — so LR schedulers, ``state_dict`` and checkpoints work as for
    any optimizer. The numbers equal :func:`functional_optim.muon_with_adamw` on the same split.

    Example::

        opt = fo.adapters.MuonWithAdamW(model.named_parameters(), muon_lr=0.02, adamw_lr=3e-4)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=1000)  # scales both groups

    References:
      K. Jordan et al., "Muon: An optimizer for hidden layers in neural networks" (2024).
    """

    def __init__(
        self,
        named_parameters: Iterable[tuple[str, Tensor]],
        *,
        muon_lr: float = 0.02,
        muon_weight_decay: float = 0.1,
        momentum: float = 0.95,
        nesterov: bool = True,
        ns_steps: int = 5,
        adjust_lr_fn: str | None = None,
        adamw_lr: float = 3e-4,
        adamw_weight_decay: float = 0.01,
        betas: tuple[float, float] = (0.9, 0.95),
        eps: float = 1e-8,
        rule: Callable[[str, Tensor], str] | None = None,
    ) -> None:
        named = list(named_parameters)
        if not named or not all(isinstance(item, tuple) and len(item) == 2 for item in named):
            raise ValueError("MuonWithAdamW needs model.named_parameters(): (name, tensor) pairs")
        labels = muon_labels(dict(named), rule)
        groups = [
            {
                "params": [p for n, p in named if labels[n] == "muon"],
                "use_muon": True,
                "lr": muon_lr,
                "weight_decay": muon_weight_decay,
            },
            {
                "params": [p for n, p in named if labels[n] != "muon"],
                "use_muon": False,
                "lr": adamw_lr,
                "weight_decay": adamw_weight_decay,
            },
        ]
        super().__init__(
            [g for g in groups if g["params"]],
            muon_or_adamw,
            momentum=momentum,
            nesterov=nesterov,
            ns_steps=ns_steps,
            adjust_lr_fn=adjust_lr_fn,
            betas=betas,
            eps=eps,
        )
