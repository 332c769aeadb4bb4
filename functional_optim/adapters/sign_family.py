"""Drop-in optimizers of the sign / momentum family: ``Lion``, ``Signum``, ``LARS``, ``Lamb``,
``Novograd``.

Each has the constructor of its authors' (or the usual) PyTorch class, runs the pure alias
``fo.<name>`` and keeps its state under the alias's field names (``exp_avg``, ...).

Example::

    # before: opt = lion_pytorch.Lion(model.parameters(), lr=1e-4, weight_decay=1.0)
    opt = functional_optim.adapters.Lion(model.parameters(), lr=1e-4, weight_decay=1.0)
"""

# No ``from __future__ import annotations``: the signatures are the reference classes'.

from torch.optim.optimizer import ParamsT

from functional_optim.adapters.optimizers import _DropIn
from functional_optim.optimizers.lamb import lamb
from functional_optim.optimizers.lars import lars
from functional_optim.optimizers.lion import lion
from functional_optim.optimizers.novograd import novograd
from functional_optim.optimizers.signum import signum

__all__ = ["LARS", "Lamb", "Lion", "Novograd", "Signum"]


class Lion(_DropIn):
    """lion-pytorch's ``Lion`` over [`fo.lion`][functional_optim.optimizers.lion] (state: ``exp_avg``)."""

    elementwise = True

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-4,
        betas: tuple[float, float] = (0.9, 0.99),
        weight_decay: float = 0.0,
    ) -> None:
        self._dropin_init(params, lion, dict(lr=lr, betas=betas, weight_decay=weight_decay))


class Signum(_DropIn):
    """``Signum`` (sign of momentum; sign SGD with ``momentum=0``) over
    [`fo.signum`][functional_optim.optimizers.signum]."""

    elementwise = True

    def __init__(
        self, params: ParamsT, lr: float = 0.01, momentum: float = 0.9, weight_decay: float = 0.0
    ) -> None:
        self._dropin_init(params, signum, dict(lr=lr, momentum=momentum, weight_decay=weight_decay))


class LARS(_DropIn):
    """``LARS`` over [`fo.lars`][functional_optim.optimizers.lars] (optax's arguments; state:
    ``momentum_buffer``). A group with ``trust_ratio=False`` is not adapted layer-wise (e.g.
    biases and normalisation layers, with ``weight_decay=0``).

    Examples:
        >>> model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4))
        >>> matrices = [p for p in model.parameters() if p.ndim > 1]
        >>> others = [p for p in model.parameters() if p.ndim <= 1]
        >>> opt = fo.adapters.LARS(
        ...     [{"params": matrices}, {"params": others, "trust_ratio": False, "weight_decay": 0.0}],
        ...     lr=0.1,
        ...     weight_decay=1e-4,
        ... )
        >>> model(torch.randn(2, 4)).sum().backward()
        >>> opt.step()
        >>> [g["trust_ratio"] for g in opt.param_groups]
        [True, False]

    `elementwise` (per tensor: the trust ratio is a norm over one tensor), so ``"fused": True`` in
    a param group compiles its step.
    """

    elementwise = True

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1.0,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        trust_coefficient: float = 0.001,
        eps: float = 0.0,
        nesterov: bool = False,
        trust_ratio: bool = True,
    ) -> None:
        self._dropin_init(
            params,
            lars,
            dict(
                lr=lr,
                momentum=momentum,
                weight_decay=weight_decay,
                trust_coefficient=trust_coefficient,
                eps=eps,
                nesterov=nesterov,
                trust_ratio=trust_ratio,
            ),
        )


class Lamb(_DropIn):
    """``Lamb`` (pytorch-lamb's arguments) over [`fo.lamb`][functional_optim.optimizers.lamb], with the
    paper's bias correction (state: ``step``, ``exp_avg``, ``exp_avg_sq``). `elementwise` (per
    tensor: its trust ratio is a norm over one tensor), so ``"fused": True`` in a param group
    compiles its step."""

    elementwise = True

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-6,
        weight_decay: float = 0.0,
    ) -> None:
        self._dropin_init(params, lamb, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))


class Novograd(_DropIn):
    """NVIDIA's ``Novograd`` over [`fo.novograd`][functional_optim.optimizers.novograd] (state: ``step``,
    ``exp_avg``, ``exp_avg_sq`` — the latter one 0-dim tensor per parameter). `elementwise` (per
    tensor: the second moment is a norm over one tensor), so ``"fused": True`` in a param group
    compiles its step."""

    elementwise = True

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.95, 0.98),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        grad_averaging: bool = False,
    ) -> None:
        self._dropin_init(
            params,
            novograd,
            dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, grad_averaging=grad_averaging),
        )
